package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarnings(t *testing.T) {
	conn := func(name, listID, url, mapping string) string {
		s := fmt.Sprintf("  - name: %s\n    mailchimp: {api_key: k-us6, list_id: %s}\n    target: {url: %q}\n", name, listID, url)
		if mapping != "" {
			s += "    mapping: " + mapping + "\n"
		}
		return s
	}
	const idOnly = "{id: id, email: email_address}"
	const advice = "; add list_id: list_id to the mapping and key the target on id + list_id (tombstones then carry list_id too), " +
		"or key it on contact_id (contact_id: contact_id) with deletes: off, since deletes name the member id"
	const collide = " records keyed by the member id alone to a target URL that several audiences reach, " +
		"and one person's id is the same in every audience, so their records overwrite each other"
	tests := []struct {
		name  string
		conns string
		want  []string
	}{
		{
			name:  "one audience each, different targets",
			conns: conn("a", "a1", "https://t.example.com/a", "") + conn("b", "b1", "https://t.example.com/b", ""),
		},
		{
			name:  "two connections, one target, by id alone",
			conns: conn("a", "a1", "https://t.example.com/r", "") + conn("b", "b1", "HTTPS://T.Example.com/r/", ""),
			want:  []string{"connections[0]: connections a and b deliver" + collide + advice + " (line 2)"},
		},
		{
			name: "the path is compared as written",
			conns: conn("a", "a1", "https://t.example.com/r", "") + conn("b", "b1", "https://t.example.com/R", "") +
				conn("c", "c1", "https://t.example.com/r?x=1", ""),
		},
		{
			name:  "list_id or contact_id in every mapping",
			conns: conn("a", "a1", "https://t.example.com/r", "{id: id, list: list_id}") + conn("b", "b1", "https://t.example.com/r", "{id: id, cid: contact_id}"),
		},
		{
			name:  "one of the two keys audiences apart",
			conns: conn("a", "a1", "https://t.example.com/r", "{id: id, list: list_id}") + conn("b", "b1", "https://t.example.com/r", idOnly),
			// b's records collide with a's for the same person, however a
			// keys its own.
			want: []string{"connections[1]: connection b delivers" + collide + advice + " (line 6)"},
		},
		{
			// "*" and sequences get list_id in the built-in mapping.
			name:  "several audiences with the built-in mapping",
			conns: conn("a", `"*"`, "https://t.example.com/r", "") + conn("b", "[b1, b2]", "https://t.example.com/r", ""),
		},
		{
			name:  "a star connection alone, mapping written",
			conns: conn("a", `"*"`, "https://t.example.com/r", idOnly),
			want:  []string{"connections[0]: connection a delivers" + collide + advice + " (line 2)"},
		},
		{
			name:  "a sequence alone, mapping written",
			conns: conn("a", "[a1, a2]", "https://t.example.com/r", idOnly),
			want:  []string{"connections[0]: connection a delivers" + collide + advice + " (line 2)"},
		},
		{
			name:  "a sequence of one",
			conns: conn("a", "[a1]", "https://t.example.com/r", idOnly),
		},
		{
			name: "many connections, two targets",
			conns: conn("a", "a1", "https://t.example.com/r", "") + conn("x", "x1", "https://u.example.com/r", "") +
				conn("b", "b1", "https://t.example.com/r", "") + conn("c", "[c1, c2]", "https://t.example.com/r", idOnly) +
				conn("d", "d1", "https://t.example.com/r", "") + conn("e", "e1", "https://t.example.com/r", "") +
				conn("y", "y1", "https://u.example.com/r", ""),
			want: []string{
				"connections[0]: connections a, b, c and 2 more deliver" + collide + advice + " (line 2)",
				"connections[1]: connections x and y deliver" + collide + advice + " (line 5)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte("connections:\n"+tt.conns), "w.yaml", nil)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			var got []string
			for _, w := range cfg.Warnings() {
				got = append(got, w.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// A directory's warning names the file, and one built in code the index.
func TestWarningPlaces(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"a.yaml": "defaults:\n  target: {url: \"https://t.example.com\"}\n  mapping: {id: id}\n",
		"b.yaml": "connections:\n  - name: b\n    mailchimp: {api_key: k-us6, list_id: \"*\"}\n",
	})
	cfg, err := LoadDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws := cfg.Warnings()
	if len(ws) != 1 || !strings.HasPrefix(ws[0].String(), dir+"/b.yaml:2: connections[0]: connection b delivers") {
		t.Errorf("Warnings = %v", ws)
	}
	code := &Config{Connections: []Connection{{Name: "p", Mailchimp: Mailchimp{ListID: AllLists}, Mapping: Mapping{{"id", "id"}}}}}
	if ws := code.Warnings(); len(ws) != 1 || ws[0].Field != "connections[0]" || ws[0].Line != 0 || strings.Contains(ws[0].String(), "line") {
		t.Errorf("Warnings of a config built in code = %+v", ws)
	}
}

func TestDeleteWarnings(t *testing.T) {
	conn := func(name, listID, target string) string {
		return fmt.Sprintf("  - name: %s\n    mailchimp: {api_key: k-us6, list_id: %s}\n    target: {url: \"https://t.example.com/r\", %s}\n", name, listID, target)
	}
	const request = `deletes: request, delete_url: "https://t.example.com/r/{id}"`
	const withList = `deletes: request, delete_url: "https://t.example.com/r/{id}?list_id={list_id}"`
	tests := []struct {
		name  string
		conns string
		want  int
	}{
		{"one audience", conn("a", "a1", request), 0},
		{"the same audience twice", conn("a", "a1", request) + conn("b", "a1", request), 0},
		{"star, without list_id", conn("a", `"*"`, request), 1},
		{"star, with list_id", conn("a", `"*"`, withList), 0},
		{"a list of ids warns once", conn("a", "[a1, a2, a3]", request), 1},
		{"two connections", conn("a", "a1", request) + conn("b", "b1", withList), 1},
		{"tombstones", conn("a", `"*"`, "deletes: tombstone"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte("connections:\n"+tt.conns), "test.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range cfg.deleteWarnings() {
				got = append(got, w.String())
			}
			if len(got) != tt.want {
				t.Errorf("warnings %q, want %d", got, tt.want)
			}
			for _, g := range got {
				if !strings.Contains(g, "{list_id}") {
					t.Errorf("the warning does not say what to do: %s", g)
				}
			}
		})
	}
}
