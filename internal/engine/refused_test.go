package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// refusingSink stands in for a target that refuses whole batches for the
// records it will not take, as real APIs do: a batch holding one refused
// record is answered 422 and nothing of it is applied. It counts every
// request.
type refusingSink struct {
	inner Sink

	mu       sync.Mutex
	refuse   map[string]bool // record ids refused
	all      bool            // refuse every record
	maxBatch int             // more records than this: 413
	huge     string          // a batch holding this record id: 413
	requests int
	sizes    []int // of every batch received
}

func newRefusingSink(inner Sink, ids ...string) *refusingSink {
	s := &refusingSink{inner: inner, refuse: map[string]bool{}}
	for _, id := range ids {
		s.refuse[id] = true
	}
	return s
}

func (s *refusingSink) Apply(ctx context.Context, ops []target.Op) error {
	s.mu.Lock()
	s.requests++
	s.sizes = append(s.sizes, len(ops))
	refused := s.check(ops)
	s.mu.Unlock()
	if refused != nil {
		return refused
	}
	return s.inner.Apply(ctx, ops)
}

func (s *refusingSink) check(ops []target.Op) *target.Error {
	if s.maxBatch > 0 && len(ops) > s.maxBatch || s.huge != "" && slices.ContainsFunc(ops, func(op target.Op) bool { return opID(op) == s.huge }) {
		return &target.Error{Connection: "test", Status: 413, Body: "too large"}
	}
	for i, op := range ops {
		if id := opID(op); s.all || s.refuse[id] {
			return &target.Error{Connection: "test", Status: 422, Body: fmt.Sprintf(`{"index":%d,"reason":"invalid record %s"}`, i, id)}
		}
	}
	return nil
}

func (s *refusingSink) set(f func(s *refusingSink)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *refusingSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.requests
	s.requests = 0
	return n
}

func opID(op target.Op) string {
	if op.Kind == target.OpDelete {
		return op.ID
	}
	var rec struct{ ID string }
	_ = json.Unmarshal(op.Record, &rec)
	return rec.ID
}

// refusalWorld is an in-process world with a first sync done, and a
// refusing sink in front of its target for the runs after it, on the
// memory store.
func refusalWorld(t *testing.T, members int) (*world, *refusingSink, func() (Summary, error)) {
	t.Helper()
	return refusalWorldOn(t, "", members)
}

// refusalWorldOn is refusalWorld on the given store.
func refusalWorldOn(t *testing.T, store string, members int) (*world, *refusingSink, func() (Summary, error)) {
	t.Helper()
	w := newWorld(t, worldOptions{members: members, seed: 7, inProcess: true, store: store})
	sink := newRefusingSink(w.target)
	run := func() (Summary, error) {
		job := w.job(t)
		job.Sink = sink
		return w.engine.Run(context.Background(), job)
	}
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	w.pass()
	sink.count()
	return w, sink, run
}

// changeMembers changes the first n members of the audience and returns
// their ids.
func changeMembers(t *testing.T, w *world, n int, tag string) []string {
	t.Helper()
	var ids []string
	for _, m := range w.sim.Members(testList)[:n] {
		if err := w.sim.Change(testList, m.ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = tag }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	w.pass()
	return ids
}

func loggedRejections(t *testing.T, w *world) []state.Rejection {
	t.Helper()
	log, err := w.store.RejectedLog(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// The tests of what the rejected log holds (an entry per member, its
// attempts, emptied once delivered or gone) and of fenced deletes run on
// every real store.
func TestOneRefusedRecordDoesNotHoldBackTheRest(t *testing.T) {
	forEachStore(t, testOneRefusedRecordDoesNotHoldBackTheRest)
}

func testOneRefusedRecordDoesNotHoldBackTheRest(t *testing.T, store string) {
	w, sink, run := refusalWorldOn(t, store, 200)
	ids := changeMembers(t, w, 31, "changed")
	bad := ids[17]
	sink.set(func(s *refusingSink) { s.refuse[bad] = true })
	before, _ := w.store.Connection(context.Background(), "test")

	sum, err := run()
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	n := sink.count()
	t.Logf("one refused record among 31 changes: %d target requests", n)
	if n > 16 {
		t.Errorf("the run made %d target requests, want at most 16", n)
	}
	if sum.Rejected != 1 || sum.Refused != 1 || sum.RejectedSample == nil || sum.RejectedSample.Member.String() != bad {
		t.Errorf("Rejected %d, Refused %d, sample %+v; want 1, 1 and member %s", sum.Rejected, sum.Refused, sum.RejectedSample, bad)
	}
	if sum.Delivered != 30 {
		t.Errorf("Delivered = %d, want the 30 records accepted", sum.Delivered)
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if !st.Watermark.After(before.Watermark) {
		t.Errorf("watermark %v did not move past %v", st.Watermark, before.Watermark)
	}
	w.compare(t, func(m mcsim.Member) bool { return m.ID != bad }, "but the refused one")
	log := loggedRejections(t, w)
	if len(log) != 1 {
		t.Fatalf("rejected log = %+v, want one entry", log)
	}
	e := log[0]
	if e.Member.String() != bad || e.Key != bad || e.Status != 422 || !strings.Contains(e.Reason, "invalid record "+bad) || e.Attempts != 1 ||
		!e.FirstSeen.Equal(e.LastAttempt) || e.LastAttempt.IsZero() {
		t.Errorf("entry = %+v, want member and key %s, status 422, the target's reason, 1 attempt", e, bad)
	}

	// Still refused: the next run retries it, and nothing else waits.
	more := changeMembers(t, w, 40, "again")
	sum, err = run()
	if err != nil {
		t.Fatalf("second run failed: %v", err)
	}
	if sum.Rejected != 1 {
		t.Errorf("second run: Rejected = %d, want 1", sum.Rejected)
	}
	w.compare(t, func(m mcsim.Member) bool { return m.ID != bad }, "but the refused one")
	if log := loggedRejections(t, w); len(log) != 1 || log[0].Attempts != 3 {
		// Refused twice in the second run: once retried, once in its window.
		t.Errorf("rejected log after the second run = %+v, want the one entry with 3 attempts", log)
	}
	_ = more

	// Fixed: the next run delivers it, and the log is empty.
	sink.set(func(s *refusingSink) { delete(s.refuse, bad) })
	w.pass()
	sum, err = run()
	if err != nil {
		t.Fatalf("third run failed: %v", err)
	}
	if sum.Rejected != 0 || len(loggedRejections(t, w)) != 0 {
		t.Errorf("after the fix: Rejected = %d, log %+v; want empty", sum.Rejected, loggedRejections(t, w))
	}
	w.checkInSync(t)
}

func TestARetriedMemberThatIsGoneIsDeleted(t *testing.T) {
	w, sink, run := refusalWorld(t, 50)
	ids := changeMembers(t, w, 5, "changed")
	bad := ids[2]
	sink.set(func(s *refusingSink) { s.refuse[bad] = true })
	if sum, err := run(); err != nil || sum.Rejected != 1 {
		t.Fatalf("run: %v, Rejected %d; want 1", err, sum.Rejected)
	}
	if err := w.sim.Delete(testList, bad); err != nil {
		t.Fatal(err)
	}
	// The tombstone carries the id the sink refuses: let it through.
	sink.set(func(s *refusingSink) { delete(s.refuse, bad) })
	w.pass()
	sum, err := run()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 0 || sum.Tombstoned != 1 {
		t.Errorf("Rejected %d, Tombstoned %d; want 0 and 1", sum.Rejected, sum.Tombstoned)
	}
	if rec, ok := w.target.Records()[bad]; ok {
		t.Errorf("target holds %v for the deleted member, want nothing", rec)
	}
}

func TestATargetThatRefusesEverythingStopsTheRunCheaply(t *testing.T) {
	w := newWorld(t, worldOptions{members: 5000, seed: 3, inProcess: true})
	sink := newRefusingSink(w.target)
	sink.all = true
	job := w.job(t)
	job.Sink, job.BatchSize = sink, 1000
	_, err := w.engine.Run(context.Background(), job)
	var re *RefusalsError
	if !errors.As(err, &re) || !re.Systematic {
		t.Fatalf("run error = %v, want a systematic *RefusalsError", err)
	}
	n := sink.count()
	t.Logf("a target refusing every record, 5,000-member first sync: %d target requests", n)
	if n > 40 {
		t.Errorf("the run made %d target requests, want at most 40", n)
	}
	for _, want := range []string{`connection "test"`, "every record", "HTTP 422", "invalid record", "mapping"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if !st.Watermark.IsZero() || st.Rejected.Count != 0 || st.LastError == "" {
		t.Errorf("state after the run: watermark %v, rejected %d, last error %q; want zero, 0 and the error", st.Watermark, st.Rejected.Count, st.LastError)
	}
}

func TestMoreRefusalsThanTheLimitStopTheRun(t *testing.T) {
	w, sink, run := refusalWorld(t, 100)
	ids := changeMembers(t, w, 60, "changed")
	sink.set(func(s *refusingSink) {
		for _, id := range ids[:8] {
			s.refuse[id] = true
		}
	})
	job := w.job(t)
	job.Sink, job.MaxRejected = sink, 5
	before, _ := w.store.Connection(context.Background(), "test")
	_, err := w.engine.Run(context.Background(), job)
	var re *RefusalsError
	if !errors.As(err, &re) || re.Systematic || re.Limit != 5 || re.Refused <= 5 {
		t.Fatalf("run error = %v, want a *RefusalsError over the limit of 5", err)
	}
	if !strings.Contains(err.Error(), "target.max_rejected (5)") {
		t.Errorf("error %q does not name target.max_rejected", err)
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if !st.Watermark.Equal(before.Watermark) {
		t.Errorf("watermark moved from %v to %v", before.Watermark, st.Watermark)
	}
	// With the records fixed, the next run loses nothing.
	sink.set(func(s *refusingSink) { clear(s.refuse) })
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	w.checkInSync(t)
	if log := loggedRejections(t, w); len(log) != 0 {
		t.Errorf("rejected log = %+v, want empty", log)
	}
}

func TestATooLargeBatchIsSplitAndLaterBatchesAreSmaller(t *testing.T) {
	w := newWorld(t, worldOptions{members: 3000, seed: 5, inProcess: true})
	sink := newRefusingSink(w.target)
	sink.maxBatch = 300
	job := w.job(t)
	job.Sink, job.BatchSize = sink, 1000
	sum, err := w.engine.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 0 {
		t.Errorf("Rejected = %d, want 0: a 413 is not a refusal", sum.Rejected)
	}
	w.checkInSync(t)
	sink.mu.Lock()
	sizes := sink.sizes
	sink.mu.Unlock()
	// The batches in flight when the first 413 came were split (1000,
	// then two of 500, each refused too); every batch gathered after it
	// was small enough.
	large := 0
	for _, n := range sizes {
		if n > 300 {
			large++
		}
	}
	if inFlight := DefaultDeliveryConcurrency + 2; large > 3*inFlight {
		t.Errorf("%d of %d batches were larger than the target takes (sizes %v)", large, len(sizes), sizes)
	}
	for _, n := range sizes[len(sizes)-3:] {
		if n > 300 {
			t.Errorf("the last batches were %v: the batch size did not come down", sizes[len(sizes)-3:])
			break
		}
	}
}

func TestARefusedTombstoneIsLoggedAndRetried(t *testing.T) {
	forEachStore(t, testARefusedTombstoneIsLoggedAndRetried)
}

func testARefusedTombstoneIsLoggedAndRetried(t *testing.T, store string) {
	w, sink, run := refusalWorldOn(t, store, 50)
	gone := w.sim.Members(testList)[4].ID
	if err := w.sim.Delete(testList, gone); err != nil {
		t.Fatal(err)
	}
	w.pass()
	sink.set(func(s *refusingSink) { s.refuse[gone] = true })
	job := w.job(t)
	job.Sink, job.Reconcile = sink, true
	sum, err := w.engine.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 1 || sum.Tombstoned != 0 {
		t.Errorf("Rejected %d, Tombstoned %d; want the refused tombstone logged", sum.Rejected, sum.Tombstoned)
	}
	if size, _ := w.store.RosterSize(context.Background(), "test"); size != 50 {
		t.Errorf("roster holds %d, want 50: a refused delete stays in the roster", size)
	}
	sink.set(func(s *refusingSink) { clear(s.refuse) })
	w.pass()
	sum, err = run()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 0 || sum.Tombstoned != 1 {
		t.Errorf("retry: Rejected %d, Tombstoned %d; want 0 and 1", sum.Rejected, sum.Tombstoned)
	}
	if size, _ := w.store.RosterSize(context.Background(), "test"); size != 49 {
		t.Errorf("roster holds %d, want 49", size)
	}
}

// observingSink reads the connection's last error after each batch.
type observingSink struct {
	inner Sink
	store state.Store
	mu    sync.Mutex
	seen  []string
}

func (s *observingSink) Apply(ctx context.Context, ops []target.Op) error {
	err := s.inner.Apply(ctx, ops)
	st, _ := s.store.Connection(ctx, "test")
	s.mu.Lock()
	s.seen = append(s.seen, st.LastError)
	s.mu.Unlock()
	return err
}

func TestTheErrorARunRetriesIsItsLastErrorWhileItGoesOn(t *testing.T) {
	for _, store := range stores {
		t.Run(store, func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 300, seed: 11, store: store})
			w.target.FailNext(503, 1)
			job := w.job(t)
			sink := &observingSink{inner: job.Sink, store: w.store}
			job.Sink = sink
			if _, err := w.engine.Run(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			if len(sink.seen) == 0 || !strings.Contains(sink.seen[0], "still retrying") || !strings.Contains(sink.seen[0], "503") {
				t.Errorf("last error after the retried batch = %q, want the 503 being retried", sink.seen)
			}
			st, _ := w.store.Connection(context.Background(), "test")
			if st.LastError != "" || !st.LastErrorAt.IsZero() {
				t.Errorf("after the run completed: last error %q at %v, want none", st.LastError, st.LastErrorAt)
			}
		})
	}
}

func TestRefusalsUnderTargetFaultsLoseNothingAndLogEachMemberOnce(t *testing.T) {
	forEachStore(t, testRefusalsUnderTargetFaultsLoseNothingAndLogEachMemberOnce)
}

func testRefusalsUnderTargetFaultsLoseNothingAndLogEachMemberOnce(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 3000, seed: 13, store: store})
	members := w.sim.Members(testList)
	bad := []string{members[10].ID, members[1500].ID, members[2999].ID}
	w.target.RefuseIDs(bad...)
	w.target.SetFailRate(0.2, 503)
	isBad := func(m mcsim.Member) bool { return m.ID == bad[0] || m.ID == bad[1] || m.ID == bad[2] }
	for run := 1; run <= 2; run++ {
		sum, err := w.run(t, context.Background(), false)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if sum.Rejected != 3 {
			t.Errorf("run %d: Rejected = %d, want 3", run, sum.Rejected)
		}
		w.compare(t, func(m mcsim.Member) bool { return !isBad(m) }, "but the refused ones")
		log := loggedRejections(t, w)
		if len(log) != 3 {
			t.Fatalf("run %d: rejected log holds %d entries, want 3: %+v", run, len(log), log)
		}
		for _, e := range log {
			if e.Attempts != run {
				t.Errorf("run %d: member %s has %d attempts, want %d", run, e.Member, e.Attempts, run)
			}
		}
		w.pass()
	}
	w.target.AcceptAll()
	w.target.SetFailRate(0.2, 503)
	if sum, err := w.run(t, context.Background(), false); err != nil || sum.Rejected != 0 {
		t.Fatalf("after the fix: %v, Rejected %d", err, sum.Rejected)
	}
	w.checkInSync(t)
}

func TestOneRecordTooLargeOnItsOwnIsRejectedAndTheBatchSizeStays(t *testing.T) {
	w := newWorld(t, worldOptions{members: 5000, seed: 17, inProcess: true})
	sink := newRefusingSink(w.target)
	sink.huge = w.sim.Members(testList)[100].ID
	job := w.job(t)
	job.Sink, job.BatchSize = sink, 1000
	sum, err := w.engine.Run(context.Background(), job)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Rejected != 1 {
		t.Errorf("Rejected = %d, want the one record too large on its own", sum.Rejected)
	}
	if log := loggedRejections(t, w); len(log) != 1 || log[0].Status != 413 || log[0].Member.String() != sink.huge {
		t.Errorf("rejected log = %+v, want the huge record with status 413", log)
	}
	// 5 batches, one bisected to its huge record (about 2·log2(1000)),
	// and the rest at the half the target took.
	n := sink.count()
	t.Logf("one record too large on its own among 5,000: %d target requests", n)
	if n > 40 {
		t.Errorf("the run made %d target requests, want at most 40: one huge record must not shrink every batch", n)
	}
	w.compare(t, func(m mcsim.Member) bool { return m.ID != sink.huge }, "but the huge one")
}

func TestATargetThatRefusesEverythingAndLargeBatchesStopsCheaply(t *testing.T) {
	w := newWorld(t, worldOptions{members: 5000, seed: 19, inProcess: true})
	sink := newRefusingSink(w.target)
	sink.all, sink.maxBatch = true, 300
	job := w.job(t)
	job.Sink, job.BatchSize = sink, 1000
	_, err := w.engine.Run(context.Background(), job)
	var re *RefusalsError
	if !errors.As(err, &re) || !re.Systematic {
		t.Fatalf("run error = %v, want a systematic *RefusalsError", err)
	}
	n := sink.count()
	t.Logf("a target refusing every record and batches over 300: %d target requests", n)
	if n > 60 {
		t.Errorf("the run made %d target requests, want a handful", n)
	}
}

func TestASmallBatchAllRefusedIsSystematic(t *testing.T) {
	w, sink, _ := refusalWorld(t, 100)
	changeMembers(t, w, 15, "changed")
	sink.set(func(s *refusingSink) { s.all = true })
	before, _ := w.store.Connection(context.Background(), "test")
	job := w.job(t)
	job.Sink = sink
	_, err := w.engine.Run(context.Background(), job)
	var re *RefusalsError
	if !errors.As(err, &re) || !re.Systematic {
		t.Fatalf("run error = %v, want a systematic *RefusalsError", err)
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if !st.Watermark.Equal(before.Watermark) || st.Rejected.Count != 0 {
		t.Errorf("watermark %v (was %v), rejected %d: want unchanged and nothing logged", st.Watermark, before.Watermark, st.Rejected.Count)
	}
}

func TestRecordsAlreadyLoggedDoNotCountAgainstTheLimit(t *testing.T) {
	w, sink, _ := refusalWorld(t, 100)
	ids := changeMembers(t, w, 20, "changed")
	sink.set(func(s *refusingSink) {
		for _, id := range ids[:3] {
			s.refuse[id] = true
		}
	})
	job := w.job(t)
	job.Sink, job.MaxRejected = sink, 3
	if sum, err := w.engine.Run(context.Background(), job); err != nil || sum.Rejected != 3 {
		t.Fatalf("first run: %v, Rejected %d; want 3 logged", err, sum.Rejected)
	}
	// They change again (retried, and in the window), and two more are
	// refused: 2 new ones are within the limit of 3.
	ids = changeMembers(t, w, 20, "again")
	sink.set(func(s *refusingSink) { s.refuse[ids[5]], s.refuse[ids[6]] = true, true })
	sum, err := w.engine.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if sum.Rejected != 5 {
		t.Errorf("Rejected = %d, want 5", sum.Rejected)
	}
}

func TestARetriedDeleteIsFencedByTheLease(t *testing.T) {
	forEachStore(t, testARetriedDeleteIsFencedByTheLease)
}

func testARetriedDeleteIsFencedByTheLease(t *testing.T, store string) {
	w, sink, _ := refusalWorldOn(t, store, 50)
	ctx := context.Background()
	ids := changeMembers(t, w, 5, "changed")
	bad := ids[1]
	sink.set(func(s *refusingSink) { s.refuse[bad] = true })
	lease, err := w.store.ClaimLease(ctx, "test", "worker-1", w.clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	job := w.job(t)
	job.Sink, job.LeaseToken = sink, lease.Token
	if sum, err := w.engine.Run(ctx, job); err != nil || sum.Rejected != 1 {
		t.Fatalf("run: %v, Rejected %d", err, sum.Rejected)
	}
	if err := w.sim.Delete(testList, bad); err != nil {
		t.Fatal(err)
	}
	sink.set(func(s *refusingSink) { clear(s.refuse) })
	// Another worker takes the connection over; the first, late, must not
	// delete.
	if err := w.store.ReleaseLease(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.ClaimLease(ctx, "test", "worker-2", w.clk.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	w.pass()
	_, err = w.engine.Run(ctx, job)
	if !errors.Is(err, state.ErrFenced) {
		t.Fatalf("late worker's run error = %v, want ErrFenced", err)
	}
	if _, ok := w.target.Records()[bad]; !ok {
		t.Error("the late worker deleted the member from the target")
	}
}

func TestRunningAgainCannotLogMoreThanTheLimitForOneWindow(t *testing.T) {
	w, sink, _ := refusalWorld(t, 100)
	ids := changeMembers(t, w, 60, "changed")
	// Batches of 10 in order, one at a time: the first batch logs 3, the
	// second brings the run's new refusals to 6, over the limit of 5.
	sink.set(func(s *refusingSink) {
		for _, id := range append(append([]string(nil), ids[1:4]...), ids[11:14]...) {
			s.refuse[id] = true
		}
	})
	w.engine.DeliveryConcurrency = 1
	job := w.job(t)
	job.Sink, job.MaxRejected, job.BatchSize = sink, 5, 10
	var logged int
	for run := 1; run <= 2; run++ {
		_, err := w.engine.Run(context.Background(), job)
		var re *RefusalsError
		if !errors.As(err, &re) || re.Systematic {
			t.Fatalf("run %d: error = %v, want a *RefusalsError over the limit", run, err)
		}
		log := loggedRejections(t, w)
		if run == 1 {
			logged = len(log)
		}
		if len(log) == 0 || len(log) > 5 || len(log) != logged {
			t.Errorf("run %d: rejected log holds %d entries, want those of the first run's completed batches (%d, at most 5)", run, len(log), logged)
		}
	}
}

func TestARunRetriesAtMostTheLimitLeastRecentlyTriedFirst(t *testing.T) {
	w, sink, _ := refusalWorld(t, 100)
	ids := changeMembers(t, w, 30, "changed")
	sink.set(func(s *refusingSink) {
		for _, id := range ids[:8] {
			s.refuse[id] = true
		}
	})
	job := w.job(t)
	job.Sink = sink
	if sum, err := w.engine.Run(context.Background(), job); err != nil || sum.Rejected != 8 {
		t.Fatalf("run: %v, Rejected %d; want 8", err, sum.Rejected)
	}
	w.pass()
	for run := 1; run <= 2; run++ {
		job.MaxRejected = 5
		before := w.sim.Stats().MemberRequests
		if _, err := w.engine.Run(context.Background(), job); err != nil {
			t.Fatal(err)
		}
		if n := w.sim.Stats().MemberRequests - before; n != 5 {
			t.Errorf("run %d retried %d members, want the limit, 5", run, n)
		}
		w.pass()
	}
	// 5 then the 3 not tried, and 2 of the first 5: every entry has been
	// retried at least once.
	for _, e := range loggedRejections(t, w) {
		if e.Attempts < 2 {
			t.Errorf("member %s was never retried (%d attempts)", e.Member, e.Attempts)
		}
	}
}
