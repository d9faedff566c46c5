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

// Load reads the configuration at path and parses it (see Parse). A
// directory is read as fragments (see LoadDir). Every error it returns is an
// *Error whose Source is path.
func Load(path string, lookupEnv func(string) (string, bool)) (*Config, error) {
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return LoadDir(path, lookupEnv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, readError(path, path, "file", err)
	}
	return Parse(data, path, lookupEnv)
}

// readError is the *Error for a file that cannot be read. The reason leaves
// out the path, which the Error or its problem already names.
func readError(source, file, noun string, err error) *Error {
	reason := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err
	}
	p := Problem{Message: "cannot read the " + noun + ": " + reason.Error()}
	if file != source {
		p.Source = file
	}
	return &Error{Source: source, Problems: []Problem{p}, Err: err}
}

// Parse builds a Config from YAML, names source in its errors, and reads
// environment variables only through lookupEnv (nil means none are set). It
// returns either a valid Config or an *Error listing every problem found.
func Parse(data []byte, source string, lookupEnv func(string) (string, bool)) (*Config, error) {
	l := newLoader(lookupEnv)
	cfg := l.load([]fragment{{path: source, data: data}}, false)
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
	lists     map[int]*yaml.Node    // connection index -> its list_id sequence

	frags fragments // where each part of the configuration was written
	cur   int       // the fragment being parsed, for its problems; -1 after
}

type problem struct {
	path string
	msg  string
	node *yaml.Node // nil when nothing in the file corresponds (missing field)
	// frag is the fragment whose own paths path uses, or -1 when path is
	// one of the joined configuration (connections counted across files).
	frag int
}

func newLoader(lookupEnv func(string) (string, bool)) *loader {
	if lookupEnv == nil {
		lookupEnv = func(string) (string, bool) { return "", false }
	}
	return &loader{
		lookupEnv: lookupEnv,
		bad:       map[*yaml.Node]bool{},
		fromEnv:   map[*yaml.Node]bool{},
		inherited: map[*yaml.Node]bool{},
		nodes:     map[string]*yaml.Node{},
		lists:     map[int]*yaml.Node{},
	}
}

// load parses each fragment on its own, joins those of a directory, and
// builds the Config from the result.
func (l *loader) load(files []fragment, isDir bool) *Config {
	l.frags.files, l.frags.isDir = files, isDir
	roots := make([]*yaml.Node, len(files))
	ok := true
	for i := range files {
		l.cur = i
		root, parsed := l.parseFragment(files[i].data, isDir)
		roots[i], ok = root, ok && parsed
	}
	l.cur = -1
	if !ok {
		return nil
	}
	root := roots[0]
	if isDir {
		root = l.join(roots)
	}
	if root == nil {
		return nil
	}
	l.mergeDefaults(root)
	l.takeLists(root)

	cfg := (&Config{}).WithDefaults()
	l.decode(root, reflect.ValueOf(cfg).Elem(), "")
	l.settle(root, cfg)
	v := l.validator()
	for _, p := range cfg.validateWith(v) {
		l.addValidation(p)
	}
	if len(l.problems) > 0 {
		return nil
	}
	cfg.Connections = expandLists(cfg.Connections, v.lists)
	return cfg
}

// parseFragment returns one file's top-level mapping, aliases resolved and
// ${VAR} expanded; ok is false when the file cannot be read as one. In a
// directory a file with nothing in it is allowed (nil, true): it may hold
// only comments for now.
func (l *loader) parseFragment(data []byte, inDir bool) (root *yaml.Node, ok bool) {
	before := len(l.problems)
	root = l.parse(data, inDir)
	if root == nil {
		return nil, len(l.problems) == before
	}
	root, err := resolveAliases(root, new(int), map[*yaml.Node]bool{})
	if err != nil {
		var ne *nodeError
		errors.As(err, &ne)
		l.add("", ne.node, ne.msg)
		return nil, false
	}
	l.prepare(root, configType, "")
	return root, true
}

// settle finishes each decoded connection: its origin, its API root, and
// the built-in mapping of one covering several audiences.
func (l *loader) settle(root *yaml.Node, cfg *Config) {
	conns := lookup(root, "connections")
	for i := range cfg.Connections {
		c := &cfg.Connections[i]
		m := &c.Mailchimp
		if m.BaseURL == "" {
			m.BaseURL = m.defaultBaseURL()
		}
		m.BaseURL = strings.TrimRight(m.BaseURL, "/") // the client appends /lists/...
		node := conns.Content[i]
		c.Origin = l.frags.origin(i, node.Line)
		// A record keyed by id alone is the same record in every audience
		// of one person, so the built-in shape adds the audience's id when
		// a connection covers several; a shape the user wrote is kept.
		if mp := lookup(node, "mapping"); (mp == nil || mp.ShortTag() == "!!null") && (l.lists[i] != nil || m.ListID == AllLists) {
			c.Mapping = DefaultMultiAudienceMapping()
		}
	}
}

// parse returns the top-level mapping, or nil after reporting why there is
// none. An empty file is a problem unless emptyOK.
func (l *loader) parse(data []byte, emptyOK bool) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		switch {
		case errors.Is(err, io.EOF) && emptyOK:
		case errors.Is(err, io.EOF):
			l.add("", nil, "the file is empty; it needs at least one connection")
		default:
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
	case root.ShortTag() == "!!null" && emptyOK:
		return nil
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
	l.problems = append(l.problems, problem{path: path, msg: msg, node: n, frag: l.cur})
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

// sorted returns the problems in document order: by file, then by the line
// of the field, or for a missing or inherited field, of the nearest
// enclosing field written in this part of the file. Ties keep the order they
// were found in.
func (l *loader) sorted() []Problem {
	type keyed struct {
		Problem
		file, at int
	}
	var out []keyed
	seen := map[Problem]bool{}
	for _, p := range l.problems {
		inDefaults := p.node != nil && l.inherited[p.node] && !underDefaults(p.path)
		file, path, connFile := l.frags.place(p, inDefaults)
		q := Problem{Field: path, Message: p.msg}
		if file >= 0 && l.frags.isDir {
			q.Source = l.frags.files[file].path
		}
		if p.node != nil && p.node.Line > 0 {
			q.Line = p.node.Line
			switch {
			case q.Source != "" && inDefaults && connFile >= 0 && connFile != file:
				q.Message += " (in defaults; the connection is in " + l.frags.files[connFile].path + ")"
			case q.Source != "" && inDefaults:
				q.Message += " (in defaults)"
			case q.Source != "":
			case inDefaults:
				q.Message += fmt.Sprintf(" (line %d, in defaults)", q.Line)
			default:
				q.Message += fmt.Sprintf(" (line %d)", q.Line)
			}
		}
		if !seen[q] {
			seen[q] = true
			at := l.sortLine(p)
			if q.Source != "" && inDefaults {
				at = q.Line // sorted in the defaults' file, where it is
			}
			out = append(out, keyed{q, file, at})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].file != out[j].file {
			return out[i].file < out[j].file
		}
		return out[i].at < out[j].at
	})
	ps := make([]Problem, len(out))
	for i, k := range out {
		ps[i] = k.Problem
	}
	return ps
}

func (l *loader) sortLine(p problem) int {
	path, n := p.path, p.node
	for {
		if n != nil && n.Line > 0 && !(l.inherited[n] && !underDefaults(path)) {
			return n.Line
		}
		parent, ok := parentPath(path)
		if !ok || p.frag >= 0 && l.frags.isDir {
			// A fragment's own paths are not those of l.nodes.
			return 0
		}
		path, n = parent, l.nodes[parent]
	}
}

func underDefaults(path string) bool {
	return path == "defaults" || strings.HasPrefix(path, "defaults.") || strings.HasPrefix(path, "defaults[")
}
