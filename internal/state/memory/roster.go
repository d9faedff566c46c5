package memory

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/chimport/chimport/internal/state"
)

// UpdateRoster implements state.Store. Adds are applied before removes, as
// SQLite applies them: an id in both ends up out of the roster.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	reconciled, err := utc(c.Reconciled)
	if err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	return s.write(ctx, op, name, func(r *record) error {
		if r.roster == nil {
			r.roster = make(map[state.MemberID]struct{}, len(c.Add))
		}
		for _, id := range c.Add {
			r.roster[id] = struct{}{}
		}
		for _, id := range c.Remove {
			delete(r.roster, id)
		}
		rs := &r.state.Roster
		rs.Kept = true
		rs.Members = int64(len(r.roster))
		rs.Left += int64(len(c.Remove))
		if !reconciled.IsZero() {
			rs.LastReconcile = reconciled
		}
		if c.DefaultView != state.DefaultViewUnknown {
			rs.DefaultView = c.DefaultView
		}
		return nil
	})
}

// Roster implements state.Store. The ids are copied under the lock and
// sorted outside it, so a large roster holds up no other caller while it
// sorts.
func (s *Store) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	var out []state.MemberID
	err := s.read(ctx, func() {
		if r := s.conns[name]; r != nil && len(r.roster) > 0 {
			out = make([]state.MemberID, 0, len(r.roster))
			for id := range r.roster {
				out = append(out, id)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("state: read roster for %q: %w", name, err)
	}
	slices.SortFunc(out, func(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) })
	return out, nil
}

// RosterSize implements state.Store. Members is kept exact by every
// UpdateRoster, so there is nothing to fold.
func (s *Store) RosterSize(ctx context.Context, name string) (int64, error) {
	var n int64
	err := s.read(ctx, func() {
		if r := s.conns[name]; r != nil {
			n = int64(len(r.roster))
		}
	})
	if err != nil {
		return 0, fmt.Errorf("state: read roster size for %q: %w", name, err)
	}
	return n, nil
}
