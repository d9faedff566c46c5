package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
)

func TestRefreshDeliversWhatMailchimpHolds(t *testing.T) {
	w := newWorld(t, worldOptions{members: 50, seed: 23, inProcess: true})
	if _, err := w.run(t, context.Background(), false); err != nil {
		t.Fatal(err)
	}
	members := w.sim.Members(testList)
	edited, deleted := members[3].ID, members[7].ID
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.sim.Change(testList, edited, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Live" }))
	must(w.sim.Delete(testList, deleted))
	w.target.ResetStats()
	never := "0123456789abcdef0123456789abcdef"

	sum, err := w.engine.Refresh(context.Background(), w.job(t), []string{edited, deleted, never})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{edited: RefreshDelivered, deleted: RefreshGone, never: RefreshAbsent}
	for id, o := range want {
		if sum.Outcome[id] != o {
			t.Errorf("outcome of %s = %q, want %q", id, sum.Outcome[id], o)
		}
	}
	// A GET per member, and, for the 404s, one check that the audience
	// itself still answers.
	if sum.MailchimpRequests != 4 {
		t.Errorf("MailchimpRequests = %d, want 4", sum.MailchimpRequests)
	}
	// An event about nobody costs its GET only: the roster says there is
	// nothing to delete, so the audience need not be checked.
	if again, err := w.engine.Refresh(context.Background(), w.job(t), []string{never}); err != nil || again.MailchimpRequests != 1 {
		t.Errorf("refresh of a member who never existed: %v, %d Mailchimp requests; want 1", err, again.MailchimpRequests)
	}
	w.checkInSync(t)
	if _, ok := w.target.Records()[never]; ok {
		t.Error("the target got a record for a member that never existed")
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if st.Roster.Members != 49 {
		t.Errorf("roster holds %d, want 49", st.Roster.Members)
	}
}

// The fencing tests run on every real store: a write carrying a token
// that is no longer the connection's current one is refused by the store
// itself (state.ErrFenced), each store its own way.
func TestRefreshIsFencedByTheLease(t *testing.T) { forEachStore(t, testRefreshIsFencedByTheLease) }

func testRefreshIsFencedByTheLease(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 20, seed: 29, inProcess: true, store: store})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	lease, err := w.store.ClaimLease(ctx, "test", "webhooks", w.clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.ReleaseLease(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.ClaimLease(ctx, "test", "run", w.clk.Now(), time.Minute); err != nil {
		t.Fatal(err)
	}
	id := w.sim.Members(testList)[0].ID
	if err := w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Late" }); err != nil {
		t.Fatal(err)
	}
	job := w.job(t)
	job.LeaseToken = lease.Token
	_, err = w.engine.Refresh(ctx, job, []string{id})
	if !errors.Is(err, state.ErrFenced) {
		t.Fatalf("refresh under a lease taken over: %v, want ErrFenced", err)
	}
	if rec := w.target.Records()[id]; rec["firstname"] == "Late" {
		t.Error("a fenced refresh delivered")
	}
}

// slowMember holds each one-member fetch, after Mailchimp answered, until
// the gate opens: a slow fetch of what is by then an older state.
type slowMember struct {
	MemberSource
	fetched chan struct{} // a signal per fetch answered
	gate    chan struct{}
}

func (s *slowMember) Member(ctx context.Context, listID, hash string, fields []string) (mailchimp.Member, error) {
	m, err := s.MemberSource.Member(ctx, listID, hash, fields)
	s.fetched <- struct{}{}
	<-s.gate
	return m, err
}

// The race issue 12 names: a webhook's slow fetch of an older state
// finishes after a run delivered a newer one. The run could only start
// once the refresh's lease had expired, and then the refresh's delivery is
// fenced: the newer value stays.
func TestASlowRefreshNeverOverwritesANewerRun(t *testing.T) {
	forEachStore(t, testASlowRefreshNeverOverwritesANewerRun)
}

func testASlowRefreshNeverOverwritesANewerRun(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 20, seed: 31, inProcess: true, store: store})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	id := w.sim.Members(testList)[2].ID
	setName := func(name string) {
		t.Helper()
		if err := w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = name }); err != nil {
			t.Fatal(err)
		}
	}
	setName("Older")
	lease, err := w.store.ClaimLease(ctx, "test", "worker/webhooks", w.clk.Now(), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	job := w.job(t)
	gated := &slowMember{MemberSource: job.Mailchimp, fetched: make(chan struct{}, 1), gate: make(chan struct{})}
	job.Mailchimp, job.LeaseToken = gated, lease.Token
	done := make(chan error, 1)
	go func() {
		_, err := w.engine.Refresh(ctx, job, []string{id})
		done <- err
	}()
	<-gated.fetched // the refresh holds "Older"

	// Its lease runs out; a run claims the connection and delivers newer.
	w.clk.Advance(time.Minute)
	setName("Newer")
	w.pass()
	runLease, err := w.store.ClaimLease(ctx, "test", "worker", w.clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	runJob := w.job(t)
	runJob.LeaseToken = runLease.Token
	if _, err := w.engine.Run(ctx, runJob); err != nil {
		t.Fatal(err)
	}
	if got := w.target.Records()[id]["firstname"]; got != "Newer" {
		t.Fatalf("after the run the target holds %v, want Newer", got)
	}

	close(gated.gate)
	if err := <-done; !errors.Is(err, state.ErrFenced) {
		t.Errorf("the late refresh: %v, want ErrFenced", err)
	}
	if got := w.target.Records()[id]["firstname"]; got != "Newer" {
		t.Errorf("the target holds %v after the late refresh, want Newer", got)
	}
}

// Batches of a refresh are fenced each on its own, several at once (a
// test for the race detector, and of each store's concurrent checks).
func TestRefreshFencesConcurrentBatches(t *testing.T) {
	forEachStore(t, testRefreshFencesConcurrentBatches)
}

func testRefreshFencesConcurrentBatches(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 40, seed: 37, inProcess: true, store: store})
	ctx := context.Background()
	if _, err := w.run(t, ctx, false); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range w.sim.Members(testList)[:32] {
		if err := w.sim.Change(testList, m.ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Batch" }); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	lease, err := w.store.ClaimLease(ctx, "test", "worker/webhooks", w.clk.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	job := w.job(t)
	job.LeaseToken, job.BatchSize = lease.Token, 1
	if _, err := w.engine.Refresh(ctx, job, ids); err != nil {
		t.Fatal(err)
	}
	w.checkInSync(t)
}
