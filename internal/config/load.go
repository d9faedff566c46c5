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
			l.add("", extra.Content[0], "the file has more than one YAML document (---); put everything in one")
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
