package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// valid is a connection body that passes validation, for cases that are
// about something else. It uses lines 2-6 of a file that starts with
// "connections:\n  - name: ...".
const valid = `    mailchimp:
      api_key: 0123456789abcdef-us6
      list_id: a1b2c3d4e5
    target:
      url: https://api.example.com/record
`

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{
			name: "empty file",
			yaml: "",
			want: []string{"the file is empty; it needs at least one connection"},
		},
		{
			name: "whitespace and comments only",
			yaml: "  \n\n# nothing yet\n",
			want: []string{"the file is empty; it needs at least one connection"},
		},
		{
			name: "top level is a list",
			yaml: "- name: a\n",
			want: []string{"the top level must be a mapping of settings (state, connections, ...) (line 1)"},
		},
		{
			name: "syntax error",
			yaml: "connections:\n  - name: a: b\n",
			want: []string{"invalid YAML: mapping values are not allowed in this context (line 2)"},
		},
		{
			name: "unquoted ${VAR} in flow style gets a hint",
			yaml: "connections:\n  - name: a\n    target: {headers: {Authorization: ${KEY}}}\n",
			want: []string{"invalid YAML: did not find expected ',' or '}' (quote a ${VAR} inside { } or [ ], or use block style) (line 2)"},
		},
		{
			name: "two documents",
			yaml: "connections:\n  - name: a\n" + valid + "---\nstate: sqlite://x.db\n",
			want: []string{"the file has more than one YAML document (---); put everything in one (line 9)"},
		},
		{
			name: "no connections",
			yaml: "state: sqlite://x.db\nconnections: []\n",
			want: []string{"connections: required (line 2)"},
		},
		{
			name: "every required field missing at once",
			yaml: "connections:\n  - every: 1m\n  - name: b\n    mailchimp: {}\n    target: ~\n",
			want: []string{
				"connections[0].name: required",
				"connections[0].mailchimp.api_key: required (or access_token, for an account connected through OAuth)",
				"connections[0].mailchimp.list_id: required",
				"connections[0].target.url: required",
				"connections[1].mailchimp.api_key: required (or access_token, for an account connected through OAuth)",
				"connections[1].mailchimp.list_id: required",
				"connections[1].target.url: required",
			},
		},
		{
			name: "unknown keys at every depth, in document order",
			yaml: `stat: sqlite://x.db
alerts: {email: ops@example.com}
defaults:
  target: {retries: 3}
connections:
  - name: a
    mailchimp:
      api_key: k-us6
      lst_id: x
    target: {url: "https://x.test", headers: {X-Any-Name: fine}}
    mapping: {any_key: is_fine, id: id}
    extra: 1
`,
			want: []string{
				"stat: unknown key, did you mean state? (line 1)",
				"alerts.email: unknown key (line 2)",
				"defaults.target.retries: unknown key (line 4)",
				"connections[0].mailchimp.list_id: required",
				"connections[0].mailchimp.lst_id: unknown key, did you mean list_id? (line 9)",
				"connections[0].extra: unknown key (line 12)",
			},
		},
		{
			name: "repeated key and name in defaults",
			yaml: "defaults:\n  name: x\nconnections:\n  - name: a\n    name: b\n" + valid,
			want: []string{
				"defaults.name: is not allowed in defaults: each connection has its own name (line 2)",
				"connections[0].name: is repeated; first at line 4 (line 5)",
			},
		},
		{
			name: "every unset variable reported, set-but-empty is required",
			yaml: `defaults:
  target:
    headers: {Authorization: "Bearer ${TOKEN}"}
connections:
  - name: a
    mailchimp: {api_key: "${KEY}", list_id: "${LIST}-${REGION}-${LIST}"}
    target: {url: "${URL}"}
  - name: b
    mailchimp: {api_key: "${EMPTY}", list_id: x}
    target: {url: "https://x.test"}
`,
			env: map[string]string{"EMPTY": "", "URL": "https://x.test"},
			want: []string{
				"defaults.target.headers.Authorization: environment variable TOKEN is not set (line 3)",
				"connections[0].mailchimp.api_key: environment variable KEY is not set (line 6)",
				"connections[0].mailchimp.list_id: environment variable LIST is not set (line 6)",
				"connections[0].mailchimp.list_id: environment variable REGION is not set (line 6)",
				"connections[1].mailchimp.api_key: required (or access_token, for an account connected through OAuth) (line 9)",
			},
		},
		{
			name: "malformed references",
			yaml: "connections:\n  - name: a\n    mailchimp: {api_key: \"${KEY\", list_id: \"${bad-name}\"}\n    target: {url: \"https://x.test\"}\n",
			want: []string{
				"connections[0].mailchimp.api_key: has ${ without a closing } (write $$ for a literal $) (line 3)",
				"connections[0].mailchimp.list_id: has a ${...} whose name is not letters, digits and _ (write $$ for a literal $) (line 3)",
			},
		},
		{
			name: "bad durations",
			yaml: "connections:\n  - name: a\n    every: 90 minutes\n" + valid + "      timeout: -1s\n" + `  - name: b
    every: 0s
    mailchimp: {api_key: k-us6, list_id: x, settle: 90}
    target: {url: "https://x.test", timeout: [1s]}
  - name: c
    mailchimp: {api_key: k-us6, list_id: x, settle: -1s}
    target: {url: "https://x.test"}
`,
			want: []string{
				`connections[0].every: must be a duration such as 90m, 1h30m or 60s, got "90 minutes" (line 3)`,
				"connections[0].target.timeout: must be greater than 0 (line 9)",
				"connections[1].every: must be greater than 0 (line 11)",
				`connections[1].mailchimp.settle: needs a unit, e.g. 90m or 60s (a bare number is ambiguous), got "90" (line 12)`,
				"connections[1].target.timeout: must be a duration such as 90m, 1h30m or 60s, got a list (line 13)",
				"connections[2].mailchimp.settle: must not be negative (line 15)",
			},
		},
		{
			name: "bad batch sizes",
			yaml: "connections:\n  - name: a\n" + valid + "      batch_size: abc\n  - name: b\n" + valid + "      batch_size: 10001\n" +
				"  - name: c\n" + valid + "      batch_size: 0\n  - name: d\n" + valid + "      batch_size: ${SECRET}\n",
			env: map[string]string{"SECRET": "hunter2"},
			want: []string{
				`connections[0].target.batch_size: must be a whole number, got "abc" (line 8)`,
				"connections[1].target.batch_size: must be between 1 and 10000, got 10001 (line 15)",
				"connections[2].target.batch_size: must be between 1 and 10000, got 0 (line 22)",
				"connections[3].target.batch_size: must be a whole number (line 29)", // from the environment: not quoted
			},
		},
		{
			name: "bad max_rejected",
			yaml: "connections:\n  - name: a\n" + valid + "      max_rejected: 0\n  - name: b\n" + valid + "      max_rejected: -3\n" +
				"  - name: c\n" + valid + "      max_rejected: many\n  - name: d\n" + valid + "      max_rejected: 1\n",
			want: []string{
				"connections[0].target.max_rejected: must be at least 1, got 0 (line 8)",
				"connections[1].target.max_rejected: must be at least 1, got -3 (line 15)",
				`connections[2].target.max_rejected: must be a whole number, got "many" (line 22)`,
			},
		},
		{
			name: "wrong shapes",
			yaml: "alerts: [x]\nconnections:\n  - name: a\n    mailchimp: yes\n    target: {url: [x], headers: [a], batch_size: {n: 1}}\n    mapping: [id]\n",
			want: []string{
				"alerts: must be a mapping, got a list (line 1)",
				`connections[0].mailchimp: must be a mapping, got "yes" (line 4)`,
				"connections[0].target.url: must be a string, got a list (line 5)",
				"connections[0].target.headers: must be a mapping, got a list (line 5)",
				"connections[0].target.batch_size: must be a whole number, got a mapping (line 5)",
				"connections[0].mapping: must be a mapping of record key to member path, e.g. email: email_address, got a list (line 6)",
			},
		},
		{
			name: "duplicate and malformed names",
			yaml: "connections:\n  - name: newsletter\n" + valid + "  - name: News Letter\n" + valid +
				"  - name: newsletter\n" + valid + "  - name: " + strings.Repeat("x", 65) + "\n" + valid,
			want: []string{
				`connections[1].name: must use only a-z, 0-9, _ and -, got "News Letter" (line 8)`,
				`connections[2].name: duplicate of connections[0].name "newsletter" (line 14)`,
				"connections[3].name: must be at most 64 characters (line 20)",
			},
		},
		{
			name: "bad URLs, schemes and keys",
			yaml: `state: postgres://db
connections:
  - name: a
    mailchimp: {api_key: nodatacenter, list_id: "a/b", base_url: "mailchimp.test/3.0"}
    target: {url: "ftp://x.test/in"}
  - name: b
    mailchimp: {api_key: "key-us6 ", list_id: x}
    target: {url: "https:///no-host"}
  - name: c
    mailchimp: {api_key: key-us6, list_id: x, base_url: "http://[::1"}
    target: {url: "/relative"}
`,
			want: []string{
				`state: unsupported scheme "postgres"; want sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE or dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V (every parameter optional) (line 1)`,
				"connections[0].mailchimp.api_key: must end in -<datacenter>, e.g. -us6 (line 4)",
				"connections[0].mailchimp.list_id: must use only letters, digits, _ and - (line 4)",
				"connections[0].mailchimp.base_url: must be an absolute http or https URL (it has no scheme) (line 4)",
				"connections[0].target.url: must use http or https (line 5)",
				"connections[1].mailchimp.api_key: must not contain spaces or line breaks (line 7)",
				"connections[1].target.url: must be an absolute http or https URL with a host (line 8)",
				"connections[2].mailchimp.base_url: must be an absolute http or https URL (line 10)",
				"connections[2].target.url: must be an absolute http or https URL (it has no scheme) (line 11)",
			},
		},
		{
			name: "state forms",
			yaml: "state: sqlite://\nconnections:\n  - name: a\n" + valid,
			want: []string{"state: no file path; want sqlite://FILE (relative to the current directory), sqlite:///ABSOLUTE/FILE or dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V (every parameter optional) (line 1)"},
		},
		{
			name: "bad statuses",
			yaml: `connections:
  - name: a
    target: {url: "https://x.test"}
    mailchimp: {api_key: k-us6, list_id: x, statuses: [subscribed, Subscribed, archived, subscribed]}
`,
			want: []string{
				`connections[0].mailchimp.statuses[1]: unknown status "Subscribed"; want one of subscribed, unsubscribed, cleaned, pending, transactional, archived (line 4)`,
				`connections[0].mailchimp.statuses[3]: duplicate of statuses[0] "subscribed" (line 4)`,
			},
		},
		{
			name: "bad headers and mapping",
			yaml: "connections:\n  - name: a\n" + valid + `      headers: {"Bad Header": x, X-Empty: "${EMPTY}", X-Split: "a\nb"}
    mapping:
      id: id
      id: email_address
      "": x
      email:
      name: merge_fields..FNAME
      nested: {a: b}
  - name: b
` + valid + "    mapping: {}\n",
			env: map[string]string{"EMPTY": ""},
			want: []string{
				`connections[0].target.headers["Bad Header"]: is not a valid HTTP header name (line 8)`,
				"connections[0].target.headers.X-Empty: must not be empty (line 8)",
				"connections[0].target.headers.X-Split: must not contain line breaks (line 8)",
				"connections[0].mapping.nested: must be a member path such as merge_fields.FNAME, got a mapping (line 15)",
				"connections[1].mapping: must map at least one field (line 22)",
			},
		},
		{
			name: "mapping entries checked once decoded",
			yaml: "connections:\n  - name: a\n" + valid + `    mapping:
      id: id
      id: email_address
      "": x
      email:
      name: merge_fields..FNAME
`,
			want: []string{
				"connections[0].mapping.id: is repeated; record keys must be unique (line 10)",
				`connections[0].mapping[""]: record key must not be empty (line 11)`,
				"connections[0].mapping.email: needs a member path such as merge_fields.FNAME (line 12)",
				`connections[0].mapping.name: "merge_fields..FNAME" is not a dot path such as merge_fields.FNAME (line 13)`,
			},
		},
		{
			name: "reconcile_every and deletes",
			yaml: `connections:
  - name: a
    reconcile_every: 0s
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      deletes: soft
      delete_url: https://x.test/{id}
  - name: b
    reconcile_every: 90
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test"}
    mapping: {email: email_address, contact: contact_id}
  - name: c
    reconcile_every: -1h
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://x.test/{id}"}
    mapping: {id: contact_id, tag: tags.0.id}
  - name: d
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: off}
    mapping: {email: email_address}
`,
			want: []string{
				"connections[0].reconcile_every: must be greater than 0 (line 3)",
				`connections[0].target.deletes: must be tombstone (the default), request or off, got "soft" (line 7)`,
				`connections[1].reconcile_every: needs a unit, e.g. 90m or 60s (a bare number is ambiguous), got "90" (line 10)`,
				"connections[1].target.deletes: tombstone needs the member id in each record, and no mapping field has the path id; " +
					"add one (e.g. id: id), or set deletes: off to leave the records of members who left in the target",
				"connections[2].reconcile_every: must be greater than 0 (line 15)",
				"connections[2].target.deletes: request needs the member id in each record, and no mapping field has the path id; " +
					"add one (e.g. id: id), or set deletes: off to leave the records of members who left in the target (line 17)",
			},
		},
		{
			name: "delete URLs",
			yaml: `connections:
  - name: a
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request}
  - name: b
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://x.test/records?token=${TOKEN}"}
  - name: c
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://x.test/{id}/{id}"}
  - name: d
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "ftp://x.test/{id}"}
  - name: e
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://{id}.x.test/r"}
  - name: f
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://x.test/r#{id}"}
  - name: g
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", delete_url: "https://x.test/{id}"}
  - name: h
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: request, delete_url: "https://x.test/records?id={id}&token=${TOKEN}"}
`,
			env: map[string]string{"TOKEN": "supersecretvalue"},
			want: []string{
				"connections[0].target.delete_url: required with deletes: request, e.g. https://api.example.com/records/{id}",
				"connections[1].target.delete_url: must contain {id} exactly once, e.g. https://api.example.com/records/{id} (it contains it 0 times) (line 7)",
				"connections[2].target.delete_url: must contain {id} exactly once, e.g. https://api.example.com/records/{id} (it contains it 2 times) (line 10)",
				"connections[3].target.delete_url: must use http or https (line 13)",
				"connections[4].target.delete_url: must have its {id} in the path or the query, e.g. https://api.example.com/records/{id} (line 16)",
				"connections[5].target.delete_url: must have its {id} in the path or the query, e.g. https://api.example.com/records/{id} (line 19)",
				"connections[6].target.delete_url: is only used with deletes: request, and this connection's deletes is tombstone; " +
					"remove it, or write delete_url: ~ in the connection to decline one from defaults (line 22)",
			},
		},
		{
			name: "tombstones",
			yaml: `connections:
  - name: a
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone: {}
  - name: b
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone: {id: x, status: deleted, "": y}
  - name: c
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone:
        nested: {a: b}
  - name: d
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone: {score: .inf}
  - name: e
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone: [status, deleted]
  - name: f
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone: {member: x}
    mapping: {member: id}
  - name: g
    mailchimp: {api_key: k-us6, list_id: x}
    target:
      url: https://x.test
      tombstone:
        status: deleted
        status: gone
  - name: h
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: off, tombstone: {}}
`,
			want: []string{
				"connections[0].target.tombstone: must set at least one field, e.g. status: deleted (a record with only its id does not tell the target it is gone) (line 6)",
				`connections[1].target.tombstone[""]: record key must not be empty (line 11)`,
				"connections[1].target.tombstone.id: sets the record's id key (mapping.id: id); a tombstone's id is always the deleted member's (line 11)",
				"connections[2].target.tombstone.nested: must be a string, number, true, false or null, got a mapping (line 17)",
				`connections[3].target.tombstone.score: must be a finite number: JSON has no infinity or NaN, got ".inf" (line 22)`,
				"connections[4].target.tombstone: must be a mapping of record key to value, e.g. status: deleted, got a list (line 27)",
				"connections[5].target.tombstone.member: sets the record's id key (mapping.member: id); a tombstone's id is always the deleted member's (line 32)",
				"connections[6].target.tombstone.status: is repeated; first at line 39 (line 40)",
			},
		},
		{
			name: "deletes settings in defaults",
			yaml: `defaults:
  reconcile_every: 0s
  target:
    deletes: request
    delete_url: https://x.test/{id}
connections:
  - name: a
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: tombstone}
  - name: b
    mailchimp: {api_key: k-us6, list_id: x}
    target: {url: "https://x.test", deletes: tombstone, delete_url: ~}
    reconcile_every: 1h
`,
			want: []string{
				"connections[0].reconcile_every: must be greater than 0 (line 2, in defaults)",
				"connections[0].target.delete_url: is only used with deletes: request, and this connection's deletes is tombstone; " +
					"remove it, or write delete_url: ~ in the connection to decline one from defaults (line 5, in defaults)",
			},
		},
		{
			name: "a bad default is reported once; an invalid inherited value per connection",
			yaml: "defaults:\n  every: soon\n  target: {batch_size: 0}\nconnections:\n  - name: a\n" + valid + "  - name: b\n" + valid,
			want: []string{
				`defaults.every: must be a duration such as 90m, 1h30m or 60s, got "soon" (line 2)`,
				"connections[0].target.batch_size: must be between 1 and 10000, got 0 (line 3, in defaults)",
				"connections[1].target.batch_size: must be between 1 and 10000, got 0 (line 3, in defaults)",
			},
		},
		{
			name: "defaults must be a mapping",
			yaml: "defaults: [x]\nconnections:\n  - name: a\n" + valid,
			want: []string{"defaults: must be a mapping of connection settings, got a list (line 1)"},
		},
		{
			name: "entries that are not mappings, keys that are not strings",
			yaml: "connections:\n  - newsletter\n  - name: b\n" + valid + "    [x]: y\n",
			want: []string{
				`connections[0]: must be a mapping, got "newsletter" (line 2)`,
				"connections[1]: key must be a string (line 9)",
			},
		},
		{
			name: "a secret from the environment is never echoed",
			yaml: "connections:\n  - name: a\n    every: ${KEY}\n    mailchimp: {api_key: \"${KEY}\", list_id: x, base_url: \"${KEY}\"}\n    target: {url: \"${KEY}\"}\n",
			env:  map[string]string{"KEY": "supersecretvalue"},
			want: []string{
				"connections[0].every: must be a duration such as 90m, 1h30m or 60s (line 3)",
				"connections[0].mailchimp.api_key: must end in -<datacenter>, e.g. -us6 (line 4)",
				"connections[0].mailchimp.base_url: must be an absolute http or https URL (it has no scheme) (line 4)",
				"connections[0].target.url: must be an absolute http or https URL (it has no scheme) (line 5)",
			},
		},
		{
			name: "alias bomb",
			yaml: aliasBomb(),
			want: []string{"the file is too large once its aliases are expanded (line 1)"},
		},
		{
			name: "alias cycle",
			yaml: "connections: &c\n  - *c\n",
			want: []string{"anchor &c contains an alias to itself (line 1)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "test.yaml", env(tt.env))
			got := problemStrings(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			for _, secret := range tt.env {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the value of an environment variable: %v", err)
				}
			}
		})
	}
}

// Problems come out in the same order however often Parse runs: map
// iteration (headers) must not leak into the order.
func TestParseProblemsDeterministic(t *testing.T) {
	yaml := "connections:\n  - name: a\n" + valid + "      headers: {A: '', B: '', C: '', D: '', E: '', F: ''}\n"
	_, first := Parse([]byte(yaml), "x", nil)
	for range 20 {
		_, err := Parse([]byte(yaml), "x", nil)
		if err.Error() != first.Error() {
			t.Fatalf("order changed:\n%v\nvs\n%v", first, err)
		}
	}
}

// aliasBomb is a "billion laughs" document: small, but 9^9 nodes expanded.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestScheduleAndAlertSettings(t *testing.T) {
	env := func(string) (string, bool) { return "", false }
	base := `connections:
  - name: a
    mailchimp: {api_key: k-us6, list_id: l}
    target: {url: "https://t.example.com/r"}
`
	good := "alerts:\n  lag_threshold: 3h\n  webhook_url: https://hooks.example.com/services/T0/B0/secret\n" + base + "    cron: \"*/30 * * * *\"\n    lag_threshold: 90m\n"
	cfg, err := Parse([]byte(good), "good.yaml", env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	c := cfg.Connections[0]
	if cfg.Alerts.LagThreshold.D() != 3*time.Hour || c.Cron != "*/30 * * * *" || c.LagThreshold.D() != 90*time.Minute {
		t.Errorf("parsed %+v / %+v", cfg.Alerts, c)
	}
	if cfg.Alerts.WebhookURL.Reveal() != "https://hooks.example.com/services/T0/B0/secret" {
		t.Errorf("webhook_url = %q", cfg.Alerts.WebhookURL.Reveal())
	}

	bad := "alerts:\n  lag_threshold: -1h\n  webhook_url: ftp://hooks.example.com/secret\n" + base + "    cron: \"every tuesday\"\n"
	_, err = Parse([]byte(bad), "bad.yaml", env)
	for _, want := range []string{"alerts.lag_threshold", "alerts.webhook_url: must be an absolute http or https URL", "connections[0].cron: is not a valid cron expression"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the webhook URL leaked into the error: %v", err)
	}
}
