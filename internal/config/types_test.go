package config

import (
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
