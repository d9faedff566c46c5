package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Warning is something in a valid configuration that is most likely a
// mistake; `chimport check` prints them, and nothing refuses to run.
type Warning struct {
	// Field is the path of the first connection concerned, e.g.
	// "connections[3]" (counted in Source), or "" for one built in code.
	Field string
	// Source is that connection's file when the configuration is a
	// directory, else "".
	Source string
	// Line is that connection's line, 0 when it has none.
	Line int
	// Message says what is wrong and what to do about it.
	Message string
}

// String reads like a Problem's: "file:line: field: message" for a
// directory, "field: message (line N)" for one file.
func (w Warning) String() string {
	p := Problem{Field: w.Field, Message: w.Message, Line: w.Line, Source: w.Source}
	if w.Source == "" && w.Line > 0 {
		p.Message += fmt.Sprintf(" (line %d)", w.Line)
	}
	return p.String()
}

// maxNamed is how many connections a warning names before "and N more".
const maxNamed = 3

// Warnings returns one warning per target URL that records of two or more
// audiences reach, when some of them come under keys that do not tell
// audiences apart: a mapping with no field whose path is list_id and none
// whose path is contact_id. The same person has the same member id (the
// MD5 of the address) in every audience, so such a record overwrites, or
// is overwritten by, that person's record from another audience, keyed
// however that one is. A "*" connection counts as several audiences on
// its own, and a list of ids as one audience per id. The warning names the
// connections whose mapping needs the key. URLs are compared trimmed, with
// scheme and host in any case.
func (c *Config) Warnings() []Warning {
	type group struct {
		first     int             // index of the first connection
		audiences map[string]bool // the audiences that deliver there, by list id
		names     []string        // configured names, sub-connections under their parent's
		seen      map[string]bool
	}
	groups := map[string]*group{}
	var order []string
	for i, conn := range c.Connections {
		key := targetKey(conn.Target.URL)
		g := groups[key]
		if g == nil {
			g = &group{first: -1, audiences: map[string]bool{}, seen: map[string]bool{}}
			groups[key] = g
			order = append(order, key)
		}
		// The same audience twice sends the same records: no collision.
		g.audiences[conn.Mailchimp.ListID] = true
		if conn.Discovers() {
			// Several in itself, however many it finds.
			g.audiences["* of "+conn.Name] = true
			g.audiences["* of "+conn.Name+", another"] = true
		}
		if conn.Mapping.keysAudience() {
			continue
		}
		if g.first < 0 {
			g.first = i
		}
		name := conn.Name
		if conn.Parent != "" {
			name = conn.Parent
		}
		if !g.seen[name] {
			g.seen[name] = true
			g.names = append(g.names, name)
		}
	}
	var out []Warning
	for _, key := range order {
		g := groups[key]
		if len(g.audiences) < 2 || g.first < 0 {
			continue
		}
		first := c.Connections[g.first]
		w := Warning{Field: first.Origin.Field, Source: first.Origin.Source, Line: first.Origin.Line}
		if w.Field == "" {
			w.Field = joinIndex("connections", g.first)
		}
		verb := "deliver"
		if len(g.names) == 1 {
			verb = "delivers"
		}
		w.Message = fmt.Sprintf("%s %s records keyed by the member id alone to a target URL that several audiences reach, "+
			"and one person's id is the same in every audience, so their records overwrite each other; "+
			"add list_id: list_id to the mapping and key the target on id + list_id (tombstones then carry list_id too), "+
			"or key it on contact_id (contact_id: contact_id) with deletes: off, since deletes name the member id",
			nameList(g.names), verb)
		out = append(out, w)
	}
	return append(out, c.deleteWarnings()...)
}

// deleteWarnings warns about each connection whose target several
// audiences reach (those of this connection or of others at the same
// URL) and that deletes with DELETE delete_url without {list_id}: the
// request names only the member id, which is the same person in every
// audience.
func (c *Config) deleteWarnings() []Warning {
	audiences := map[string]map[string]bool{}
	for _, conn := range c.Connections {
		key := targetKey(conn.Target.URL)
		if audiences[key] == nil {
			audiences[key] = map[string]bool{}
		}
		audiences[key][conn.Mailchimp.ListID] = true
		if conn.Discovers() {
			audiences[key]["* of "+conn.Name] = true
			audiences[key]["* of "+conn.Name+", another"] = true
		}
	}
	var out []Warning
	warned := map[string]bool{}
	for i, conn := range c.Connections {
		name := conn.Name
		if conn.Parent != "" {
			name = conn.Parent
		}
		t := conn.Target
		if t.Deletes != DeletesRequest || strings.Contains(t.DeleteURL, "{list_id}") ||
			len(audiences[targetKey(t.URL)]) < 2 || warned[name] {
			continue
		}
		warned[name] = true
		w := Warning{Field: conn.Origin.Field, Source: conn.Origin.Source, Line: conn.Origin.Line}
		if w.Field == "" {
			w.Field = joinIndex("connections", i)
		}
		w.Message = fmt.Sprintf("connection %s deletes with DELETE target.delete_url, which names only the member id, at a target URL that several audiences reach, "+
			"and one person's id is the same in every audience, so a member who leaves one audience loses their records in the others too; "+
			"put {list_id} in delete_url (e.g. ...?list_id={list_id}), or use deletes: tombstone, whose tombstones carry list_id when the mapping does", name)
		out = append(out, w)
	}
	return out
}

// keysAudience reports whether the records tell audiences apart: a field
// carries the audience id or the contact id, which is one per audience.
func (m Mapping) keysAudience() bool {
	for _, f := range m {
		if f.Path == "list_id" || f.Path == "contact_id" {
			return true
		}
	}
	return false
}

// targetKey is a target URL as compared for Warnings.
func targetKey(s string) string {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/")
}

// nameList is "connection a", "connections a and b", or "connections a, b,
// c and 4 more".
func nameList(names []string) string {
	if len(names) == 1 {
		return "connection " + names[0]
	}
	shown := names
	if len(shown) > maxNamed {
		shown = names[:maxNamed]
	}
	s := "connections " + strings.Join(shown, ", ")
	if rest := len(names) - len(shown); rest > 0 {
		return fmt.Sprintf("%s and %d more", s, rest)
	}
	if i := strings.LastIndex(s, ", "); i >= 0 {
		s = s[:i] + " and " + s[i+2:]
	}
	return s
}
