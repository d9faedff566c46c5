package engine

import (
	"time"

	"context"
	"errors"
	"fmt"
	"github.com/chimport/chimport/internal/clock"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

func TestFullIncrementalAndNoChangeRuns(t *testing.T) {
	forEachStore(t, testFullIncrementalAndNoChangeRuns)
}

func testFullIncrementalAndNoChangeRuns(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 2500, seed: 1, store: store})
	ctx := context.Background()

	first, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	all := len(w.sim.Members(testList))
	if !first.Completed || first.Delivered != int64(all) {
		t.Fatalf("first run: completed %v, delivered %d; want every one of %d members", first.Completed, first.Delivered, all)
	}
	if st := first.MailchimpStats; first.Result != state.ResultOK || st.Requests == 0 || st.ByStatus[200] != st.Requests {
		t.Errorf("first run: result %q, Mailchimp stats %+v; want ok and every request answered 200", first.Result, st)
	}
	if got := w.target.Stats().RecordsReceived; got != all {
		t.Errorf("target received %d records for %d members; the page overlap must not be delivered twice", got, all)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)

	// Change a few members in every way that matters.
	ids := memberIDs(w)
	w.pass()
	must(t, w.sim.Change(testList, ids[0], func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Renée" }))
	must(t, w.sim.Change(testList, ids[1], func(m *mcsim.Member) { m.MergeFields["LNAME"] = "Żółć" }))
	must(t, w.sim.Unsubscribe(testList, ids[2]))
	must(t, w.sim.Archive(testList, ids[3]))
	_, err = w.sim.Add(testList, mcsim.Member{EmailAddress: "new.person@example.com", Status: "subscribed", MergeFields: map[string]any{"FNAME": "New", "LNAME": "Person"}})
	must(t, err)
	w.pass()
	w.target.ResetStats()

	second, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if second.Delivered != 5 {
		t.Errorf("second run delivered %d records, want exactly the 5 changed members", second.Delivered)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)

	w.pass()
	w.sim.ResetStats()
	w.target.ResetStats()
	third, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatalf("no-change run: %v", err)
	}
	if got := w.sim.Stats().Requests; got > 4 {
		t.Errorf("no-change run made %d Mailchimp requests, want at most 4 (the window and a count, a view)", got)
	}
	if got := w.target.Stats().Requests; got != 0 {
		t.Errorf("no-change run made %d target requests, want 0", got)
	}
	if !third.WindowEnd.After(second.WindowEnd) {
		t.Errorf("no-change run did not move the watermark: %s -> %s", second.WindowEnd, third.WindowEnd)
	}
}

func TestChurnWhilePaging(t *testing.T) { forEachStore(t, testChurnWhilePaging) }

func testChurnWhilePaging(t *testing.T, store string) {
	for _, inclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("inclusive=%v", inclusive), func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 30000, seed: 2, inclusive: inclusive, store: store})
			ctx := context.Background()
			// About 40 changes a second at a realistic 250 ms a page:
			// 10 changes before every page served.
			w.sim.SetChurnPerRequest(testList, 10)
			sum, err := w.run(t, ctx, false)
			if err != nil {
				t.Fatalf("first run: %v", err)
			}
			w.checkWatermarkHonest(t)
			w.sim.SetChurnPerRequest(testList, 0)
			w.pass()
			if _, err := w.run(t, ctx, false); err != nil {
				t.Fatalf("second run: %v", err)
			}
			w.checkInSync(t)
			w.checkWatermarkHonest(t)
			t.Logf("first run read %d, delivered %d, %d requests", sum.Read, sum.Delivered, sum.MailchimpStats.Requests)
			if st := w.sim.Stats(); st.MaxInFlight > 10 || st.LimitRejected > 0 {
				t.Errorf("peak in flight %d, %d rejected by the limit; want <= 10 and 0", st.MaxInFlight, st.LimitRejected)
			}
		})
	}
}

func TestFaultsOnBothSidesConverge(t *testing.T) { forEachStore(t, testFaultsOnBothSidesConverge) }

func testFaultsOnBothSidesConverge(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 5000, seed: 3, store: store})
	ctx := context.Background()
	w.sim.SetFaultRate(0.15, mcsim.FaultServerHTML, mcsim.FaultForbiddenNoBody, mcsim.FaultDrop, mcsim.FaultTruncate, mcsim.FaultRateLimit)
	w.target.SetFailRate(0.2, 503)
	w.sim.SetChurnPerRequest(testList, 3)
	completed := false
	for i := 1; i <= 4 && !completed; i++ {
		sum, err := w.run(t, ctx, false)
		t.Logf("run %d: completed %v, read %d, delivered %d, err %v", i, sum.Completed, sum.Read, sum.Delivered, err)
		w.checkWatermarkHonest(t)
		completed = err == nil && sum.Completed
		w.pass()
	}
	if !completed {
		t.Fatal("no run completed within 4 runs")
	}
	w.sim.SetChurnPerRequest(testList, 0)
	w.pass()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatalf("final run: %v", err)
	}
	w.checkInSync(t)
}

func TestCancelledRunsLoseNothing(t *testing.T) { forEachStore(t, testCancelledRunsLoseNothing) }

func testCancelledRunsLoseNothing(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 6000, seed: 4, store: store})
	rng := rand.New(rand.NewPCG(4, 4))
	w.sim.SetChurnPerRequest(testList, 2)
	for trial := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		stopAfter := int64(rng.IntN(6000))
		job := w.job(t)
		job.Full = trial%5 == 0
		job.Progress = func(p Progress) {
			if p.Read >= stopAfter {
				cancel()
			}
		}
		_, err := w.engine.Run(ctx, job)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("trial %d: %v", trial, err)
		}
		w.checkWatermarkHonest(t)
		w.pass()
	}
	w.sim.SetChurnPerRequest(testList, 0)
	w.pass()
	if _, err := w.run(t, context.Background(), false); err != nil {
		t.Fatalf("final run: %v", err)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)
}

func TestFailedFirstSyncResumesFromCheckpoint(t *testing.T) {
	forEachStore(t, testFailedFirstSyncResumesFromCheckpoint)
}

func testFailedFirstSyncResumesFromCheckpoint(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 20000, seed: 5, store: store})
	ctx := context.Background()
	// The target goes away for good part-way through the first sync.
	job := w.job(t)
	job.BatchSize = 1000
	w.engine.DeliveryConcurrency = 1
	var once sync.Once
	job.Progress = func(p Progress) {
		if p.Delivered >= 12000 {
			once.Do(func() { w.target.SetFailRate(1, 400) })
		}
	}
	if _, err := w.engine.Run(ctx, job); err == nil {
		t.Fatal("first run succeeded against a target that rejects everything")
	}
	st, err := w.store.Connection(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if st.Checkpoint == nil || !st.Watermark.IsZero() {
		t.Fatalf("after a failed first sync: checkpoint %v, watermark %v; want a checkpoint and no watermark", st.Checkpoint, st.Watermark)
	}
	w.target.SetFailRate(0, 0)
	w.pass()
	sum, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	if !sum.Resumed || sum.Read >= 15000 {
		t.Errorf("resumed run: resumed %v, read %d; want it to continue, not start over", sum.Resumed, sum.Read)
	}
	w.checkInSync(t)
}

func TestCancelledRunLeavesCheckpoint(t *testing.T) {
	forEachStore(t, testCancelledRunLeavesCheckpoint)
}

func testCancelledRunLeavesCheckpoint(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 20000, seed: 7, store: store})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	job := w.job(t)
	job.Progress = func(p Progress) {
		if p.Delivered >= 8000 {
			cancel()
		}
	}
	sum, err := w.engine.Run(ctx, job)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run returned %v, want context.Canceled", err)
	}
	if sum.Result != state.ResultCancelled || sum.Completed {
		t.Errorf("cancelled run: result %q, completed %v; want cancelled, not completed", sum.Result, sum.Completed)
	}
	st, err := w.store.Connection(context.Background(), "test")
	must(t, err)
	if st.Checkpoint == nil || st.Checkpoint.Views["default"].IsZero() || !st.Watermark.IsZero() {
		t.Fatalf("after cancelling: checkpoint %+v, watermark %v; want a checkpoint and no watermark", st.Checkpoint, st.Watermark)
	}
	runs, err := w.store.Runs(context.Background(), "test", 1)
	must(t, err)
	if len(runs) != 1 || runs[0].Result != state.ResultCancelled {
		t.Errorf("run history = %+v, want one cancelled run", runs)
	}
}

func TestWrongKeyFailsFast(t *testing.T) {
	w := newWorld(t, worldOptions{members: 10, seed: 6})
	job := w.job(t)
	mc, err := mailchimp.New(mailchimp.Config{APIKey: "ffffffffffffffffffffffffffffffff-us6", BaseURL: w.mcURL, Connection: "test"})
	must(t, err)
	job.Mailchimp = mc
	sum, err := w.engine.Run(context.Background(), job)
	if !mailchimp.IsKind(err, mailchimp.KindAuth) {
		t.Fatalf("err = %v, want an auth error", err)
	}
	if sum.MailchimpStats.Requests > 2 {
		t.Errorf("wrong key made %d requests, want at most 2", sum.MailchimpStats.Requests)
	}
	if sum.Result != state.ResultFailed || sum.MailchimpStats.ByStatus[401] != sum.MailchimpStats.Requests {
		t.Errorf("wrong key: result %q, Mailchimp stats %+v; want failed, every request answered 401", sum.Result, sum.MailchimpStats)
	}
	runs, err := w.store.Runs(context.Background(), "test", 1)
	must(t, err)
	if len(runs) != 1 || runs[0].Result != sum.Result {
		t.Errorf("run history = %+v, want the summary's result %q", runs, sum.Result)
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if st.LastError == "" || !st.Watermark.IsZero() {
		t.Errorf("state after a rejected key: last error %q, watermark %v", st.LastError, st.Watermark)
	}
}

func memberIDs(w *world) []string {
	var ids []string
	for _, m := range w.sim.Members(testList) {
		if m.Status != "archived" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// forEachStore runs an end-to-end test once per state store.
func forEachStore(t *testing.T, test func(t *testing.T, store string)) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) { test(t, store) })
	}
}

// TestClockAheadOfMailchimp: our clock runs ten minutes ahead of
// Mailchimp's. The window end must come from Mailchimp's time, or members
// changed "now" could fall inside the window while it is paged.
func TestClockAheadOfMailchimp(t *testing.T) {
	w := newWorld(t, worldOptions{members: 3000, seed: 14})
	w.engine.Clock = clock.NewFake(w.clk.Now().Add(10 * time.Minute))
	sum, err := w.run(t, context.Background(), false)
	if err != nil || !sum.Completed {
		t.Fatalf("run: completed %v, err %v", sum.Completed, err)
	}
	if limit := w.clk.Now().Add(-time.Second); sum.WindowEnd.After(limit) {
		t.Errorf("window end %s is after Mailchimp's time minus a second (%s)", sum.WindowEnd, limit)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)
}
