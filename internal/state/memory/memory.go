package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// Store is the in-process state.Store. The zero value is not usable: make
// one with New.
type Store struct {
	mu    sync.Mutex
	conns map[string]*record // by connection name; a record is never removed

	keepRuns, keepFailures int // retention per connection; changed only by tests
}

var _ state.Store = (*Store)(nil)

// record is everything the store knows about one connection. Readers get
// copies of it (snapshot, slices.Clone), so the store may change it in
// place and what a caller holds never aliases it.
type record struct {
	state state.ConnectionState

	leaseOwner   string // "" once released
	leaseToken   int64  // only ever grows: each claim adds 1
	leaseExpires time.Time

	runs     []state.Run     // oldest first, at most keepRuns
	failures []state.Failure // pending only, oldest first, at most keepFailures

	roster   map[state.MemberID]struct{}         // state.Roster.Members is its size
	rejected map[state.MemberID]*state.Rejection // state.Rejected sums it up
}

// New returns an empty store.
func New() *Store {
	return &Store{
		conns:        map[string]*record{},
		keepRuns:     state.KeepRuns,
		keepFailures: state.KeepFailures,
	}
}

// Close implements state.Store. It releases nothing (there is nothing to
// release) and the store stays usable, so a test may hand the same Store
// to several users that each close it.
func (s *Store) Close() error { return nil }

// snapshot is a copy of the connection's state that shares nothing with
// the record.
func (r *record) snapshot() state.ConnectionState {
	c := r.state
	if c.Checkpoint != nil {
		cp := *c.Checkpoint
		cp.Views = maps.Clone(cp.Views)
		c.Checkpoint = &cp
	}
	c.Alerts = maps.Clone(c.Alerts)
	if c.Rejected.Sample != nil {
		sample := *c.Rejected.Sample
		c.Rejected.Sample = &sample
	}
	return c
}

// read checks ctx and runs fn under the lock.
func (s *Store) read(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
	return nil
}

// Connection implements state.Store.
func (s *Store) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	c := state.ConnectionState{Connection: name}
	err := s.read(ctx, func() {
		if r := s.conns[name]; r != nil {
			c = r.snapshot()
		}
	})
	if err != nil {
		return state.ConnectionState{}, fmt.Errorf("state: read connection %q: %w", name, err)
	}
	return c, nil
}

// Connections implements state.Store.
func (s *Store) Connections(ctx context.Context) ([]state.ConnectionState, error) {
	var out []state.ConnectionState
	err := s.read(ctx, func() {
		for _, r := range s.conns {
			out = append(out, r.snapshot())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("state: list connections: %w", err)
	}
	// Byte order, as Go compares strings (and as the other stores sort).
	slices.SortFunc(out, func(a, b state.ConnectionState) int { return cmp.Compare(a.Connection, b.Connection) })
	return out, nil
}

// Failures implements state.Store.
func (s *Store) Failures(ctx context.Context, name string) ([]state.Failure, error) {
	var out []state.Failure
	err := s.read(ctx, func() {
		if r := s.conns[name]; r != nil {
			out = slices.Clone(r.failures)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
	}
	return out, nil
}

// Runs implements state.Store.
func (s *Store) Runs(ctx context.Context, name string, limit int) ([]state.Run, error) {
	var out []state.Run
	err := s.read(ctx, func() {
		r := s.conns[name]
		if r == nil || limit <= 0 {
			return
		}
		for i := len(r.runs) - 1; i >= 0 && len(out) < limit; i-- {
			out = append(out, r.runs[i])
		}
	})
	if err != nil {
		return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
	}
	return out, nil
}
