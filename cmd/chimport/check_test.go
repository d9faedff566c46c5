package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/mcsim"
)

// fixture is a Mailchimp simulator and a target simulator on loopback.
type fixture struct {
	sim       *mcsim.Mailchimp
	target    *mcsim.Target
	baseURL   string
	targetURL string
}

const targetAuth = "Bearer target-secret-7f3a9c"

func newFixture(t *testing.T, members int) *fixture {
	t.Helper()
	sim := mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: "a1b2c3d4e5", Members: members, Seed: 7})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth})
	simSrv := httptest.NewServer(sim)
	targetSrv := httptest.NewServer(target)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	return &fixture{sim: sim, target: target, baseURL: simSrv.URL + "/3.0", targetURL: targetSrv.URL + "/records"}
}

// config returns a config file for one connection per list id, reading the
// secrets from ${MAILCHIMP_API_KEY} and ${TARGET_API_KEY}.
func (f *fixture) config(t *testing.T, listIDs ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "defaults:\n  mailchimp: {api_key: \"${MAILCHIMP_API_KEY}\", base_url: %q}\n", f.baseURL)
	fmt.Fprintf(&b, "  target: {url: %q, headers: {Authorization: \"${TARGET_API_KEY}\"}}\nconnections:\n", f.targetURL)
	for i, id := range listIDs {
		fmt.Fprintf(&b, "  - name: conn%d\n    mailchimp: {list_id: %q}\n", i, id)
	}
	return writeFile(t, "chimport.yaml", b.String())
}

func TestCheckAllHealthy(t *testing.T) {
	f := newFixture(t, 120)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	r := runCLI(t, context.Background(), vars, "check", "--config", f.config(t, "a1b2c3d4e5"))
	if r.code != exitOK {
		t.Fatalf("check: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "OK    conn0: list a1b2c3d4e5") || !strings.Contains(r.stdout, "subscribed") {
		t.Errorf("stdout = %q, want an OK line with the list and member counts", r.stdout)
	}
	if got := f.target.Stats().Batches; got != 0 {
		t.Errorf("check sent %d batches to the target, want none", got)
	}
}

func TestCheckReportsEachFailureWithoutSecrets(t *testing.T) {
	f := newFixture(t, 10)
	const wrongKey = "ffffffffffffffffffffffffffffffff-us6"
	const wrongAuth = "Bearer wrong-credential-1b2c"
	tests := []struct {
		name  string
		vars  map[string]string
		lists []string
		want  []string
	}{
		{
			name:  "rejected key and rejected target credentials",
			vars:  map[string]string{"MAILCHIMP_API_KEY": wrongKey, "TARGET_API_KEY": wrongAuth},
			lists: []string{"a1b2c3d4e5"},
			want:  []string{"FAIL  conn0:", "401", "mailchimp.api_key", "HTTP 401", "target.headers"},
		},
		{
			name:  "missing list, one good and one bad connection",
			vars:  map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth},
			lists: []string{"a1b2c3d4e5", "nosuchlist"},
			want:  []string{"OK    conn0:", "FAIL  conn1:", "404", "mailchimp.list_id", "1 of 2 connections failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--log-level", "debug", "--log-format", "json", "check", "--config", f.config(t, tt.lists...)}
			r := runCLI(t, context.Background(), tt.vars, args...)
			if r.code != exitFailed {
				t.Errorf("exit code = %d, want %d", r.code, exitFailed)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, secret := range []string{f.sim.APIKey(), wrongKey, "ffffffffffffffff", targetAuth, wrongAuth, "wrong-credential"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output contains the secret %q:\nstdout: %s\nstderr: %s", secret, r.stdout, r.stderr)
				}
			}
		})
	}
}

func TestCheckUnknownConnectionIsUsageError(t *testing.T) {
	f := newFixture(t, 1)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	r := runCLI(t, context.Background(), vars, "check", "--config", f.config(t, "a1b2c3d4e5"), "--connection", "nope")
	if r.code != exitUsage || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("exit %d, stderr %q; want 2 naming the unknown connection", r.code, r.stderr)
	}
}

func TestConfigErrorsExit2AndNameTheField(t *testing.T) {
	path := writeFile(t, "chimport.yaml", `connections:
  - name: newsletter
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}"}
    target: {url: "http://127.0.0.1:1/records"}
`)
	r := runCLI(t, context.Background(), map[string]string{"MAILCHIMP_API_KEY": "abc-us6"}, "check", "--config", path)
	if r.code != exitUsage || !strings.Contains(r.stderr, "connections[0].mailchimp.list_id") {
		t.Fatalf("exit %d, stderr %q; want 2 naming connections[0].mailchimp.list_id", r.code, r.stderr)
	}
}

// A target that redirects every request fails check, as it would fail run
// (the sink does not follow redirects), even though the redirect's
// destination is up. The message says it redirects, where to (redacted)
// and what to do.
func TestCheckFailsATargetThatRedirects(t *testing.T) {
	f := newFixture(t, 10)
	var followed atomic.Int64
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Add(1) }))
	t.Cleanup(final.Close)
	const query = "token=redirect-secret-42"
	moved := httptest.NewServer(http.RedirectHandler(final.URL+"/records?"+query, http.StatusTemporaryRedirect))
	t.Cleanup(moved.Close)
	f.targetURL = moved.URL + "/records"

	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	r := runCLI(t, context.Background(), vars, "check", "--config", f.config(t, "a1b2c3d4e5"))
	if r.code != exitFailed {
		t.Errorf("exit code = %d, want %d\nstdout: %s", r.code, exitFailed, r.stdout)
	}
	for _, want := range []string{"FAIL  conn0:", "HTTP 307", "redirect", "to " + final.URL + "/records?REDACTED", "set target.url to the final address"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "redirect-secret-42") || strings.Contains(r.stdout+r.stderr, targetAuth) {
		t.Errorf("output contains a secret:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("check followed the redirect: the destination got %d requests", n)
	}
}

// stateConfig is a config for the fixture's list with the given state URL.
func (f *fixture) stateConfig(t *testing.T, stateURL string) string {
	t.Helper()
	return writeFile(t, "chimport.yaml", fmt.Sprintf(`state: %q
connections:
  - name: conn0
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: a1b2c3d4e5, base_url: %q}
    target: {url: %q, headers: {Authorization: "${TARGET_API_KEY}"}}
`, stateURL, f.baseURL, f.targetURL))
}

const usageHint = "Run 'chimport --help' for usage."

// A state file that run cannot open fails check and init as it fails run:
// exit 2, the same message, no usage hint, nothing probed or created.
func TestCheckAndInitRefuseAStateFileRunRefuses(t *testing.T) {
	notADir := writeFile(t, "plain.txt", "")
	tests := []struct {
		name, path, want string
	}{
		{"missing directory", filepath.Join(t.TempDir(), "missing", "state.db"), "does not exist"},
		{"parent is a file", filepath.Join(notADir, "state.db"), "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 10)
			vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
			cfg := f.stateConfig(t, "sqlite://"+tt.path)
			want := fmt.Sprintf("chimport: state sqlite://%s: state: open sqlite %q: ", tt.path, tt.path)

			run := runCLI(t, context.Background(), vars, "run", "--config", cfg)
			if run.code != exitUsage || !strings.HasPrefix(run.stderr, want) || !strings.Contains(run.stderr, tt.want) {
				t.Fatalf("run: exit %d, stderr %q; want 2 and %q...%q", run.code, run.stderr, want, tt.want)
			}
			check := runCLI(t, context.Background(), vars, "check", "--config", cfg)
			if check.code != exitUsage || check.stderr != run.stderr {
				t.Errorf("check: exit %d, stderr %q; want 2 and run's message %q", check.code, check.stderr, run.stderr)
			}
			if check.stdout != "" || f.sim.Stats().Requests != 0 {
				t.Errorf("check went on to the connections: stdout %q, %d Mailchimp requests", check.stdout, f.sim.Stats().Requests)
			}
			initRes := runCLI(t, context.Background(), vars, "init", "--config", cfg)
			if initRes.code != exitUsage || !strings.Contains(initRes.stderr, tt.want) {
				t.Errorf("init: exit %d, stderr %q; want 2 and %q", initRes.code, initRes.stderr, tt.want)
			}
			for _, r := range []result{run, check, initRes} {
				if strings.Contains(r.stderr, usageHint) {
					t.Errorf("a state problem got the usage hint: %q", r.stderr)
				}
			}
			if _, err := os.Stat(tt.path); err == nil {
				t.Errorf("%s was created", tt.path)
			}
		})
	}
}

// check passes a state file that does not exist yet in a directory that
// does, and leaves it for run (or init) to create.
func TestCheckCreatesNoStateFile(t *testing.T) {
	f := newFixture(t, 10)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	path := filepath.Join(t.TempDir(), "state.db")
	r := runCLI(t, context.Background(), vars, "check", "--config", f.stateConfig(t, "sqlite://"+path))
	if r.code != exitOK {
		t.Fatalf("check: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
		t.Errorf("check created %v", entries)
	}
}

// DynamoDB tables that do not exist fail check as they fail run, with the
// advice to run init; after init, check passes.
func TestCheckDynamoDBTablesAsRunFindsThem(t *testing.T) {
	awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
	f := newFixture(t, 10)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	cfg := f.dynamoConfig(t, "checkinit", "")
	ctx := context.Background()

	run := runCLI(t, ctx, vars, "run", "--config", cfg)
	check := runCLI(t, ctx, vars, "check", "--config", cfg)
	if check.code != exitUsage || check.stderr != run.stderr || !strings.Contains(check.stderr, `run "chimport init"`) {
		t.Fatalf("check before init: exit %d, stderr %q; want 2 and run's message %q, which says to run chimport init", check.code, check.stderr, run.stderr)
	}
	if strings.Contains(check.stderr, usageHint) {
		t.Errorf("check gave the usage hint: %q", check.stderr)
	}
	if r := runCLI(t, ctx, vars, "init", "--config", cfg); r.code != exitOK {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, ctx, vars, "check", "--config", cfg); r.code != exitOK {
		t.Fatalf("check after init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// The usage hint goes with mistakes in the command line only.
func TestUsageHintOnlyForUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantHint bool
	}{
		{"bad flag", []string{"check", "--nope"}, true},
		{"stray argument", []string{"init", "extra"}, true},
		{"missing config file", []string{"init", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, false},
		{"config error", []string{"check", "--config", writeFile(t, "chimport.yaml", "connections: [{name: x}]\n")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit code = %d, want %d; stderr %q", r.code, exitUsage, r.stderr)
			}
			if got := strings.Contains(r.stderr, usageHint); got != tt.wantHint {
				t.Errorf("hint = %v, want %v; stderr %q", got, tt.wantHint, r.stderr)
			}
		})
	}
}
