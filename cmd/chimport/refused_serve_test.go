package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
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
