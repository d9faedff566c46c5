package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// fakeLeases is an in-memory Leases with the store's semantics: claims are
// refused while another owner's lease is unexpired at the given now, every
// claim gets a larger token, renewals and releases are fenced by token.
type fakeLeases struct {
	mu       sync.Mutex
	leases   map[string]Lease // Owner "" once released
	last     map[string]time.Time
	renewals map[string]int // by owner
	releases map[string]int // by owner
	// beforeClaim, if set, runs at the start of every Claim: a test uses it
	// to let "another worker" act between a read and a claim.
	beforeClaim func(name string)
}

var _ Leases = (*fakeLeases)(nil)

func newFakeLeases() *fakeLeases {
	return &fakeLeases{
		leases:   map[string]Lease{},
		last:     map[string]time.Time{},
		renewals: map[string]int{},
		releases: map[string]int{},
	}
}

func (f *fakeLeases) Claim(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	if f.beforeClaim != nil {
		f.beforeClaim(name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.leases[name]
	if cur.Owner != "" && cur.Owner != owner && cur.Expires.After(now) {
		return Lease{Connection: name, Owner: cur.Owner, Expires: cur.Expires},
			fmt.Errorf("%w: %q until %s", ErrLeaseHeld, cur.Owner, cur.Expires)
	}
	l := Lease{Connection: name, Owner: owner, Token: cur.Token + 1, Expires: now.Add(ttl)}
	f.leases[name] = l
	return l, nil
}

func (f *fakeLeases) Renew(ctx context.Context, lease Lease, now time.Time, ttl time.Duration) (Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.leases[lease.Connection]
	if cur.Token != lease.Token || cur.Owner != lease.Owner {
		return Lease{}, fmt.Errorf("%w: token %d, current %d", ErrFenced, lease.Token, cur.Token)
	}
	cur.Expires = now.Add(ttl)
	f.leases[lease.Connection] = cur
	f.renewals[lease.Owner]++
	return cur, nil
}

func (f *fakeLeases) Release(ctx context.Context, lease Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.leases[lease.Connection]
	if cur.Token != lease.Token {
		return fmt.Errorf("%w: token %d, current %d", ErrFenced, lease.Token, cur.Token)
	}
	if cur.Owner != "" {
		f.releases[lease.Owner]++
	}
	cur.Owner, cur.Expires = "", time.Time{}
	f.leases[lease.Connection] = cur
	return nil
}

func (f *fakeLeases) LastAttempt(ctx context.Context, name string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[name], nil
}

// StartRun records an attempt, as the engine does when a run starts.
func (f *fakeLeases) StartRun(name string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last[name] = at
}

// Steal claims name for another owner whatever its lease, as a worker that
// found it expired would.
func (f *fakeLeases) Steal(name, owner string, now time.Time, ttl time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.leases[name]
	f.leases[name] = Lease{Connection: name, Owner: owner, Token: cur.Token + 1, Expires: now.Add(ttl)}
}

func (f *fakeLeases) lease(name string) Lease {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leases[name]
}

func (f *fakeLeases) count(m map[string]int, owner string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[owner]
}

// plans collects OnSchedule reports from several schedulers, so a test can
// tell when every connection loop has planned a future run.
type plans struct {
	mu      sync.Mutex
	next    map[string]time.Time // by owner + "/" + name
	changed chan struct{}        // closed and replaced on every report
}

func newPlans() *plans {
	return &plans{next: map[string]time.Time{}, changed: make(chan struct{})}
}

func (p *plans) onSchedule(owner string) func(string, time.Time) {
	return func(name string, next time.Time) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.next[owner+"/"+name] = next
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// settled reports whether all n loops planned a run after now, and the
// earliest of those runs.
func (p *plans) settled(n int, now time.Time) (bool, time.Time, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	if len(p.next) < n {
		return false, first, p.changed
	}
	for _, t := range p.next {
		if !t.After(now) {
			return false, first, p.changed
		}
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return true, first, p.changed
}

// settle waits until every one of n connection loops sleeps on clk with a
// future plan, and returns the earliest plan. A loop that is due, running
// or planning has either not reported a future time or is not asleep, so
// advancing the clock now skips nothing.
func settle(t *testing.T, clk *clock.Manual, p *plans, n int) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if err := clk.WaitForSleepers(ctx, n); err != nil {
			t.Fatalf("waiting for %d sleepers (have %d): %v", n, clk.Sleepers(), err)
		}
		ok, first, changed := p.settled(n, clk.Now())
		if ok && clk.Sleepers() >= n {
			return first
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("loops never settled: %v", p.next)
		}
	}
}

// startScheduler runs s until the test ends (or stop is called) and returns
// stop, which cancels it and waits for Run to return.
func startScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func noJitter(string, time.Duration) time.Duration { return 0 }

// recv waits for a value on ch with a deadline instead of a sleep.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
