package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

// The tests of when refusals are systematic (the run stops) and when they
// are a few bad records (logged, the run goes on), beyond the cheap stop
// of a target that refuses everything (refused_test.go).

// seedRejected puts the members in the rejected log as a completed run
// before the world's last one would have: first refused before its last
// success, so they are known.
func seedRejected(t *testing.T, w *world, at time.Time, ids ...string) {
	t.Helper()
	var rs []state.Rejection
	for _, id := range ids {
		m, err := state.ParseMemberID(id)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, state.Rejection{Member: m, Status: 422, Reason: "invalid record " + id, LastAttempt: at})
	}
	if err := w.store.RecordRejections(context.Background(), "test", rs); err != nil {
		t.Fatal(err)
	}
}

// changeIDs sets the first name of the members with these ids.
func changeIDs(t *testing.T, w *world, tag string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = tag }); err != nil {
			t.Fatal(err)
		}
	}
	w.pass()
}

// Records a completed run logged, still refused, that change while nothing
// else does, fill a batch of their own: that is the same few bad records,
// not a broken mapping. With 10 of them the batch is all refused; with 20
// both halves of its split are too, and would be probed.
func TestKnownRefusedRecordsThatChangeAloneAreNotSystematic(t *testing.T) {
	for _, n := range []int{10, 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			w, sink, run := refusalWorld(t, 100)
			st, _ := w.store.Connection(context.Background(), "test")
			var bad []string
			for _, m := range w.sim.Members(testList)[:n] {
				bad = append(bad, m.ID)
			}
			seedRejected(t, w, st.LastSuccess.Add(-time.Second), bad...)
			sink.set(func(s *refusingSink) {
				for _, id := range bad {
					s.refuse[id] = true
				}
			})
			for round := 1; round <= 2; round++ {
				changeIDs(t, w, fmt.Sprint("still bad ", round), bad...)
				sum, err := run()
				if err != nil || sum.Rejected != int64(n) {
					t.Fatalf("run %d: %v, Rejected %d; want the %d known records logged and the run complete", round, err, sum.Rejected, n)
				}
				if after, _ := w.store.Connection(context.Background(), "test"); !after.Watermark.After(st.Watermark) {
					t.Errorf("run %d: watermark %v did not move on from %v", round, after.Watermark, st.Watermark)
				}
				st, _ = w.store.Connection(context.Background(), "test")
			}
		})
	}
}

// A batch size under the smallest probed batch must not switch the cheap
// stop off: a run whose target has refused 8 records on their own and
// taken none stops, whatever the size of its batches.
func TestASmallBatchSizeStillStopsATargetRefusingEverything(t *testing.T) {
	for _, size := range []int{1, 5, 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 5000, seed: 3, inProcess: true})
			sink := newRefusingSink(w.target)
			sink.all = true
			job := w.job(t)
			job.Sink, job.BatchSize = sink, size
			_, err := w.engine.Run(context.Background(), job)
			var re *RefusalsError
			if !errors.As(err, &re) || !re.Systematic {
				t.Fatalf("run error = %v, want a systematic *RefusalsError", err)
			}
			n := sink.count()
			t.Logf("batch size %d, a target refusing every record, 5,000-member first sync: %d target requests", size, n)
			if n > 40 {
				t.Errorf("the run made %d target requests, want at most 40", n)
			}
			if log := loggedRejections(t, w); len(log) > 2*minProbed {
				t.Errorf("the stopped run logged %d records, want a handful at most", len(log))
			}
		})
	}
}

// Records a failed run logged count against the limit (running again
// cannot log more than it for one window), but only while they are in
// the log: once the retries deliver them, they count no more.
func TestDeliveredRetriesNoLongerCountAgainstTheLimit(t *testing.T) {
	w, sink, _ := refusalWorld(t, 100)
	members := w.sim.Members(testList)
	var failedRun []string
	for _, m := range members[:4] {
		failedRun = append(failedRun, m.ID)
	}
	seedRejected(t, w, w.clk.Now(), failedRun...) // after the last success: a failed run's
	changeIDs(t, w, "changed", members[10].ID, members[11].ID, members[12].ID, members[13].ID)
	sink.set(func(s *refusingSink) { s.refuse[members[10].ID], s.refuse[members[11].ID] = true, true })
	job := w.job(t)
	job.Sink, job.MaxRejected = sink, 5
	sum, err := w.engine.Run(context.Background(), job)
	if err != nil || sum.Rejected != 2 {
		t.Fatalf("run: %v, Rejected %d; want the 4 retries delivered and 2 new refusals within the limit of 5", err, sum.Rejected)
	}
}

// hiddenLog is a store whose summary of the rejected log says 0, as
// DynamoDB's does when a run died between writing entries and their sum.
type hiddenLog struct {
	Store
}

func (h hiddenLog) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	st, err := h.Store.Connection(ctx, name)
	st.Rejected = state.RejectedState{}
	return st, err
}

// After a run that did not complete, the log is read whatever its sum
// says, so entries written without their sum are retried and cleared.
func TestARunAfterAFailedOneReadsTheLogWhateverItsSum(t *testing.T) {
	w, _, run := refusalWorld(t, 100)
	ctx := context.Background()
	orphan := w.sim.Members(testList)[3].ID
	seedRejected(t, w, w.clk.Now(), orphan)
	w.engine.Store = hiddenLog{w.store}
	// A completed last run: the sum is trusted, and the log not read.
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	if log := loggedRejections(t, w); len(log) != 1 {
		t.Fatalf("rejected log = %+v, want the orphan entry still there", log)
	}
	// A run that started and died.
	w.pass()
	if err := w.store.StartRun(ctx, "test", w.clk.Now()); err != nil {
		t.Fatal(err)
	}
	w.pass()
	before := w.sim.Stats().MemberRequests
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.Stats().MemberRequests - before; n != 1 {
		t.Errorf("the run after it fetched %d members, want the orphan, 1", n)
	}
	if log := loggedRejections(t, w); len(log) != 0 {
		t.Errorf("rejected log = %+v, want the orphan delivered and cleared", log)
	}
}
