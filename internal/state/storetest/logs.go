package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

func testFailures(t *testing.T, s state.Store) {
	ctx := context.Background()
	f1 := state.Failure{Connection: "news", WindowStart: at(0), WindowEnd: at(time.Hour),
		View: "default", Offset: 3000, Error: "target: 500", At: at(time.Hour + time.Minute)}
	f2 := state.Failure{Connection: "news", WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour),
		View: "archived", Offset: 0, Error: "mailchimp: truncated body", At: at(2*time.Hour + time.Minute)}
	other := state.Failure{Connection: "other", WindowStart: at(0), WindowEnd: at(time.Hour),
		View: "default", Offset: 1000, Error: "boom", At: at(time.Hour)}
	for _, f := range []state.Failure{f1, other, f2} {
		ok(t, s.AddFailure(ctx, f))
	}
	pending := func(name string, want ...state.Failure) {
		t.Helper()
		got, err := s.Failures(ctx, name)
		ok(t, err)
		diff(t, "pending failures of "+name, want, got)
	}
	pending("news", f1, f2)

	// A failed run covers nothing, however far its window reached.
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
		WindowEnd: at(5 * time.Hour), Finished: at(5 * time.Hour), Error: "x"}))
	pending("news", f1, f2)

	// A completed window covers failures ending at or before its end.
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(3 * time.Hour)}))
	pending("news", f2)
	pending("other", other)

	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowStart: at(time.Hour), WindowEnd: at(3 * time.Hour), Finished: at(4 * time.Hour)}))
	pending("news")
	pending("other", other)
}

func testRuns(t *testing.T, s state.Store) {
	ctx := context.Background()
	var recorded []state.Run
	for i := range 5 {
		hour := time.Duration(i) * time.Hour
		r := state.Run{Connection: "news", Started: at(hour), Finished: at(hour + time.Minute),
			WindowEnd: at(hour), Full: i == 0, Read: int64(10 * i), Delivered: int64(9 * i), Requests: int64(i + 1)}
		if i > 0 {
			r.WindowStart = at(hour - time.Hour)
		}
		if i%2 == 1 {
			r.Result, r.Error = state.ResultFailed, fmt.Sprintf("attempt %d failed", i)
			ok(t, s.FailRun(ctx, r))
		} else {
			r.Result = state.ResultOK
			ok(t, s.CompleteRun(ctx, r))
		}
		recorded = append(recorded, r)
	}
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "other", Result: state.ResultOK,
		WindowEnd: at(10 * time.Hour), Finished: at(10 * time.Hour)}))

	newestFirst := slices.Clone(recorded)
	slices.Reverse(newestFirst)
	tests := []struct {
		limit int
		want  []state.Run
	}{
		{0, nil},
		{1, newestFirst[:1]},
		{3, newestFirst[:3]},
		{5, newestFirst},
		{100, newestFirst},
	}
	for _, tt := range tests {
		got, err := s.Runs(ctx, "news", tt.limit)
		ok(t, err)
		diff(t, fmt.Sprintf("Runs(limit %d)", tt.limit), tt.want, got)
	}
}

func testConnectionsSorted(t *testing.T, s state.Store) {
	ctx := context.Background()
	names := []string{"newsletter", "alpha", "Zeta", "beta-2", "alpha2"}
	var want []state.ConnectionState
	for i, name := range names {
		started := at(time.Duration(i) * time.Minute)
		ok(t, s.StartRun(ctx, name, started))
		want = append(want, state.ConnectionState{Connection: name, FirstAttempt: started, LastAttempt: started})
	}
	// Byte order, as Go compares strings: upper case sorts first.
	slices.SortFunc(want, func(a, b state.ConnectionState) int { return strings.Compare(a.Connection, b.Connection) })
	got, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections", want, got)
}
