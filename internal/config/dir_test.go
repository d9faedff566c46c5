package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeDir makes a directory holding files (name -> text).
func writeDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDir(t *testing.T) {
	dir := writeDir(t, map[string]string{
		"00-common.yaml": "state: sqlite://x.db\ndefaults:\n  mailchimp: {api_key: \"${KEY}\"}\n  target: {url: \"https://t.example.com\"}\n",
		"20-b.yml":       "connections:\n  - name: b\n    mailchimp: {list_id: [b1, b2]}\n",
		"10-a.yaml":      "# comments only, for now\n",
		"15-a.yaml":      "connections:\n  - name: a\n    mailchimp: {list_id: a1}\n  - name: c\n    mailchimp: {list_id: \"*\"}\n",
		".draft.yaml":    "connections: [broken",
		"notes.txt":      "not yaml",
		"sub/x.yaml":     "connections: [broken",
		"dir.yaml/y":     "a directory named like a fragment",
	})
	for _, load := range []func(string, func(string) (string, bool)) (*Config, error){LoadDir, Load} {
		cfg, err := load(dir, env(map[string]string{"KEY": "k-us6"}))
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		type sum struct{ Name, Source, Field string }
		var got []sum
		for _, c := range cfg.Connections {
			got = append(got, sum{c.Name, filepath.Base(c.Origin.Source), c.Origin.Field})
		}
		want := []sum{
			{"a", "15-a.yaml", "connections[0]"},
			{"c", "15-a.yaml", "connections[1]"},
			{"b.b1", "20-b.yml", "connections[0]"},
			{"b.b2", "20-b.yml", "connections[0]"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("connections (-want +got):\n%s", diff)
		}
		if cfg.State != "sqlite://x.db" || cfg.Connections[2].Target.URL != "https://t.example.com" {
			t.Errorf("state %q, url %q: sections or defaults did not reach every fragment", cfg.State, cfg.Connections[2].Target.URL)
		}
	}
}

func TestLoadDirProblems(t *testing.T) {
	const conn = "  - name: %s\n    mailchimp: {api_key: \"${KEY}\", list_id: x}\n    target: {url: \"https://t.example.com\"}\n"
	one := func(name string) string { return "connections:\n" + fmt.Sprintf(conn, name) }
	tests := []struct {
		name  string
		files map[string]string
		want  []string // with D for the directory
	}{
		{
			name:  "no fragment",
			files: map[string]string{"README.md": "x", ".hidden.yaml": one("a")},
			want:  []string{"the directory has no configuration fragment: put *.yaml or *.yml files directly in it, or point --config at one file"},
		},
		{
			name:  "no connection in any file",
			files: map[string]string{"a.yaml": "defaults: {every: 1h}\n", "b.yaml": "connections: []\n"},
			want:  []string{"connections: required: no file of the directory has a connection"},
		},
		{
			name: "sections in two files, names across files",
			files: map[string]string{
				"a.yaml": "state: sqlite://a.db\nalerts: {lag_threshold: 1h}\n" + one("x"),
				"b.yaml": "webhooks: {}\nconnections:\n" + fmt.Sprintf(conn, "y") + fmt.Sprintf(conn, "x"),
				"c.yaml": "defaults: {every: 1h}\n",
				"d.yaml": "alerts: {lag_threshold: 2h}\nwebhooks: {}\ndefaults: {every: 2h}\nstate: sqlite://d.db\n",
			},
			want: []string{
				`D/b.yaml:6: connections[1].name: duplicate of connections[0].name in D/a.yaml (line 4) "x"`,
				"D/d.yaml:1: alerts: is also in D/a.yaml (line 2); alerts may be in one file of the directory only",
				"D/d.yaml:2: webhooks: is also in D/b.yaml (line 1); webhooks may be in one file of the directory only",
				"D/d.yaml:3: defaults: is also in D/c.yaml (line 1); defaults may be in one file of the directory only",
				"D/d.yaml:4: state: is also in D/a.yaml (line 1); state may be in one file of the directory only",
			},
		},
		{
			name: "each problem in its file, counted in it",
			files: map[string]string{
				"a.yaml": "defaults:\n  target: {batch_size: 0}\nconnections:\n  - name: A\n    mailchimp: {api_key: \"${KEY}\", list_id: x}\n    target: {url: \"https://t.example.com\"}\n",
				"b.yaml": "connections:\n" + fmt.Sprintf(conn, "ok") + "  - name: b\n    mailchimp: {list_id: [b1, b1]}\n    target: {url: \"ftp://t.example.com\"}\n    everyy: 1h\n",
				"d.yaml": "connections: {name: d}\n",
			},
			want: []string{
				"D/a.yaml:2: connections[0].target.batch_size: must be between 1 and 10000, got 0 (in defaults)",
				"D/a.yaml:2: connections[0].target.batch_size: must be between 1 and 10000, got 0 (in defaults; the connection is in D/b.yaml)",
				"D/a.yaml:2: connections[1].target.batch_size: must be between 1 and 10000, got 0 (in defaults; the connection is in D/b.yaml)",
				`D/a.yaml:4: connections[0].name: must use only a-z, 0-9, _ and -, got "A"`,
				"D/b.yaml: connections[1].mailchimp.api_key: required (or access_token, for an account connected through OAuth)",
				`D/b.yaml:6: connections[1].mailchimp.list_id[1]: repeats list_id[0] "b1": list each audience once`,
				"D/b.yaml:7: connections[1].target.url: must use http or https",
				"D/b.yaml:8: connections[1].everyy: unknown key, did you mean every?",
				`D/d.yaml:1: connections: must be a list, got a mapping`,
			},
		},
		{
			// A file that is not YAML stops the load before the files are
			// joined, whose problems would follow from the missing part;
			// every file's own problems are still reported.
			name: "a file that does not parse",
			files: map[string]string{
				"a.yaml": "connections:\n  - name: a\n    mailchimp: {api_key: \"${KEY}\", list_id: x}\n    target: {url: \"https://t.example.com\"}\n    everyy: 1h\n",
				"b.yaml": "connections:\n  - name: [b\n",
				"c.yaml": "state: sqlite://c.db\n---\nstate: sqlite://d.db\n",
			},
			want: []string{
				"D/a.yaml:5: connections[0].everyy: unknown key, did you mean every?",
				"D/b.yaml:1: invalid YAML: did not find expected ',' or ']'",
				"D/c.yaml:3: the file has more than one YAML document (---); put everything in one",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDir(t, tt.files)
			_, err := LoadDir(dir, env(map[string]string{"KEY": "secret-key-us6"}))
			var cerr *Error
			if !errors.As(err, &cerr) || cerr.Source != dir {
				t.Fatalf("LoadDir = %T %v, want an *Error for the directory", err, err)
			}
			got := problemStrings(t, err)
			for i := range got {
				got[i] = strings.ReplaceAll(got[i], dir, "D")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "secret-key") {
				t.Errorf("the key is in the error: %v", err)
			}
		})
	}
}

func TestLoadDirMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := LoadDir(dir, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if want := "config " + dir + ": 1 problem:\n  cannot read the directory: no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("Error() =\n%v\nwant\n%s", err, want)
	}
}

// BenchmarkLoadDir loads a directory of 1,000 fragments of 10 connections
// each, a config of thousands of accounts, and prints connections per second.
func BenchmarkLoadDir(b *testing.B) {
	const files, perFile = 1000, 10
	fragments := map[string]string{
		"000-common.yaml": "state: sqlite://x.db\ndefaults:\n  every: 1h\n  target:\n    url: https://t.example.com/r\n    headers: {Authorization: \"Bearer ${TOKEN}\"}\n",
	}
	for f := range files {
		var s strings.Builder
		s.WriteString("connections:\n")
		for c := range perFile {
			fmt.Fprintf(&s, "  - name: acct%04d-%d\n    mailchimp:\n      access_token: \"${TOKEN}\"\n      dc: us6\n      list_id: \"*\"\n", f, c)
		}
		fragments[fmt.Sprintf("%04d.yaml", f)] = s.String()
	}
	dir := writeDir(b, fragments)
	lookup := env(map[string]string{"TOKEN": "t0ken"})
	b.ResetTimer()
	for b.Loop() {
		cfg, err := LoadDir(dir, lookup)
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Connections) != files*perFile {
			b.Fatalf("%d connections", len(cfg.Connections))
		}
	}
	b.ReportMetric(float64(files*perFile*b.N)/b.Elapsed().Seconds(), "connections/s")
}
