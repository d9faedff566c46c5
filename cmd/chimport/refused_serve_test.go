package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
)

// TestServeAlertsOnRejectedRecordsOnce: a real `chimport serve` syncing a
// connection every second, whose target refuses one member, sends one
// rejected alert however many runs follow, shows the record on /metrics
// and on the status page, and sends one recovery notice once the target
// accepts it. It waits on conditions with deadlines: what it tests is a
// real process's runs.
func TestServeAlertsOnRejectedRecordsOnce(t *testing.T) {
	f := newFixture(t, 200)
	bad := f.sim.Members("a1b2c3d4e5")[42].ID
	f.target.RefuseIDs(bad)
	hook := &webhookRecorder{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	cfg := writeFile(t, "chimport.yaml", fmt.Sprintf(`state: sqlite://%s
alerts:
  webhook_url: %s/hook
connections:
  - name: newsletter
    every: 1s
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: a1b2c3d4e5, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
`, filepath.Join(t.TempDir(), "state.db"), hookSrv.URL, f.baseURL, f.targetURL))
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+f.sim.APIKey(), "TARGET_API_KEY="+targetAuth)
	w := startWorker(t, cfg, env, "--lag-check", "200ms")

	waitUntil(t, "the rejected alert", 30*time.Second, func() bool { return slices.Contains(hook.kinds(), "rejected") })
	gauge := regexp.MustCompile(`(?m)^chimport_records_rejected\{connection="newsletter"\} (\d+)$`)
	_, metrics := w.get(t, "/metrics")
	if m := gauge.FindStringSubmatch(metrics); m == nil || m[1] != "1" {
		t.Errorf("/metrics: chimport_records_rejected = %v, want 1", m)
	}
	if _, page := w.get(t, "/"); !strings.Contains(page, "1 rejected") || !strings.Contains(page, "member "+bad+": HTTP 422") {
		t.Errorf("the status page does not show the rejected record:\n%.3000s", page)
	}
	// More runs while the record stays refused: no second alert.
	runs := w.lagChecks(t)
	waitUntil(t, "a few more runs and lag checks", 30*time.Second, func() bool { return w.lagChecks(t) >= runs+10 })
	if got := hook.kinds(); !slices.Equal(got, []string{"rejected"}) {
		t.Errorf("alerts while the record stays refused: %v, want one rejected alert", got)
	}

	f.target.AcceptIDs(bad)
	waitUntil(t, "the recovery notice", 30*time.Second, func() bool { return len(hook.kinds()) >= 2 })
	runs = w.lagChecks(t)
	waitUntil(t, "a few more lag checks", 30*time.Second, func() bool { return w.lagChecks(t) >= runs+5 })
	if got := hook.kinds(); !slices.Equal(got, []string{"rejected", "recovered"}) {
		t.Errorf("alerts: %v, want rejected, then recovered", got)
	}
	_, metrics = w.get(t, "/metrics")
	if m := gauge.FindStringSubmatch(metrics); m == nil || m[1] != "0" {
		t.Errorf("/metrics after the recovery: chimport_records_rejected = %v, want 0", m)
	}
	hook.mu.Lock()
	bodies, _ := json.Marshal(hook.alerts)
	hook.mu.Unlock()
	if strings.Contains(string(bodies), targetAuth) || strings.Contains(string(bodies), f.sim.APIKey()) {
		t.Error("an alert holds a secret")
	}
	if !strings.Contains(string(bodies), bad) {
		t.Errorf("the alerts do not name the refused member %s: %s", bad, bodies)
	}
}

// TestStatusShowsTheErrorARunIsRetrying: while a real `chimport run`
// retries a Mailchimp that answers every request with a proxy's 502,
// `status` already shows the error it is retrying, long before the run
// gives up.
func TestStatusShowsTheErrorARunIsRetrying(t *testing.T) {
	f := newFixture(t, 100)
	f.sim.SetFaultRate(1, mcsim.FaultServerHTML)
	cfg := f.runConfig(t, "")
	cmd := exec.Command(os.Args[0], "run", "--config", cfg, "--log-format", "json")
	cmd.Env = append(os.Environ(), "MAILCHIMP_API_KEY="+f.sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_TEST_RUN_MAIN=1")
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	var row connectionStatus
	waitUntil(t, "status to show the error the run retries", 20*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the run ended (%v) before status showed its error", err)
		default:
		}
		r := runCLI(t, context.Background(), vars, "status", "--config", cfg, "--json")
		var rows []connectionStatus
		if json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 1 {
			return false
		}
		row = rows[0]
		return row.LastError != ""
	})
	if !strings.Contains(row.LastError, "retrying") || !strings.Contains(row.LastError, "502") {
		t.Errorf("status last_error = %q, want the 502 the run is retrying", row.LastError)
	}
}
