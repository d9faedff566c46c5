package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/chimport/chimport/internal/state"
)

// rosterChunk is how many ids one statement appends to the log: a change
// of 1,000 ids (what one page of members delivers) is one statement, and
// 1+rosterChunk parameters stay far below SQLite's limit of 32,766.
const rosterChunk = 1000

// The folded roster is packed into buckets by the ids' leading bits (see
// migration 3): 4,096 of them, so a bucket of a roster of a million holds
// about 244 ids, 3.9 KB, and a page of 1,000 adds touches about 1,000
// buckets of a big roster but only a quarter of them more than once.
const (
	rosterBucketBits = 12
	rosterBuckets    = 1 << rosterBucketBits
	idSize           = len(state.MemberID{})
)

// bucketOf is the bucket of the id that id starts.
func bucketOf(id []byte) int {
	return int(id[0])<<(rosterBucketBits-8) | int(id[1])>>(16-rosterBucketBits)
}

// UpdateRoster implements state.Store. It is one write, as every write
// is (see write). A change of adds only, what a sync writes before every
// batch, appends them to roster_log, a statement per rosterChunk ids, and
// leaves the buckets and members alone: it costs the same at any roster
// size. But while the roster is small (see foldAtOnce) its adds are
// folded at once instead, which costs no more there, and spares the fold
// that RosterSize would otherwise write. A change with removes folds the
// log and its own adds into the buckets first and takes the removes out
// after them (so an id in both ends up out, and an id logged by an
// earlier change cannot come back after its remove), all in one pass over
// the buckets they touch. Nothing else writes while it holds the write
// lock, so the ids the fold found new and the removes found there are
// exactly how the roster's size moved, and members stays the buckets'
// total without counting them.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	if _, err := state.Nanos(c.Reconciled); err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	return s.write(ctx, op, name, func(w *writeTx) error {
		var moved int64
		switch now, err := foldAtOnce(w, name, c); {
		case err != nil:
			return err
		case now:
			if moved, err = fold(w, name, c.Add, c.Remove); err != nil {
				return err
			}
		default:
			if err := logIDs(w, name, c.Add); err != nil {
				return err
			}
		}
		_, err := w.exec(`UPDATE connections SET
				kept = 1,
				members = members + ?2,
				left_count = left_count + ?3,
				last_reconcile = coalesce(?4, last_reconcile),
				default_view = coalesce(nullif(?5, 0), default_view)
			WHERE name = ?1`,
			name, moved, len(c.Remove), sqlTime(c.Reconciled), int64(c.DefaultView))
		return err
	})
}

// smallRoster is the size up to which a roster's adds are folded at
// once: its buckets then hold about one id each, so a fold rewrites
// about one small row per id added, what logging them costs too.
const smallRoster = rosterBuckets

// foldAtOnce reports whether c is folded into the buckets now rather than
// logged: a change with removes always is; one of adds only when the
// roster, with them, stays within smallRoster. A change of neither is
// neither.
func foldAtOnce(w *writeTx, name string, c state.RosterChange) (bool, error) {
	switch {
	case len(c.Remove) > 0:
		return true, nil
	case len(c.Add) == 0 || len(c.Add) > smallRoster:
		return false, nil
	}
	var members int64
	if err := w.queryRow(`SELECT members FROM connections WHERE name = ?`, name).Scan(&members); err != nil {
		return false, err
	}
	return members+int64(len(c.Add)) <= smallRoster, nil
}

// logIDs appends ids to the connection's log, a statement per
// rosterChunk. The parameters are anonymous (?), the connection name
// first and then the ids: the driver looks up every parameter's name as
// it binds it, which costs a scan of the statement's named ones (numbered
// ?NNN among them) per parameter, and made a chunk of numbered parameters
// cost quadratic time.
func logIDs(w *writeTx, name string, ids []state.MemberID) error {
	args := make([]any, 0, 1+min(len(ids), rosterChunk))
	for part := range slices.Chunk(ids, rosterChunk) {
		args = append(args[:0], name)
		for i := range part {
			args = append(args, part[i][:])
		}
		if _, err := w.exec(`INSERT INTO roster_log (connection, id) SELECT ?, column1 FROM (VALUES `+
			placeholders("(?)", len(part))+")", args...); err != nil {
			return err
		}
	}
	return nil
}

// Roster implements state.Store. RosterSize folds the log first; then
// the connection's buckets, read in bucket order in one statement (one
// snapshot), concatenate to the roster in ascending byte order: each
// bucket is sorted, and a bucket's number is its ids' leading bits. Ids
// another handle logs after the fold are not in it, as they would not be
// had they come a moment later.
func (s *Store) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	fail := func(err error) ([]state.MemberID, error) {
		return nil, fmt.Errorf("state: read roster for %q: %w", name, err)
	}
	// The size, read first, sizes the slice: a roster of a million ids is
	// 16 MB, and growing it by appends would hold up to half as much again
	// while a reconcile is meant to stay under 24 bytes a member.
	size, err := s.RosterSize(ctx, name)
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT ids FROM roster_bucket WHERE connection = ? ORDER BY bucket`, name)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	out := make([]state.MemberID, 0, size)
	for rows.Next() {
		var b sql.RawBytes // valid until the next row: copied at once
		if err := rows.Scan(&b); err != nil {
			return fail(err)
		}
		if len(b)%idSize != 0 {
			return fail(fmt.Errorf("roster bucket of %d bytes, not a whole number of ids", len(b)))
		}
		for ; len(b) > 0; b = b[idSize:] {
			out = append(out, state.MemberID(b[:idSize]))
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// RosterSize implements state.Store. members is the buckets' total at
// every commit, so with nothing logged it is read, not counted. With ids
// logged, it folds them in one write transaction, which takes the write
// lock (so a fold by another handle, or an add, waits for it or comes
// after it), and returns members as that transaction left it. Whether
// anything is logged is read first, outside it: asking for the size of a
// connection the store does not know must not make it known (write would
// add its row), and a fold that finds the log emptied by another handle
// in between folds nothing.
func (s *Store) RosterSize(ctx context.Context, name string) (int64, error) {
	const op = "read roster size"
	var logged bool
	var members sql.NullInt64 // NULL for a connection the store does not know: 0
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM roster_log WHERE connection = ?1),
		(SELECT members FROM connections WHERE name = ?1)`, name).Scan(&logged, &members)
	if err != nil {
		return 0, opError(op, name, err)
	}
	if !logged {
		return members.Int64, nil
	}
	var n int64
	err = s.write(ctx, op, name, func(w *writeTx) error {
		folded, err := fold(w, name, nil, nil)
		if err != nil {
			return err
		}
		return w.queryRow(`UPDATE connections SET members = members + ?2
			WHERE name = ?1 RETURNING members`, name, folded).Scan(&n)
	})
	return n, err
}
