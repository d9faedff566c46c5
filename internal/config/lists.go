package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Origin is where a connection is written. Load sets it; a connection built
// in code has none. Sub-connections keep their parent's.
type Origin struct {
	// Source is the connection's file when the configuration is a directory
	// (LoadDir), "" for one file.
	Source string
	// Field is the connection's path, e.g. "connections[2]", counted in
	// Source.
	Field string
	// Line is the line the connection starts on.
	Line int
}

// DefaultMultiAudienceMapping is DefaultMapping with the audience's id after
// the member's: the built-in record shape of a connection that covers
// several audiences ("*" or a list of ids). The same person has the same
// member id in every audience, so a target keyed by id alone would keep one
// record for all of them.
func DefaultMultiAudienceMapping() Mapping {
	m := DefaultMapping()
	return append(m[:1], append(Mapping{{Key: "list_id", Path: "list_id"}}, m[1:]...)...)
}

// takeLists takes each list_id sequence out of the connections, so that
// the connection decodes with ListID empty; the validator checks the ids,
// and load expands the connection into one per id.
func (l *loader) takeLists(root *yaml.Node) {
	conns := lookup(root, "connections")
	if conns == nil || conns.Kind != yaml.SequenceNode {
		return
	}
	for i, c := range conns.Content {
		if c.Kind != yaml.MappingNode {
			continue
		}
		mc := lookup(c, "mailchimp")
		if mc == nil || mc.Kind != yaml.MappingNode {
			continue
		}
		ids := lookup(mc, "list_id")
		if ids == nil || ids.Kind != yaml.SequenceNode {
			continue
		}
		l.lists[i] = ids
		// Nodes may be shared with defaults and other connections: the
		// connection gets copies.
		none := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: ids.Line, Column: ids.Column}
		conns.Content[i] = withValue(c, "mailchimp", withValue(mc, "list_id", none))
	}
}

// withValue returns a copy of mapping n with key's value replaced.
func withValue(n *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	out := *n
	out.Content = make([]*yaml.Node, len(n.Content))
	copy(out.Content, n.Content)
	for i := 0; i+1 < len(out.Content); i += 2 {
		if out.Content[i].Value == key {
			out.Content[i+1] = v
		}
	}
	return &out
}

// validator returns the validator for the loaded tree: it knows the list_id
// sequences taken out of it, and names a duplicate's first place the way a
// person finds it. Entries of a sequence that are not ids are reported here.
func (l *loader) validator() *validator {
	v := &validator{lists: make(map[int][]string, len(l.lists))}
	for i, seq := range l.lists {
		p := joinIndex("connections", i) + ".mailchimp.list_id"
		l.nodes[p] = seq
		ids := make([]string, len(seq.Content))
		for k, item := range seq.Content {
			f := joinIndex(p, k)
			l.nodes[f] = item
			switch {
			case item.Kind != yaml.ScalarNode:
				l.fail(f, item, "must be an audience id"+l.got(item))
			case item.ShortTag() != "!!null":
				ids[k] = item.Value
			}
		}
		v.lists[i] = ids
	}
	if l.frags.isDir {
		v.noConnections = "required: no file of the directory has a connection"
		v.nameOf = func(i int) string {
			o := l.frags.origin(i, 0)
			if n := l.nodes[joinIndex("connections", i)+".name"]; n != nil {
				o.Line = n.Line
			}
			return fmt.Sprintf("%s.name in %s (line %d)", o.Field, o.Source, o.Line)
		}
	}
	return v
}

// expandLists replaces each connection that has a list of ids (lists, by
// index) with its sub-connections, in the list's order.
func expandLists(conns []Connection, lists map[int][]string) []Connection {
	if len(lists) == 0 {
		return conns
	}
	n := len(conns)
	for _, ids := range lists {
		n += len(ids) - 1
	}
	out := make([]Connection, 0, n)
	for i, c := range conns {
		ids, ok := lists[i]
		if !ok {
			out = append(out, c)
			continue
		}
		for _, id := range ids {
			out = append(out, c.Sub(id))
		}
	}
	return out
}
