package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadDir reads a directory of fragments as one configuration, for configs
// of thousands of connections that are easier to keep one file per account
// or team. Each *.yaml and *.yml file directly in dir (not in
// subdirectories, dotfiles skipped) is a fragment, read in name order:
//   - the connections of all fragments are joined in that order, and names
//     are unique across them;
//   - state, alerts, defaults and webhooks may each be in one fragment only,
//     and defaults applies to the connections of every fragment;
//   - a fragment may be empty or hold only comments.
//
// Every error is an *Error whose Source is dir; each problem names its file
// in Problem.Source, with connections[N] counted in that file. Load calls
// LoadDir when its path is a directory.
func LoadDir(dir string, lookupEnv func(string) (string, bool)) (*Config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, readError(dir, dir, "directory", err)
	}
	var files []fragment
	var unreadable []Problem
	var firstErr error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			unreadable = append(unreadable, readError(dir, path, "file", err).Problems...)
			firstErr = cmpOr(firstErr, err)
			continue
		}
		files = append(files, fragment{path: path, data: data})
	}
	switch {
	case len(unreadable) > 0:
		return nil, &Error{Source: dir, Problems: unreadable, Err: firstErr}
	case len(files) == 0:
		return nil, &Error{Source: dir, Problems: []Problem{{Message: "the directory has no configuration fragment: " +
			"put *.yaml or *.yml files directly in it, or point --config at one file"}}}
	}
	l := newLoader(lookupEnv)
	cfg := l.load(files, true)
	if len(l.problems) > 0 {
		return nil, &Error{Source: dir, Problems: l.sorted()}
	}
	return cfg, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// fragment is one file of a configuration, read but not parsed.
type fragment struct {
	path string
	data []byte
}

// fragments says where each part of a joined configuration was written, so
// that a problem found in the joined tree names the file and counts the
// connections as that file does.
type fragments struct {
	files   []fragment
	isDir   bool
	first   []int          // file -> index of its first connection in the joined list
	conn    []int          // joined connection index -> file
	section map[string]int // state, alerts, defaults, webhooks -> the file that has it
}

// sections may each be in one fragment only.
var sections = []string{"state", "alerts", "defaults", "webhooks"}

// join returns one top-level mapping for the fragments' roots (nil for an
// empty fragment): every fragment's connections in order, and each section
// from the one fragment that has it.
func (l *loader) join(roots []*yaml.Node) *yaml.Node {
	f := &l.frags
	f.section = map[string]int{}
	where := map[string]*yaml.Node{} // section -> its key, for "also in"
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	conns := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, root := range roots {
		f.first = append(f.first, len(conns.Content))
		if root == nil {
			continue
		}
		l.cur = i
		if c := lookup(root, "connections"); c != nil {
			switch {
			case c.Kind == yaml.SequenceNode:
				conns.Content = append(conns.Content, c.Content...)
				for range c.Content {
					f.conn = append(f.conn, i)
				}
			case c.ShortTag() != "!!null":
				l.fail("connections", c, "must be a list"+l.got(c))
			}
		}
		for _, s := range sections {
			k, v := lookupKey(root, s)
			if k == nil {
				continue
			}
			if prev, dup := where[s]; dup {
				l.fail(s, k, fmt.Sprintf("is also in %s (line %d); %s may be in one file of the directory only",
					f.files[f.section[s]].path, prev.Line, s))
				continue
			}
			where[s], f.section[s] = k, i
			out.Content = append(out.Content, k, v)
		}
	}
	l.cur = -1
	key := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "connections"}
	out.Content = append(out.Content, key, conns)
	return out
}

// lookupKey is lookup returning the key node too.
func lookupKey(n *yaml.Node, key string) (k, v *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			k, v = n.Content[i], n.Content[i+1]
		}
	}
	return k, v
}

// place returns the file a problem is in (-1 for none, 0 for a single
// file) and its field path with connections counted in the connection's
// file, connFile (-1 when the problem is not about a connection). A value
// inherited from defaults is in the defaults' file.
func (f *fragments) place(p problem, inDefaults bool) (file int, path string, connFile int) {
	switch {
	case !f.isDir:
		return 0, p.path, -1
	case p.frag >= 0:
		return p.frag, p.path, -1
	}
	file, connFile = -1, -1
	g, rest, isConn := connIndex(p.path)
	if isConn && g < len(f.conn) {
		file, connFile = f.conn[g], f.conn[g]
		path = joinIndex("connections", g-f.first[file]) + rest
	} else {
		path = p.path
		top, _, _ := strings.Cut(path, ".")
		if i, ok := f.section[top]; ok {
			file = i
		}
	}
	if inDefaults {
		if i, ok := f.section["defaults"]; ok {
			file = i
		}
	}
	return file, path, connFile
}

// origin is where connection i (counted across files) is written.
func (f *fragments) origin(i, line int) Origin {
	if !f.isDir {
		return Origin{Field: joinIndex("connections", i), Line: line}
	}
	file := f.conn[i]
	return Origin{Source: f.files[file].path, Field: joinIndex("connections", i-f.first[file]), Line: line}
}

// connIndex splits "connections[12].name" into 12 and ".name".
func connIndex(path string) (i int, rest string, ok bool) {
	after, ok := strings.CutPrefix(path, "connections[")
	if !ok {
		return 0, "", false
	}
	num, rest, ok := strings.Cut(after, "]")
	if !ok {
		return 0, "", false
	}
	i, err := strconv.Atoi(num)
	return i, rest, err == nil
}
