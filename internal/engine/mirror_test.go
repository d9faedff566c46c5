package engine

// Tests of the mirror: members deleted for good, members whose address
// changed (and with it their id) and members that left the status filter
// leave the target, and no member that exists is ever deleted. They run in
// process, on the simulator's list model and the memory store; those about
// the roster's exact counts and fenced deletes run on every real store.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// bothDefaultViews runs test against a simulator whose default view leaves
// archived members out (what Mailchimp most likely does) and one whose
// default view holds them: Mailchimp does not document which.
func bothDefaultViews(t *testing.T, test func(t *testing.T, withArchived bool)) {
	for _, with := range []bool{false, true} {
		t.Run(fmt.Sprintf("default_view_with_archived=%v", with), func(t *testing.T) { test(t, with) })
	}
}

// checkMirror proves invariant 7: the target holds a record for every
// live member (checkInSync) and for no one else.
func (w *world) checkMirror(t *testing.T, statuses ...string) {
	t.Helper()
	live := map[string]bool{}
	for _, m := range w.sim.Members(testList) {
		if len(statuses) == 0 || slices.Contains(statuses, m.Status) {
			live[m.ID] = true
		}
	}
	for id := range w.target.Records() {
		if !live[id] {
			t.Fatalf("the target holds a record of %s, which is no longer a member of the connection", id)
		}
	}
	w.compare(t, func(m mcsim.Member) bool { return live[m.ID] }, "of the connection")
}

// guardedSink fails the test if a delete ever names a member that exists
// in Mailchimp when the delete is sent: the reconcile's invariant.
type guardedSink struct {
	*mcsim.Target
	t        *testing.T
	w        *world
	statuses []string
	mu       sync.Mutex
	deleted  []string
}

func (g *guardedSink) Apply(ctx context.Context, ops []target.Op) error {
	if !slices.ContainsFunc(ops, func(op target.Op) bool { return op.Kind == target.OpDelete }) {
		return g.Target.Apply(ctx, ops)
	}
	live := map[string]bool{}
	for _, m := range g.w.sim.Members(testList) {
		if len(g.statuses) == 0 || slices.Contains(g.statuses, m.Status) {
			live[m.ID] = true
		}
	}
	for _, op := range ops {
		if op.Kind == target.OpDelete {
			if live[op.ID] {
				g.t.Errorf("a delete of %s was sent while it is a member of the connection", op.ID)
			}
			g.mu.Lock()
			g.deleted = append(g.deleted, op.ID)
			g.mu.Unlock()
		}
	}
	return g.Target.Apply(ctx, ops)
}

// TestMirrorDeletesAndAddressChanges runs every variant of Mailchimp's
// paging and default view on the memory store (the engine's logic), and
// one on every real store: the roster's ids, its exact count and its Left.
func TestMirrorDeletesAndAddressChanges(t *testing.T) {
	bothInclusivities(t, func(t *testing.T, inclusive bool) {
		bothDefaultViews(t, func(t *testing.T, withArchived bool) {
			testMirrorDeletesAndAddressChanges(t, "memory", inclusive, withArchived)
		})
	})
	forEachStore(t, func(t *testing.T, store string) { testMirrorDeletesAndAddressChanges(t, store, false, false) })
}

func testMirrorDeletesAndAddressChanges(t *testing.T, store string, inclusive, withArchived bool) {
	w := newWorld(t, worldOptions{members: 2000, seed: 31, inclusive: inclusive, inProcess: true, store: store})
	w.sim.SetDefaultViewIncludesArchived(withArchived)
	ctx := context.Background()
	first, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	w.checkMirror(t)
	if first.Members != int64(len(w.sim.Members(testList))) {
		t.Errorf("after the first sync the roster holds %d members; the audience has %d", first.Members, len(w.sim.Members(testList)))
	}

	ids := memberIDs(w)
	w.pass()
	for _, id := range ids[:6] {
		must(t, w.sim.Delete(testList, id))
	}
	for i, id := range ids[6:11] {
		_, err := w.sim.ChangeAddress(testList, id, fmt.Sprintf("moved.%d@example.org", i))
		must(t, err)
	}
	w.pass()
	sink := &guardedSink{Target: w.target, t: t, w: w}
	job := w.job(t)
	job.Sink = sink
	sum, err := w.engine.Run(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Reconciled || sum.Tombstoned != 11 || sum.Delivered != 5 {
		t.Errorf("run after 6 deletes and 5 address changes: reconciled %v (%s), %d left, %d delivered; want a reconcile, 11 left, the 5 new addresses delivered",
			sum.Reconciled, sum.ReconcileReason, sum.Tombstoned, sum.Delivered)
	}
	w.checkMirror(t)
	if want := int64(len(w.sim.Members(testList))); sum.Members != want {
		t.Errorf("roster holds %d members; the audience has %d", sum.Members, want)
	}
	st, err := w.store.Connection(ctx, "test")
	must(t, err)
	if st.Roster.Left != 11 {
		t.Errorf("roster state %+v: want Left 11", st.Roster)
	}
}

// TestMirrorNoChangeRun: once the roster agrees with Mailchimp, a run
// with nothing changed costs four requests (two for the window, two
// counts) and no batch, whatever the default view does with archived
// members: counting them twice or not at all would reconcile every run.
func TestMirrorNoChangeRun(t *testing.T) {
	bothDefaultViews(t, func(t *testing.T, withArchived bool) {
		w := newWorld(t, worldOptions{members: 1500, seed: 32, inProcess: true})
		w.sim.SetDefaultViewIncludesArchived(withArchived)
		ctx := context.Background()
		ids := memberIDs(w)
		for _, id := range ids[:40] {
			must(t, w.sim.Archive(testList, id))
		}
		w.pass()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		// The second run may reconcile once to learn what the default
		// view does; after that, none may.
		w.pass()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			w.pass()
			w.sim.ResetStats()
			w.target.ResetStats()
			sum, err := w.run(t, ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Reconciled || sum.MailchimpStats.Requests > 4 || w.target.Stats().Requests != 0 {
				t.Fatalf("no-change run: reconciled %v (%s), %d Mailchimp requests, %d target requests; want no reconcile, at most 4, and 0",
					sum.Reconciled, sum.ReconcileReason, sum.MailchimpStats.Requests, w.target.Stats().Requests)
			}
		}
		w.checkMirror(t)
	})
}

// TestMirrorStatusFilter: a member that moves out of the connection's
// statuses leaves the target; one that moves in arrives.
func TestMirrorStatusFilter(t *testing.T) {
	w := newWorld(t, worldOptions{members: 800, seed: 33, inProcess: true})
	ctx := context.Background()
	statuses := []string{"subscribed"}
	run := func() Summary {
		t.Helper()
		job := w.job(t)
		job.Statuses = statuses
		job.Sink = &guardedSink{Target: w.target, t: t, w: w, statuses: statuses}
		sum, err := w.engine.Run(ctx, job)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	run()
	w.checkMirror(t, statuses...)
	var moved []string
	for _, m := range w.sim.Members(testList) {
		if m.Status == "subscribed" && len(moved) < 3 {
			moved = append(moved, m.ID)
		}
	}
	w.pass()
	for _, id := range moved {
		must(t, w.sim.Unsubscribe(testList, id))
	}
	w.pass()
	if sum := run(); sum.Tombstoned != 3 {
		t.Errorf("3 members left the filter; %d left the target (reconciled %v, %s)", sum.Tombstoned, sum.Reconciled, sum.ReconcileReason)
	}
	w.checkMirror(t, statuses...)
}

// TestMirrorBuildsRosterOnUpgrade: state from a release without rosters
// (here: a watermark, and a target that already holds every member) gets a
// roster from one scan of ids, and that run sends nothing it need not.
func TestMirrorBuildsRosterOnUpgrade(t *testing.T) { forEachStore(t, testMirrorBuildsRosterOnUpgrade) }

func testMirrorBuildsRosterOnUpgrade(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 2300, seed: 34, inProcess: true, store: store})
	ctx := context.Background()
	var ops []target.Op
	for _, m := range w.sim.Members(testList) {
		body, err := json.Marshal(want(m))
		must(t, err)
		ops = append(ops, target.Upsert(body))
	}
	must(t, w.target.Apply(ctx, ops))
	w.pass()
	watermark := w.clk.Now().Truncate(time.Second)
	must(t, w.store.CompleteRun(ctx, state.Run{Connection: "test", Started: watermark, Finished: watermark, WindowEnd: watermark, Result: state.ResultOK}))
	w.pass()
	w.target.ResetStats()
	sum, err := w.run(t, ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if sum.ReconcileReason != reasonBuild || sum.Delivered != 0 || w.target.Stats().Requests != 0 {
		t.Errorf("upgrade run: reason %q, delivered %d, %d target requests; want a build, nothing sent", sum.ReconcileReason, sum.Delivered, w.target.Stats().Requests)
	}
	if want := int64(len(w.sim.Members(testList))); sum.Members != want {
		t.Errorf("built roster holds %d members; the audience has %d", sum.Members, want)
	}
	ids := memberIDs(w)
	must(t, w.sim.Delete(testList, ids[7]))
	w.pass()
	if sum, err := w.run(t, ctx, false); err != nil || sum.Tombstoned != 1 {
		t.Fatalf("after the upgrade a delete must leave the target: %+v, %v", sum, err)
	}
	w.checkMirror(t)
}

// TestReconcileUnderChurn: a reconcile scans a list that changes, grows
// and loses members while it pages (churn in step with every request).
// Offset paging then misses members; none of them may be deleted, and
// every member that left is gone from the target by the end of the run
// after the churn stops.
func TestReconcileUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("30,000 members")
	}
	bothInclusivities(t, func(t *testing.T, inclusive bool) {
		w := newWorld(t, worldOptions{members: 30000, seed: 35, inclusive: inclusive, inProcess: true})
		ctx := context.Background()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		sink := &guardedSink{Target: w.target, t: t, w: w}
		runReconciling := func() Summary {
			t.Helper()
			job := w.job(t)
			job.Sink = sink
			job.ReconcileEvery = time.Nanosecond
			sum, err := w.engine.Run(ctx, job)
			if err != nil {
				t.Fatal(err)
			}
			return sum
		}
		w.pass()
		w.sim.Churn(testList, 400) // deletes and address changes among them
		w.sim.SetChurnPerRequest(testList, 40)
		w.pass()
		churned := runReconciling()
		w.sim.SetChurnPerRequest(testList, 0)
		w.pass()
		calm := runReconciling()
		w.checkMirror(t)
		if churned.Tombstoned+calm.Tombstoned == 0 {
			t.Error("no member left the target, though churn deleted some")
		}
		t.Logf("under churn: %d left; after: %d left; %d deletes in all", churned.Tombstoned, calm.Tombstoned, len(sink.deleted))
	})
}

// scanFailingSource fails every page of a reconcile's id scan, as an
// outage that starts right after the window would.
type scanFailingSource struct{ MemberSource }

func (s scanFailingSource) Members(ctx context.Context, listID string, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error) {
	if slices.Equal(q.Fields, []string{"members.id"}) {
		return nil, errors.New("injected: the scan's page failed")
	}
	return s.MemberSource.Members(ctx, listID, q)
}

// TestMirrorFailedBuildBuildsAgain: an upgraded connection's first run
// delivers a change (which writes the roster) and then fails to scan. The
// roster is not complete, so the next run builds it again, and a member
// deleted after that still leaves the target.
func TestMirrorFailedBuildBuildsAgain(t *testing.T) {
	w := newWorld(t, worldOptions{members: 1200, seed: 36, inProcess: true})
	ctx := context.Background()
	w.pass()
	watermark := w.clk.Now().Truncate(time.Second)
	must(t, w.store.CompleteRun(ctx, state.Run{Connection: "test", Started: watermark, Finished: watermark, WindowEnd: watermark, Result: state.ResultOK}))
	ids := memberIDs(w)
	w.pass()
	must(t, w.sim.Change(testList, ids[0], func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Changed" }))
	w.pass()
	job := w.job(t)
	job.Mailchimp = scanFailingSource{job.Mailchimp}
	if sum, err := w.engine.Run(ctx, job); err == nil || sum.Delivered != 1 {
		t.Fatalf("run with a failing scan: %+v, %v; want the change delivered and the run failed", sum, err)
	}
	w.pass()
	sum, err := w.run(t, ctx, false)
	if err != nil || sum.ReconcileReason != reasonBuild {
		t.Fatalf("run after the failed build: reason %q, err %v; want a build again", sum.ReconcileReason, err)
	}
	if want := int64(len(w.sim.Members(testList))); sum.Members != want {
		t.Errorf("roster holds %d members after the build; the audience has %d", sum.Members, want)
	}
	must(t, w.sim.Delete(testList, ids[5]))
	w.pass()
	if sum, err := w.run(t, ctx, false); err != nil || sum.Tombstoned != 1 {
		t.Fatalf("a delete after the build: %d left, err %v; want 1", sum.Tombstoned, err)
	}
}

// takeoverSource lets another worker claim the connection when the
// reconcile asks about its first candidate.
type takeoverSource struct {
	MemberSource
	once  sync.Once
	claim func()
}

func (s *takeoverSource) Member(ctx context.Context, listID, hash string, fields []string) (mailchimp.Member, error) {
	s.once.Do(s.claim)
	return s.MemberSource.Member(ctx, listID, hash, fields)
}

// TestMirrorDeletesAreFenced: a worker that loses its lease during a
// reconcile sends no delete: the member may have come back since, and
// the new owner delivered it.
func TestMirrorDeletesAreFenced(t *testing.T) { forEachStore(t, testMirrorDeletesAreFenced) }

func testMirrorDeletesAreFenced(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 600, seed: 37, inProcess: true, store: store})
	ctx := context.Background()
	lease, err := w.store.ClaimLease(ctx, "test", "a", w.clk.Now(), time.Minute)
	must(t, err)
	job := w.job(t)
	job.LeaseToken = lease.Token
	if _, err := w.engine.Run(ctx, job); err != nil {
		t.Fatal(err)
	}
	w.pass()
	must(t, w.sim.Delete(testList, memberIDs(w)[3]))
	w.pass()
	sink := &guardedSink{Target: w.target, t: t, w: w}
	job = w.job(t)
	job.LeaseToken, job.Sink = lease.Token, sink
	job.Mailchimp = &takeoverSource{MemberSource: job.Mailchimp, claim: func() {
		must(t, w.store.ReleaseLease(ctx, lease))
		if _, err := w.store.ClaimLease(ctx, "test", "b", w.clk.Now(), time.Minute); err != nil {
			t.Error(err)
		}
	}}
	_, err = w.engine.Run(ctx, job)
	if !errors.Is(err, state.ErrFenced) || len(sink.deleted) != 0 {
		t.Fatalf("reconcile after losing the lease: err %v, %d deletes sent; want ErrFenced and none", err, len(sink.deleted))
	}
}

// TestMirrorReconcileAskedWithinSettle: a reconcile asked for runs even
// when the run has no window to page (it follows the last within a
// second), and a no-change run there still costs nothing.
func TestMirrorReconcileAskedWithinSettle(t *testing.T) {
	w := newWorld(t, worldOptions{members: 300, seed: 38, inProcess: true})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	must(t, w.sim.Delete(testList, memberIDs(w)[0]))
	job := w.job(t)
	job.Reconcile = true
	sum, err := w.engine.Run(ctx, job)
	if err != nil || !sum.Reconciled || sum.Tombstoned != 1 {
		t.Fatalf("run --reconcile in the same second: reconciled %v, %d left, err %v; want a reconcile and 1 left", sum.Reconciled, sum.Tombstoned, err)
	}
	w.checkMirror(t)
}
