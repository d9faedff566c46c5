package schedule

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// runAsync starts s.Run and returns the context's cancel and Run's result.
func runAsync(t *testing.T, s *Scheduler) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return cancel, done
}

// When the context ends, a run in flight finishes undisturbed (its context
// is not cancelled within the grace period), no new run starts, and Run
// returns once the run is done.
func TestShutdownWaitsForRunsInFlight(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	// "later" ran 55 s ago: it is due 5 s from now, inside the grace period.
	leases.StartRun("later", t0.Add(-55*time.Second))
	started := make(chan string, 2)
	finish := make(chan struct{})
	var runCtxErr error
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, LeaseTTL: 3 * time.Second, Jitter: noJitter,
		Logger: quiet(),
		Run: func(ctx context.Context, name string, _ Lease) error {
			leases.StartRun(name, clk.Now())
			started <- name
			if name == "slow" {
				<-finish // ignores ctx: a run busy between checkpoints
				runCtxErr = ctx.Err()
			}
			return nil
		}}, []Connection{{Name: "slow", Every: time.Hour}, {Name: "later", Every: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runAsync(t, s)
	if got := recv(t, started, "slow's run"); got != "slow" {
		t.Fatalf("%s started first, want slow", got)
	}
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	// slow's loop renews, later's loop waits for its time.
	if err := clk.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The grace timer and slow's renewals are left.
	if err := clk.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(6 * time.Second) // past later's time, within the grace
	if err := clk.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) while a run was in flight", err)
	case name := <-started:
		t.Fatalf("%s started after shutdown began", name)
	default:
	}
	close(finish)
	if err := recv(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v", err)
	}
	select {
	case name := <-started: // Run waited for every loop, so this is final
		t.Errorf("%s started after shutdown began", name)
	default:
	}
	if runCtxErr != nil {
		t.Errorf("the run's context ended within the grace period: %v", runCtxErr)
	}
	if l := leases.lease("slow"); l.Owner != "" {
		t.Errorf("lease not released: %+v", l)
	}
	if !clk.Now().Equal(t0.Add(6 * time.Second)) {
		t.Errorf("clock moved to %s", clk.Now())
	}
}

// A run that does not return within the grace period has its context
// cancelled exactly when the grace period ends.
func TestShutdownCancelsRunsAfterGrace(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	grace := 8 * time.Second
	running := make(chan context.Context, 1)
	cancelledAt := make(chan time.Time, 1)
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, LeaseTTL: time.Minute, Grace: grace,
		Jitter: noJitter, Logger: quiet(),
		Run: func(ctx context.Context, name string, _ Lease) error {
			leases.StartRun(name, clk.Now())
			running <- ctx
			<-ctx.Done() // only its own context stops it
			cancelledAt <- clk.Now()
			return ctx.Err()
		}}, []Connection{{Name: "stubborn"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel, done := runAsync(t, s)
	runCtx := recv(t, running, "the run")
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	// Let time pass first, so the test shows the grace counts from the
	// shutdown (renewals come every 20 s, none falls in this test).
	for range 2 {
		if err := clk.WaitForSleepers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(5 * time.Second)
	}
	stoppedAt := clk.Now()
	cancel()
	if err := clk.WaitForSleepers(ctx, 2); err != nil { // grace timer + renewals
		t.Fatal(err)
	}
	clk.Advance(grace - time.Millisecond)
	if err := clk.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := runCtx.Err(); err != nil {
		t.Fatalf("run cancelled %s before the grace period ended", clk.Now().Sub(stoppedAt.Add(grace)))
	}
	clk.Advance(time.Millisecond)
	if at := recv(t, cancelledAt, "the run's cancellation"); !at.Equal(stoppedAt.Add(grace)) {
		t.Errorf("run cancelled at %s, want %s", at, stoppedAt.Add(grace))
	}
	if err := recv(t, done, "Run to return"); err != nil {
		t.Errorf("Run = %v", err)
	}
	if l := leases.lease("stubborn"); l.Owner != "" {
		t.Errorf("lease not released after the run returned: %+v", l)
	}
}

// No more than MaxParallel runs are in flight at once; the rest wait for a
// slot and run as slots free up.
func TestMaxParallel(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	var (
		mu             sync.Mutex
		inFlight, peak int
	)
	started := make(chan string, 4)
	release := map[string]chan struct{}{}
	names := []string{"a", "b", "c", "d"}
	var conns []Connection
	for _, n := range names {
		release[n] = make(chan struct{})
		conns = append(conns, Connection{Name: n, Every: time.Hour})
	}
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, MaxParallel: 2, Jitter: noJitter, Logger: quiet(),
		Run: func(ctx context.Context, name string, _ Lease) error {
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			leases.StartRun(name, clk.Now())
			started <- name
			<-release[name]
			mu.Lock()
			inFlight--
			mu.Unlock()
			return nil
		}}, conns)
	if err != nil {
		t.Fatal(err)
	}
	runAsync(t, s)
	// Let each run finish only once another has been seen to start, so
	// that a scheduler without the limit would have all four in flight.
	first := recv(t, started, "a run")
	second := recv(t, started, "a second run")
	close(release[first])
	third := recv(t, started, "a third run")
	close(release[second])
	fourth := recv(t, started, "a fourth run")
	close(release[third])
	close(release[fourth])
	mu.Lock()
	defer mu.Unlock()
	if peak != 2 {
		t.Errorf("peak runs in flight = %d, want 2", peak)
	}
	if seen := map[string]bool{first: true, second: true, third: true, fourth: true}; len(seen) != 4 {
		t.Errorf("runs = %v %v %v %v, want each connection once", first, second, third, fourth)
	}
}
