package engine

// Adversarial tests of the pager's chain proof: tie groups served in an
// unstable order, churn, faults and retries that advance the fake clock.
// The deterministic ones run in every `make test`; the sweeps are soak
// tests (hundreds of random configurations) that run with `make soak`
// (CHIMPORT_SOAK=1) because they are slow.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

type expOptions struct {
	members     int
	seed        int64
	inclusive   bool
	churn       int
	pageSize    int
	overlap     int
	pageConc    int
	limiter     int // per-key slots of the client's limiter; 0 = 10
	faultRate   float64
	faults      []mcsim.Fault
	targetFail  float64
	maxAttempts int
}

// badBeforeWatermark counts members whose last_changed is before the stored
// watermark and which are missing or stale in the target.
func (w *world) badBeforeWatermark(t *testing.T) (bad int, first string) {
	t.Helper()
	st, err := w.store.Connection(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	bad, _, first = w.mismatches(func(m mcsim.Member) bool { return m.LastChanged.Before(st.Watermark) })
	return bad, first
}

func runExperiment(t *testing.T, o expOptions) (Summary, error, int, string) {
	t.Helper()
	w := newWorld(t, worldOptions{members: o.members, seed: o.seed, inclusive: o.inclusive})
	if o.limiter > 0 {
		w.limiter = mailchimp.NewLimiter(o.limiter)
	}
	w.engine.PageSize = o.pageSize
	w.engine.Overlap = o.overlap
	w.engine.PageConcurrency = o.pageConc
	if o.faultRate > 0 {
		w.sim.SetFaultRate(o.faultRate, o.faults...)
	}
	if o.targetFail > 0 {
		w.target.SetFailRate(o.targetFail, 503)
	}
	w.sim.SetChurnPerRequest(testList, o.churn)
	sum, err := w.run(t, context.Background(), false)
	w.sim.SetChurnPerRequest(testList, 0)
	bad, first := w.badBeforeWatermark(t)
	return sum, err, bad, first
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func skipUnlessSoak(t *testing.T) {
	if os.Getenv("CHIMPORT_SOAK") == "" {
		t.Skip("set CHIMPORT_SOAK=1 to run")
	}
}

// TestAdversarialChurnSweep sweeps seeds with small pages so boundaries are many.
func TestAdversarialChurnSweep(t *testing.T) {
	skipUnlessSoak(t)
	seeds := envInt("SEEDS", 20)
	configs := []expOptions{
		{members: 3000, churn: 10, pageSize: 50, overlap: 5},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, limiter: 30, pageConc: 20},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, faultRate: 0.3, faults: []mcsim.Fault{mcsim.FaultRateLimit}},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, faultRate: 0.2, faults: []mcsim.Fault{mcsim.FaultTruncate, mcsim.FaultServerHTML}},
		{members: 3000, churn: 3, pageSize: 100, overlap: 1, pageConc: 4},
		{members: 3000, churn: 20, pageSize: 50, overlap: 10},
	}
	total := 0
	for ci, c := range configs {
		for s := 1; s <= seeds; s++ {
			for _, inc := range []bool{false, true} {
				o := c
				o.seed, o.inclusive = int64(s), inc
				sum, err, bad, first := runExperiment(t, o)
				if testing.Verbose() && os.Getenv("QUIET") == "" {
					t.Logf("config %d seed %d inc %v: completed %v err %v read %d delivered %d requests %d", ci, s, inc, sum.Completed, err, sum.Read, sum.Delivered, sum.MailchimpStats.Requests)
				}
				if bad > 0 {
					total++
					t.Errorf("config %d seed %d inclusive %v: completed %v err %v read %d delivered %d: %d bad; first: %s",
						ci, s, inc, sum.Completed, err, sum.Read, sum.Delivered, bad, first)
				}
			}
		}
	}
	t.Logf("%d failing experiments", total)
}

// TestAdversarialChurnLikeFlake is TestChurnWhilePaging's first run with a
// limiter that lets more than 10 requests through (so the simulator answers
// 429 and retries advance the fake clock), or with injected 429s.
func TestAdversarialChurnLikeFlake(t *testing.T) {
	skipUnlessSoak(t)
	limiter := envInt("LIMITER", 12)
	rate, _ := strconv.ParseFloat(os.Getenv("RATE"), 64)
	members := envInt("MEMBERS", 30000)
	for s := envInt("SEED0", 2); s < envInt("SEED0", 2)+envInt("SEEDS", 1); s++ {
		for _, inc := range []bool{false, true} {
			o := expOptions{members: members, seed: int64(s), inclusive: inc, churn: envInt("CHURN", 10),
				limiter: limiter, pageSize: envInt("PAGE", 0), overlap: envInt("OVERLAP", 0), pageConc: envInt("CONC", 0)}
			if rate > 0 {
				o.faultRate, o.faults = rate, []mcsim.Fault{mcsim.FaultRateLimit}
			}
			sum, err, bad, first := runExperiment(t, o)
			t.Logf("seed %d inc %v: completed %v err %v read %d delivered %d requests %d bad %d", s, inc, sum.Completed, err, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, bad)
			if bad > 0 {
				t.Errorf("seed %d inc %v: %d bad; first: %s", s, inc, bad, first)
			}
		}
	}
}

// TestAdversarialRandomSweep tries random small configurations.
func TestAdversarialRandomSweep(t *testing.T) {
	skipUnlessSoak(t)
	n := envInt("N", 200)
	base := int64(envInt("SEED0", 1))
	fails := 0
	for k := 0; k < n; k++ {
		s := base + int64(k)
		r := rand.New(rand.NewPCG(uint64(s), 99))
		o := expOptions{
			members:   200 + r.IntN(3000),
			seed:      s,
			inclusive: r.IntN(2) == 0,
			churn:     r.IntN(25),
			pageSize:  []int{10, 20, 50, 100, 1000}[r.IntN(5)],
			pageConc:  1 + r.IntN(12),
		}
		o.overlap = 1 + r.IntN(max(1, o.pageSize/4))
		if r.IntN(3) == 0 {
			o.faultRate = 0.05 + 0.2*r.Float64()
			o.faults = []mcsim.Fault{mcsim.FaultRateLimit, mcsim.FaultServerHTML, mcsim.FaultTruncate}
		}
		if r.IntN(3) == 0 {
			o.targetFail = 0.2
		}
		if r.IntN(4) == 0 {
			o.limiter = 11 + r.IntN(10)
		}
		sum, err, bad, first := runExperiment(t, o)
		if testing.Verbose() && os.Getenv("QUIET") == "" {
			t.Logf("%+v: completed %v err %v read %d delivered %d requests %d bad %d", o, sum.Completed, err, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, bad)
		}
		if bad > 0 {
			fails++
			t.Errorf("%+v: completed %v err %v read %d delivered %d: %d bad; first: %s", o, sum.Completed, err, sum.Read, sum.Delivered, bad, first)
		}
	}
	t.Logf("%d of %d failed", fails, n)
}

// TestAdversarialUnstableTieOrderLosesMembers: with no churn at all, a bulk
// change that stamps many members with the same second, and a server whose
// order among equal last_changed values is not the same from one request to
// the next, the overlap check passes (pages do share members) while members
// of a tie group are never served. The simulator always breaks ties by
// insertion order, so the suite cannot see this. A run that fails is fine
// (the watermark stays); a run that completes must not have lost anyone.
func TestAdversarialUnstableTieOrderLosesMembers(t *testing.T) {
	for _, perSecond := range []int{35, 150, 600} {
		t.Run(fmt.Sprintf("%d per second", perSecond), func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 300, seed: 11})
			ctx := context.Background()
			if _, err := w.run(t, ctx, false); err != nil {
				t.Fatal(err)
			}
			// A bulk import: 600 members, perSecond of them in each second.
			for i := range 600 {
				if i%perSecond == 0 {
					w.clk.Advance(time.Second)
				}
				_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("bulk%d@example.com", i), Status: "subscribed",
					MergeFields: map[string]any{"FNAME": "Bulk", "LNAME": strconv.Itoa(i)}})
				must(t, err)
			}
			w.pass()
			srv := httptest.NewServer(&shuffledTies{sim: w.sim})
			t.Cleanup(srv.Close)
			w.mcURL = srv.URL + "/3.0"
			w.engine.PageSize = 100
			w.engine.Overlap = 10
			sum, err := w.run(t, ctx, false)
			bad, first := w.badBeforeWatermark(t)
			t.Logf("second run: completed %v, read %d, delivered %d of 600 changed, %d requests, err %v; %d members before the watermark missing",
				sum.Completed, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, err, bad)
			if bad > 0 {
				t.Errorf("with an unstable order among equal last_changed values, %d members before the watermark are missing; first: %s", bad, first)
			}
		})
	}
}

// badBeforeCheckpoint counts members that a stored checkpoint claims were
// delivered (in its view, last_changed before the view's position) but that
// are missing or stale in the target.
func (w *world) badBeforeCheckpoint(t *testing.T) (bad int, first string) {
	t.Helper()
	st, err := w.store.Connection(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cp := st.Checkpoint
	if cp == nil || !cp.WindowStart.Equal(st.Watermark) {
		return 0, ""
	}
	records := w.target.Records()
	for _, m := range w.sim.Members(testList) {
		view := "default"
		if m.Status == mcsim.StatusArchived {
			view = "archived"
		}
		pos, ok := cp.Views[view]
		if !ok || !m.LastChanged.Before(pos) {
			continue
		}
		if got := records[m.ID]; !holds(got, m) {
			if bad == 0 {
				first = fmt.Sprintf("member %s (%s view, last_changed %s, checkpoint %s): %s", m.ID, view, m.LastChanged, pos, cmp.Diff(want(m), got))
			}
			bad++
		}
	}
	return bad, first
}

// TestAdversarialCheckpointHonestUnderCancel cancels and fails runs at random
// points under churn, with small pages, and checks after each that the
// watermark and every view's checkpoint position tell the truth.
func TestAdversarialCheckpointHonestUnderCancel(t *testing.T) {
	skipUnlessSoak(t)
	for seed := int64(envInt("SEED0", 1)); seed < int64(envInt("SEED0", 1)+envInt("SEEDS", 5)); seed++ {
		w := newWorld(t, worldOptions{members: 4000, seed: seed, inclusive: seed%2 == 0})
		w.engine.PageSize, w.engine.Overlap = 100, 5
		w.sim.SetChurnPerRequest(testList, 4)
		rng := rand.New(rand.NewPCG(uint64(seed), 5))
		for trial := range 25 {
			ctx, cancel := context.WithCancel(context.Background())
			stopAfter := int64(rng.IntN(4000))
			job := w.job(t)
			job.BatchSize = 1 + rng.IntN(300)
			job.Full = trial%7 == 0
			if trial%3 == 1 {
				w.target.SetFailRate(0.3, 503)
			} else {
				w.target.SetFailRate(0, 0)
			}
			job.Progress = func(p Progress) {
				if p.Read >= stopAfter {
					go cancel()
				}
			}
			_, err := w.engine.Run(ctx, job)
			cancel()
			if bad, first := w.badBeforeWatermark(t); bad > 0 {
				t.Fatalf("seed %d trial %d (err %v): %d bad before the watermark; %s", seed, trial, err, bad, first)
			}
			if bad, first := w.badBeforeCheckpoint(t); bad > 0 {
				t.Fatalf("seed %d trial %d (err %v): %d bad before the checkpoint; %s", seed, trial, err, bad, first)
			}
			w.pass()
		}
	}
}

// checkingStore checks every checkpoint as it is saved: each view's
// position must only claim members that the target already holds as they
// are now.
type checkingStore struct {
	state.Store
	w   *world
	t   *testing.T
	mu  sync.Mutex
	bad []string
}

func (s *checkingStore) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	records := s.w.target.Records()
	for _, m := range s.w.sim.Members(testList) {
		view := "default"
		if m.Status == mcsim.StatusArchived {
			view = "archived"
		}
		pos, ok := cp.Views[view]
		if !ok || !m.LastChanged.Before(pos) || !m.LastChanged.After(cp.WindowStart.Add(-time.Second)) {
			continue
		}
		if !holds(records[m.ID], m) {
			s.mu.Lock()
			s.bad = append(s.bad, fmt.Sprintf("checkpoint %s view %s claims member %s (last_changed %s), which the target lacks",
				pos.Format(time.RFC3339), view, m.ID, m.LastChanged.Format(time.RFC3339)))
			s.mu.Unlock()
		}
	}
	return s.Store.SaveCheckpoint(ctx, name, cp)
}

// TestAdversarialTieGroupCheckpointClaims: a tie group bigger than a page at
// second s, with members changed at s-1 and s+1 that sit earlier in
// Mailchimp's natural order (old members keep their place), inclusive
// since/before, and a server whose order among ties is not stable. Every
// checkpoint saved along the way must be true, and so must the watermark.
func TestAdversarialTieGroupCheckpointClaims(t *testing.T) {
	w := newWorld(t, worldOptions{members: 400, seed: 13, inclusive: true})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	old := memberIDs(w)
	w.pass()
	for _, id := range old[:50] { // second s-1
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Before" }))
	}
	w.clk.Advance(time.Second) // second s: a bulk import
	for i := range 600 {
		_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("bulk%d@example.com", i), Status: "subscribed",
			MergeFields: map[string]any{"FNAME": "Bulk", "LNAME": strconv.Itoa(i)}})
		must(t, err)
	}
	w.clk.Advance(time.Second) // second s+1
	for _, id := range old[50:250] {
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "After" }))
	}
	w.pass()
	srv := httptest.NewServer(&shuffledTies{sim: w.sim})
	t.Cleanup(srv.Close)
	w.mcURL = srv.URL + "/3.0"
	w.engine.PageSize, w.engine.Overlap = 100, 10
	cs := &checkingStore{Store: w.store, w: w, t: t}
	w.engine.Store = cs
	job := w.job(t)
	job.BatchSize = 7
	sum, err := w.engine.Run(ctx, job)
	t.Logf("run: completed %v, read %d, delivered %d, %d requests, err %v", sum.Completed, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, err)
	cs.mu.Lock()
	for i, b := range cs.bad {
		if i < 3 {
			t.Error(b)
		}
	}
	if len(cs.bad) > 0 {
		t.Errorf("%d false claims in saved checkpoints", len(cs.bad))
	}
	cs.mu.Unlock()
	if bad, first := w.badBeforeWatermark(t); bad > 0 {
		t.Errorf("%d members before the watermark missing; first: %s", bad, first)
	}
}

// hookProxy runs hook before serving the n-th members request made without
// sort_field (the natural order coverTieGroup uses).
type hookProxy struct {
	next    http.Handler
	n       int64
	hook    func()
	natural atomic.Int64
}

func (p *hookProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/members") && r.URL.Query().Get("sort_field") == "" {
		if p.natural.Add(1) == p.n {
			p.hook()
		}
	}
	p.next.ServeHTTP(w, r)
}

// TestAdversarialTieGroupRestartSkipsGroup: inside the natural-order pass over a
// tie group at second s (inclusive since/before, so the query also returns
// members stamped s-1 and s+1), members leave between two pages and the
// chain breaks. The group pager restarts at its lastLC, which is the
// last_changed of the last member of its last page in natural order, s+1:
// the restarted pass over [s+1, s+1) is empty and "completes", the outer
// pass goes on at s+1, and the members of second s that were not yet read
// are never delivered, while the watermark moves past them.
func TestAdversarialTieGroupRestartSkipsGroup(t *testing.T) {
	w := newWorld(t, worldOptions{members: 400, seed: 13, inclusive: true})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	old := memberIDs(w) // natural order
	w.pass()
	for _, id := range old[:50] { // second s-1
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Before" }))
	}
	w.clk.Advance(time.Second) // second s: a bulk import bigger than a page
	for i := range 600 {
		_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("bulk%d@example.com", i), Status: "subscribed",
			MergeFields: map[string]any{"FNAME": "Bulk", "LNAME": strconv.Itoa(i)}})
		must(t, err)
	}
	w.clk.Advance(time.Second) // second s+1
	for _, id := range old[50:250] {
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "After" }))
	}
	w.pass()
	// Before the second natural-order request, the first 100 members of
	// that order change again (they leave the window for the future).
	proxy := &hookProxy{next: &shuffledTies{sim: w.sim}, n: 2, hook: func() {
		for _, id := range old[:100] {
			_ = w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Again" })
		}
	}}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	w.mcURL = srv.URL + "/3.0"
	w.engine.PageSize, w.engine.Overlap, w.engine.PageConcurrency = 100, 10, 1
	sum, err := w.run(t, ctx, false)
	t.Logf("run: completed %v, read %d, delivered %d, %d requests (%d natural order), err %v",
		sum.Completed, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, proxy.natural.Load(), err)
	if bad, first := w.badBeforeWatermark(t); bad > 0 {
		t.Errorf("%d members before the watermark missing; first: %s", bad, first)
	}
}

// TestAdversarialTieGroupDedupeSkipsNextSecond: with inclusive since/before, the
// tie group's natural-order query for second s also returns members stamped
// s+1. The group pager filters them out (its window is [s, s+1)) but puts
// them in its accepted page's ids, which become the outer pager's dedupe
// set; the pass that restarts at s+1 then skips them as "already handed
// over". They were never delivered, and the watermark moves past them.
// No shuffling needed: the simulator's stable order is enough.
func TestAdversarialTieGroupDedupeSkipsNextSecond(t *testing.T) {
	w := newWorld(t, worldOptions{members: 300, seed: 14, inclusive: true})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	w.pass()
	for _, id := range memberIDs(w)[:80] { // second s-1: the head of page 0
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Early" }))
	}
	add := func(prefix string, n int) {
		for i := range n {
			_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("%s%d@example.com", prefix, i), Status: "subscribed",
				MergeFields: map[string]any{"FNAME": prefix, "LNAME": strconv.Itoa(i)}})
			must(t, err)
		}
	}
	w.clk.Advance(time.Second)
	add("tie", 30) // second s: straddles the boundary between pages 0 and 1
	w.clk.Advance(time.Second)
	add("next", 20) // second s+1
	w.pass()
	w.engine.PageSize, w.engine.Overlap = 100, 10
	sum, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	bad, first := w.badBeforeWatermark(t)
	t.Logf("run: read %d, delivered %d of 130 changed, %d requests; %d missing", sum.Read, sum.Delivered, sum.MailchimpStats.Requests, bad)
	if bad > 0 {
		t.Errorf("%d members before the watermark missing; first: %s", bad, first)
	}
}

// TestAdversarialTieChurnSweep: incremental runs over windows full of tie
// groups, served with an unstable order among ties, while members churn;
// both inclusivities, small pages. Every run must leave the watermark and
// every checkpoint it saves telling the truth.
func TestAdversarialTieChurnSweep(t *testing.T) {
	skipUnlessSoak(t)
	for seed := int64(envInt("SEED0", 1)); seed < int64(envInt("SEED0", 1)+envInt("SEEDS", 10)); seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 21))
		w := newWorld(t, worldOptions{members: 250, seed: seed, inclusive: seed%2 == 0})
		ctx := context.Background()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(&shuffledTies{sim: w.sim})
		t.Cleanup(srv.Close)
		w.mcURL = srv.URL + "/3.0"
		cs := &checkingStore{Store: w.store, w: w, t: t}
		w.engine.Store = cs
		for round := range 6 {
			w.pass()
			for range 1 + r.IntN(4) { // a few busy seconds
				ids := memberIDs(w)
				n := 5 + r.IntN(120)
				for _, i := range r.Perm(len(ids))[:min(n, len(ids))] {
					_ = w.sim.Change(testList, ids[i], func(m *mcsim.Member) { m.MergeFields["LNAME"] = fmt.Sprintf("r%d", r.IntN(1000)) })
				}
				for i := range r.IntN(40) {
					_, _ = w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("s%d-r%d-%d@example.com", seed, round, i), Status: "subscribed"})
				}
				w.clk.Advance(time.Second)
			}
			w.pass()
			w.engine.PageSize = []int{20, 50, 100}[r.IntN(3)]
			w.engine.Overlap = 2 + r.IntN(8)
			w.engine.PageConcurrency = 1 + r.IntN(6)
			w.sim.SetChurnPerRequest(testList, r.IntN(6))
			sum, err := w.run(t, ctx, false)
			w.sim.SetChurnPerRequest(testList, 0)
			if bad, first := w.badBeforeWatermark(t); bad > 0 {
				t.Fatalf("seed %d round %d (completed %v, err %v): %d bad before the watermark; %s", seed, round, sum.Completed, err, bad, first)
			}
		}
		cs.mu.Lock()
		if len(cs.bad) > 0 {
			t.Errorf("seed %d: %d false checkpoint claims; first: %s", seed, len(cs.bad), cs.bad[0])
		}
		cs.mu.Unlock()
	}
}

// TestAdversarialBusySecondsCost: an incremental window of 20,000 changes at
// PER_SECOND changes a second (a bulk update), default page size. Every
// page boundary then falls inside a busy second, whose members Mailchimp
// may order any way: the run must stay within the requests that the page
// and tie-group arithmetic allows (see busySecondsBound), and lose nothing.
// It runs in every `make test` (a few seconds) with 30 changes a second;
// `make soak` runs it too, and PER_SECOND and INCLUSIVE vary it by hand.
func TestAdversarialBusySecondsCost(t *testing.T) {
	per := envInt("PER_SECOND", 30)
	w := newWorld(t, worldOptions{members: 20000, seed: 15, inclusive: os.Getenv("INCLUSIVE") != ""})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	w.pass()
	windowStart := w.clk.Now().Truncate(time.Second)
	changed := 0
	for i, id := range memberIDs(w) {
		if i%per == 0 {
			w.clk.Advance(time.Second)
		}
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["LNAME"] = "Bulk" }))
		changed++
	}
	w.pass()
	// The window may also hold the members stamped in its lookback second,
	// the one before the watermark: count them in, as the query does.
	inWindow := 0
	for _, m := range w.sim.Members(testList) {
		if m.Status != mcsim.StatusArchived && !m.LastChanged.Before(windowStart.Add(-time.Second)) {
			inWindow++
		}
	}
	start := time.Now()
	sum, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	e := w.engine.withDefaults()
	bound := busySecondsBound(inWindow, per, e.PageSize, e.Overlap)
	t.Logf("%d changes, %d per second: read %d, delivered %d, %d requests (bound %d), %v",
		changed, per, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, bound, time.Since(start))
	if sum.MailchimpStats.Requests > int64(bound) {
		t.Errorf("%d requests for %d members in busy seconds of %d; want at most %d", sum.MailchimpStats.Requests, inWindow, per, bound)
	}
	if bad, first := w.badBeforeWatermark(t); bad > 0 {
		t.Errorf("%d bad; %s", bad, first)
	}
}

// busySecondsBound is the most requests an incremental run may make for a
// default view window of n members changed perSecond a second, when nothing
// changes while it pages. The pass over the window asks for pages at
// offsets 0, stride, 2 x stride, ... while the offset is below n, and the
// last one is short, which ends it: ceil(n / stride) requests. Each of the
// boundaries between consecutive pages may fall inside a busy second, a tie
// group, which is then paged on its own in natural order, as a pass over
// perSecond members: ceil(perSecond / stride) requests. The archived view
// holds no change and costs its one request.
func busySecondsBound(n, perSecond, pageSize, overlap int) int {
	stride := pageSize - overlap
	ceil := func(a, b int) int { return (a + b - 1) / b }
	pages := ceil(n, stride)
	// ... plus the two counts (default and archived view) a run takes to
	// learn whether members left (mirror.go).
	return pages + (pages-1)*ceil(perSecond, stride) + 1 + 2
}
