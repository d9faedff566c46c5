package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/alert/notify"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

// stepClock is a clock the test moves between runs. Sleep returns at once
// and leaves the time alone, so the retries of a run against a target that
// is down take no time at all: time passes only between runs, as the test
// says.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *stepClock) Sleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

// runCLIAt is runCLI with the process clock injected.
func runCLIAt(t *testing.T, ctx context.Context, clk *stepClock, vars map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	code := execute(ctx, args, env{
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
		clock: clk,
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// outage is one connection whose target can go down, its runs on a
// stepClock, and the webhook its alerts go to.
type outage struct {
	clk     *stepClock
	sim     *mcsim.Mailchimp
	target  *mcsim.Target
	hook    *webhookRecorder
	hookURL string
	db      string
	cfg     string
	vars    map[string]string
}

const outageList = "a1b2c3d4e5"

func newOutage(t *testing.T, threshold time.Duration) *outage {
	t.Helper()
	o := &outage{clk: &stepClock{now: time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)}, hook: &webhookRecorder{}}
	o.sim = mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: outageList, Members: 200, Seed: 7, Clock: o.clk})
	o.target = mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth})
	simSrv, targetSrv, hookSrv := httptest.NewServer(o.sim), httptest.NewServer(o.target), httptest.NewServer(o.hook)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	t.Cleanup(hookSrv.Close)
	o.hookURL = hookSrv.URL + "/hook"
	o.db = filepath.Join(t.TempDir(), "state.db")
	o.cfg = writeFile(t, "chimport.yaml", fmt.Sprintf(`state: sqlite://%s
alerts:
  lag_threshold: %s
  webhook_url: %s
connections:
  - name: newsletter
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: %s, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
  - name: other
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: %s, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
`, o.db, threshold, o.hookURL, outageList, simSrv.URL+"/3.0", targetSrv.URL+"/records", outageList, simSrv.URL+"/3.0", targetSrv.URL+"/other"))
	o.vars = map[string]string{"MAILCHIMP_API_KEY": o.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	return o
}

// run is one scheduled `chimport run --connection newsletter`, and its
// exit code.
func (o *outage) run(t *testing.T) int {
	t.Helper()
	r := runCLIAt(t, context.Background(), o.clk, o.vars, "run", "--config", o.cfg, "--connection", "newsletter", "--log-format", "json")
	if r.code != exitOK && r.code != exitFailed {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r.code
}

// counts is the webhook deliveries so far by kind.
func (o *outage) counts() map[string]int {
	c := map[string]int{}
	for _, k := range o.hook.kinds() {
		c[k]++
	}
	return c
}

// inSync reports whether the target holds every member as Mailchimp has it
// now.
func (o *outage) inSync() bool {
	records := o.target.Records()
	members := o.sim.Members(outageList)
	for _, m := range members {
		r, ok := records[m.ID]
		if !ok || r["email"] != m.EmailAddress || r["status"] != m.Status || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) {
			return false
		}
	}
	return len(members) > 0
}

func (o *outage) changeSource(t *testing.T, round int) {
	t.Helper()
	for _, m := range o.sim.Members(outageList)[:5] {
		must(t, o.sim.Change(outageList, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = fmt.Sprintf("Round %d", round) }))
	}
}

// TestRunAlertsLagOnceAndRecovers is the outage under a scheduled
// `chimport run`: the target goes down, three runs 3 s apart go by with a
// 4 s threshold, and exactly one lag alert comes, from the run that first
// sees the lag past it, quoting the lag and the last error with its time. Once the target is back, the next run sends exactly
// one recovery notice and the target equals the source. The connection
// the runs do not select (--connection) is never judged.
func TestRunAlertsLagOnceAndRecovers(t *testing.T) {
	o := newOutage(t, 4*time.Second)
	if code := o.run(t); code != exitOK || !o.inSync() {
		t.Fatalf("first run: exit %d, in sync %v", code, o.inSync())
	}

	o.target.SetFailRate(1, 503)
	// The watermark trails each run's start by the 1 s settle floor, so the
	// lags are 4 s (not past the threshold), 7 s and 10 s.
	wantLag := []int{0, 1, 1}
	for i, want := range wantLag {
		o.changeSource(t, i) // something to deliver, changed before the window ends
		o.clk.Advance(3 * time.Second)
		if code := o.run(t); code != exitFailed {
			t.Fatalf("run %d with the target down: exit %d, want %d", i+2, code, exitFailed)
		}
		if got := o.counts(); got["lag"] != want || len(got) > 1 {
			t.Fatalf("after %d runs with the target down: alerts %v, want %d lag alert", i+1, got, want)
		}
	}
	o.hook.mu.Lock()
	lag := o.hook.alerts[0]
	o.hook.mu.Unlock()
	if lag["connection"] != "newsletter" || lag["lag_seconds"] != float64(7) || lag["threshold_seconds"] != float64(4) || lag["last_error"] == nil || lag["last_error_at"] == nil {
		t.Errorf("lag alert = %v, want newsletter 7 s behind (threshold 4 s) with the last error and its time", lag)
	}

	o.target.SetFailRate(0, 0)
	o.clk.Advance(3 * time.Second)
	if code := o.run(t); code != exitOK {
		t.Fatalf("run with the target back: exit %d", code)
	}
	o.clk.Advance(3 * time.Second)
	o.run(t) // fresh and quiet: nothing more
	if got := o.counts(); got["lag"] != 1 || got["recovered"] != 1 || len(got) != 2 {
		t.Errorf("alerts = %v, want exactly 1 lag alert and 1 recovery notice", got)
	}
	if !o.inSync() {
		t.Error("the target does not equal the source after the recovery")
	}
	for _, a := range o.hook.alerts {
		if a["connection"] != "newsletter" {
			t.Errorf("alert for %v: a run of newsletter alone judged it", a["connection"])
		}
	}
}

// TestRunAndServeShareOneIncident: `run` and a serve worker's lag beat on
// the same SQLite file send no alert twice. The beat is what worker.Serve
// runs every --lag-check (LagPolicy.CheckConfirmed on the store's
// freshness, here through LagPolicy.CheckStore), on its own connection to
// the file, to the same webhook, beating all through each run and between
// them, on the same clock. A real serve process would read the wall clock,
// which the runs here do not.
func TestRunAndServeShareOneIncident(t *testing.T) {
	o := newOutage(t, 4*time.Second)
	ctx := context.Background()
	serveStore, err := state.Open(ctx, "sqlite://"+o.db)
	must(t, err)
	t.Cleanup(func() { serveStore.Close() })
	policy := alert.LagPolicy{Threshold: 4 * time.Second}
	webhook := notify.NewWebhook(o.hookURL, nil)
	beat := func() {
		if err := policy.CheckStore(ctx, serveStore, webhook, "newsletter", o.clk.Now()); err != nil {
			t.Errorf("lag beat: %v", err)
		}
	}
	// runBeating is a run with the beat going on meanwhile, and once
	// after.
	runBeating := func() int {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					beat()
				}
			}
		})
		code := o.run(t)
		close(done)
		wg.Wait()
		beat()
		return code
	}

	if code := runBeating(); code != exitOK {
		t.Fatalf("first run: exit %d", code)
	}
	o.target.SetFailRate(1, 503)
	for i := range 3 {
		o.changeSource(t, i)
		o.clk.Advance(3 * time.Second)
		beat() // serve notices the lag between runs too
		runBeating()
		if i == 0 && len(o.hook.kinds()) != 0 {
			t.Fatalf("alerts %v at a lag of 4 s, not past the threshold", o.hook.kinds())
		}
	}
	if got := o.counts(); got["lag"] != 1 || len(got) != 1 {
		t.Fatalf("alerts after the outage = %v, want exactly 1 lag alert", got)
	}
	o.target.SetFailRate(0, 0)
	for range 3 {
		o.clk.Advance(3 * time.Second)
		beat()
		if code := runBeating(); code != exitOK {
			t.Fatalf("run with the target back: exit %d", code)
		}
	}
	if got := o.counts(); got["lag"] != 1 || got["recovered"] != 1 || len(got) != 2 {
		t.Errorf("alerts = %v, want exactly 1 lag alert and 1 recovery notice from run and serve together", got)
	}
	if !o.inSync() {
		t.Error("the target does not equal the source after the recovery")
	}
}
