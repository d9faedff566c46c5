// Package clock lets code that reads the time or waits be driven by tests
// without sleeping on the wall clock.
//
// Everything in chimport that cares about time (backoff, windows, leases, lag,
// the simulator's last_changed stamps) takes a Clock. Production code passes
// Real; tests pass a *Fake and move it forward explicitly.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done, whichever comes first. It
	// returns ctx.Err() when the context ended the wait.
	Sleep(ctx context.Context, d time.Duration) error
}

// Real is the wall clock.
type Real struct{}

var _ Clock = Real{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Sleep waits on a timer, giving up early when ctx is done.
func (Real) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Fake is a clock that only moves when told to. Sleep does not block: it
// advances the fake time by d at once and records d, so a retry loop under
// test runs instantly while still seeing time pass.
type Fake struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

var _ Clock = (*Fake)(nil)

// NewFake returns a Fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Set moves the fake time to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// Sleep advances the fake time by d unless ctx is already done.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d > 0 {
		f.now = f.now.Add(d)
	}
	f.slept = append(f.slept, d)
	return nil
}

// Slept returns every duration passed to Sleep, in order.
func (f *Fake) Slept() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.slept...)
}

// Offset is the wall clock moved forward by however much Advance has added.
// The demo uses it to let "a few seconds pass" between runs without making
// anyone wait, while durations still measure real time.
type Offset struct {
	mu     sync.Mutex
	offset time.Duration
}

var _ Clock = (*Offset)(nil)

// Now returns the wall clock plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.offset)
}

// Advance moves the clock forward by d.
func (o *Offset) Advance(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.offset += d
}

// Sleep waits on the wall clock, like Real.
func (o *Offset) Sleep(ctx context.Context, d time.Duration) error { return Real{}.Sleep(ctx, d) }
