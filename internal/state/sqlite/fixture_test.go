package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
)

// TestOpensPreviousReleaseFile opens testdata/schema2.db, a state file as
// the release before the stores got packages of their own left it (schema
// version 2, written by its state.OpenSQLite and vacuumed), and reads
// every value back. The file was made once, by these calls:
//
//	StartRun(news, t0)
//	AddFailure(news, window t0-1h..t0, default, offset 1000, "target: 500 (resolved)", at t0+1m)
//	CompleteRun(news, started t0, finished t0+2m, window ..t0+1h, full, ok, read 25000, delivered 24990, 27 requests)
//	ClaimLease(news, worker-1, t0+2h, ttl 1m)                       -> token 1
//	StartRun(news, t0+2h)
//	SaveCheckpoint(news, window t0+1h..t0+2h, default t0+90m, archived zero, updated t0+2h30s, token 1)
//	AddFailure(news, window t0+1h..t0+2h, archived, offset 2000, "mailchimp: truncated body", at t0+2h40s)
//	FailRun(news, started t0+2h, finished t0+2h50s, window t0+1h..t0+2h, failed, 1000, 900, 4, token 1)
//	SetAlert(news, lag, open, t0+3h)
//	StartRun(other, t0-24h)
//
// The file is copied first: opening it writes (the WAL, and any
// migration of a later schema), and the committed fixture must stay as it
// was released.
func TestOpensPreviousReleaseFile(t *testing.T) {
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("testdata", "schema2.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := state.Open(ctx, "sqlite://"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	conns, err := s.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantConns := []state.ConnectionState{{
		Connection: "news", Watermark: at(time.Hour), FirstAttempt: at(0), LastAttempt: at(2 * time.Hour),
		LastSuccess: at(2 * time.Minute), LastError: "mailchimp: truncated body",
		LastRead: 25000, LastDelivered: 24990, TotalDelivered: 24990,
		Checkpoint: &state.Checkpoint{WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour),
			Views:     map[string]time.Time{"default": at(90 * time.Minute), "archived": {}},
			UpdatedAt: at(2*time.Hour + 30*time.Second)},
		Alerts: map[string]time.Time{"lag": at(3 * time.Hour)},
	}, {
		Connection: "other", FirstAttempt: at(-24 * time.Hour), LastAttempt: at(-24 * time.Hour),
	}}
	if d := cmp.Diff(wantConns, conns); d != "" {
		t.Errorf("Connections (-want +got):\n%s", d)
	}

	checkFixtureLogs(t, s)
	checkFixtureLease(t, s)
	checkFixtureRoster(t, s)
	checkFixtureRejected(t, s)
}

// checkFixtureRejected: the previous release had no rejected log and did
// not date errors, so after the upgrade no connection has a log and the
// last error has no LastErrorAt (Connections above says so); the
// upgraded rows take refusals and notes.
func checkFixtureRejected(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"news", "other"} {
		if log, err := s.RejectedLog(ctx, name); err != nil || len(log) != 0 {
			t.Errorf("%s: rejected log after the upgrade: %v, %v; want none", name, log, err)
		}
	}
	id, err := state.ParseMemberID("62dbd2e1a4c87c3b0cf7e4a5d3c1b2a0")
	if err != nil {
		t.Fatal(err)
	}
	refused := state.Rejection{Member: id, Key: "ann@example.com", Status: 422, Reason: "bad phone",
		LastAttempt: t0.Add(6 * time.Hour)}
	if err := s.RecordRejections(ctx, "news", []state.Rejection{refused}); err != nil {
		t.Fatal(err)
	}
	// Any note is newer than an error the previous release left undated.
	if err := s.NoteError(ctx, "news", "target: 503", t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	entry := refused
	entry.FirstSeen, entry.Attempts = refused.LastAttempt, 1
	want := state.RejectedState{Count: 1, Sample: &entry}
	if d := cmp.Diff(want, c.Rejected); d != "" {
		t.Errorf("Rejected after a refusal (-want +got):\n%s", d)
	}
	if c.LastError != "target: 503" || !c.LastErrorAt.Equal(t0.Add(-time.Hour)) {
		t.Errorf("after a note: LastError %q at %v", c.LastError, c.LastErrorAt)
	}
}

// checkFixtureRoster: the previous release kept no rosters, so after the
// upgrade no connection has one (Kept false: its next run builds it), and
// the upgraded rows take roster writes, through the log and buckets that
// version 3 added.
func checkFixtureRoster(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"news", "other"} {
		c, err := s.Connection(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(state.RosterState{}, c.Roster); d != "" {
			t.Errorf("%s: RosterState after the upgrade (-want +got):\n%s", name, d)
		}
		ids, err := s.Roster(ctx, name)
		if err != nil || len(ids) != 0 {
			t.Errorf("%s: roster after the upgrade: %v, %v; want none", name, ids, err)
		}
		if n, err := s.RosterSize(ctx, name); err != nil || n != 0 {
			t.Errorf("%s: RosterSize after the upgrade: %d, %v; want 0", name, n, err)
		}
	}

	id, err := state.ParseMemberID("62dbd2e1a4c87c3b0cf7e4a5d3c1b2a0")
	if err != nil {
		t.Fatal(err)
	}
	reconciled := t0.Add(5 * time.Hour)
	if err := s.UpdateRoster(ctx, "news", state.RosterChange{Add: []state.MemberID{id},
		Reconciled: reconciled, DefaultView: state.DefaultViewWithoutArchived}); err != nil {
		t.Fatal(err)
	}
	// Members is exact after RosterSize: the add waits in the log until then.
	if n, err := s.RosterSize(ctx, "news"); err != nil || n != 1 {
		t.Errorf("RosterSize after a roster write: %d, %v; want 1", n, err)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	want := state.RosterState{Kept: true, Members: 1, LastReconcile: reconciled, DefaultView: state.DefaultViewWithoutArchived}
	if d := cmp.Diff(want, c.Roster); d != "" {
		t.Errorf("RosterState after a roster write (-want +got):\n%s", d)
	}
	if c.Watermark != t0.Add(time.Hour) || c.TotalDelivered != 24990 {
		t.Errorf("a roster write changed the rest of the upgraded row: %+v", c)
	}
}

// checkFixtureLogs reads the fixture's run history and pending failures;
// the failure the completed run resolved is not among them.
func checkFixtureLogs(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	runs, err := s.Runs(ctx, "news", 10)
	if err != nil {
		t.Fatal(err)
	}
	wantRuns := []state.Run{{
		Connection: "news", Started: at(2 * time.Hour), Finished: at(2*time.Hour + 50*time.Second),
		WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour), Result: state.ResultFailed,
		Read: 1000, Delivered: 900, Requests: 4, Error: "mailchimp: truncated body",
	}, {
		Connection: "news", Started: at(0), Finished: at(2 * time.Minute), WindowEnd: at(time.Hour),
		Full: true, Result: state.ResultOK, Read: 25000, Delivered: 24990, Requests: 27,
	}}
	if d := cmp.Diff(wantRuns, runs); d != "" {
		t.Errorf("Runs (-want +got):\n%s", d)
	}

	failures, err := s.Failures(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	wantFailures := []state.Failure{{Connection: "news", WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour),
		View: "archived", Offset: 2000, Error: "mailchimp: truncated body", At: at(2*time.Hour + 40*time.Second)}}
	if d := cmp.Diff(wantFailures, failures); d != "" {
		t.Errorf("Failures (-want +got):\n%s", d)
	}
}

// checkFixtureLease reads the fixture's lease the only ways the Store
// offers: who holds it and until when, which token is current, and which
// token the next claim gets.
func checkFixtureLease(t *testing.T, s state.Store) {
	t.Helper()
	ctx := context.Background()
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	_, err := s.ClaimLease(ctx, "news", "worker-2", at(2*time.Hour+30*time.Second), time.Minute)
	var held *state.LeaseHeldError
	if !errors.As(err, &held) {
		t.Fatalf("claim while worker-1 holds it: got %v, want a *LeaseHeldError", err)
	}
	if d := cmp.Diff(state.LeaseHeldError{Connection: "news", Owner: "worker-1", Expires: at(2*time.Hour + time.Minute)}, *held); d != "" {
		t.Errorf("lease holder (-want +got):\n%s", d)
	}
	err = s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: at(3 * time.Hour), Token: 2})
	if !errors.Is(err, state.ErrFenced) || !strings.Contains(err.Error(), `current lease is token 1 (owner "worker-1")`) {
		t.Errorf("write with token 2: got %v, want ErrFenced naming token 1 of worker-1", err)
	}
	l, err := s.ClaimLease(ctx, "news", "worker-2", at(2*time.Hour+time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(state.Lease{Connection: "news", Owner: "worker-2", Token: 2, Expires: at(2*time.Hour + 2*time.Minute)}, l); d != "" {
		t.Errorf("claim after the expiry (-want +got):\n%s", d)
	}
	if changed, err := s.SetAlert(ctx, "news", "lag", true, at(4*time.Hour)); err != nil || changed {
		t.Errorf("opening the open lag alert: changed %v, %v; want no change", changed, err)
	}
}
