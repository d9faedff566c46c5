package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

func testTimesRoundTrip(t *testing.T, s state.Store) {
	ctx := context.Background()
	// Callers may pass local times; the store hands back the same instants
	// in UTC. The Apollo landing is before the unix epoch, so negative
	// offsets are covered too.
	zone := time.FixedZone("UTC-7", -7*60*60)
	local := func(d time.Duration) time.Time { return at(d).In(zone) }
	apollo := time.Date(1969, 7, 20, 13, 17, 40, 987654321, zone)

	ok(t, s.StartRun(ctx, "news", local(time.Nanosecond)))
	cp := state.Checkpoint{WindowStart: apollo, WindowEnd: local(time.Hour), UpdatedAt: local(time.Minute + 1),
		Views: map[string]time.Time{"default": local(30*time.Minute + 999), "archived": apollo}}
	ok(t, s.SaveCheckpoint(ctx, "news", cp))
	f := state.Failure{Connection: "news", WindowStart: apollo, WindowEnd: local(time.Hour + 2),
		View: "default", Error: "x", At: local(time.Minute + 3)}
	ok(t, s.AddFailure(ctx, f))

	check := func(what string, want, got time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
		}
		if got.Location() != time.UTC {
			t.Errorf("%s is in %s, want UTC", what, got.Location())
		}
	}
	c := connection(t, s, "news")
	check("FirstAttempt", local(time.Nanosecond), c.FirstAttempt)
	check("LastAttempt", local(time.Nanosecond), c.LastAttempt)
	if c.Checkpoint == nil {
		t.Fatal("checkpoint missing")
	}
	check("Checkpoint.WindowStart", cp.WindowStart, c.Checkpoint.WindowStart)
	check("Checkpoint.WindowEnd", cp.WindowEnd, c.Checkpoint.WindowEnd)
	check("Checkpoint.UpdatedAt", cp.UpdatedAt, c.Checkpoint.UpdatedAt)
	for view, want := range cp.Views {
		check("Checkpoint.Views["+view+"]", want, c.Checkpoint.Views[view])
	}
	failures, err := s.Failures(ctx, "news")
	ok(t, err)
	if len(failures) != 1 {
		t.Fatalf("got %d failures, want 1", len(failures))
	}
	check("Failure.WindowStart", f.WindowStart, failures[0].WindowStart)
	check("Failure.WindowEnd", f.WindowEnd, failures[0].WindowEnd)
	check("Failure.At", f.At, failures[0].At)

	run := state.Run{Connection: "news", Result: state.ResultOK, Started: local(4),
		Finished: local(2*time.Hour + 5), WindowStart: apollo, WindowEnd: local(time.Hour + 6)}
	ok(t, s.CompleteRun(ctx, run))
	c = connection(t, s, "news")
	check("Watermark", run.WindowEnd, c.Watermark)
	check("LastSuccess", run.Finished, c.LastSuccess)
	runs, err := s.Runs(ctx, "news", 1)
	ok(t, err)
	if len(runs) != 1 {
		t.Fatalf("got %d runs, want 1", len(runs))
	}
	check("Run.Started", run.Started, runs[0].Started)
	check("Run.Finished", run.Finished, runs[0].Finished)
	check("Run.WindowStart", run.WindowStart, runs[0].WindowStart)
	check("Run.WindowEnd", run.WindowEnd, runs[0].WindowEnd)
}

// testConcurrentCompleteRun races many completions (window ends in shuffled
// order) against failures and checkpoints, while a reader checks that the
// watermark it sees never goes down. Run it under -race.
func testConcurrentCompleteRun(t *testing.T, s state.Store) {
	ctx := context.Background()
	const n = 32
	var writers sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		// 13 is coprime with n, so the window ends are a permutation of
		// 0..n-1 minutes: completions arrive out of order.
		end := at(time.Duration(i*13%n) * time.Minute)
		writers.Go(func() {
			errs <- s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
				WindowEnd: end, Finished: at(time.Hour), Delivered: 1})
		})
		writers.Go(func() {
			errs <- s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
				WindowEnd: at(2 * time.Hour), Finished: at(time.Hour), Error: "x"})
		})
		writers.Go(func() {
			errs <- s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: at(2 * time.Hour)})
		})
	}

	done := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		var last time.Time
		for {
			select {
			case <-done:
				return
			default:
			}
			c, err := s.Connection(ctx, "news")
			if err != nil {
				t.Errorf("read during writes: %v", err)
				return
			}
			if c.Watermark.Before(last) {
				t.Errorf("watermark moved backwards: %s after %s", c.Watermark, last)
			}
			last = c.Watermark
		}
	})
	writers.Wait()
	close(done)
	reader.Wait()
	close(errs)
	for err := range errs {
		ok(t, err)
	}

	c := connection(t, s, "news")
	diff(t, "Watermark", at((n-1)*time.Minute), c.Watermark)
	diff(t, "TotalDelivered", int64(n), c.TotalDelivered)
	runs, err := s.Runs(ctx, "news", 3*n)
	ok(t, err)
	diff(t, "number of runs", 2*n, len(runs))
}

func testRejectsBadInput(t *testing.T, s state.Store) {
	ctx := context.Background()
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Hour), Delivered: 4}))
	before := connection(t, s, "news")

	full := state.Run{Result: state.ResultOK, WindowEnd: at(5 * time.Hour), Finished: at(5 * time.Hour)}
	tests := []struct {
		name string
		do   func() error
	}{
		{"complete without window end", func() error {
			return s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK, Finished: at(2 * time.Hour)})
		}},
		{"complete without finish time", func() error {
			return s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK, WindowEnd: at(2 * time.Hour)})
		}},
		{"complete with no connection", func() error { return s.CompleteRun(ctx, full) }},
		{"fail with no connection", func() error { return s.FailRun(ctx, full) }},
		{"start with no connection", func() error { return s.StartRun(ctx, "", at(0)) }},
		{"checkpoint with no connection", func() error { return s.SaveCheckpoint(ctx, "", state.Checkpoint{}) }},
		{"failure with no connection", func() error { return s.AddFailure(ctx, state.Failure{Error: "x"}) }},
		{"claim with no connection", func() error { _, err := s.ClaimLease(ctx, "", "A", at(0), time.Minute); return err }},
		{"claim with no owner", func() error { _, err := s.ClaimLease(ctx, "fresh", "", at(0), time.Minute); return err }},
		{"claim with no time", func() error { _, err := s.ClaimLease(ctx, "fresh", "A", time.Time{}, time.Minute); return err }},
		{"claim with a zero ttl", func() error { _, err := s.ClaimLease(ctx, "fresh", "A", at(0), 0); return err }},
		{"claim expiring past 2262", func() error {
			_, err := s.ClaimLease(ctx, "fresh", "A", time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC), 24*time.Hour)
			return err
		}},
		{"renew an unclaimed lease", func() error {
			_, err := s.RenewLease(ctx, state.Lease{Connection: "fresh", Owner: "A"}, at(0), time.Minute)
			return err
		}},
		{"release an unclaimed lease", func() error { return s.ReleaseLease(ctx, state.Lease{Connection: "fresh", Owner: "A"}) }},
		{"release with no connection", func() error { return s.ReleaseLease(ctx, state.Lease{Owner: "A", Token: 1}) }},
		{"alert with no connection", func() error { _, err := s.SetAlert(ctx, "", "lag", true, at(0)); return err }},
		{"alert with no kind", func() error { _, err := s.SetAlert(ctx, "fresh", "", true, at(0)); return err }},
		{"alert opened at no time", func() error { _, err := s.SetAlert(ctx, "fresh", "lag", true, time.Time{}); return err }},
	}
	for _, tt := range tests {
		if err := tt.do(); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}

	diff(t, "state after rejected writes", before, connection(t, s, "news"))
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections", []state.ConnectionState{before}, all)
	runs, err := s.Runs(ctx, "news", 10)
	ok(t, err)
	diff(t, "number of runs", 1, len(runs))
}

func testCancelledContext(t *testing.T, s state.Store) {
	ok(t, s.CompleteRun(context.Background(), state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Hour)}))
	before := connection(t, s, "news")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"CompleteRun": func() error {
			return s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
				WindowEnd: at(5 * time.Hour), Finished: at(5 * time.Hour)})
		},
		"FailRun":        func() error { return s.FailRun(ctx, state.Run{Connection: "news", Error: "x"}) },
		"StartRun":       func() error { return s.StartRun(ctx, "news", at(5*time.Hour)) },
		"SaveCheckpoint": func() error { return s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: at(5 * time.Hour)}) },
		"AddFailure":     func() error { return s.AddFailure(ctx, state.Failure{Connection: "news", Error: "x"}) },
		"Connection":     func() error { _, err := s.Connection(ctx, "news"); return err },
		"Connections":    func() error { _, err := s.Connections(ctx); return err },
		"Failures":       func() error { _, err := s.Failures(ctx, "news"); return err },
		"Runs":           func() error { _, err := s.Runs(ctx, "news", 10); return err },
		"ClaimLease": func() error {
			_, err := s.ClaimLease(ctx, "news", "A", at(5*time.Hour), time.Minute)
			return err
		},
		"RenewLease": func() error {
			_, err := s.RenewLease(ctx, state.Lease{Connection: "news", Owner: "A", Token: 1}, at(5*time.Hour), time.Minute)
			return err
		},
		"ReleaseLease": func() error { return s.ReleaseLease(ctx, state.Lease{Connection: "news", Owner: "A", Token: 1}) },
		"SetAlert":     func() error { _, err := s.SetAlert(ctx, "news", "lag", true, at(5*time.Hour)); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", name, err)
		}
	}
	diff(t, "state after cancelled writes", before, connection(t, s, "news"))
}
