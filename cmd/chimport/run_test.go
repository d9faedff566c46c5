package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runConfig is a config for the fixture's list with its state in dir.
func (f *fixture) runConfig(t *testing.T, extra string) string {
	t.Helper()
	db := filepath.Join(t.TempDir(), "state.db")
	return writeFile(t, "chimport.yaml", fmt.Sprintf(`state: sqlite://%s
connections:
  - name: newsletter
    mailchimp:
      api_key: ${MAILCHIMP_API_KEY}
      list_id: a1b2c3d4e5
      base_url: %s
      settle: 0s
    target:
      url: %s
      headers:
        Authorization: ${TARGET_API_KEY}
%s`, db, f.baseURL, f.targetURL, extra))
}

func TestRunSyncsAndStatusReports(t *testing.T) {
	f := newFixture(t, 3000)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	cfg := f.runConfig(t, "")
	ctx := context.Background()

	r := runCLI(t, ctx, vars, "run", "--config", cfg)
	if r.code != exitOK {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	all := len(f.sim.Members("a1b2c3d4e5"))
	row := regexp.MustCompile(`(?m)^newsletter\s+ok\s+\d+\s+(\d+)\s`).FindStringSubmatch(r.stdout)
	if row == nil || row[1] != fmt.Sprint(all) {
		t.Errorf("run summary should show newsletter ok with %d delivered:\n%s", all, r.stdout)
	}
	if got := f.target.Len(); got != all {
		t.Errorf("target holds %d records, want %d", got, all)
	}

	// A second run right away finds nothing new: at most 2 requests.
	f.sim.ResetStats()
	r = runCLI(t, ctx, vars, "run", "--config", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("second run: exit %d, stderr %s", r.code, r.stderr)
	}
	var summaries []runJSON
	if err := json.Unmarshal([]byte(r.stdout), &summaries); err != nil {
		t.Fatalf("run --json output does not parse: %v\n%s", err, r.stdout)
	}
	if len(summaries) != 1 || summaries[0].Result != "ok" || !summaries[0].Completed || summaries[0].Watermark == nil || summaries[0].Delivered != 0 {
		t.Errorf("second run summary = %+v, want result ok, completed with a watermark and nothing delivered", summaries)
	}
	if got := f.sim.Stats().Requests; got > 2 {
		t.Errorf("no-change run made %d Mailchimp requests, want at most 2", got)
	}

	r = runCLI(t, ctx, vars, "status", "--config", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("status: exit %d, stderr %s", r.code, r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(rows) != 1 || rows[0]["name"] != "newsletter" || rows[0]["lag_seconds"] == nil || rows[0]["last_success"] == nil || rows[0]["last_error"] != "" || rows[0]["next_run"] == nil {
		t.Errorf("status rows = %v", rows)
	}
	r = runCLI(t, ctx, vars, "status", "--config", cfg)
	if !strings.Contains(r.stdout, "newsletter") || !strings.Contains(r.stdout, "LAG") {
		t.Errorf("status table:\n%s", r.stdout)
	}
}

func TestRunWithWrongKeyExplainsAndLeaksNothing(t *testing.T) {
	f := newFixture(t, 50)
	const wrongKey = "deadbeefdeadbeefdeadbeefdeadbeef-us6"
	vars := map[string]string{"MAILCHIMP_API_KEY": wrongKey, "TARGET_API_KEY": targetAuth}
	f.sim.ResetStats()
	r := runCLI(t, context.Background(), vars, "--log-level", "debug", "run", "--config", f.runConfig(t, ""))
	if r.code != exitFailed {
		t.Errorf("exit code = %d, want %d", r.code, exitFailed)
	}
	if !strings.Contains(r.stdout, "401") || !strings.Contains(r.stdout, "mailchimp.api_key") {
		t.Errorf("output does not explain the rejected key:\n%s", r.stdout)
	}
	if got := f.sim.Stats().Requests; got > 2 {
		t.Errorf("wrong key made %d requests, want at most 2", got)
	}
	for _, secret := range []string{wrongKey, "deadbeefdeadbeef", targetAuth} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("output contains %q", secret)
		}
	}
}

func TestRunWithoutListIDExits2(t *testing.T) {
	path := writeFile(t, "chimport.yaml", `connections:
  - name: newsletter
    mailchimp:
      api_key: abc-us6
    target:
      url: http://127.0.0.1:1/records
`)
	r := runCLI(t, context.Background(), nil, "run", "--config", path)
	if r.code != exitUsage || !strings.Contains(r.stderr, "connections[0].mailchimp.list_id: required") {
		t.Fatalf("exit %d, stderr %q; want 2 naming connections[0].mailchimp.list_id", r.code, r.stderr)
	}
}

func TestDemo(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "demo", "--members", "3000")
	if r.code != exitOK {
		t.Fatalf("demo: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"1. First run", "2. Second run", "3. Target and Mailchimp agree"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Only the 21 changes move in the second run.
	second := r.stdout[strings.Index(r.stdout, "2. Second run"):]
	if !strings.Contains(second, "  21  ") {
		t.Errorf("second run did not deliver exactly the 21 changes:\n%s", second)
	}
}
