package configsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chimport/chimport/internal/config"
	"github.com/google/go-cmp/cmp"
)

var dirEnv = map[string]string{"MAILCHIMP_API_KEY": "0123456789abcdef-us6", "GLOBEX_TOKEN": "oauth-secret-token"}

func lookup(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// A local directory is read as fragments, in name order, dotfiles and
// other files skipped.
func TestLoadDirectory(t *testing.T) {
	cfg, err := Load(context.Background(), "testdata/fragments", lookup(dirEnv))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var names []string
	for _, c := range cfg.Connections {
		names = append(names, c.Name)
	}
	if diff := cmp.Diff([]string{"acme.a1b2c3d4e5", "acme.f6a7b8c9d0", "globex"}, names); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	globex := cfg.Connections[2]
	if globex.Mailchimp.AccessToken.Reveal() != dirEnv["GLOBEX_TOKEN"] || globex.Mailchimp.APIKey != "" || !globex.Discovers() {
		t.Errorf("globex = %+v, want an access token and list_id *", globex.Mailchimp)
	}
	if want := filepath.Join("testdata", "fragments", "20-globex.yml"); globex.Origin.Source != want {
		t.Errorf("globex.Origin.Source = %q, want %q", globex.Origin.Source, want)
	}
	same, err := config.LoadDir("testdata/fragments", lookup(dirEnv))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(same, cfg); diff != "" {
		t.Errorf("Load differs from config.LoadDir (-LoadDir +Load):\n%s", diff)
	}
}

// A directory's problems name their file and line, and hide the secrets.
func TestLoadDirectoryProblems(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "state: sqlite://a.db\nconnections:\n  - name: one\n    mailchimp: {api_key: \"${KEY}\", list_id: x}\n    target: {url: https://t.example.com}\n")
	write("b.yaml", "state: sqlite://b.db\nconnections:\n  - name: one\n    mailchimp: {access_token: \"${KEY}\", api_key: \"${KEY}\", list_id: x}\n    target: {url: https://t.example.com}\n")
	_, err := Load(context.Background(), dir, lookup(map[string]string{"KEY": "secret-value-us6"}))
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Source != dir {
		t.Fatalf("Load = %T %v, want a *config.Error for the directory", err, err)
	}
	b := filepath.Join(dir, "b.yaml")
	want := "config " + dir + ": 3 problems:\n" +
		"  " + b + ":1: state: is also in " + filepath.Join(dir, "a.yaml") + " (line 1); state may be in one file of the directory only\n" +
		"  " + b + ":3: connections[0].name: duplicate of connections[0].name in " + filepath.Join(dir, "a.yaml") + " (line 3) \"one\"\n" +
		"  " + b + ":4: connections[0].mailchimp.access_token: must not be set with api_key: use one of the two " +
		"(write access_token: ~ or api_key: ~ in the connection to decline one from defaults)"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "secret-value") {
		t.Errorf("the key leaked: %v", err)
	}
}

// An S3 location stays one object; a prefix is refused with the reason.
func TestLoadS3FolderIsNotADirectory(t *testing.T) {
	_, err := Load(context.Background(), "s3://bucket/conf/", nil)
	if err == nil || !strings.Contains(err.Error(), "only a local --config may be a directory") {
		t.Errorf("Load(s3 prefix) = %v, want it to say directories are local only", err)
	}
}
