package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds alias expansion, which can otherwise grow a small file
// exponentially ("billion laughs").
const maxNodes = 1_000_000

// resolveAliases returns a copy of n with every alias replaced by a copy of
// its anchor and every << merge key applied. Later stages edit values in
// place (${VAR}) and key problems by node; with shared nodes one edit would
// show up in two places, and $$ would be unescaped twice.
func resolveAliases(n *yaml.Node, count *int, active map[*yaml.Node]bool) (*yaml.Node, error) {
	if *count++; *count > maxNodes {
		return nil, &nodeError{node: n, msg: "the file is too large once its aliases are expanded"}
	}
	if n.Kind == yaml.AliasNode {
		return resolveAliases(n.Alias, count, active)
	}
	if n.Anchor != "" {
		if active[n] {
			return nil, &nodeError{node: n, msg: fmt.Sprintf("anchor &%s contains an alias to itself", n.Anchor)}
		}
		active[n] = true
		defer delete(active, n)
	}
	out := *n
	out.Anchor, out.Content = "", nil
	var merged []*yaml.Node
	for i := 0; i < len(n.Content); i++ {
		c := n.Content[i]
		if n.Kind == yaml.MappingNode && i%2 == 0 && i+1 < len(n.Content) && c.Kind == yaml.ScalarNode && c.ShortTag() == "!!merge" {
			i++
			v, err := resolveAliases(n.Content[i], count, active)
			if err != nil {
				return nil, err
			}
			sources := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				sources = v.Content
			}
			for _, s := range sources {
				if s.Kind != yaml.MappingNode {
					return nil, &nodeError{node: c, msg: "<< must merge a mapping or a list of mappings"}
				}
				merged = append(merged, s.Content...)
			}
			continue
		}
		rc, err := resolveAliases(c, count, active)
		if err != nil {
			return nil, err
		}
		out.Content = append(out.Content, rc)
	}
	// YAML's merge rule: the mapping's own keys win, then earlier merged
	// mappings win over later ones.
	have := map[string]bool{}
	for i := 0; i < len(out.Content); i += 2 {
		have[out.Content[i].Value] = true
	}
	for i := 0; i+1 < len(merged); i += 2 {
		if k := merged[i].Value; !have[k] {
			have[k] = true
			out.Content = append(out.Content, merged[i], merged[i+1])
		}
	}
	return &out, nil
}
