package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
)

// TestKillDuringReconcileDeletesNoLiveMember kills a real `chimport run
// --reconcile` process with SIGKILL in the middle of its reconcile, in 20
// trials per store. Before each trial members leave the audience for good
// (deleted, or moved to a new address and so a new id) and others change;
// during the killed run the audience churns with every page, so the scan
// misses live members and only the one-member GETs tell them from the
// gone. Each trial kills at a point drawn at random from the reconcile's
// steps, taking turns: at an id-scan page, at a one-member GET confirming a
// candidate, at the POST of tombstones (which then never reaches the
// target), or at that POST once the target has stored the tombstones (and
// the run never hears so). The request chosen is held until the kill, so
// the kill lands there. Then a run completes, and the test checks that
//   - no kill lost anything: every member changed before the watermark is
//     in the target as it is now;
//   - no live member was deleted: every tombstone is checked as it reaches
//     the target, and no live member's record is a tombstone;
//   - the roster stays consistent with the target: after the completing
//     run the target holds no stale record (a record of a member that
//     left, other than its tombstone), and `status --json` counts exactly
//     the live members whose records the target holds.
//
// Members that changed in the second or two before the completing run
// started lie past its window, for the next run. So once the trials are
// over and the clock has passed the last change, one more run must leave
// the target a strict mirror of the audience (mcsim.Mirror), with as many
// members in the roster as the audience has.
func TestKillDuringReconcileDeletesNoLiveMember(t *testing.T) {
	// A trial takes a second at least, whatever the machine: each killed
	// run needs a window, and windows are whole seconds. So the three stores
	// run side by side, and the environment for DynamoDB is set here,
	// before they do.
	awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		f, tap := newTappedFixture(t, 3000)
		cfgPath := f.runConfig(t, "")
		killReconcileTest(t, f, tap, cfgPath, "newsletter", openFixtureState(t, cfgPath), 11)
	})
	t.Run("dynamodb", func(t *testing.T) {
		t.Parallel()
		f, tap := newTappedFixture(t, 3000)
		cfgPath := f.dynamoConfig(t, "reconkill", "")
		url := "dynamodb://?history_table=reconkill-history&failures_table=reconkill-failures&runs_table=reconkill-runs"
		killReconcileTest(t, f, tap, cfgPath, "a1b2c3d4e5", initStore(t, url), 13)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		f, tap := newTappedFixture(t, 3000)
		url := pgtest.URL(t)
		cfgPath := f.configWithState(t, url, "")
		killReconcileTest(t, f, tap, cfgPath, "newsletter", initStore(t, url), 17)
	})
}

func killReconcileTest(t *testing.T, f *fixture, tap *reconcileTap, cfgPath, connection string, store state.Store, seed uint64) {
	const (
		trials = 20
		listID = "a1b2c3d4e5"
	)
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+f.sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_TEST_RUN_MAIN=1",
		// A binary built with -race sleeps 1 s on exit, in case another
		// goroutine is about to report a race: 60 runs would wait a minute.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	rng := rand.New(rand.NewPCG(seed, seed))

	// The first sync of the connection fills the roster as it delivers.
	sum := runToCompletion(t, env, cfgPath)
	checkRosterMirrors(t, f, env, cfgPath)

	phases := []killPhase{phaseScan, phaseConfirm, phaseLost, phaseStored}
	for trial := range trials {
		waitForWindow(*sum.Watermark)
		gone := leaveAndChange(t, f, rng, trial)
		at := killPoint{phase: phases[trial%len(phases)], n: 1}
		switch at.phase {
		case phaseScan:
			// The scan pages at least this many pages of ids.
			at.n = 1 + rng.IntN(len(f.sim.Members(listID))/1000)
		case phaseConfirm:
			// Each member that left is a candidate to confirm.
			at.n = 1 + rng.IntN(gone)
		}
		reached := tap.arm(at)
		f.sim.SetChurnPerRequest(listID, 5)
		cmd := exec.Command(os.Args[0], "run", "--reconcile", "--config", cfgPath, "--log-format", "json")
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.NewTimer(30 * time.Second)
		select {
		case <-reached:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		case err := <-exited:
			t.Fatalf("trial %d: the run ended before its kill point (%s %d), having made %s: %v\n%.3000s", trial, at.phase, at.n, tap.seen(), err, stderr.String())
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			t.Fatalf("trial %d: the run did not reach its kill point (%s %d) in 30 s", trial, at.phase, at.n)
		}
		deadline.Stop()
		tap.disarm()
		f.sim.SetChurnPerRequest(listID, 0)

		// Whatever the kill interrupted, the watermark keeps its promise
		// and no live member's record was replaced by a tombstone.
		checkWatermarkHonest(t, f, store, connection)
		stale, _ := classifyRecords(t, f)

		sum = runToCompletion(t, env, cfgPath, "--reconcile")
		if !sum.Reconciled {
			t.Fatalf("trial %d: the completing run did not reconcile", trial)
		}
		checkWatermarkHonest(t, f, store, connection)
		checkRosterMirrors(t, f, env, cfgPath)
		t.Logf("trial %d: killed at %s %d; %d stale records before the completing run, which tombstoned %d; %d members",
			trial, at.phase, at.n, stale, sum.Tombstoned, sum.Members)
	}

	// Once the clock lets a run's window end after the last change, one
	// more run must deliver everything, and the target must mirror the
	// audience exactly.
	last := time.Time{}
	for _, m := range f.sim.Members(listID) {
		if m.LastChanged.After(last) {
			last = m.LastChanged
		}
	}
	waitForWindow(last.Truncate(time.Second))
	runToCompletion(t, env, cfgPath)
	checkWatermarkHonest(t, f, store, connection)
	rep := mirrorReport(t, f)
	if !rep.OK() {
		t.Fatalf("the target is not a mirror of the audience: %s", rep)
	}
	if got := statusMembers(t, env, cfgPath); got != int64(rep.Live) {
		t.Fatalf("status --json counts %d members; the audience has %d", got, rep.Live)
	}
}

// waitForWindow waits until a run started then has a window that ends a
// second or more after since (a whole second): a window is made of whole
// seconds and ends one second back at least. A run whose window would be
// empty completes at once, without reconciling, even with --reconcile.
func waitForWindow(since time.Time) {
	if d := time.Until(since.Add(2 * time.Second)); d > 0 {
		<-time.After(d) // waiting for the clock itself
	}
}

// leaveAndChange makes members leave the audience for good and changes
// others, all among members the target holds: 3 are deleted for good, 3
// change address (and so id), 2 are archived and 10 edited. It returns how
// many left: each is a candidate the next reconcile confirms.
func leaveAndChange(t *testing.T, f *fixture, rng *rand.Rand, trial int) int {
	t.Helper()
	const listID = "a1b2c3d4e5"
	records := f.target.Records()
	var held []mcsim.Member
	for _, m := range f.sim.Members(listID) {
		if rec, ok := records[m.ID]; ok && !isTombstoneRecord(rec) {
			held = append(held, m)
		}
	}
	picked := map[int]bool{}
	pick := func() mcsim.Member {
		for {
			if i := rng.IntN(len(held)); !picked[i] {
				picked[i] = true
				return held[i]
			}
		}
	}
	for range 3 {
		must(t, f.sim.Delete(listID, pick().ID))
	}
	for i := range 3 {
		_, err := f.sim.ChangeAddress(listID, pick().ID, fmt.Sprintf("moved.%d.%d@example.org", trial, i))
		must(t, err)
	}
	for range 2 {
		must(t, f.sim.Archive(listID, pick().ID))
	}
	for range 10 {
		must(t, f.sim.Change(listID, pick().ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = fmt.Sprintf("Trial %d", trial) }))
	}
	return 6
}

// runToCompletion runs `chimport run --json` with args in its own process
// and returns the connection's summary, which must say it completed.
func runToCompletion(t *testing.T, env []string, cfgPath string, args ...string) runJSON {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"run", "--json", "--config", cfgPath, "--log-format", "json"}, args...)...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run %s: %v\n%s\n%.3000s", strings.Join(args, " "), err, out, stderr.String())
	}
	var sums []runJSON
	if err := json.Unmarshal(out, &sums); err != nil || len(sums) != 1 || !sums[0].Completed {
		t.Fatalf("run %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return sums[0]
}

// checkRosterMirrors checks the target and the roster after a completed
// run: the target holds no stale record and no tombstone of a live member,
// and the roster counts exactly the live members whose records the target
// holds. (A live member changed after the watermark may be missing from the
// target, or held with old values: the next run delivers it.)
func checkRosterMirrors(t *testing.T, f *fixture, env []string, cfgPath string) {
	t.Helper()
	stale, held := classifyRecords(t, f)
	if stale > 0 {
		t.Fatalf("the target holds %d records of members that left", stale)
	}
	if got := statusMembers(t, env, cfgPath); got != int64(held) {
		t.Fatalf("status --json counts %d members; the target holds the records of %d members", got, held)
	}
}

// classifyRecords sorts the target's records as mcsim.Mirror does, without
// comparing each live member's record (Mirror's cost, which under -race
// is seconds; checkWatermarkHonest compares those that must be current):
// a live member's record, a tombstone, or stale. A tombstone in place of a
// live member's record fails the test at once.
func classifyRecords(t *testing.T, f *fixture) (stale, held int) {
	t.Helper()
	live := map[string]bool{}
	for _, m := range f.sim.Members("a1b2c3d4e5") {
		live[m.ID] = true
	}
	for id, rec := range f.target.Records() {
		switch tomb := isTombstoneRecord(rec); {
		case live[id] && tomb:
			t.Fatalf("the target holds a tombstone for %s, a member of the audience", id)
		case live[id]:
			held++
		case !tomb:
			stale++
		}
	}
	return stale, held
}

// statusMembers is the connection's members as `status --json` prints them.
func statusMembers(t *testing.T, env []string, cfgPath string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "status", "--json", "--config", cfgPath)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	var rows []struct {
		Members *int64 `json:"members"`
	}
	if err := json.Unmarshal(out, &rows); err != nil || len(rows) != 1 || rows[0].Members == nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return *rows[0].Members
}

// mirrorReport compares the target with the audience as the default
// mapping and tombstones make it.
func mirrorReport(t *testing.T, f *fixture) mcsim.MirrorReport {
	t.Helper()
	m, err := mapping.New(mapping.DefaultFields())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := mcsim.Mirror(f.sim, "a1b2c3d4e5", f.target, mcsim.MirrorOptions{
		Record: func(member map[string]any) (map[string]any, error) {
			b, err := m.Append(nil, member)
			if err != nil {
				return nil, err
			}
			var rec map[string]any
			return rec, json.Unmarshal(b, &rec)
		},
		Tombstone: map[string]any{"status": "deleted"},
		IDKey:     "id",
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// isTombstoneRecord reports whether rec is what the default config sends
// for a member that left: its id and status "deleted", nothing else.
func isTombstoneRecord(rec map[string]any) bool {
	_, ok := rec["id"].(string)
	return ok && len(rec) == 2 && rec["status"] == "deleted"
}

// killPhase names a step of a reconcile where a trial kills the run.
type killPhase string

const (
	phaseScan    killPhase = "id-scan page"              // the n-th page of ids, held
	phaseConfirm killPhase = "one-member GET"            // the n-th GET confirming a candidate, held
	phaseLost    killPhase = "POST of tombstones"        // the n-th, held: the target never stores it
	phaseStored  killPhase = "POST of tombstones stored" // the n-th, stored and then held: the run never hears
)

type killPoint struct {
	phase killPhase
	n     int
}

// reconcileTap stands between chimport and the two simulators. It counts
// the requests of a reconcile by phase, holds the one a trial kills at,
// and checks every tombstone as it arrives: none may name a member that
// exists.
type reconcileTap struct {
	t      *testing.T
	sim    *mcsim.Mailchimp
	target *mcsim.Target

	mu      sync.Mutex
	counts  map[killPhase]int
	at      killPoint     // zero: disarmed
	reached chan struct{} // closed when the kill point is reached
}

// newTappedFixture is newFixture with a reconcileTap in front of both
// simulators.
func newTappedFixture(t *testing.T, members int) (*fixture, *reconcileTap) {
	t.Helper()
	tap := &reconcileTap{
		t:      t,
		sim:    mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: "a1b2c3d4e5", Members: members, Seed: 7}),
		target: mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth}),
		counts: map[killPhase]int{},
	}
	simSrv := httptest.NewServer(http.HandlerFunc(tap.serveMailchimp))
	targetSrv := httptest.NewServer(http.HandlerFunc(tap.serveTarget))
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	return &fixture{sim: tap.sim, target: tap.target, baseURL: simSrv.URL + "/3.0", targetURL: targetSrv.URL + "/records"}, tap
}

// arm sets the kill point of a trial and returns the channel closed when
// the run reaches it.
func (p *reconcileTap) arm(at killPoint) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts, p.at, p.reached = map[killPhase]int{}, at, make(chan struct{})
	return p.reached
}

// seen describes the requests counted since the trial was armed.
func (p *reconcileTap) seen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%d id-scan pages, %d one-member GETs, %d POSTs of tombstones",
		p.counts[phaseScan], p.counts[phaseConfirm], p.counts[phaseLost])
}

func (p *reconcileTap) disarm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = killPoint{}
}

// arrive counts one request of phase and reports whether it is the kill
// point, which it then disarms.
func (p *reconcileTap) arrive(phase killPhase) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[phase]++
	if p.at.phase != phase || p.counts[phase] != p.at.n {
		return false
	}
	p.at = killPoint{}
	close(p.reached)
	return true
}

func (p *reconcileTap) serveMailchimp(w http.ResponseWriter, r *http.Request) {
	var phase killPhase
	if r.Method == http.MethodGet {
		parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/3.0/"), "/"), "/")
		switch {
		case len(parts) == 3 && parts[0] == "lists" && parts[2] == "members" && r.URL.Query().Get("fields") == "members.id,total_items":
			phase = phaseScan
		case len(parts) == 4 && parts[0] == "lists" && parts[2] == "members":
			phase = phaseConfirm
		}
	}
	if phase != "" && p.arrive(phase) {
		hold(w, r)
		return
	}
	p.sim.ServeHTTP(w, r)
}

func (p *reconcileTap) serveTarget(w http.ResponseWriter, r *http.Request) {
	var tombstones []string
	if r.Method == http.MethodPost {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		tombstones = p.tombstones(body)
	}
	if len(tombstones) == 0 {
		p.target.ServeHTTP(w, r)
		return
	}
	live := map[string]bool{}
	for _, m := range p.sim.Members("a1b2c3d4e5") {
		live[m.ID] = true
	}
	for _, id := range tombstones {
		if live[id] {
			p.t.Errorf("a tombstone of %s reached the target while it is a member of the audience", id)
		}
	}
	if p.arrive(phaseLost) {
		hold(w, r)
		return
	}
	rec := httptest.NewRecorder()
	p.target.ServeHTTP(rec, r)
	if p.arrive(phaseStored) {
		hold(w, r) // stored, and the answer never reaches the run
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// tombstones returns the ids of the tombstone records in a batch body.
func (p *reconcileTap) tombstones(body []byte) []string {
	if !bytes.Contains(body, []byte(`"deleted"`)) {
		return nil
	}
	var records []map[string]any
	if err := json.Unmarshal(body, &records); err != nil {
		return nil // the target simulator answers a body it cannot read
	}
	var ids []string
	for _, rec := range records {
		if isTombstoneRecord(rec) {
			ids = append(ids, rec["id"].(string))
		}
	}
	return ids
}

// hold keeps a request waiting until its client goes away: the kill point.
func hold(w http.ResponseWriter, r *http.Request) {
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
		http.Error(w, "held for a kill that never came", http.StatusServiceUnavailable)
	}
}
