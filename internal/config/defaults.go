package config

import (
	"reflect"

	"go.yaml.in/yaml/v3"
)

// mergeDefaults lays the defaults block under each connection in the tree,
// so that decoding and validation see each connection whole.
func (l *loader) mergeDefaults(root *yaml.Node) {
	defaults, conns := lookup(root, "defaults"), lookup(root, "connections")
	if defaults == nil || defaults.ShortTag() == "!!null" {
		return
	}
	if defaults.Kind != yaml.MappingNode {
		l.fail("defaults", defaults, "must be a mapping of connection settings"+l.got(defaults))
		return
	}
	defaults = withoutKey(defaults, "name") // already reported by prepare
	markAll(defaults, l.inherited)
	// Decoded on its own first, so a bad value in defaults is reported once,
	// as defaults.x, rather than once per connection.
	var d Connection
	d.prefill()
	l.decode(withoutList(defaults), reflect.ValueOf(&d).Elem(), "defaults")

	if conns == nil || conns.Kind != yaml.SequenceNode {
		return
	}
	for i, c := range conns.Content {
		if c.Kind == yaml.MappingNode {
			conns.Content[i] = overlay(defaults, c, true)
		}
	}
}

// overlay returns over laid on top of under. Mappings merge key by key;
// anything else comes whole from over. At the top of a connection, mapping is
// taken whole too: a record shape half from defaults and half from the
// connection would surprise everyone. A ~ in over wins without merging, so a
// connection can decline what defaults offer.
func overlay(under, over *yaml.Node, top bool) *yaml.Node {
	if under.Kind != yaml.MappingNode || over.Kind != yaml.MappingNode {
		return over
	}
	out := *over
	out.Content = nil
	seen := map[string]bool{}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k, v := over.Content[i], over.Content[i+1]
		seen[k.Value] = true
		if u := lookup(under, k.Value); u != nil && v.ShortTag() != "!!null" && !(top && k.Value == "mapping") {
			v = overlay(u, v, false)
		}
		out.Content = append(out.Content, k, v)
	}
	for i := 0; i+1 < len(under.Content); i += 2 {
		if !seen[under.Content[i].Value] {
			out.Content = append(out.Content, under.Content[i], under.Content[i+1])
		}
	}
	return &out
}

// lookup returns the value of key in mapping n; the last one wins, as in decode.
func lookup(n *yaml.Node, key string) *yaml.Node {
	var v *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v = n.Content[i+1]
		}
	}
	return v
}

func withoutKey(n *yaml.Node, key string) *yaml.Node {
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != key {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return &out
}

func markAll(n *yaml.Node, set map[*yaml.Node]bool) {
	set[n] = true
	for _, c := range n.Content {
		markAll(c, set)
	}
}

// withoutList returns defaults without a list_id sequence, which each
// connection that inherits it expands and checks (see takeLists).
func withoutList(defaults *yaml.Node) *yaml.Node {
	mc := lookup(defaults, "mailchimp")
	if mc == nil || mc.Kind != yaml.MappingNode {
		return defaults
	}
	if ids := lookup(mc, "list_id"); ids == nil || ids.Kind != yaml.SequenceNode {
		return defaults
	}
	return withValue(defaults, "mailchimp", withoutKey(mc, "list_id"))
}
