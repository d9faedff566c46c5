package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// write runs fn on the record of connection name, under the lock, on
// behalf of operation op. fn either changes the record and returns nil, or
// returns an error having changed nothing. Only a write that succeeds adds
// a new connection: a refused one (fenced, say) leaves the store as it
// was, as the other stores roll back theirs.
func (s *Store) write(ctx context.Context, op, name string, fn func(r *record) error) error {
	if name == "" {
		return opError(op, name, errors.New("empty connection name"))
	}
	if err := ctx.Err(); err != nil {
		return opError(op, name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.conns[name]
	if r == nil {
		r = &record{state: state.ConnectionState{Connection: name}}
	}
	if err := fn(r); err != nil {
		return opError(op, name, err)
	}
	s.conns[name] = r
	return nil
}

// opError names the operation and the connection, in the SQLite store's
// words, so logs read the same whichever store a test used.
func opError(op, name string, err error) error {
	return fmt.Errorf("state: %s for %q: %w", op, name, err)
}

// fence refuses a write that carries token unless it is the connection's
// current lease token. Token 0, an unleased writer, always passes.
func (r *record) fence(token int64) error {
	if token == 0 || token == r.leaseToken {
		return nil
	}
	return state.Fenced(token, r.leaseToken, r.leaseOwner)
}

// utc is t as the other stores hand it back: the same instant, in UTC,
// without a monotonic reading; and refused, as they refuse it, when unix
// nanoseconds cannot hold it.
func utc(t time.Time) (time.Time, error) {
	n, err := state.Nanos(t)
	return state.FromNanos(n), err
}

// timeField is one time of a value about to be stored, and its name for
// errors.
type timeField struct {
	name string
	t    *time.Time
}

// toUTC applies utc to each field in place, failing on the first it
// refuses.
func toUTC(fields ...timeField) error {
	for _, f := range fields {
		var err error
		if *f.t, err = utc(*f.t); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
	}
	return nil
}

// storedRun is run as the history keeps it: times in UTC, and no token (it
// is the writer's credential, not part of the run).
func storedRun(run state.Run) (state.Run, error) {
	run.Token = 0
	err := toUTC(timeField{"started", &run.Started}, timeField{"finished", &run.Finished},
		timeField{"window start", &run.WindowStart}, timeField{"window end", &run.WindowEnd})
	return run, err
}

// storedCheckpoint is cp as the store keeps it: times in UTC, a Views map
// of its own (never nil), and no token.
func storedCheckpoint(cp state.Checkpoint) (*state.Checkpoint, error) {
	views := make(map[string]time.Time, len(cp.Views))
	for view, t := range cp.Views {
		u, err := utc(t)
		if err != nil {
			return nil, fmt.Errorf("checkpoint view %q: %w", view, err)
		}
		views[view] = u
	}
	cp.Views, cp.Token = views, 0
	err := toUTC(timeField{"checkpoint window start", &cp.WindowStart},
		timeField{"checkpoint window end", &cp.WindowEnd}, timeField{"checkpoint updated at", &cp.UpdatedAt})
	return &cp, err
}

// StartRun implements state.Store.
func (s *Store) StartRun(ctx context.Context, name string, at time.Time) error {
	const op = "start run"
	at, err := utc(at)
	if err != nil {
		return opError(op, name, err)
	}
	return s.write(ctx, op, name, func(r *record) error {
		r.state.LastAttempt = at
		if r.state.FirstAttempt.IsZero() {
			r.state.FirstAttempt = at
		}
		return nil
	})
}

// SaveCheckpoint implements state.Store.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	const op = "save checkpoint"
	stored, err := storedCheckpoint(cp)
	if err != nil {
		return opError(op, name, err)
	}
	return s.write(ctx, op, name, func(r *record) error {
		if err := r.fence(cp.Token); err != nil {
			return err
		}
		r.state.Checkpoint = stored
		return nil
	})
}

// CompleteRun implements state.Store.
func (s *Store) CompleteRun(ctx context.Context, run state.Run) error {
	const op = "complete run"
	// A zero window end would read as "nothing delivered" and a zero finish
	// time could not resolve failures; both mean a caller bug.
	if run.WindowEnd.IsZero() {
		return opError(op, run.Connection, errors.New("run has no window end"))
	}
	if run.Finished.IsZero() {
		return opError(op, run.Connection, errors.New("run has no finish time"))
	}
	stored, err := storedRun(run)
	if err != nil {
		return opError(op, run.Connection, err)
	}
	return s.write(ctx, op, run.Connection, func(r *record) error {
		if err := r.fence(run.Token); err != nil {
			return err // before any change: a fenced run writes nothing
		}
		c := &r.state
		if stored.WindowEnd.After(c.Watermark) { // max(): never backwards
			c.Watermark = stored.WindowEnd
		}
		c.Checkpoint, c.LastError, c.LastErrorAt, c.LastSuccess = nil, "", time.Time{}, stored.Finished
		c.LastRead, c.LastDelivered = stored.Read, stored.Delivered
		c.TotalDelivered += stored.Delivered
		// The run delivered every member with last_changed < WindowEnd, so
		// a failure in a window ending no later is repaired; one without a
		// window end predates every window.
		r.failures = slices.DeleteFunc(r.failures, func(f state.Failure) bool {
			return f.WindowEnd.IsZero() || !f.WindowEnd.After(stored.WindowEnd)
		})
		s.appendRun(r, stored)
		return nil
	})
}

// FailRun implements state.Store.
func (s *Store) FailRun(ctx context.Context, run state.Run) error {
	const op = "fail run"
	stored, err := storedRun(run)
	if err != nil {
		return opError(op, run.Connection, err)
	}
	return s.write(ctx, op, run.Connection, func(r *record) error {
		if err := r.fence(run.Token); err != nil {
			return err
		}
		r.state.LastError, r.state.LastErrorAt = stored.Error, stored.Finished
		s.appendRun(r, stored)
		return nil
	})
}

// appendRun adds run to the history and drops all but the newest keepRuns.
func (s *Store) appendRun(r *record, run state.Run) {
	r.runs = append(r.runs, run)
	if extra := len(r.runs) - s.keepRuns; extra > 0 {
		r.runs = slices.Delete(r.runs, 0, extra)
	}
}

// AddFailure implements state.Store.
func (s *Store) AddFailure(ctx context.Context, f state.Failure) error {
	const op = "add failure"
	err := toUTC(timeField{"window start", &f.WindowStart}, timeField{"window end", &f.WindowEnd},
		timeField{"failed at", &f.At})
	if err != nil {
		return opError(op, f.Connection, err)
	}
	return s.write(ctx, op, f.Connection, func(r *record) error {
		r.failures = append(r.failures, f)
		if extra := len(r.failures) - s.keepFailures; extra > 0 {
			r.failures = slices.Delete(r.failures, 0, extra)
		}
		return nil
	})
}
