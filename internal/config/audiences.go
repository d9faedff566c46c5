package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// SubName is the name of the sub-connection of parent for one audience. A
// configured name has no '.', so a sub name never collides with one, and
// the parent is everything before the first '.'.
func SubName(parent, listID string) string { return parent + "." + listID }

// Sub returns the sub-connection of c for one audience: a copy of c with
// Name SubName(c.Name, listID), that ListID, and Parent c.Name. Load makes
// one per id of a list_id sequence; the commands make one per audience that
// a "*" connection discovers. The copy shares nothing with c that a caller
// could change in place.
func (c Connection) Sub(listID string) Connection {
	s := c
	s.Name = SubName(c.Name, listID)
	s.Parent = c.Name
	s.Mailchimp.ListID = listID
	s.Mailchimp.Statuses = slices.Clone(c.Mailchimp.Statuses)
	s.Target.Headers = maps.Clone(c.Target.Headers)
	s.Target.Tombstone = maps.Clone(c.Target.Tombstone)
	s.Mapping = slices.Clone(c.Mapping)
	if c.Webhooks != nil {
		on := *c.Webhooks
		s.Webhooks = &on
	}
	return s
}

// Discovers reports whether c covers every audience of its account
// (list_id: "*"): the commands list the audiences at each run and sync
// each through c.Sub.
func (c Connection) Discovers() bool { return c.Mailchimp.ListID == AllLists }

// Select returns the connections named, in the file's order, or all of them
// when names is empty. A name may be
//   - a connection's name as written, or the name of a list_id sequence,
//     which selects every sub-connection the sequence became;
//   - a sub-connection's name, <name>.<list id>;
//   - <name>.<anything> where name is a "*" connection: that connection is
//     returned, and the command keeps only the audiences asked for.
//
// Unknown names are an *UnknownConnectionsError listing every one of them
// and the names that exist.
func (c *Config) Select(names []string) ([]Connection, error) {
	if len(names) == 0 {
		return slices.Clone(c.Connections), nil
	}
	known := make(map[string]bool, len(c.Connections))
	parents := map[string]bool{}
	discovers := map[string]bool{}
	for _, conn := range c.Connections {
		known[conn.Name] = true
		if conn.Parent != "" {
			parents[conn.Parent] = true
		}
		if conn.Discovers() {
			discovers[conn.Name] = true
		}
	}
	want := make(map[string]bool, len(names))
	var unknown []string
	for _, n := range names {
		if want[n] {
			continue
		}
		want[n] = true
		parent, _, isSub := strings.Cut(n, ".")
		switch {
		case known[n] || parents[n]:
		case isSub && discovers[parent]:
			want[parent] = true
		default:
			unknown = append(unknown, n)
		}
	}
	if len(unknown) > 0 {
		err := &UnknownConnectionsError{Unknown: unknown}
		for _, conn := range c.Connections {
			err.Known = append(err.Known, conn.Name)
		}
		return nil, err
	}
	var out []Connection
	for _, conn := range c.Connections {
		if want[conn.Name] || conn.Parent != "" && want[conn.Parent] {
			out = append(out, conn)
		}
	}
	return out, nil
}

// UnknownConnectionsError is returned by Select for names that are not in
// the configuration. It is a usage error, not a problem with the file.
type UnknownConnectionsError struct {
	Unknown []string // as given, without repeats
	Known   []string // in the file's order
}

func (e *UnknownConnectionsError) Error() string {
	noun := "connection"
	if len(e.Unknown) > 1 {
		noun = "connections"
	}
	quoted := make([]string, len(e.Unknown))
	for i, n := range e.Unknown {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	return fmt.Sprintf("unknown %s %s (known: %s)", noun, strings.Join(quoted, ", "), strings.Join(e.Known, ", "))
}
