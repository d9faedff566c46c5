package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

// serveProcess is a `chimport serve` process started by a test.
type serveProcess struct {
	cmd    *exec.Cmd
	addr   string // host:port of its HTTP endpoints
	exited chan error
	// out is everything it printed, stdout and stderr, so a test can
	// look for secrets in it.
	out syncBuffer
}

// startWorker runs `chimport serve` as a real process (this test binary in
// main mode), waits until it listens, and kills it when the test ends.
// terminate stops the worker with SIGTERM, as a deployment does: it must
// exit 0 within 10 s.
func (p *serveProcess) terminate(t *testing.T) {
	t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup, which would otherwise wait out its timeout
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM, want 0", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("serve took %s to stop, want under 10s", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
}

func startWorker(t *testing.T, cfgPath string, env []string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--config", cfgPath, "--listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(env, "CHIMPORT_TEST_RUN_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	w := &serveProcess{cmd: cmd, exited: make(chan error, 1)}
	cmd.Stderr = &w.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		re := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
		found := false
		for sc.Scan() {
			fmt.Fprintln(&w.out, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				addrs <- m[1]
			}
		}
		w.exited <- cmd.Wait()
	}()
	select {
	case w.addr = <-addrs:
	case err := <-w.exited:
		t.Fatalf("serve exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start listening within 30s")
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
		}
	})
	return w
}

func (w *serveProcess) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + w.addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// lagChecks is how many lag checks the process has finished, from its
// /metrics.
func (w *serveProcess) lagChecks(t *testing.T) int {
	t.Helper()
	_, body := w.get(t, "/metrics")
	m := regexp.MustCompile(`(?m)^chimport_lag_checks_total (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no chimport_lag_checks_total:\n%.2000s", body)
	}
	n, err := strconv.Atoi(m[1])
	must(t, err)
	return n
}

// servedLists is a simulator with several audiences, each synced by its
// own connection to its own target, with the state in one store.
type servedLists struct {
	sim     *mcsim.Mailchimp
	targets map[string]*mcsim.Target
	lists   []string // the list ids; connection conn-ID syncs list ID
	cfg     string   // the config, reaching the simulator directly

	stateURL, every, extra string
	baseURL                string            // the simulator's
	targetURLs             map[string]string // by list id
}

// newThreeLists is three lists every `every` with SQLite state.
func newThreeLists(t *testing.T, every, extra string) *servedLists {
	t.Helper()
	return newLists(t, "sqlite://"+filepath.Join(t.TempDir(), "state.db"), 3, every, extra)
}

// newLists is n lists of 1,500 members (list000001, list000002, ...), each
// with a connection every `every` (conn-list000001, ...), their state at
// stateURL; extra is added to the config's top level.
func newLists(t *testing.T, stateURL string, n int, every, extra string) *servedLists {
	t.Helper()
	f := newFixture(t, 10) // its list is not used
	x := &servedLists{sim: f.sim, targets: map[string]*mcsim.Target{}, targetURLs: map[string]string{},
		stateURL: stateURL, every: every, extra: extra, baseURL: f.baseURL}
	for i := range n {
		id := fmt.Sprintf("list%06d", i+1)
		f.sim.AddList(id, 1500, int64(20+i))
		tgt := mcsim.NewTarget(mcsim.TargetOptions{})
		srv := httptest.NewServer(tgt)
		t.Cleanup(srv.Close)
		x.lists = append(x.lists, id)
		x.targets[id] = tgt
		x.targetURLs[id] = srv.URL + "/records"
	}
	x.cfg = x.configVia(t, x.baseURL)
	return x
}

// configVia is the config with Mailchimp at baseURL: the simulator's, or
// something standing in front of it.
func (x *servedLists) configVia(t *testing.T, baseURL string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state: %s\n%s\nconnections:\n", x.stateURL, x.extra)
	for _, id := range x.lists {
		fmt.Fprintf(&b, "  - name: conn-%s\n    every: %s\n    mailchimp: {api_key: \"${MAILCHIMP_API_KEY}\", list_id: %s, base_url: %q, settle: 0s}\n    target: {url: %q}\n",
			id, x.every, id, baseURL, x.targetURLs[id])
	}
	return writeFile(t, "chimport.yaml", b.String())
}

// inSync reports whether every target holds every member of its list as
// Mailchimp has it now (email, status and first name).
func (x *servedLists) inSync() bool {
	for _, id := range x.lists {
		records := x.targets[id].Records()
		for _, m := range x.sim.Members(id) {
			r, ok := records[m.ID]
			if !ok || r["email"] != m.EmailAddress || r["status"] != m.Status || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) {
				return false
			}
		}
	}
	return true
}

func (x *servedLists) change(t *testing.T, round int) {
	t.Helper()
	for _, id := range x.lists {
		for _, m := range x.sim.Members(id)[:5] {
			must(t, x.sim.Change(id, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = fmt.Sprintf("Round %d", round) }))
		}
	}
}

// checkWatermarksHonest: every connection completed a run, and every
// member changed before its watermark is in its target as it is now.
func (x *servedLists) checkWatermarksHonest(t *testing.T, store state.Store) {
	t.Helper()
	for _, id := range x.lists {
		st, err := store.Connection(context.Background(), "conn-"+id)
		must(t, err)
		if st.Watermark.IsZero() {
			t.Errorf("conn-%s never completed a run", id)
		}
		records := x.targets[id].Records()
		for _, m := range x.sim.Members(id) {
			if !m.LastChanged.Before(st.Watermark) {
				continue
			}
			if r, ok := records[m.ID]; !ok || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) || r["status"] != m.Status {
				t.Fatalf("conn-%s: member %s changed before the watermark %s is missing or stale in the target", id, m.ID, st.Watermark)
			}
		}
	}
}

// TestTwoWorkersShareConnections: two serve processes on one SQLite file
// keep three connections (every 3s) in sync; after one is killed with
// SIGKILL, the other takes its connections over once the lease expires;
// SIGTERM stops the survivor with exit 0 within 10s.
func TestTwoWorkersShareConnections(t *testing.T) {
	x := newThreeLists(t, "3s", "")
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+x.sim.APIKey())
	a := startWorker(t, x.cfg, env, "--lease-ttl", "3s", "--lag-check", "500ms", "--worker-id", "worker-a")
	b := startWorker(t, x.cfg, env, "--lease-ttl", "3s", "--lag-check", "500ms", "--worker-id", "worker-b")

	waitUntil(t, "the first syncs", 60*time.Second, x.inSync)
	x.change(t, 1)
	waitUntil(t, "round 1 to arrive", 60*time.Second, x.inSync)

	if code, body := a.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	// Every worker reports every connection's lag, whoever ran it.
	waitUntil(t, "the lag gauge on both workers", 10*time.Second, func() bool {
		_, fromA := a.get(t, "/metrics")
		_, fromB := b.get(t, "/metrics")
		const gauge = `chimport_connection_lag_seconds{connection="conn-list000001"}`
		return strings.Contains(fromA, gauge) && strings.Contains(fromB, gauge)
	})
	if code, body := a.get(t, "/"); code != 200 || !strings.Contains(body, "conn-list000003") {
		t.Errorf("status page: %d\n%.500s", code, body)
	}

	// Worker A dies without a word; B carries on alone.
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	a.exited <- <-a.exited // wait, and leave the news for the cleanup
	x.change(t, 2)
	waitUntil(t, "round 2 after worker A was killed", 60*time.Second, x.inSync)
	x.change(t, 3)
	waitUntil(t, "round 3", 60*time.Second, x.inSync)

	b.terminate(t)

	// However the workers stopped, every watermark keeps its promise.
	x.checkWatermarksHonest(t, openFixtureState(t, x.cfg))
}

// webhookRecorder collects the alerts a webhook receives.
type webhookRecorder struct {
	mu     sync.Mutex
	alerts []map[string]any
	at     []time.Time
}

func (r *webhookRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var a map[string]any
	if err := json.NewDecoder(req.Body).Decode(&a); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	r.mu.Lock()
	r.alerts = append(r.alerts, a)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
}

func (r *webhookRecorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var k []string
	for _, a := range r.alerts {
		k = append(k, fmt.Sprint(a["kind"]))
	}
	return k
}

// TestLagAlertsOnceAndRecovers: with Mailchimp failing for one connection
// and two workers running, no alert comes before lag_threshold, exactly
// one comes after it, and exactly one recovery notice follows once
// Mailchimp is back.
func TestLagAlertsOnceAndRecovers(t *testing.T) {
	hook := &webhookRecorder{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	// Runs every second keep a healthy connection's lag near 2 s, far
	// below the threshold even on a loaded machine.
	const threshold = 6 * time.Second
	x := newThreeLists(t, "1s", fmt.Sprintf("alerts:\n  lag_threshold: %s\n  webhook_url: %s/hook", threshold, hookSrv.URL))
	x.sim.SetFaultRate(1, mcsim.FaultServerHTML) // every Mailchimp request fails
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+x.sim.APIKey())
	began := time.Now()
	a := startWorker(t, x.cfg, env, "--lease-ttl", "3s", "--lag-check", "200ms", "--worker-id", "worker-a")
	b := startWorker(t, x.cfg, env, "--lease-ttl", "3s", "--lag-check", "200ms", "--worker-id", "worker-b")

	waitUntil(t, "lag alerts", 30*time.Second, func() bool { return len(hook.kinds()) >= 3 })
	hook.mu.Lock()
	for i, a := range hook.alerts {
		if a["kind"] != "lag" {
			t.Errorf("alert %d is %v, want lag", i, a["kind"])
		}
		if hook.at[i].Sub(began) < threshold {
			t.Errorf("alert %d came %s after the workers started, before the %s threshold", i, hook.at[i].Sub(began), threshold)
		}
	}
	hook.mu.Unlock()

	x.sim.SetFaultRate(0)
	waitUntil(t, "recovery notices", 60*time.Second, func() bool { return len(hook.kinds()) >= 6 })
	waitUntil(t, "the connections to sync", 30*time.Second, x.inSync)
	// Let both workers check lag ten more times: nothing more may come.
	// Counting their checks, rather than waiting a while, holds however
	// slowly a loaded machine runs them.
	before := []int{a.lagChecks(t), b.lagChecks(t)}
	waitUntil(t, "ten more lag checks on each worker", 30*time.Second, func() bool {
		return a.lagChecks(t) >= before[0]+10 && b.lagChecks(t) >= before[1]+10
	})
	counts := map[string]int{}
	for _, k := range hook.kinds() {
		counts[k]++
	}
	if counts["lag"] != 3 || counts["recovered"] != 3 || len(counts) != 2 {
		t.Errorf("alerts by kind = %v, want exactly one lag alert and one recovery per connection (3 each)", counts)
		hook.mu.Lock()
		for i, a := range hook.alerts {
			t.Logf("alert %d at +%s: %v %v", i, hook.at[i].Sub(began).Round(time.Millisecond), a["kind"], a["connection"])
		}
		hook.mu.Unlock()
	}
}
