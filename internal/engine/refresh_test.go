package engine

import (
	"context"
	"errors"
	"testing"
	"time"

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
	w.checkInSync(t)
	if _, ok := w.target.Records()[never]; ok {
		t.Error("the target got a record for a member that never existed")
	}
	st, _ := w.store.Connection(context.Background(), "test")
	if st.Roster.Members != 49 {
		t.Errorf("roster holds %d, want 49", st.Roster.Members)
	}
}

func TestRefreshIsFencedByTheLease(t *testing.T) {
	w := newWorld(t, worldOptions{members: 20, seed: 29, inProcess: true})
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
