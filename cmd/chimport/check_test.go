package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

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
