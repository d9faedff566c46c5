package engine

// Unit tests of the paging proof: the engine reads members from the
// simulator's in-process source and applies batches to the target
// simulator's in-process door, with the memory store, so no HTTP is in
// between. The source answers from the same list model as the HTTP
// simulator (churn per request, since/before inclusivity, unstable tie
// order, faults), so what these tests prove holds end to end too; the
// end-to-end tests in engine_test.go run the same ideas through the real
// clients and stores.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

// checkPolite fails the test if the engine ever had more requests in flight
// than Mailchimp allows: in process there is no client limiter, so only the
// engine's own request slots hold it back.
func (w *world) checkPolite(t *testing.T) {
	t.Helper()
	if st := w.sim.Stats(); st.MaxInFlight > w.engine.withDefaults().PageConcurrency || st.LimitRejected > 0 {
		t.Errorf("peak %d requests in flight, %d refused by the limit; want at most %d and none",
			st.MaxInFlight, st.LimitRejected, w.engine.withDefaults().PageConcurrency)
	}
}

func bothInclusivities(t *testing.T, test func(t *testing.T, inclusive bool)) {
	for _, inclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("inclusive=%v", inclusive), func(t *testing.T) { test(t, inclusive) })
	}
}

// TestPagingChangesAndNoChange: a first sync delivers every member once; an
// incremental run delivers exactly what changed (edits, an unsubscribe, an
// archival, a signup; a member deleted for good has nothing to deliver);
// a run with nothing changed costs one request a view and no batch.
func TestPagingChangesAndNoChange(t *testing.T) {
	bothInclusivities(t, func(t *testing.T, inclusive bool) {
		w := newWorld(t, worldOptions{members: 2500, seed: 21, inclusive: inclusive, inProcess: true})
		ctx := context.Background()
		first, err := w.run(t, ctx, false)
		all := len(w.sim.Members(testList))
		if err != nil || !first.Completed || first.Delivered != int64(all) || first.Result != state.ResultOK {
			t.Fatalf("first run: %+v, %v; want every one of %d members delivered", first, err, all)
		}
		if got := w.target.Stats().RecordsReceived; got != all {
			t.Errorf("target received %d records for %d members; the page overlap must not be delivered twice", got, all)
		}
		w.checkInSync(t)
		w.checkWatermarkHonest(t)

		ids := memberIDs(w)
		w.pass()
		must(t, w.sim.Change(testList, ids[0], func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Renée" }))
		must(t, w.sim.Unsubscribe(testList, ids[1]))
		must(t, w.sim.Archive(testList, ids[2]))
		must(t, w.sim.Delete(testList, ids[3]))
		_, err = w.sim.Add(testList, mcsim.Member{EmailAddress: "new.person@example.com", MergeFields: map[string]any{"FNAME": "New"}})
		must(t, err)
		w.pass()
		second, err := w.run(t, ctx, false)
		if err != nil || second.Delivered != 4 {
			t.Fatalf("second run delivered %d, err %v; want exactly the 4 changed members still in the audience", second.Delivered, err)
		}
		w.checkInSync(t)
		w.checkWatermarkHonest(t)

		w.pass()
		w.sim.ResetStats()
		w.target.ResetStats()
		third, err := w.run(t, ctx, false)
		if err != nil || !third.WindowEnd.After(second.WindowEnd) {
			t.Fatalf("no-change run: window end %s -> %s, err %v", second.WindowEnd, third.WindowEnd, err)
		}
		if third.MailchimpStats.Requests != 4 || w.target.Stats().Requests != 0 {
			t.Errorf("no-change run: %d Mailchimp requests, %d batches; want 4 (the window and a count, a view) and none", third.MailchimpStats.Requests, w.target.Stats().Requests)
		}
		w.checkPolite(t)
	})
}

// TestPagingUnstableTieOrder: bulk imports stamp thousands of members with
// one second, and every request orders ties anew. Overlapping pages alone
// would miss members of a group that straddles a page boundary; paging the
// group on its own must not. Small pages make boundaries many.
func TestPagingUnstableTieOrder(t *testing.T) {
	bothInclusivities(t, func(t *testing.T, inclusive bool) {
		w := newWorld(t, worldOptions{members: 300, seed: 22, inclusive: inclusive, inProcess: true})
		ctx := context.Background()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		for i := range 900 {
			if i%60 == 0 {
				w.clk.Advance(time.Second)
			}
			addMember(t, w, "spread", i)
			if i == 300 || i == 600 {
				for j := range 700 { // one second, seven pages' worth
					addMember(t, w, "bulk"+strconv.Itoa(i)+"-", j)
				}
			}
		}
		w.pass()
		w.sim.SetUnstableTieOrder(true)
		w.engine.PageSize, w.engine.Overlap = 100, 10
		cs := &checkingStore{Store: w.store, w: w, t: t}
		w.engine.Store = cs
		sum, err := w.run(t, ctx, false)
		if err != nil || !sum.Completed {
			t.Fatalf("run: completed %v, err %v", sum.Completed, err)
		}
		w.checkInSync(t)
		w.checkWatermarkHonest(t)
		cs.report(t)
		w.checkPolite(t)
	})
}

func addMember(t *testing.T, w *world, prefix string, i int) {
	t.Helper()
	_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("%s%d@example.com", prefix, i),
		MergeFields: map[string]any{"FNAME": prefix, "LNAME": strconv.Itoa(i)}})
	must(t, err)
}

// report fails the test for every false claim a saved checkpoint made.
func (s *checkingStore) report(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.bad {
		if i < 3 {
			t.Error(b)
		}
	}
	if len(s.bad) > 0 {
		t.Errorf("%d false claims in saved checkpoints", len(s.bad))
	}
}

// TestPagingChurnWhileScanning: members change, unsubscribe, are archived,
// sign up and are deleted for good while the window is paged (before every
// request), with small pages, with ties stable or not. The run that pages
// under churn must leave a true watermark and true checkpoints, whether it
// completes or gives up; a quiet run afterwards puts the target in step.
func TestPagingChurnWhileScanning(t *testing.T) {
	for _, unstable := range []bool{false, true} {
		for seed := int64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("unstable=%v/seed=%d", unstable, seed), func(t *testing.T) {
				bothInclusivities(t, func(t *testing.T, inclusive bool) {
					testPagingChurn(t, seed, inclusive, unstable)
				})
			})
		}
	}
}

func testPagingChurn(t *testing.T, seed int64, inclusive, unstable bool) {
	w := newWorld(t, worldOptions{members: 1500, seed: seed, inclusive: inclusive, inProcess: true})
	ctx := context.Background()
	w.sim.SetUnstableTieOrder(unstable)
	w.engine.PageSize, w.engine.Overlap = 50, 5
	cs := &checkingStore{Store: w.store, w: w, t: t}
	w.engine.Store = cs
	w.sim.SetChurnPerRequest(testList, 10)
	sum, err := w.run(t, ctx, false)
	w.checkWatermarkHonest(t)
	t.Logf("under churn: completed %v, read %d, delivered %d, %d requests, err %v", sum.Completed, sum.Read, sum.Delivered, sum.MailchimpStats.Requests, err)
	w.sim.SetChurnPerRequest(testList, 0)
	w.pass()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatalf("quiet run: %v", err)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)
	cs.report(t)
	w.checkPolite(t)
}

// TestPagingFaults: a page that cannot be read fails the run with the page
// named in the failures log, the watermark where it was and a true
// checkpoint; the next run repairs the gap. Each kind of fault, at a page
// part-way through a first sync.
func TestPagingFaults(t *testing.T) {
	for _, fault := range []mcsim.Fault{mcsim.FaultServerHTML, mcsim.FaultRateLimit, mcsim.FaultForbiddenNoBody, mcsim.FaultDrop, mcsim.FaultTruncate} {
		t.Run(fault.String(), func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 3000, seed: 23, inProcess: true})
			ctx := context.Background()
			w.engine.PageSize, w.engine.Overlap, w.engine.PageConcurrency = 100, 5, 3
			cs := &checkingStore{Store: w.store, w: w, t: t}
			w.engine.Store = cs
			faults := make([]mcsim.Fault, 12) // FaultNone: the first 12 go through
			w.sim.FailNext(append(faults, fault)...)
			sum, err := w.run(t, ctx, false)
			var pe *pageError
			if !errors.As(err, &pe) || sum.Completed || sum.Result != state.ResultFailed {
				t.Fatalf("run: completed %v, result %q, err %v; want a failed run naming the page", sum.Completed, sum.Result, err)
			}
			failures, err := w.store.Failures(ctx, "test")
			if err != nil || len(failures) == 0 || failures[0].View != pe.view || failures[0].Offset != pe.offset {
				t.Errorf("failures log = %+v, %v; want the page %s@%d", failures, err, pe.view, pe.offset)
			}
			w.checkWatermarkHonest(t)
			if bad, first := w.badBeforeCheckpoint(t); bad > 0 {
				t.Errorf("%d members before the checkpoint missing; first: %s", bad, first)
			}
			w.pass()
			again, err := w.run(t, ctx, false)
			if err != nil || !again.Completed || !again.Resumed {
				t.Fatalf("next run: completed %v, resumed %v, err %v", again.Completed, again.Resumed, err)
			}
			w.checkInSync(t)
			cs.report(t)
		})
	}
}

// TestPagingRandomFaultsConverge: one Mailchimp request and one batch in
// twenty fail while members churn, in both inclusivities; runs that fail
// keep their promises, and within a few runs one completes.
func TestPagingRandomFaultsConverge(t *testing.T) {
	bothInclusivities(t, func(t *testing.T, inclusive bool) {
		w := newWorld(t, worldOptions{members: 2000, seed: 24, inclusive: inclusive, inProcess: true})
		ctx := context.Background()
		w.engine.PageSize, w.engine.Overlap = 200, 10
		w.sim.SetFaultRate(0.05)
		w.target.SetFailRate(0.05, 503)
		w.sim.SetChurnPerRequest(testList, 3)
		completed := false
		for i := 0; i < 15 && !completed; i++ {
			sum, err := w.run(t, ctx, false)
			w.checkWatermarkHonest(t)
			completed = err == nil && sum.Completed
			w.pass()
		}
		if !completed {
			t.Fatal("no run completed within 15 runs")
		}
		w.sim.SetFaultRate(0)
		w.target.SetFailRate(0, 0)
		w.sim.SetChurnPerRequest(testList, 0)
		w.pass()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatalf("final run: %v", err)
		}
		w.checkInSync(t)
	})
}

// gatedSource holds every members call until the test lets it through, so
// a test sees what the engine asks for before any answer comes back.
type gatedSource struct {
	MemberSource
	gate chan struct{} // a receive lets one call through; closed: all

	mu          sync.Mutex
	calls       int // calls made
	inFlight    int // calls not yet answered
	maxInFlight int
}

func newGatedSource(src MemberSource) *gatedSource {
	return &gatedSource{MemberSource: src, gate: make(chan struct{})}
}

func (g *gatedSource) Members(ctx context.Context, listID string, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error) {
	g.mu.Lock()
	g.calls++
	g.inFlight++
	g.maxInFlight = max(g.maxInFlight, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.MemberSource.Members(ctx, listID, q)
}

func (g *gatedSource) counts() (calls, inFlight, maxInFlight int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, g.inFlight, g.maxInFlight
}

// TestPagingFirstRoundAndSharedSlots checks, in a synctest bubble where
// "every goroutine is blocked" is observable, what the engine asks for
// before Mailchimp answers anything, and that every view's pages share the
// run's request slots:
//   - a first sync sends one request a view and waits: a wrong key costs
//     at most 2 requests;
//   - a full re-sync of a connection whose key has worked before asks for
//     a round of pages at once, the default view's and the archived view's
//     together never more than PageConcurrency;
//   - let through one answer at a time, the run never has more in flight.
func TestPagingFirstRoundAndSharedSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 12 pages of the default view and one of the archived view: more
		// than the 10 slots want to go at once.
		w := newWorld(t, worldOptions{members: 12000, seed: 25, inProcess: true})
		const slots = 10
		firstRound := func(full bool, wantFirst int) {
			t.Helper()
			job := w.job(t)
			job.Full = full
			gs := newGatedSource(job.Mailchimp)
			job.Mailchimp = gs
			done := make(chan error, 1)
			go func() { _, err := w.engine.Run(context.Background(), job); done <- err }()
			synctest.Wait()
			if calls, _, _ := gs.counts(); calls != wantFirst {
				t.Errorf("full=%v: %d requests before the first answer, want %d", full, calls, wantFirst)
			}
			for {
				select {
				case gs.gate <- struct{}{}:
					synctest.Wait()
					if _, inFlight, _ := gs.counts(); inFlight > slots {
						t.Fatalf("full=%v: %d requests in flight, want at most %d", full, inFlight, slots)
					}
					continue
				case err := <-done:
					if err != nil {
						t.Fatalf("full=%v: %v", full, err)
					}
				}
				break
			}
			if _, _, peak := gs.counts(); peak != slots {
				t.Errorf("full=%v: peak %d requests in flight, want the %d slots used", full, peak, slots)
			}
		}
		firstRound(false, 2)    // first sync: page 0 of each view
		firstRound(true, slots) // re-sync: 10 default pages and archived page 0 want 11 slots
		w.checkInSync(t)

		// A connection that never succeeded, with a key Mailchimp rejects.
		fresh := newWorld(t, worldOptions{members: 10, seed: 26, inProcess: true})
		job := fresh.job(t)
		job.Mailchimp = fresh.sim.Source("ffffffffffffffffffffffffffffffff-us6")
		sum, err := fresh.engine.Run(context.Background(), job)
		if !mailchimp.IsKind(err, mailchimp.KindAuth) || sum.MailchimpStats.Requests > 2 {
			t.Errorf("wrong key: %d requests, err %v; want at most 2 and an auth error", sum.MailchimpStats.Requests, err)
		}
	})
}

// TestPagingStopsPlanningAtAFailedPage: once a page fails, the pass ends at
// that page, so a failure costs at most the pages already on their way, not
// the rest of the view. The default view here is some 32 pages of 100; the
// 13th request fails for good (no retries in process), and at most the
// planner's look-ahead (4 pages at 3 in flight) and the archived view's page
// follow it. (The look-ahead bounds this even without the planner's stop on
// failure; the stop keeps pages from being planned while earlier, slower
// pages are still being taken.)
func TestPagingStopsPlanningAtAFailedPage(t *testing.T) {
	w := newWorld(t, worldOptions{members: 3000, seed: 27, inProcess: true})
	w.engine.PageSize, w.engine.Overlap, w.engine.PageConcurrency = 100, 5, 3
	faults := make([]mcsim.Fault, 12) // FaultNone: the first 12 go through
	w.sim.FailNext(append(faults, mcsim.FaultServerHTML)...)
	sum, err := w.run(t, context.Background(), false)
	if err == nil || sum.Completed {
		t.Fatalf("run: completed %v, err %v; want it to fail at the 13th request", sum.Completed, err)
	}
	const lookAhead = 3 + 3/2
	if limit := int64(13 + lookAhead + 1); sum.MailchimpStats.Requests > limit {
		t.Errorf("%d requests after a failure at the 13th; want at most %d", sum.MailchimpStats.Requests, limit)
	}
}
