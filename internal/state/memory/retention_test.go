package memory

import (
	"context"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/google/go-cmp/cmp"
)

// TestRetention: each append trims its log to the newest entries, per
// connection; resolved failures are dropped at once.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2024, 3, 10, 9, 30, 15, 0, time.UTC)
	s := New()
	s.keepRuns, s.keepFailures = 3, 2
	for i := range 5 {
		end := t0.Add(time.Duration(i) * time.Hour)
		for _, name := range []string{"news", "other"} {
			if err := s.CompleteRun(ctx, state.Run{Connection: name, Result: state.ResultOK,
				WindowEnd: end, Finished: end, Delivered: 1}); err != nil {
				t.Fatal(err)
			}
		}
		// Pending failures beyond the window of every completed run.
		if err := s.AddFailure(ctx, state.Failure{Connection: "news", WindowEnd: t0.Add(100 * time.Hour),
			Offset: i, Error: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"news", "other"} {
		runs, err := s.Runs(ctx, name, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ends []time.Time
		for _, r := range runs {
			ends = append(ends, r.WindowEnd)
		}
		want := []time.Time{t0.Add(4 * time.Hour), t0.Add(3 * time.Hour), t0.Add(2 * time.Hour)}
		if d := cmp.Diff(want, ends); d != "" {
			t.Errorf("%s: kept runs (-want +got):\n%s", name, d)
		}
	}
	offsets := func() []int {
		t.Helper()
		failures, err := s.Failures(ctx, "news")
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, f := range failures {
			out = append(out, f.Offset)
		}
		return out
	}
	if d := cmp.Diff([]int{3, 4}, offsets()); d != "" {
		t.Errorf("kept failures (-want +got):\n%s", d)
	}
	if err := s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: t0.Add(100 * time.Hour), Finished: t0.Add(100 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := offsets(); len(got) != 0 {
		t.Errorf("failures after a run covered them: %v", got)
	}
	if n := len(s.conns["news"].failures); n != 0 {
		t.Errorf("%d resolved failures still held", n)
	}
}
