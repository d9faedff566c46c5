package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"A": "alpha", "B_2": "beta", "EMPTY": ""})
	tests := []struct {
		in, want string
		unset    []string
		err      bool
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y${B_2}z", want: "xalphaybetaz"},
		{in: "${EMPTY}", want: ""},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "$$$${A}", want: "$${A}"},
		{in: "pa$word", want: "pa$word"},
		{in: "$", want: "$"},
		{in: "cost: 5$", want: "cost: 5$"},
		{in: "${X}-${A}-${Y}-${X}", want: "-alpha--", unset: []string{"X", "Y"}},
		{in: "${A", err: true},
		{in: "${}", err: true},
		{in: "${1A}", err: true},
		{in: "${A:-default}", err: true},
	}
	for _, tt := range tests {
		got, unset, err := expand(tt.in, vars)
		if (err != nil) != tt.err {
			t.Errorf("expand(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if tt.err {
			continue
		}
		if got != tt.want || !cmp.Equal(unset, tt.unset) {
			t.Errorf("expand(%q) = %q, %q; want %q, %q", tt.in, got, unset, tt.want, tt.unset)
		}
	}
}
