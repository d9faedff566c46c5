// Package storetest is the one test suite every state.Store implementation
// runs (internal/state/sqlite, dynamodb, postgres and memory; a new store runs it
// from its own package tests), so they all keep the same promises: above
// all, that the watermark never moves backwards.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Open returns a new, empty store, and a function that opens another
// handle on that same store: what a second worker process would have (its
// own connections, pool and caches, sharing only the file or the tables).
// Both arrange (with t.Cleanup) to be closed. A store that lives in one
// process (memory) has no second handle to open and returns itself.
type Open func(t *testing.T) (s state.Store, another func() state.Store)

// Run runs the suite; each subtest opens its own store.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store)
	}{
		{"UnknownConnectionIsZero", testUnknownConnection},
		{"StartRunSetsFirstAttemptOnce", testStartRun},
		{"CheckpointSaveReplaceClear", testCheckpoint},
		{"CompleteRunNeverMovesWatermarkBack", testCompleteRun},
		{"FailRunKeepsWatermarkAndCheckpoint", testFailRun},
		{"FailuresPendingUntilCovered", testFailures},
		{"RunsNewestFirst", testRuns},
		{"ConnectionsSorted", testConnectionsSorted},
		{"TimesRoundTripExactlyInUTC", testTimesRoundTrip},
		{"ConcurrentCompleteRunKeepsMax", testConcurrentCompleteRun},
		{"RejectsBadInput", testRejectsBadInput},
		{"CancelledContext", testCancelledContext},
		{"LeaseClaimRenewRelease", testLeaseLifecycle},
		{"LeaseReclaimBySameOwnerFencesOldToken", testLeaseReclaim},
		{"LeaseTokensNeverRepeat", testLeaseTokensNeverRepeat},
		{"FencedWritesChangeNothing", testFencedWrites},
		{"AlertCompareAndSet", testAlerts},
		{"RosterUnknownConnectionIsZero", testRosterUnknownConnection},
		{"RosterEmptyChangeMarksKept", testRosterEmptyChangeMarksKept},
		{"RosterAddRemoveIdempotent", testRosterAddRemove},
		{"RosterSortedByBytes", testRosterSortedByBytes},
		{"RosterReconciledAndDefaultView", testRosterReconciledAndDefaultView},
		{"RosterInConnectionState", testRosterInConnectionState},
		{"RosterPerConnection", testRosterPerConnection},
		{"RosterLarge", testRosterLarge},
		{"RosterRejectsBadInput", testRosterRejectsBadInput},
		{"RosterCancelledContext", testRosterCancelledContext},
		{"RejectedNewThenRepeat", testRejectedNewThenRepeat},
		{"RejectedDuplicatesInOneCall", testRejectedDuplicatesInOneCall},
		{"RejectedClear", testRejectedClear},
		{"RejectedSortedByBytes", testRejectedSortedByBytes},
		{"RejectedPerConnection", testRejectedPerConnection},
		{"RejectedInConnectionState", testRejectedInConnectionState},
		{"RejectedTimesRoundTripInUTC", testRejectedTimesRoundTrip},
		{"RejectedRejectsBadInput", testRejectedRejectsBadInput},
		{"RejectedCancelledContext", testRejectedCancelledContext},
		{"RejectedBesideRunsAndRoster", testRejectedBesideRuns},
		{"NoteError", testNoteError},
		{"NoteErrorRejectsBadInput", testNoteErrorRejectsBadInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := open(t)
			tt.fn(t, s)
		})
	}
	// Two handles on one store stand in for two workers: they meet only
	// where two processes would, at the file lock or at DynamoDB.
	shared := []struct {
		name string
		fn   func(t *testing.T, a, b state.Store)
	}{
		{"ConcurrentClaimsOneWinner", testConcurrentClaims},
		{"ConcurrentSetAlertOneFlip", testConcurrentAlerts},
		{"TwoHandlesNeverMoveWatermarkBack", testTwoHandlesNeverMoveWatermarkBack},
		{"TwoHandlesRosterUnion", testTwoHandlesRosterUnion},
		{"TwoHandlesRejectedLog", testTwoHandlesRejectedLog},
	}
	for _, tt := range shared {
		t.Run(tt.name, func(t *testing.T) {
			a, another := open(t)
			tt.fn(t, a, another())
		})
	}
}

// t0 has a sub-second part, so a store that truncates times fails.
var t0 = time.Date(2024, 3, 10, 9, 30, 15, 123456789, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// equateEmpty lets a store return nil or an empty slice (or map) for
// "nothing"; time.Time values compare with Equal, so locations do not count
// here (testTimesRoundTrip checks them).
var equateEmpty = cmpopts.EquateEmpty()

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := cmp.Diff(want, got, equateEmpty); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func connection(t *testing.T, s state.Store, name string) state.ConnectionState {
	t.Helper()
	c, err := s.Connection(context.Background(), name)
	ok(t, err)
	return c
}

func testUnknownConnection(t *testing.T, s state.Store) {
	ctx := context.Background()
	diff(t, "Connection", state.ConnectionState{Connection: "never"}, connection(t, s, "never"))
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections", []state.ConnectionState(nil), all)
	failures, err := s.Failures(ctx, "never")
	ok(t, err)
	diff(t, "Failures", []state.Failure(nil), failures)
	runs, err := s.Runs(ctx, "never", 10)
	ok(t, err)
	diff(t, "Runs", []state.Run(nil), runs)
}

func testStartRun(t *testing.T, s state.Store) {
	ctx := context.Background()
	ok(t, s.StartRun(ctx, "news", at(0)))
	ok(t, s.StartRun(ctx, "news", at(time.Hour)))
	want := state.ConnectionState{Connection: "news", FirstAttempt: at(0), LastAttempt: at(time.Hour)}
	diff(t, "after two starts", want, connection(t, s, "news"))

	// A completed run in between does not reset FirstAttempt.
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Hour + time.Minute)}))
	ok(t, s.StartRun(ctx, "news", at(2*time.Hour)))
	got := connection(t, s, "news")
	diff(t, "FirstAttempt", at(0), got.FirstAttempt)
	diff(t, "LastAttempt", at(2*time.Hour), got.LastAttempt)
}

func testCheckpoint(t *testing.T, s state.Store) {
	ctx := context.Background()
	steps := []struct {
		name string
		save state.Checkpoint
		want *state.Checkpoint
	}{{
		name: "first sync from the zero watermark",
		save: state.Checkpoint{WindowEnd: at(time.Hour), UpdatedAt: at(time.Minute),
			Views: map[string]time.Time{"default": at(-24 * time.Hour), "archived": {}}},
		want: &state.Checkpoint{WindowEnd: at(time.Hour), UpdatedAt: at(time.Minute),
			Views: map[string]time.Time{"default": at(-24 * time.Hour), "archived": {}}},
	}, {
		name: "replaced, not merged",
		save: state.Checkpoint{WindowEnd: at(time.Hour), UpdatedAt: at(2 * time.Minute),
			Views: map[string]time.Time{"default": at(-time.Hour + time.Nanosecond)}},
		want: &state.Checkpoint{WindowEnd: at(time.Hour), UpdatedAt: at(2 * time.Minute),
			Views: map[string]time.Time{"default": at(-time.Hour + time.Nanosecond)}},
	}, {
		name: "no views yet",
		save: state.Checkpoint{WindowStart: at(-time.Hour), WindowEnd: at(time.Hour), UpdatedAt: at(3 * time.Minute)},
		want: &state.Checkpoint{WindowStart: at(-time.Hour), WindowEnd: at(time.Hour), UpdatedAt: at(3 * time.Minute)},
	}}
	for _, step := range steps {
		ok(t, s.SaveCheckpoint(ctx, "news", step.save))
		got := connection(t, s, "news").Checkpoint
		diff(t, step.name, step.want, got)
		if got != nil && got.Views == nil {
			t.Errorf("%s: Views is nil; a stored checkpoint must come back with a map the engine can write to", step.name)
		}
	}
	if cp := connection(t, s, "other").Checkpoint; cp != nil {
		t.Errorf("another connection got a checkpoint: %+v", cp)
	}

	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(4 * time.Minute)}))
	diff(t, "checkpoint after CompleteRun", (*state.Checkpoint)(nil), connection(t, s, "news").Checkpoint)
}

// progress is the part of ConnectionState that completing and failing runs
// change.
type progress struct {
	Watermark, LastSuccess                  time.Time
	LastError                               string
	LastRead, LastDelivered, TotalDelivered int64
}

func progressOf(c state.ConnectionState) progress {
	return progress{c.Watermark, c.LastSuccess, c.LastError, c.LastRead, c.LastDelivered, c.TotalDelivered}
}

func testCompleteRun(t *testing.T, s state.Store) {
	ctx := context.Background()
	complete := func(end time.Duration, finished time.Duration, read, delivered int64) func() error {
		return func() error {
			return s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
				WindowEnd: at(end), Finished: at(finished), Read: read, Delivered: delivered})
		}
	}
	steps := []struct {
		name string
		do   func() error
		want progress
	}{
		{"first window", complete(time.Hour, time.Hour+time.Second, 12, 10),
			progress{at(time.Hour), at(time.Hour + time.Second), "", 12, 10, 10}},
		{"a failure sets LastError only", func() error {
			return s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
				WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour), Finished: at(2 * time.Hour), Error: "target: 503"})
		}, progress{at(time.Hour), at(time.Hour + time.Second), "target: 503", 12, 10, 10}},
		{"next window clears LastError", complete(3*time.Hour, 3*time.Hour+time.Second, 7, 5),
			progress{at(3 * time.Hour), at(3*time.Hour + time.Second), "", 7, 5, 15}},
		{"an older window keeps the newer watermark", complete(30*time.Minute, 4*time.Hour, 2, 1),
			progress{at(3 * time.Hour), at(4 * time.Hour), "", 2, 1, 16}},
		{"the same window end again", complete(3*time.Hour, 5*time.Hour, 0, 0),
			progress{at(3 * time.Hour), at(5 * time.Hour), "", 0, 0, 16}},
		{"one nanosecond later", complete(3*time.Hour+time.Nanosecond, 6*time.Hour, 1, 1),
			progress{at(3*time.Hour + time.Nanosecond), at(6 * time.Hour), "", 1, 1, 17}},
	}
	for _, step := range steps {
		ok(t, step.do())
		diff(t, step.name, step.want, progressOf(connection(t, s, "news")))
	}
	diff(t, "untouched connection", state.ConnectionState{Connection: "other"}, connection(t, s, "other"))
}

func testFailRun(t *testing.T, s state.Store) {
	ctx := context.Background()
	// Never completed: the watermark stays zero.
	ok(t, s.StartRun(ctx, "fresh", at(0)))
	ok(t, s.FailRun(ctx, state.Run{Connection: "fresh", Result: state.ResultFailed,
		WindowEnd: at(time.Hour), Finished: at(time.Minute), Error: "mailchimp: 401 API Key Invalid"}))
	want := state.ConnectionState{Connection: "fresh", FirstAttempt: at(0), LastAttempt: at(0),
		LastError: "mailchimp: 401 API Key Invalid", LastErrorAt: at(time.Minute)}
	diff(t, "never completed", want, connection(t, s, "fresh"))

	// Completed once, then part-way through the next window.
	ok(t, s.StartRun(ctx, "news", at(0)))
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Hour), Read: 3, Delivered: 3}))
	ok(t, s.StartRun(ctx, "news", at(2*time.Hour)))
	cp := state.Checkpoint{WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour), UpdatedAt: at(2*time.Hour + time.Minute),
		Views: map[string]time.Time{"default": at(90 * time.Minute)}}
	ok(t, s.SaveCheckpoint(ctx, "news", cp))
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultCancelled,
		WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour), Finished: at(2*time.Hour + 2*time.Minute),
		Read: 100, Delivered: 90, Error: "context canceled"}))
	want = state.ConnectionState{Connection: "news", Watermark: at(time.Hour), FirstAttempt: at(0),
		LastAttempt: at(2 * time.Hour), LastSuccess: at(time.Hour), LastError: "context canceled",
		LastErrorAt: at(2*time.Hour + 2*time.Minute), LastRead: 3, LastDelivered: 3, TotalDelivered: 3, Checkpoint: &cp}
	diff(t, "after a failed run", want, connection(t, s, "news"))
}
