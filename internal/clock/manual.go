package clock

import (
	"context"
	"sync"
	"time"
)

// Manual is a clock whose Sleep really waits, until a test moves the time
// past the sleeper's deadline with Advance or Set. Long-running loops (a
// scheduler, lease renewal) use it in tests: the test decides when time
// passes, and nothing waits on the wall clock.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*manualWaiter
	changed chan struct{} // closed and replaced whenever waiters change
}

type manualWaiter struct {
	until time.Time
	done  chan struct{}
}

var _ Clock = (*Manual)(nil)

// NewManual returns a Manual clock set to start.
func NewManual(start time.Time) *Manual {
	return &Manual{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Sleep blocks until the clock reaches now+d or ctx ends.
func (m *Manual) Sleep(ctx context.Context, d time.Duration) error {
	m.mu.Lock()
	if d <= 0 {
		m.mu.Unlock()
		return ctx.Err()
	}
	w := &manualWaiter{until: m.now.Add(d), done: make(chan struct{})}
	m.waiters = append(m.waiters, w)
	m.notifyLocked()
	m.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		m.mu.Lock()
		for i, x := range m.waiters {
			if x == w {
				m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
				break
			}
		}
		m.notifyLocked()
		m.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the time forward by d, waking every sleeper it passes.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(m.now.Add(d))
}

// Set moves the time to t (never backwards), waking every sleeper it passes.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.After(m.now) {
		m.setLocked(t)
	}
}

func (m *Manual) setLocked(t time.Time) {
	m.now = t
	kept := m.waiters[:0]
	for _, w := range m.waiters {
		if !w.until.After(t) {
			close(w.done)
			continue
		}
		kept = append(kept, w)
	}
	m.waiters = kept
	m.notifyLocked()
}

func (m *Manual) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Sleepers returns how many goroutines are sleeping on the clock.
func (m *Manual) Sleepers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters)
}

// WaitForSleepers blocks until at least n goroutines sleep on the clock,
// or ctx ends: a test calls it before Advance, so the loop under test has
// reached its wait and no step is skipped.
func (m *Manual) WaitForSleepers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		if len(m.waiters) >= n {
			m.mu.Unlock()
			return nil
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
