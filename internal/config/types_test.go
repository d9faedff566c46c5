package config

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestDurationUnmarshal(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{in: "90m", want: 90 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "60s", want: time.Minute},
		{in: `"2h"`, want: 2 * time.Hour},
		{in: "0", want: 0}, // zero is zero in any unit
		{in: "90", err: true},
		{in: "1.5", err: true},
		{in: `"90"`, err: true}, // quoted, still no unit
		{in: "90 minutes", err: true},
		{in: "[1m]", err: true},
	}
	for _, tt := range tests {
		var v struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
		if (err != nil) != tt.err {
			t.Errorf("%s: error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if !tt.err && v.D.D() != tt.want {
			t.Errorf("%s: got %v, want %v", tt.in, v.D, tt.want)
		}
	}
	if b, _ := Duration(90 * time.Minute).MarshalText(); string(b) != "1h30m0s" {
		t.Errorf("MarshalText = %s", b)
	}
}

func TestMappingKeepsOrder(t *testing.T) {
	in := "z: a.b\na: c\nm: merge_fields.FNAME\n"
	var m Mapping
	if err := yaml.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	want := Mapping{{"z", "a.b"}, {"a", "c"}, {"m", "merge_fields.FNAME"}}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	out, err := yaml.Marshal(m)
	if err != nil || string(out) != in {
		t.Errorf("Marshal = %q, %v; want %q", out, err, in)
	}
}

func TestTombstoneValues(t *testing.T) {
	in := `status: deleted
deleted: true
version: 2
score: 1.5
deleted_at: ~
big: 18446744073709551615
day: 2024-01-02
code: "007"
`
	var got Tombstone
	if err := yaml.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := Tombstone{"status": "deleted", "deleted": true, "version": int64(2), "score": 1.5, "deleted_at": nil,
		"big": uint64(18446744073709551615), "day": "2024-01-02", "code": "007"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	j, err := json.Marshal(got)
	wantJSON := `{"big":18446744073709551615,"code":"007","day":"2024-01-02","deleted":true,"deleted_at":null,"score":1.5,"status":"deleted","version":2}`
	if err != nil || string(j) != wantJSON {
		t.Errorf("json.Marshal = %s, %v; want %s", j, err, wantJSON)
	}

	for _, bad := range []string{"[x]", "a: [1]", "a: {b: c}", "a: .nan", "a: -.inf", "? [k]\n: v"} {
		var tomb Tombstone
		if err := yaml.Unmarshal([]byte(bad), &tomb); err == nil {
			t.Errorf("Unmarshal(%q) = %v, want an error", bad, tomb)
		}
	}
}
