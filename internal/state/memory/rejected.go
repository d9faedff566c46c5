package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// RecordRejections implements state.Store.
func (s *Store) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	const op = "record rejections"
	stored := make([]state.Rejection, len(rs))
	for i, rj := range rs {
		if err := state.CheckRejection(rj); err != nil {
			return opError(op, name, err)
		}
		at, _ := utc(rj.LastAttempt) // checked
		rj.LastAttempt, rj.FirstSeen, rj.Attempts = at, at, 1
		stored[i] = rj
	}
	return s.write(ctx, op, name, func(r *record) error {
		if r.rejected == nil {
			r.rejected = map[state.MemberID]*state.Rejection{}
		}
		for _, rj := range state.LastPerMember(stored) {
			if old := r.rejected[rj.Member]; old != nil {
				rj.FirstSeen, rj.Attempts = old.FirstSeen, old.Attempts+1
			}
			r.rejected[rj.Member] = &rj
		}
		r.sumRejected()
		return nil
	})
}

// ClearRejections implements state.Store.
func (s *Store) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	return s.write(ctx, "clear rejections", name, func(r *record) error {
		for _, id := range members {
			delete(r.rejected, id)
		}
		r.sumRejected()
		return nil
	})
}

// sumRejected sets state.Rejected from the log: its size, and the entry
// refused last (the smallest id among equals, as the other stores pick).
func (r *record) sumRejected() {
	rs := &r.state.Rejected
	rs.Count, rs.Sample = int64(len(r.rejected)), nil
	for _, rj := range r.rejected {
		if s := rs.Sample; s == nil || rj.LastAttempt.After(s.LastAttempt) ||
			rj.LastAttempt.Equal(s.LastAttempt) && bytes.Compare(rj.Member[:], s.Member[:]) < 0 {
			rs.Sample = rj
		}
	}
	if rs.Sample != nil {
		sample := *rs.Sample
		rs.Sample = &sample
	}
}

// RejectedLog implements state.Store.
func (s *Store) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	var out []state.Rejection
	err := s.read(ctx, func() {
		if r := s.conns[name]; r != nil {
			for _, rj := range r.rejected {
				out = append(out, *rj)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("state: read rejected log for %q: %w", name, err)
	}
	slices.SortFunc(out, func(a, b state.Rejection) int { return bytes.Compare(a.Member[:], b.Member[:]) })
	return out, nil
}

// NoteError implements state.Store.
func (s *Store) NoteError(ctx context.Context, name, msg string, at time.Time) error {
	const op = "note error"
	if err := state.CheckNoteError(msg, at); err != nil {
		return opError(op, name, err)
	}
	stamp, _ := utc(at) // checked
	return s.write(ctx, op, name, func(r *record) error {
		if stamp.Before(r.state.LastErrorAt) {
			return nil
		}
		r.state.LastError, r.state.LastErrorAt = msg, stamp
		return nil
	})
}
