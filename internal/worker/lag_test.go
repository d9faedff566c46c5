package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

// Two workers check lag on the same beat while no run completes: the
// connection falls behind, one lag alert goes out when the lag passes the
// 3 h threshold, whichever worker sends it; when a run completes again,
// one recovery follows. Each beat also moves both workers' gauges. The
// test moves the clock; nothing waits on the wall clock.
func TestLagBeatAlertsOnceAcrossWorkers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	complete := func(at time.Time) {
		t.Helper()
		must(t, store.StartRun(ctx, "shop", at))
		must(t, store.CompleteRun(ctx, state.Run{Connection: "shop", Started: at, Finished: at, WindowEnd: at, Result: state.ResultOK}))
	}
	complete(start.Add(-time.Hour))

	var workers []*Worker
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 {
		w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
		w.cfg.LagEvery = 10 * time.Minute
		workers = append(workers, w)
		wg.Go(func() { w.watchLag(ctx) })
	}
	beat := func() {
		t.Helper()
		must(t, clk.WaitForSleepers(ctx, len(workers)))
		clk.Advance(10 * time.Minute)
		must(t, clk.WaitForSleepers(ctx, len(workers))) // both beats are done
	}
	for range 18 { // three hours: the lag goes from 1 h to 4 h
		beat()
	}
	if diff := cmp.Diff([]string{"lag shop"}, rec.kinds()); diff != "" {
		t.Fatalf("alerts while falling behind (-want +got):\n%s", diff)
	}
	if lag := rec.got[0].Lag; lag <= 3*time.Hour || lag > 3*time.Hour+10*time.Minute {
		t.Errorf("the lag alert came at lag %v, want the first beat past 3h", lag)
	}
	for _, w := range workers {
		if lag, ok := gauge(t, w.Metrics(), "chimport_connection_lag_seconds", "shop"); !ok || lag != (4*time.Hour).Seconds() {
			t.Errorf("lag gauge = %v, %v; want 4h in seconds", lag, ok)
		}
	}

	complete(clk.Now())
	for range 3 {
		beat()
	}
	if diff := cmp.Diff([]string{"lag shop", "recovered lag shop"}, rec.kinds()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	for _, w := range workers {
		if n := scalar(t, w.Metrics(), "chimport_lag_checks_total"); n != 22 {
			t.Errorf("lag checks = %v, want 22 (one at start, then one a beat)", n)
		}
	}
}

// A beat reads the store once for every connection, not once per
// connection: the cost of a beat stays flat as connections grow.
func TestLagBeatReadsTheStoreOnce(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	counting := &countingStore{Store: store}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "a", "b", "c")
	w.cfg.Store = counting
	for _, name := range []string{"a", "b", "c"} {
		must(t, store.StartRun(ctx, name, start.Add(-time.Minute)))
	}
	w.checkLag(ctx)
	if counting.scans != 1 || counting.reads != 0 {
		t.Errorf("a quiet beat made %d scans and %d single reads, want 1 and 0", counting.scans, counting.reads)
	}
}

type countingStore struct {
	*memory.Store
	scans, reads int
}

func (c *countingStore) Connections(ctx context.Context) ([]state.ConnectionState, error) {
	c.scans++
	return c.Store.Connections(ctx)
}

func (c *countingStore) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	c.reads++
	return c.Store.Connection(ctx, name)
}

// The lag beat reads the roster's size with the rest of the state, so a
// worker follows the members of a connection another worker runs.
func TestLagBeatFollowsTheRoster(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
	ids := memberIDs(0, 3)
	var got []float64
	for _, c := range []state.RosterChange{{Add: ids, Reconciled: start}, {Remove: ids[:1]}} {
		must(t, store.UpdateRoster(ctx, "shop", c)) // another worker's run
		w.checkLag(ctx)
		v, ok := gauge(t, w.Metrics(), "chimport_roster_members", "shop")
		if !ok {
			t.Fatal("no roster gauge after a beat")
		}
		got = append(got, v)
	}
	if diff := cmp.Diff([]float64{3, 2}, got); diff != "" {
		t.Errorf("roster gauge after each beat (-want +got):\n%s", diff)
	}
}

// The first lag check comes at start-up, not a period later: a worker that
// restarts more often than its lag beat (crash-looping on a large first
// sync) still alerts on a connection that fell behind. The clock never
// moves in this test.
func TestLagCheckedAtStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	must(t, store.StartRun(ctx, "stuck", start.Add(-5*time.Hour))) // never completed: 5 h behind
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "stuck")
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { w.watchLag(ctx) })
	must(t, clk.WaitForSleepers(ctx, 1)) // the first check is done; the beat waits
	if diff := cmp.Diff([]string{"lag stuck"}, rec.kinds()); diff != "" {
		t.Errorf("alerts before the first beat (-want +got):\n%s", diff)
	}
}
