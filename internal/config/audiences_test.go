package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// audiences is a file with each kind of connection: one audience, a list of
// ids, and "*".
const audiences = `defaults:
  mailchimp: {api_key: k-us6}
  target: {url: "https://t.example.com/r"}
connections:
  - name: one
    mailchimp: {list_id: a1}
  - name: seq
    mailchimp:
      list_id: [b1, b2, b3]
  - name: all
    mailchimp: {list_id: "*"}
`

func TestListIDForms(t *testing.T) {
	cfg, err := Parse([]byte(audiences), "a.yaml", nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	type sum struct{ Name, Parent, ListID, Field string }
	var got []sum
	for _, c := range cfg.Connections {
		got = append(got, sum{c.Name, c.Parent, c.Mailchimp.ListID, c.Origin.Field})
	}
	want := []sum{
		{"one", "", "a1", "connections[0]"},
		// A sequence becomes one sub-connection per id, in order, each
		// pointing back at the connection as written.
		{"seq.b1", "seq", "b1", "connections[1]"},
		{"seq.b2", "seq", "b2", "connections[1]"},
		{"seq.b3", "seq", "b3", "connections[1]"},
		{"all", "", AllLists, "connections[2]"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	if cfg.Connections[0].Discovers() || !cfg.Connections[4].Discovers() {
		t.Error("Discovers is wrong")
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a loaded config with sub-connections does not validate: %v", err)
	}
}

// The built-in mapping tells audiences apart when a connection covers
// several; a mapping written in the connection or in defaults is kept.
func TestDefaultMappingGainsListID(t *testing.T) {
	multi := Mapping{{"id", "id"}, {"list_id", "list_id"}, {"firstname", "merge_fields.FNAME"},
		{"lastname", "merge_fields.LNAME"}, {"email", "email_address"}, {"status", "status"}}
	written := Mapping{{"id", "id"}, {"email", "email_address"}}
	conn := func(listID, extra string) string {
		return "  - name: c\n    mailchimp: {api_key: k-us6, list_id: " + listID + "}\n    target: {url: \"https://t.example.com\"}\n" + extra
	}
	tests := []struct {
		name, yaml string
		want       Mapping
	}{
		{"one audience", "connections:\n" + conn("a1", ""), DefaultMapping()},
		{"star", "connections:\n" + conn(`"*"`, ""), multi},
		{"sequence", "connections:\n" + conn("[a1, a2]", ""), multi},
		{"sequence of one", "connections:\n" + conn("[a1]", ""), multi},
		{"mapping: ~ is the built-in one", "connections:\n" + conn(`"*"`, "    mapping: ~\n"), multi},
		{"written in the connection", "connections:\n" + conn(`"*"`, "    mapping: {id: id, email: email_address}\n"), written},
		{"written in defaults", "defaults:\n  mapping: {id: id, email: email_address}\nconnections:\n" + conn("[a1, a2]", ""), written},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml), "m.yaml", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, c := range cfg.Connections {
				if diff := cmp.Diff(tt.want, c.Mapping); diff != "" {
					t.Errorf("%s mapping (-want +got):\n%s", c.Name, diff)
				}
			}
		})
	}
	if diff := cmp.Diff(multi, DefaultMultiAudienceMapping()); diff != "" {
		t.Errorf("DefaultMultiAudienceMapping (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(DefaultMapping()[1:], DefaultMultiAudienceMapping()[2:]); diff != "" {
		t.Errorf("DefaultMultiAudienceMapping changed DefaultMapping's order (-want +got):\n%s", diff)
	}
}

func TestSub(t *testing.T) {
	on := true
	c := Connection{Name: "acme", Mailchimp: Mailchimp{ListID: AllLists, Statuses: []string{"subscribed"}},
		Target: Target{Headers: map[string]Secret{"A": "x"}}, Mapping: DefaultMapping(), Webhooks: &on}
	s := c.Sub("k0001l02")
	if s.Name != "acme.k0001l02" || s.Name != SubName("acme", "k0001l02") || s.Parent != "acme" || s.Mailchimp.ListID != "k0001l02" || s.Discovers() {
		t.Errorf("Sub = %+v", s)
	}
	// Changing the sub leaves the parent alone.
	s.Mailchimp.Statuses[0], s.Target.Headers["A"], s.Mapping[0].Key, *s.Webhooks = "x", "y", "z", false
	if c.Mailchimp.Statuses[0] != "subscribed" || c.Target.Headers["A"] != "x" || c.Mapping[0].Key != "id" || !*c.Webhooks {
		t.Errorf("Sub shares state with its parent: %+v", c)
	}
	if c.Name != "acme" || c.Parent != "" || !c.Discovers() {
		t.Errorf("Sub changed the parent: %+v", c)
	}
}

func TestSelectAudiences(t *testing.T) {
	cfg, err := Parse([]byte(audiences), "a.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{names: nil, want: []string{"one", "seq.b1", "seq.b2", "seq.b3", "all"}},
		{names: []string{"seq"}, want: []string{"seq.b1", "seq.b2", "seq.b3"}},
		{names: []string{"seq.b2", "one"}, want: []string{"one", "seq.b2"}},
		{names: []string{"seq", "seq.b2"}, want: []string{"seq.b1", "seq.b2", "seq.b3"}},
		{names: []string{"all"}, want: []string{"all"}},
		// The "*" connection, for the command to keep only that audience.
		{names: []string{"all.zz9"}, want: []string{"all"}},
		{names: []string{"all.zz9", "all.zz8", "one"}, want: []string{"one", "all"}},
		{names: []string{"seq.b9"}, err: `unknown connection "seq.b9"`},
		{names: []string{"one.a1"}, err: `unknown connection "one.a1"`},
		{names: []string{"none.x", "b1"}, err: `unknown connections "none.x", "b1"`},
	}
	for _, tt := range tests {
		got, err := cfg.Select(tt.names)
		if tt.err != "" {
			var uerr *UnknownConnectionsError
			if !errors.As(err, &uerr) || !strings.HasPrefix(err.Error(), tt.err+" (known: one, seq.b1") {
				t.Errorf("Select(%q) error = %v, want %s", tt.names, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Select(%q): %v", tt.names, err)
		}
		var names []string
		for _, c := range got {
			names = append(names, c.Name)
		}
		if diff := cmp.Diff(tt.want, names); diff != "" {
			t.Errorf("Select(%q) (-want +got):\n%s", tt.names, diff)
		}
	}
}

// Validate accepts a sub-connection built with Sub, up to the longest names,
// and refuses one whose name does not say where it came from.
func TestValidateSubConnections(t *testing.T) {
	base := Connection{Name: strings.Repeat("n", MaxNameLength),
		Mailchimp: Mailchimp{APIKey: "k-us6", ListID: AllLists},
		Target:    Target{URL: "https://t.example.com"}}.WithDefaults()
	sub := base.Sub(strings.Repeat("l", MaxListIDLength))
	if len(sub.Name) != MaxSubNameLength {
		t.Fatalf("len(sub name) = %d, want MaxSubNameLength %d", len(sub.Name), MaxSubNameLength)
	}
	cfg := (&Config{Connections: []Connection{base, sub}}).WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	bad := sub
	bad.Name = "other.name"
	cfg.Connections = []Connection{bad, base.Sub(strings.Repeat("l", MaxListIDLength+1))}
	want := []string{
		"connections[0].name: a sub-connection's name must be <parent>.<list id>, its parent's name as a connection's; build it with Connection.Sub",
		"connections[1].mailchimp.list_id: must be at most 64 characters",
	}
	if diff := cmp.Diff(want, problemStrings(t, cfg.Validate())); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
