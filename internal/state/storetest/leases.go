package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

const ttl = time.Minute

func claim(t *testing.T, s state.Store, name, owner string, now time.Time) state.Lease {
	t.Helper()
	l, err := s.ClaimLease(context.Background(), name, owner, now, ttl)
	ok(t, err)
	want := state.Lease{Connection: name, Owner: owner, Token: l.Token, Expires: now.Add(ttl)}
	diff(t, "claimed lease", want, l)
	if l.Token < 1 {
		t.Errorf("claimed lease has token %d, want >= 1", l.Token)
	}
	return l
}

// held checks that owner cannot claim name at now because holder holds it
// until expires.
func held(t *testing.T, s state.Store, name, owner string, now time.Time, holder string, expires time.Time) {
	t.Helper()
	l, err := s.ClaimLease(context.Background(), name, owner, now, ttl)
	if !errors.Is(err, state.ErrLeaseHeld) {
		t.Fatalf("%s claiming %s at %s: got %+v, %v; want ErrLeaseHeld", owner, name, now, l, err)
	}
	var he *state.LeaseHeldError
	if !errors.As(err, &he) {
		t.Fatalf("%v is not a *LeaseHeldError", err)
	}
	diff(t, "who holds the lease", state.LeaseHeldError{Connection: name, Owner: holder, Expires: expires}, *he)
}

func isFenced(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, state.ErrFenced) {
		t.Errorf("%s: got %v, want ErrFenced", what, err)
	}
}

func testLeaseLifecycle(t *testing.T, s state.Store) {
	ctx := context.Background()
	a := claim(t, s, "news", "A", at(0))
	held(t, s, "news", "B", at(30*time.Second), "A", at(ttl))
	held(t, s, "news", "B", at(ttl-time.Nanosecond), "A", at(ttl))

	// Renewing moves the expiry, and keeps the token.
	renewed, err := s.RenewLease(ctx, a, at(50*time.Second), ttl)
	ok(t, err)
	diff(t, "renewed lease", state.Lease{Connection: "news", Owner: "A", Token: a.Token, Expires: at(50*time.Second + ttl)}, renewed)
	held(t, s, "news", "B", at(ttl), "A", at(50*time.Second+ttl))

	// Expires <= now: free.
	b := claim(t, s, "news", "B", at(50*time.Second+ttl))
	if b.Token <= a.Token {
		t.Errorf("B's token %d is not larger than A's %d", b.Token, a.Token)
	}
	// A lost it: renewing and releasing are refused and change nothing.
	_, err = s.RenewLease(ctx, renewed, at(2*time.Minute), ttl)
	isFenced(t, "A renews after B's claim", err)
	isFenced(t, "A releases after B's claim", s.ReleaseLease(ctx, renewed))
	held(t, s, "news", "C", at(2*time.Minute), "B", b.Expires)

	// A lease past its expiry that nobody claimed can still be renewed:
	// the token, not the clock, decides who may write.
	b, err = s.RenewLease(ctx, b, at(5*time.Minute), ttl)
	ok(t, err)
	diff(t, "lease renewed after it expired", at(5*time.Minute+ttl), b.Expires)

	// Released: free at once for anyone, and not renewable.
	ok(t, s.ReleaseLease(ctx, b))
	ok(t, s.ReleaseLease(ctx, b)) // twice is fine
	_, err = s.RenewLease(ctx, b, at(5*time.Minute), ttl)
	isFenced(t, "renewing a released lease", err)
	c := claim(t, s, "news", "C", at(5*time.Minute))
	if c.Token <= b.Token {
		t.Errorf("C's token %d is not larger than B's %d", c.Token, b.Token)
	}

	// Leases are per connection.
	claim(t, s, "other", "A", at(5*time.Minute))
	held(t, s, "news", "A", at(5*time.Minute), "C", c.Expires)
}

func testLeaseReclaim(t *testing.T, s state.Store) {
	ctx := context.Background()
	first := claim(t, s, "news", "A", at(0))
	second := claim(t, s, "news", "A", at(10*time.Second))
	if second.Token <= first.Token {
		t.Errorf("re-claim token %d is not larger than %d", second.Token, first.Token)
	}
	// The first claim's writes are now fenced, even though A holds the
	// lease: they may come from a run A has since given up on.
	isFenced(t, "checkpoint with the old token",
		s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: at(time.Hour), Token: first.Token}))
	_, err := s.RenewLease(ctx, first, at(20*time.Second), ttl)
	isFenced(t, "renew with the old token", err)
	ok(t, s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: at(time.Hour), Token: second.Token}))
	held(t, s, "news", "B", at(ttl+5*time.Second), "A", at(10*time.Second+ttl))
}

func testLeaseTokensNeverRepeat(t *testing.T, s state.Store) {
	ctx := context.Background()
	var last int64
	now := at(0)
	for i := range 12 {
		owner := fmt.Sprintf("worker-%d", i%3)
		l := claim(t, s, "news", owner, now)
		if l.Token <= last {
			t.Fatalf("claim %d got token %d after %d", i, l.Token, last)
		}
		last = l.Token
		switch i % 3 {
		case 0: // released
			ok(t, s.ReleaseLease(ctx, l))
		case 1: // expires
			now = l.Expires
		case 2: // the same owner claims again at once
			again := claim(t, s, "news", owner, now)
			if again.Token <= last {
				t.Fatalf("re-claim got token %d after %d", again.Token, last)
			}
			last = again.Token
			ok(t, s.ReleaseLease(ctx, again))
		}
	}
}

// testFencedWrites is the paused worker: A's lease expired while it slept,
// B claimed the connection, and A wakes up to finish its run.
func testFencedWrites(t *testing.T, s state.Store) {
	ctx := context.Background()
	a := claim(t, s, "news", "A", at(0))
	ok(t, s.StartRun(ctx, "news", at(0)))
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Minute), Delivered: 3, Token: a.Token}))
	ok(t, s.AddFailure(ctx, state.Failure{Connection: "news", WindowEnd: at(3 * time.Hour), Error: "x", At: at(time.Minute)}))
	cp := state.Checkpoint{WindowStart: at(time.Hour), WindowEnd: at(2 * time.Hour),
		Views: map[string]time.Time{"default": at(90 * time.Minute)}, UpdatedAt: at(time.Minute), Token: a.Token}
	ok(t, s.SaveCheckpoint(ctx, "news", cp))
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
		WindowEnd: at(2 * time.Hour), Finished: at(2 * time.Minute), Error: "target: 503", Token: a.Token}))

	b := claim(t, s, "news", "B", at(ttl))
	type snapshot struct {
		Connection state.ConnectionState
		Runs       []state.Run
		Failures   []state.Failure
	}
	take := func() snapshot {
		t.Helper()
		runs, err := s.Runs(ctx, "news", 100)
		ok(t, err)
		failures, err := s.Failures(ctx, "news")
		ok(t, err)
		return snapshot{connection(t, s, "news"), runs, failures}
	}
	before := take()
	if len(before.Runs) != 2 || before.Connection.Checkpoint == nil {
		t.Fatalf("setup: %+v", before)
	}

	late := []struct {
		name string
		err  error
	}{
		{"SaveCheckpoint", s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowStart: at(time.Hour),
			WindowEnd: at(5 * time.Hour), UpdatedAt: at(3 * time.Minute), Token: a.Token})},
		{"CompleteRun", s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
			WindowStart: at(time.Hour), WindowEnd: at(5 * time.Hour), Finished: at(3 * time.Minute), Read: 9, Delivered: 9, Token: a.Token})},
		{"FailRun", s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
			WindowEnd: at(5 * time.Hour), Finished: at(3 * time.Minute), Error: "late", Token: a.Token})},
	}
	for _, w := range late {
		isFenced(t, "A's late "+w.name, w.err)
	}
	diff(t, "state after A's fenced writes", before, take())

	// A token on a connection that was never leased is fenced too, and
	// does not make the connection known.
	isFenced(t, "token on an unleased connection", s.FailRun(ctx, state.Run{Connection: "fresh",
		Result: state.ResultFailed, Finished: at(0), Error: "x", Token: b.Token}))
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "connections", []string{"news"}, names(all))

	// B's writes go through.
	ok(t, s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowStart: at(time.Hour), WindowEnd: at(4 * time.Hour),
		UpdatedAt: at(4 * time.Minute), Token: b.Token}))
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowStart: at(time.Hour), WindowEnd: at(4 * time.Hour), Finished: at(5 * time.Minute), Read: 4, Delivered: 2, Token: b.Token}))
	got := take()
	diff(t, "B's progress", progress{at(4 * time.Hour), at(5 * time.Minute), "", 4, 2, 5}, progressOf(got.Connection))
	diff(t, "B's checkpoint cleared", (*state.Checkpoint)(nil), got.Connection.Checkpoint)
	diff(t, "runs recorded", 3, len(got.Runs))
	diff(t, "failures covered by B's window", 0, len(got.Failures))
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
		WindowEnd: at(5 * time.Hour), Finished: at(6 * time.Minute), Error: "mailchimp: 503", Token: b.Token}))
	diff(t, "B's failure recorded", "mailchimp: 503", connection(t, s, "news").LastError)

	// Token 0, a `chimport run` by hand, is not fenced, lease or no lease.
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(6 * time.Hour), Finished: at(7 * time.Minute)}))
	diff(t, "watermark after an unleased run", at(6*time.Hour), connection(t, s, "news").Watermark)
}

func names(cs []state.ConnectionState) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Connection)
	}
	return out
}

// testConcurrentClaims: ten owners, half on each handle, claim at the same
// instant; exactly one wins. Then the lease expires and they race again.
func testConcurrentClaims(t *testing.T, a, b state.Store) {
	const owners = 10
	var last int64
	for round := range 3 {
		now := at(time.Duration(round) * ttl)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []state.Lease
		)
		for i := range owners {
			s := []state.Store{a, b}[i%2]
			owner := fmt.Sprintf("worker-%d", i)
			wg.Go(func() {
				l, err := s.ClaimLease(context.Background(), "news", owner, now, ttl)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, l)
					mu.Unlock()
				case !errors.Is(err, state.ErrLeaseHeld):
					t.Errorf("%s: %v", owner, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d owners won the lease: %+v", round, len(winners), winners)
		}
		if winners[0].Token <= last {
			t.Errorf("round %d: token %d after %d", round, winners[0].Token, last)
		}
		last = winners[0].Token
		// The other handle sees the winner.
		held(t, b, "news", "late", now, winners[0].Owner, winners[0].Expires)
	}
}

func testAlerts(t *testing.T, s state.Store) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+2", 2*60*60)
	set := func(name, kind string, open bool, when time.Time, want bool) {
		t.Helper()
		changed, err := s.SetAlert(ctx, name, kind, open, when)
		ok(t, err)
		if changed != want {
			t.Errorf("SetAlert(%s, %s, open=%v) changed = %v, want %v", name, kind, open, changed, want)
		}
	}
	alerts := func(name string, want map[string]time.Time) {
		t.Helper()
		got := connection(t, s, name).Alerts
		diff(t, "alerts of "+name, want, got)
		for kind, opened := range got {
			if opened.Location() != time.UTC {
				t.Errorf("%s alert %s opened at %s, want UTC", name, kind, opened)
			}
		}
	}

	ok(t, s.StartRun(ctx, "news", at(0)))
	alerts("news", nil)
	set("news", "lag", false, at(0), false) // never opened
	set("news", "lag", true, at(time.Hour).In(zone), true)
	set("news", "lag", true, at(2*time.Hour), false) // keeps the first opening time
	set("news", "permanent_error", true, at(3*time.Hour+1), true)
	alerts("news", map[string]time.Time{"lag": at(time.Hour), "permanent_error": at(3*time.Hour + 1)})
	alerts("other", nil)

	// Runs do not touch alerts: the alert policy closes them.
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(4 * time.Hour), Finished: at(4 * time.Hour)}))
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
		WindowEnd: at(5 * time.Hour), Finished: at(5 * time.Hour), Error: "x"}))
	alerts("news", map[string]time.Time{"lag": at(time.Hour), "permanent_error": at(3*time.Hour + 1)})

	set("other", "lag", true, at(6*time.Hour), true)
	all, err := s.Connections(ctx)
	ok(t, err)
	got := map[string]map[string]time.Time{}
	for _, c := range all {
		got[c.Connection] = c.Alerts
	}
	diff(t, "alerts in Connections", map[string]map[string]time.Time{
		"news":  {"lag": at(time.Hour), "permanent_error": at(3*time.Hour + 1)},
		"other": {"lag": at(6 * time.Hour)},
	}, got)

	set("news", "lag", false, time.Time{}, true)
	set("news", "lag", false, time.Time{}, false)
	alerts("news", map[string]time.Time{"permanent_error": at(3*time.Hour + 1)})
	set("news", "permanent_error", false, at(7*time.Hour), true)
	alerts("news", nil)
	// Reopened: a new incident with its own time.
	set("news", "lag", true, at(8*time.Hour), true)
	alerts("news", map[string]time.Time{"lag": at(8 * time.Hour)})
	alerts("other", map[string]time.Time{"lag": at(6 * time.Hour)})
}

// testConcurrentAlerts: twenty workers, half on each handle, see the same
// lag at once and open the alert; exactly one may notify. Then they all
// see the recovery.
func testConcurrentAlerts(t *testing.T, a, b state.Store) {
	const workers = 20
	for round := range 3 {
		for _, open := range []bool{true, false} {
			var wg sync.WaitGroup
			var mu sync.Mutex
			flips := 0
			for i := range workers {
				s := []state.Store{a, b}[i%2]
				opened := at(time.Duration(round)*time.Hour + time.Duration(i)*time.Second)
				wg.Go(func() {
					changed, err := s.SetAlert(context.Background(), "news", "lag", open, opened)
					if err != nil {
						t.Error(err)
						return
					}
					if changed {
						mu.Lock()
						flips++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if flips != 1 {
				t.Fatalf("round %d, open=%v: %d callers changed the alert, want 1", round, open, flips)
			}
			_, isOpen := connection(t, b, "news").Alerts["lag"]
			if isOpen != open {
				t.Fatalf("round %d: alert open = %v, want %v", round, isOpen, open)
			}
		}
	}
}
