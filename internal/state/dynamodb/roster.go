package dynamodb

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// The roster: UpdateRoster appends a delta, RosterSize folds the deltas
// into the buckets, Roster reads both. The package doc describes the
// items and why the fold is safe with several writers.

// When UpdateRoster folds by itself: once the deltas a handle wrote to a
// connection since its last fold of it reach either bound, so a roster
// whose runs never get as far as RosterSize still reads in a bounded
// number of calls. A first sync of 200,000 ids writes 200 deltas of
// 16 KB, and folds only at its RosterSize.
const (
	foldAfterBytes  = 32 << 20
	foldAfterGroups = 2048
)

// UpdateRoster implements state.Store: the change's ids as one delta group
// (one item per maxItemIDs ids), then the connection's history item. The
// history item is left alone when it would not change: this handle
// already marked the roster kept and the change removes nothing and
// records no reconcile. Adds are applied before removes, as in the other
// stores: an id in both ends up out of the roster.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	return s.write("update roster", name, func() (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if _, err := state.Nanos(c.Reconciled); err != nil {
			return "", fmt.Errorf("reconciled: %w", err)
		}
		if c.DefaultView > state.DefaultViewWithArchived {
			return "", fmt.Errorf("unknown default view %d", c.DefaultView)
		}
		parts := deltaItems(name, s.nextGroup(), c)
		puts := make([]types.WriteRequest, len(parts))
		for i, it := range parts {
			puts[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
		}
		if err := batchWrite(ctx, s.client, s.cfg.RunsTable, puts); err != nil {
			// The parts written are an incomplete group, which no read
			// applies (see orphanAge).
			return s.cfg.RunsTable, err
		}

		u := newHistoryUpdate()
		u.setValue(attrRosterKept, &types.AttributeValueMemberBOOL{Value: true})
		changes := !s.keptWritten(name)
		if n := len(c.Remove); n > 0 {
			u.addNumber(attrRosterLeft, int64(n))
			changes = true
		}
		if !c.Reconciled.IsZero() {
			u.setTime(attrRosterLastReconcile, c.Reconciled)
			changes = true
		}
		if c.DefaultView != state.DefaultViewUnknown {
			u.setValue(attrRosterDefaultView, num(int64(c.DefaultView)))
			changes = true
		}
		if changes {
			if _, err := s.updateHistory(ctx, name, u); err != nil {
				return s.cfg.HistoryTable, err
			}
			s.markKept(name)
		}

		if s.dueForFold(name, parts) {
			// The change is written: a fold that fails here is left to the
			// next one, and to RosterSize, which reports its errors.
			if _, err := s.fold(ctx, name); err == nil {
				s.folded(name)
			}
		}
		return "", nil
	})
}

// Roster implements state.Store: the buckets, with the deltas not yet
// folded applied on top. The meta item is read again at the end: if no
// fold committed meanwhile, every item read belongs to the same roster.
func (s *Store) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	if name == "" {
		return nil, ctx.Err()
	}
	for try := 1; try <= foldTries; try++ {
		ids, err := s.readRoster(ctx, name)
		if errors.Is(err, errFoldConflict) {
			if err = conflictPause(ctx, try); err == nil {
				continue
			}
		}
		if err != nil {
			return nil, s.opError("read roster", name, s.cfg.RunsTable, err)
		}
		return ids, nil
	}
	return nil, s.opError("read roster", name, s.cfg.RunsTable,
		fmt.Errorf("the roster kept changing under this read (%d tries)", foldTries))
}

// readRoster is one try of Roster; errFoldConflict when a fold committed
// while it read.
func (s *Store) readRoster(ctx context.Context, name string) ([]state.MemberID, error) {
	m, err := s.readMeta(ctx, name)
	if err != nil {
		return nil, err
	}
	groups, err := s.readDeltas(ctx, name)
	if err != nil {
		return nil, err
	}
	content, missing, err := s.readBuckets(ctx, name, m, nonEmpty(m))
	if err != nil {
		return nil, err
	}
	switch version, err := s.metaVersion(ctx, name); {
	case err != nil:
		return nil, err
	case version != m.version:
		return nil, errFoldConflict
	case missing >= 0:
		return nil, damaged(m, missing)
	}
	ids := make([]state.MemberID, 0, m.size)
	for b := range m.gens {
		ids = append(ids, content[b]...)
	}
	var unfolded []*deltaGroup
	for _, g := range groups {
		if g.complete() && !m.isFolded(g.id) {
			unfolded = append(unfolded, g)
		}
	}
	return apply(ids, opsOf(unfolded)), nil
}

// RosterSize implements state.Store: it folds, then records the size on
// the history item, on condition that no fold after this one recorded
// its size first. A connection without a roster item stays unknown.
func (s *Store) RosterSize(ctx context.Context, name string) (int64, error) {
	if name == "" {
		return 0, ctx.Err()
	}
	var size int64
	err := s.write("count roster", name, func() (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		m, err := s.fold(ctx, name)
		if err != nil {
			return s.cfg.RunsTable, err
		}
		s.folded(name)
		size = m.size
		if !m.exists {
			return "", nil
		}
		u := newHistoryUpdate()
		u.setValue(attrRosterMembers, num(m.size))
		ph := u.setValue(attrRosterCounted, num(m.version))
		counted := u.name(attrRosterCounted)
		u.cond = "attribute_not_exists(" + counted + ") OR " + counted + " <= " + ph
		_, err = s.updateHistory(ctx, name, u)
		var newer *types.ConditionalCheckFailedException
		if errors.As(err, &newer) {
			return "", nil // a later fold's size is recorded already
		}
		return s.cfg.HistoryTable, err
	})
	return size, err
}

// nextGroup names a new delta group. The time is this handle's clock, but
// never behind the handle's previous group, so one handle's changes fold
// in the order it made them even when its clock steps back.
func (s *Store) nextGroup() groupID {
	s.rosterMu.Lock()
	defer s.rosterMu.Unlock()
	at := uint64(s.now().UnixNano()) ^ (1 << 63) // as runID: times before 1970 sort first
	if at <= s.lastGroup {
		at = s.lastGroup + 1
	}
	s.lastGroup = at
	return newGroupID(at, s.handle)
}

// keptWritten says whether this handle has set RosterKept on the
// connection's history item. Nothing ever clears it, so once is enough.
func (s *Store) keptWritten(name string) bool {
	s.rosterMu.Lock()
	defer s.rosterMu.Unlock()
	return s.kept[name]
}

func (s *Store) markKept(name string) {
	s.rosterMu.Lock()
	defer s.rosterMu.Unlock()
	s.kept[name] = true
}

// dueForFold counts the parts this handle just wrote to the connection,
// and says whether they have reached a fold's bounds.
func (s *Store) dueForFold(name string, parts []item) bool {
	var size int64
	for _, it := range parts {
		for _, attr := range []string{attrAdd, attrRemove} {
			if v, ok := it[attr].(*types.AttributeValueMemberB); ok {
				size += int64(len(v.Value))
			}
		}
	}
	s.rosterMu.Lock()
	defer s.rosterMu.Unlock()
	w := s.unfolded[name]
	w.bytes += size
	w.groups += min(len(parts), 1)
	s.unfolded[name] = w
	return w.bytes >= s.foldAfterBytes || w.groups >= s.foldAfterGroups
}

// folded forgets what this handle wrote to the connection before its fold.
func (s *Store) folded(name string) {
	s.rosterMu.Lock()
	defer s.rosterMu.Unlock()
	delete(s.unfolded, name)
}

// unfoldedWrites is what a handle wrote to one connection's roster since
// it last folded it.
type unfoldedWrites struct {
	bytes  int64
	groups int
}
