package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the file at path and parses it (see Parse). Every error it
// returns is an *Error whose Source is path.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		reason := err
		var pe *fs.PathError
		if errors.As(err, &pe) {
			reason = pe.Err // the path is already the Error's Source
		}
		return nil, &Error{Source: path, Problems: []Problem{{Message: "cannot read the file: " + reason.Error()}}, Err: err}
	}
	return Parse(data, path, lookupEnv)
}

// Parse builds a Config from YAML, names source in its errors, and reads
// environment variables only through lookupEnv (nil means none are set). It
// returns either a valid Config or an *Error listing every problem found.
func Parse(data []byte, source string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	l := &loader{
		lookupEnv: lookupEnv,
		bad:       map[*yaml.Node]bool{},
		fromEnv:   map[*yaml.Node]bool{},
		inherited: map[*yaml.Node]bool{},
		nodes:     map[string]*yaml.Node{},
	}
	cfg := l.load(data)
	if len(l.problems) > 0 {
		return nil, &Error{Source: source, Problems: l.sorted()}
	}
	return cfg, nil
}

// loader holds what one Parse learns about the document, so that problems
// found at different stages can be tied to the node they are about.
type loader struct {
	lookupEnv func(string) (string, bool)
	problems  []problem

	bad       map[*yaml.Node]bool   // already reported; later stages stay quiet about it
	fromEnv   map[*yaml.Node]bool   // value came from ${VAR}: never quoted in a message
	inherited map[*yaml.Node]bool   // written under defaults, shared by connections
	nodes     map[string]*yaml.Node // field path -> node it was decoded from
}

type problem struct {
	path string
	msg  string
	node *yaml.Node // nil when nothing in the file corresponds (missing field)
}

func (l *loader) load(data []byte) *Config {
	root := l.parse(data)
	if root == nil {
		return nil
	}
	root, err := resolveAliases(root, new(int), map[*yaml.Node]bool{})
	if err != nil {
		var ne *nodeError
		errors.As(err, &ne)
		l.add("", ne.node, ne.msg)
		return nil
	}
	l.prepare(root, configType, "")
	l.mergeDefaults(root)

	cfg := (&Config{}).WithDefaults()
	l.decode(root, reflect.ValueOf(cfg).Elem(), "")
	for i := range cfg.Connections {
		m := &cfg.Connections[i].Mailchimp
		if m.BaseURL == "" {
			m.BaseURL = defaultBaseURL(m.APIKey)
		}
		m.BaseURL = strings.TrimRight(m.BaseURL, "/") // the client appends /lists/...
	}
	for _, p := range cfg.validate() {
		l.addValidation(p)
	}
	return cfg
}

// parse returns the top-level mapping, or nil after reporting why there is none.
func (l *loader) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.add("", nil, "the file is empty; it needs at least one connection")
		} else {
			l.syntaxError(err, data)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		if len(extra.Content) > 0 && extra.Content[0].ShortTag() != "!!null" {
			l.add("", extra.Content[0], "has more than one YAML document (---); put everything in one")
		}
	case !errors.Is(err, io.EOF):
		l.syntaxError(err, data)
	}
	root := doc.Content[0]
	switch {
	case root.ShortTag() == "!!null":
		l.add("", nil, "the file is empty; it needs at least one connection")
		return nil
	case root.Kind != yaml.MappingNode:
		l.add("", root, "the top level must be a mapping of settings (state, connections, ...)")
		return nil
	}
	return root
}

// syntaxError turns yaml's "yaml: line 3: did not find expected key" into a
// problem with a line like every other one.
func (l *loader) syntaxError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	// {Authorization: ${KEY}} is the classic way to get here: in flow style
	// the braces of ${...} end the plain value.
	if strings.Contains(msg, "did not find expected ',' or") && bytes.Contains(data, []byte("${")) {
		msg += ` (quote a ${VAR} inside { } or [ ], or use block style)`
	}
	l.add("", &yaml.Node{Line: line}, "invalid YAML: "+msg)
}

// maxNodes bounds alias expansion, which can otherwise grow a small file
// exponentially ("billion laughs").
const maxNodes = 1_000_000

// resolveAliases returns a copy of n with every alias replaced by a copy of
// its anchor and every << merge key applied. Later stages edit values in
// place (${VAR}) and key problems by node; with shared nodes one edit would
// show up in two places, and $$ would be unescaped twice.
func resolveAliases(n *yaml.Node, count *int, active map[*yaml.Node]bool) (*yaml.Node, error) {
	if *count++; *count > maxNodes {
		return nil, &nodeError{node: n, msg: "is too large once its aliases are expanded"}
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
	l.decode(defaults, reflect.ValueOf(&d).Elem(), "defaults")

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

func (l *loader) add(path string, n *yaml.Node, msg string) {
	l.problems = append(l.problems, problem{path: path, msg: msg, node: n})
}

// fail reports a bad value once. A value written under defaults is decoded
// for defaults and again for each connection; only the first report counts.
func (l *loader) fail(path string, n *yaml.Node, msg string) {
	if l.bad[n] && l.inherited[n] && !underDefaults(path) {
		return
	}
	l.bad[n] = true
	l.add(path, n, msg)
}

// addValidation ties a Validate problem to its node, and drops it when that
// value or one containing it was already reported: an unset ${VAR} should
// not also be "required".
func (l *loader) addValidation(p Problem) {
	for path, ok := p.Field, true; ok; path, ok = parentPath(path) {
		if n := l.nodes[path]; n != nil && l.bad[n] {
			return
		}
	}
	l.add(p.Field, l.nodes[p.Field], p.Message)
}

// sorted returns the problems in document order: by the line of the field,
// or for a missing or inherited field, of the nearest enclosing field written
// in this part of the file. Ties keep the order they were found in.
func (l *loader) sorted() []Problem {
	type keyed struct {
		Problem
		at int
	}
	var out []keyed
	seen := map[Problem]bool{}
	for _, p := range l.problems {
		q := Problem{Field: p.path, Message: p.msg}
		if p.node != nil && p.node.Line > 0 {
			q.Line = p.node.Line
			if l.inherited[p.node] && !underDefaults(p.path) {
				q.Message += fmt.Sprintf(" (line %d, in defaults)", q.Line)
			} else {
				q.Message += fmt.Sprintf(" (line %d)", q.Line)
			}
		}
		if !seen[q] {
			seen[q] = true
			out = append(out, keyed{q, l.sortLine(p.path, p.node)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	ps := make([]Problem, len(out))
	for i, k := range out {
		ps[i] = k.Problem
	}
	return ps
}

func (l *loader) sortLine(path string, n *yaml.Node) int {
	for {
		if n != nil && n.Line > 0 && !(l.inherited[n] && !underDefaults(path)) {
			return n.Line
		}
		parent, ok := parentPath(path)
		if !ok {
			return 0
		}
		path, n = parent, l.nodes[parent]
	}
}

func underDefaults(path string) bool {
	return path == "defaults" || strings.HasPrefix(path, "defaults.") || strings.HasPrefix(path, "defaults[")
}
