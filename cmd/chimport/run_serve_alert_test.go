package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
)

// runProcess runs `chimport run` as a real process (this test binary in
// main mode) and returns its exit code and what it wrote.
func runProcess(t *testing.T, env []string, cfgPath string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "run", "--config", cfgPath, "--log-format", "json")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return exitOK, string(out)
	case ctx.Err() != nil:
		t.Fatalf("run did not finish within 60s:\n%s", out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("run: %v", err)
	}
	return 0, ""
}

// TestRunAndServeProcessesShareOneIncident is issue 10's outage under a
// scheduled `chimport run`, with real processes on one SQLite file: a
// `chimport serve` process beating lag every 500ms and `chimport run`
// processes started by the test, both alerting to the same webhook with a
// 4 s threshold. The target goes down (503) for three runs, over some 17 s:
// exactly one lag alert comes from the two processes together. The target
// comes back, one run catches up: exactly one recovery notice, and the
// target equals the source.
//
// The connection runs every hour, and the test's first `run` happens before
// serve starts, so serve plans its next run an hour after that one and only
// beats lag: every run is a `chimport run`, as under a scheduler, and serve
// is the process sharing the store (the test checks it ran nothing). With a
// short `every`, serve would also run the connection and retry against the
// down target itself, and what sent each notice would be up to chance.
//
// It waits on the real clock: each run with the target down makes the 6
// attempts of the retry policy, 1 s apart because the target asks for it
// with Retry-After: 1 (the least it can ask; without it the backoff would
// take 15 s to 31 s a run), so the three runs take about 15 s, after 2 s for
// the change made in the outage to enter a run's window (a run reads what
// changed up to a whole second before it starts). Everything else waits on
// a condition with a deadline: serve listening, and a few of its lag checks
// after the outage and after the recovery, for any late duplicate.
func TestRunAndServeProcessesShareOneIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 20s on the real clock")
	}
	const (
		list      = "a1b2c3d4e5"
		threshold = 4 * time.Second
	)
	sim := mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: list, Members: 200, Seed: 7})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth})
	hook := &webhookRecorder{}
	simSrv, targetSrv, hookSrv := httptest.NewServer(sim), httptest.NewServer(target), httptest.NewServer(hook)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	t.Cleanup(hookSrv.Close)
	cfg := writeFile(t, "chimport.yaml", fmt.Sprintf(`state: sqlite://%s
alerts:
  lag_threshold: %s
  webhook_url: %s/hook
connections:
  - name: newsletter
    every: 1h
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: %s, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
`, filepath.Join(t.TempDir(), "state.db"), threshold, hookSrv.URL, list, simSrv.URL+"/3.0", targetSrv.URL+"/records"))
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_TEST_RUN_MAIN=1",
		// A binary built with -race sleeps 1 s on exit, in case another
		// goroutine is about to report a race.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))

	inSync := func() bool {
		records := target.Records()
		members := sim.Members(list)
		for _, m := range members {
			r, ok := records[m.ID]
			if !ok || r["email"] != m.EmailAddress || r["status"] != m.Status || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) {
				return false
			}
		}
		return len(members) > 0
	}
	counts := func() map[string]int {
		c := map[string]int{}
		for _, k := range hook.kinds() {
			c[k]++
		}
		return c
	}
	run := func(what string, want int) {
		t.Helper()
		if code, out := runProcess(t, env, cfg); code != want {
			t.Fatalf("%s: exit %d, want %d\n%.4000s", what, code, want, out)
		}
	}

	run("first sync", exitOK)
	if !inSync() {
		t.Fatal("the first sync left the target behind the source")
	}
	srv := startWorker(t, cfg, env, "--lag-check", "500ms", "--worker-id", "serve-a")
	waitUntil(t, "serve's first lag checks", 20*time.Second, func() bool { return srv.lagChecks(t) >= 2 })
	// A fresh watermark now that serve is beating, whatever its start took.
	run("run before the outage", exitOK)
	if got := hook.kinds(); len(got) != 0 {
		t.Fatalf("alerts %v before the outage", got)
	}

	target.SetRetryAfter(time.Second)
	target.SetFailRate(1, 503)
	outage := time.Now()
	for _, m := range sim.Members(list)[:5] { // something to deliver
		must(t, sim.Change(list, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = "Changed in the outage" }))
	}
	// A run's window ends a whole second at least before it starts, so a
	// change enters the next run's window once it is 2 s old.
	time.Sleep(time.Until(outage.Add(2 * time.Second))) // waiting for a moment of the clock
	for i := range 3 {
		run(fmt.Sprintf("run %d with the target down", i+1), exitFailed)
	}
	// Each run made its 6 attempts at the down target.
	if got := target.Stats().ByStatus[503]; got < 3*6 {
		t.Fatalf("the target answered 503 %d times, want at least %d (6 attempts in each of 3 runs)", got, 3*6)
	}
	if d := time.Since(outage); d <= threshold {
		t.Fatalf("the three runs took %s, not past the %s threshold", d, threshold)
	}
	// serve keeps beating after the last run: a duplicate from it would
	// come now.
	before := srv.lagChecks(t)
	waitUntil(t, "three more lag checks", 20*time.Second, func() bool { return srv.lagChecks(t) >= before+3 })
	if got := counts(); got["lag"] != 1 || len(got) != 1 {
		t.Fatalf("alerts after three runs with the target down = %v, want exactly 1 lag alert from run and serve together", got)
	}
	hook.mu.Lock()
	lag := hook.alerts[0]
	hook.mu.Unlock()
	// Whichever process saw the lag first sent it: serve's beat may do so
	// in the middle of the first run's retries, before that run has stored
	// its error, so the last error is not asked for. The lag is in whole
	// seconds.
	if s, ok := lag["lag_seconds"].(float64); lag["connection"] != "newsletter" || lag["threshold_seconds"] != float64(4) || !ok || s < 4 {
		t.Errorf("lag alert = %v, want newsletter at least 4 s behind (threshold 4 s)", lag)
	}

	target.SetFailRate(0, 0)
	run("run with the target back", exitOK)
	waitUntil(t, "the recovery notice", 10*time.Second, func() bool { return counts()["recovered"] >= 1 })
	// Let serve beat a few more times on the fresh connection: a late
	// duplicate from its beat would come now.
	before = srv.lagChecks(t)
	waitUntil(t, "three more lag checks", 20*time.Second, func() bool { return srv.lagChecks(t) >= before+3 })
	if got := counts(); got["lag"] != 1 || got["recovered"] != 1 || len(got) != 2 {
		t.Errorf("alerts = %v, want exactly 1 lag alert and 1 recovery notice from run and serve together", got)
	}
	if !inSync() {
		t.Error("the target does not equal the source after the recovery")
	}
	// serve only beat lag: every run was a `chimport run`.
	if _, body := srv.get(t, "/metrics"); strings.Contains(body, "chimport_runs_total{") {
		t.Errorf("serve ran the connection itself (every: 1h):\n%s", grepLines(body, "chimport_runs_total"))
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
