package schedule

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
)

var t0 = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)

// Two workers share three connections that run every 3 s. Over ten
// periods each connection runs exactly once per period, at the time
// planned from the shared store, never twice at once.
func TestTwoWorkersShareConnections(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	p := newPlans()
	names := []string{"alpha", "bravo", "charlie"}
	every := 3 * time.Second

	var (
		mu      sync.Mutex
		starts  = map[string][]time.Time{}
		byOwner = map[string]int{}
		active  = map[string]int{}
		overlap []string
	)
	run := func(owner string) func(context.Context, string, Lease) error {
		return func(ctx context.Context, name string, lease Lease) error {
			mu.Lock()
			active[name]++
			if active[name] > 1 {
				overlap = append(overlap, name)
			}
			mu.Unlock()
			if lease.Owner != owner || lease.Connection != name {
				t.Errorf("%s ran %s with lease %+v", owner, name, lease)
			}
			now := clk.Now()
			leases.StartRun(name, now)
			runtime.Gosched() // widen the window in which an overlap would show
			mu.Lock()
			starts[name] = append(starts[name], now)
			byOwner[owner]++
			active[name]--
			mu.Unlock()
			return nil
		}
	}
	var conns []Connection
	for _, n := range names {
		conns = append(conns, Connection{Name: n, Every: every})
	}
	for _, owner := range []string{"w1", "w2"} {
		s, err := New(Config{Owner: owner, Clock: clk, Leases: leases, LeaseTTL: 2 * time.Second,
			Logger: quiet(), Run: run(owner), OnSchedule: p.onSchedule(owner)}, conns)
		if err != nil {
			t.Fatal(err)
		}
		startScheduler(t, s)
	}

	// Step from one planned run to the next until every connection is ten
	// periods in (a period is 3 s plus the connection's offset, < 300 ms).
	end := t0.Add(10 * (every + every/10))
	for {
		first := settle(t, clk, p, 2*len(names))
		if first.After(end) {
			break
		}
		clk.Set(first)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(overlap) > 0 {
		t.Errorf("runs overlapped: %v", overlap)
	}
	for _, n := range names {
		j := DefaultJitter(n, every)
		var want []time.Time
		for at := t0.Add(j); !at.After(end); at = at.Add(every + j) {
			want = append(want, at)
		}
		if len(want) < 10 {
			t.Fatalf("test covers %d periods of %s, want 10", len(want), n)
		}
		if diff := cmp.Diff(want, starts[n]); diff != "" {
			t.Errorf("%s started (-want +got):\n%s", n, diff)
		}
	}
	t.Logf("runs by worker: %v", byOwner)
}

// A worker that stops (a crash, a frozen VM) without releasing its lease
// keeps its connection only until the lease expires; then the other worker
// runs it.
func TestCrashedWorkerIsTakenOverAfterTTL(t *testing.T) {
	leases := newFakeLeases()
	ttl, every := 30*time.Second, 10*time.Second

	// Worker A's clock never moves after its run starts, so it never
	// renews: as far as the store can tell, it died mid-run.
	clkA := clock.NewManual(t0)
	started := make(chan time.Time, 1)
	unblock := make(chan struct{})
	a, err := New(Config{Owner: "a", Clock: clkA, Leases: leases, LeaseTTL: ttl, Jitter: noJitter, Logger: quiet(),
		Run: func(ctx context.Context, name string, _ Lease) error {
			leases.StartRun(name, clkA.Now())
			started <- clkA.Now()
			<-unblock
			return nil
		}}, []Connection{{Name: "news", Every: every}})
	if err != nil {
		t.Fatal(err)
	}
	stopA := startScheduler(t, a)
	t.Cleanup(func() { close(unblock); stopA() })
	if got := recv(t, started, "worker a's run"); !got.Equal(t0) {
		t.Fatalf("a started at %s, want %s", got, t0)
	}

	clkB := clock.NewManual(t0)
	p := newPlans()
	ranB := make(chan time.Time, 10)
	b, err := New(Config{Owner: "b", Clock: clkB, Leases: leases, LeaseTTL: ttl, Jitter: noJitter, Logger: quiet(),
		OnSchedule: p.onSchedule("b"),
		Run: func(ctx context.Context, name string, _ Lease) error {
			leases.StartRun(name, clkB.Now())
			ranB <- clkB.Now()
			return nil
		}}, []Connection{{Name: "news", Every: every}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, b)

	// B plans from A's attempt, finds A's lease still valid when due, and
	// comes back exactly when it expires.
	if next := settle(t, clkB, p, 1); !next.Equal(t0.Add(every)) {
		t.Fatalf("b plans %s, want a's attempt + every = %s", next, t0.Add(every))
	}
	clkB.Set(t0.Add(every))
	if next := settle(t, clkB, p, 1); !next.Equal(t0.Add(ttl)) {
		t.Fatalf("b plans %s after finding the lease held, want its expiry %s", next, t0.Add(ttl))
	}
	select {
	case at := <-ranB:
		t.Fatalf("b ran at %s while a's lease was valid", at)
	default:
	}
	clkB.Set(t0.Add(ttl))
	if got := recv(t, ranB, "b's takeover"); !got.Equal(t0.Add(ttl)) {
		t.Errorf("b took over at %s, want %s", got, t0.Add(ttl))
	}
	if next := settle(t, clkB, p, 1); !next.Equal(t0.Add(ttl + every)) {
		t.Errorf("b then plans %s, want %s", next, t0.Add(ttl+every))
	}
}

// A run whose lease is taken over (renewal fenced) has its context
// cancelled, with ErrFenced as the cause, and the lease is not released.
func TestLostLeaseCancelsRun(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	ttl := 3 * time.Second
	type started struct {
		ctx   context.Context
		lease Lease
	}
	runs := make(chan started, 1)
	ended := make(chan error, 1)
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, LeaseTTL: ttl, Jitter: noJitter, Logger: quiet(),
		Run: func(ctx context.Context, name string, lease Lease) error {
			leases.StartRun(name, clk.Now())
			runs <- started{ctx, lease}
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return ctx.Err()
		}}, []Connection{{Name: "news", Every: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	run := recv(t, runs, "the run")

	// Renewed every ttl/3 while alive, so it outlives its first TTL.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 1; i <= 4; i++ {
		if err := clk.WaitForSleepers(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(ttl / 3)
	}
	if err := clk.WaitForSleepers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := leases.lease("news").Expires, t0.Add(4*ttl/3+ttl); !got.Equal(want) {
		t.Errorf("lease expires %s after 4 renewals, want %s", got, want)
	}
	if n := leases.count(leases.renewals, "me"); n != 4 {
		t.Errorf("renewals = %d, want 4", n)
	}
	if err := run.ctx.Err(); err != nil {
		t.Fatalf("run cancelled while its lease was renewed: %v", context.Cause(run.ctx))
	}

	leases.Steal("news", "thief", clk.Now(), ttl)
	clk.Advance(ttl / 3)
	if cause := recv(t, ended, "the run to be cancelled"); !errors.Is(cause, ErrFenced) {
		t.Errorf("run's context cause = %v, want ErrFenced", cause)
	}
	if got := leases.lease("news"); got.Owner != "thief" {
		t.Errorf("lease after takeover = %+v, want the thief's", got)
	}
	if n := leases.count(leases.releases, "me"); n != 0 {
		t.Errorf("the worker released a lease it had lost (%d releases)", n)
	}
}

// A run that fails before it records its attempt is not retried at once:
// this worker's own start time is a floor for the plan.
func TestFailedRunWaitsForNextPeriod(t *testing.T) {
	clk := clock.NewManual(t0)
	p := newPlans()
	every := 10 * time.Minute
	s, err := New(Config{Owner: "me", Clock: clk, Leases: newFakeLeases(), Jitter: noJitter, Logger: quiet(),
		OnSchedule: p.onSchedule("me"),
		Run: func(context.Context, string, Lease) error {
			return errors.New("config broken: nothing recorded")
		}}, []Connection{{Name: "news", Every: every}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	if next := settle(t, clk, p, 1); !next.Equal(t0.Add(every)) {
		t.Errorf("after a failed run the next is %s, want %s", next, t0.Add(every))
	}
	if next, ok := s.Next("news"); !ok || !next.Equal(t0.Add(every)) {
		t.Errorf("Next(news) = %s, %v; want %s", next, ok, t0.Add(every))
	}
}

// Another worker may run a connection and release it between this worker's
// read of the last attempt and its claim. The claim then succeeds, but the
// worker sees the new attempt, gives the lease back and plans from it.
func TestClaimAfterAnotherWorkerRan(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	every := 10 * time.Minute
	leases.StartRun("news", t0.Add(-every)) // due now
	var once sync.Once
	leases.beforeClaim = func(name string) {
		once.Do(func() { leases.StartRun(name, t0.Add(time.Second)) })
	}
	p := newPlans()
	ran := make(chan string, 1)
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, Jitter: noJitter, Logger: quiet(),
		OnSchedule: p.onSchedule("me"),
		Run: func(_ context.Context, name string, _ Lease) error {
			ran <- name
			return nil
		}}, []Connection{{Name: "news", Every: every}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	if next := settle(t, clk, p, 1); !next.Equal(t0.Add(time.Second + every)) {
		t.Errorf("next = %s, want the other run + every = %s", next, t0.Add(time.Second+every))
	}
	select {
	case <-ran:
		t.Error("ran a connection another worker had just run")
	default:
	}
	if l := leases.lease("news"); l.Owner != "" || l.Token != 1 || leases.count(leases.releases, "me") != 1 {
		t.Errorf("lease = %+v, releases = %d; want claimed once and released", l, leases.count(leases.releases, "me"))
	}
}

// RunSoon starts a run at once instead of at the planned time (a webhook
// queue that overflowed asks for it), without the clock moving.
func TestRunSoonRunsNow(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	ran := make(chan time.Time, 4)
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, Jitter: noJitter, Logger: quiet(),
		Run: func(_ context.Context, name string, _ Lease) error {
			leases.StartRun(name, clk.Now())
			ran <- clk.Now()
			return nil
		}}, []Connection{{Name: "news", Every: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	waitRun := func(what string) {
		t.Helper()
		select {
		case <-ran:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10 s", what)
		}
	}
	waitRun("first run")
	if s.RunSoon("nope") {
		t.Error("RunSoon of an unknown connection reported true")
	}
	// Wait until the scheduler sleeps towards the next run, an hour off.
	deadline := time.Now().Add(10 * time.Second)
	for next, ok := s.Next("news"); !ok || !next.Equal(t0.Add(time.Hour)); next, ok = s.Next("news") {
		if time.Now().After(deadline) {
			t.Fatalf("next run not planned: %v", next)
		}
		runtime.Gosched()
	}
	if !s.RunSoon("news") {
		t.Fatal("RunSoon(news) = false")
	}
	waitRun("run asked for with RunSoon")
	if now := clk.Now(); !now.Equal(t0) {
		t.Errorf("the clock moved to %s", now)
	}
}

// A run asked for with RunSoon that finds the lease held by this worker's
// webhook refresh is not sent back to the schedule: it comes back a second
// later, and meanwhile RunWaiting tells the refreshes to stand aside.
func TestRunSoonOutlastsAHeldLease(t *testing.T) {
	clk := clock.NewManual(t0)
	leases := newFakeLeases()
	ran := make(chan time.Time, 4)
	p := newPlans()
	s, err := New(Config{Owner: "me", Clock: clk, Leases: leases, Jitter: noJitter, Logger: quiet(),
		OnSchedule: p.onSchedule("me"),
		Run: func(_ context.Context, name string, _ Lease) error {
			leases.StartRun(name, clk.Now())
			ran <- clk.Now()
			return nil
		}}, []Connection{{Name: "news", Every: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	startScheduler(t, s)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("no first run within 10 s")
	}
	if next := settle(t, clk, p, 1); !next.Equal(t0.Add(time.Hour)) {
		t.Fatalf("next = %s, want %s", next, t0.Add(time.Hour))
	}
	leases.Steal("news", "me"+WebhooksOwnerSuffix, clk.Now(), 15*time.Second)
	s.RunSoon("news")
	deadline := time.Now().Add(10 * time.Second)
	for next, _ := s.Next("news"); !next.Equal(t0.Add(webhookRetry)); next, _ = s.Next("news") {
		if time.Now().After(deadline) {
			t.Fatalf("after RunSoon found the lease held, next = %s, want %s", next, t0.Add(webhookRetry))
		}
		runtime.Gosched()
	}
	settle(t, clk, p, 1)
	if !s.RunWaiting("news") {
		t.Error("RunWaiting = false while a run waits for a refresh's lease")
	}
	leases.Release(context.Background(), leases.lease("news"))
	clk.Advance(webhookRetry)
	select {
	case at := <-ran:
		if !at.Equal(t0.Add(webhookRetry)) {
			t.Errorf("the asked-for run started at %s, want %s", at, t0.Add(webhookRetry))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run asked for never started once the lease was free")
	}
	if next := settle(t, clk, p, 1); !next.Equal(t0.Add(webhookRetry + time.Hour)) {
		t.Errorf("after the asked-for run, next = %s, want %s", next, t0.Add(webhookRetry+time.Hour))
	}
	if s.RunWaiting("news") {
		t.Error("RunWaiting = true after the run claimed the lease")
	}
}
