package config

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSelect(t *testing.T) {
	cfg := &Config{Connections: []Connection{{Name: "a"}, {Name: "b"}, {Name: "c"}}}
	tests := []struct {
		names []string
		want  []string
		err   string
	}{
		{names: nil, want: []string{"a", "b", "c"}},
		{names: []string{"b"}, want: []string{"b"}},
		{names: []string{"c", "a"}, want: []string{"a", "c"}}, // file order, not flag order
		{names: []string{"a", "a"}, want: []string{"a"}},
		{names: []string{"x"}, err: `unknown connection "x" (known: a, b, c)`},
		{names: []string{"x", "a", "y", "x"}, err: `unknown connections "x", "y" (known: a, b, c)`},
	}
	for _, tt := range tests {
		got, err := cfg.Select(tt.names)
		if tt.err != "" {
			var uerr *UnknownConnectionsError
			if !errors.As(err, &uerr) || err.Error() != tt.err {
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

func TestSelectDoesNotAlias(t *testing.T) {
	cfg := &Config{Connections: []Connection{{Name: "a"}}}
	all, _ := cfg.Select(nil)
	all[0].Name = "changed"
	if cfg.Connections[0].Name != "a" {
		t.Error("Select(nil) returned the config's own slice")
	}
}

func TestWithDefaults(t *testing.T) {
	got := Connection{Mailchimp: Mailchimp{APIKey: "k-us2"}}.WithDefaults()
	want := Connection{
		Every:          Duration(DefaultEvery),
		ReconcileEvery: Duration(DefaultReconcileEvery),
		Mailchimp: Mailchimp{APIKey: "k-us2", BaseURL: "https://us2.api.mailchimp.com/3.0", Settle: Duration(DefaultSettle),
			MetadataURL: DefaultMetadataURL},
		Target: Target{BatchSize: DefaultBatchSize, Timeout: Duration(DefaultTimeout), MaxRejected: DefaultMaxRejected,
			Deletes: DeletesTombstone, Tombstone: Tombstone{"status": "deleted"}},
		Mapping: DefaultMapping(),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	set := Connection{Every: dur(time.Minute), ReconcileEvery: dur(time.Hour), Mapping: Mapping{{Key: "k", Path: "p"}},
		Target: Target{BatchSize: 5, MaxRejected: 7, Deletes: DeletesOff, Tombstone: Tombstone{}}}.WithDefaults()
	if set.Every != dur(time.Minute) || set.ReconcileEvery != dur(time.Hour) || set.Target.BatchSize != 5 || set.Target.MaxRejected != 7 || len(set.Mapping) != 1 ||
		set.Target.Deletes != DeletesOff || set.Target.Tombstone == nil || len(set.Target.Tombstone) != 0 {
		t.Errorf("WithDefaults overrode values that were set: %+v", set)
	}

	orig := &Config{Connections: []Connection{{Name: "a"}}}
	withDefaults := orig.WithDefaults()
	if orig.State != "" || orig.Connections[0].Every != 0 {
		t.Error("Config.WithDefaults changed its receiver")
	}
	if withDefaults.State != DefaultState || withDefaults.Connections[0].Every != Duration(DefaultEvery) {
		t.Errorf("Config.WithDefaults did not default: %+v", withDefaults)
	}
}

func TestValidateInCode(t *testing.T) {
	cfg := (&Config{Connections: []Connection{{
		Name:      "a",
		Mailchimp: Mailchimp{APIKey: "k-us2", ListID: "l"},
		Target:    Target{URL: "http://localhost:1"},
	}}}).WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Settings only code can make: tombstone values that are no JSON
	// scalars, and a delete mode nobody has defaulted.
	bad := cfg.Connections[0]
	bad.Target.Tombstone = Tombstone{"status": "deleted", "nested": map[string]any{"a": 1}, "score": math.Inf(1), "n": json.Number("7")}
	bad.Target.Deletes = ""
	cfg.Connections = []Connection{bad}
	wantProblems := "config: 1 problem:\n" +
		`  connections[0].target.deletes: must be tombstone (the default), request or off, got ""`
	if err := cfg.Validate(); err == nil || err.Error() != wantProblems {
		t.Errorf("Validate() = %v, want\n%s", err, wantProblems)
	}
	cfg.Connections[0].Target.Deletes = DeletesTombstone
	wantProblems = "config: 2 problems:\n" +
		"  connections[0].target.tombstone.nested: must be a string, number, true, false or null\n" +
		"  connections[0].target.tombstone.score: must be a string, number, true, false or null"
	if err := cfg.Validate(); err == nil || err.Error() != wantProblems {
		t.Errorf("Validate() = %v, want\n%s", err, wantProblems)
	}

	err := (&Config{}).Validate()
	want := "config: 2 problems:\n  state: required\n  connections: required"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want\n%s", err, want)
	}
}

func TestEnvValuesTakeTheFieldsType(t *testing.T) {
	yaml := `connections:
  - name: ${NAME}
    every: ${EVERY}
    mailchimp:
      api_key: ${KEY}
      list_id: ${LIST}
    target:
      url: ${URL}
      batch_size: ${BATCH}
`
	cfg, err := Parse([]byte(yaml), "x", env(map[string]string{
		"NAME": "null", "EVERY": "2h", "KEY": "k-us3", "LIST": "0123", "URL": "http://h", "BATCH": "50",
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connections[0]
	got := []any{c.Name, c.Every, c.Mailchimp.ListID, c.Target.BatchSize}
	want := []any{"null", dur(2 * time.Hour), "0123", 50}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
