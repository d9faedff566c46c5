package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/chimport/chimport/internal/state"
)

// rosterChunk is how many ids one statement adds or removes: a change of
// 1,000 ids (what one page of members delivers) is one statement, and
// 1+rosterChunk parameters stay far below SQLite's limit of 32,766.
const rosterChunk = 1000

// UpdateRoster implements state.Store. It is one write transaction, as
// every write is (see write). The adds are appended to roster_log, a
// statement per rosterChunk ids, and leave roster and members alone: a
// change of adds only, what a sync writes before every batch, costs the
// same at any roster size. A change with removes folds the log first
// (its own adds among it, so an id in both ends up out, and an id logged
// by an earlier change cannot come back after its remove), then deletes,
// a statement per rosterChunk ids. Nothing else writes while it holds the
// write lock, so the rows the fold and the deletes changed (changes(),
// RowsAffected) are exactly how roster's size moved, and members stays
// equal to roster's row count without counting the table.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	if _, err := state.Nanos(c.Reconciled); err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	return s.write(ctx, op, name, func(tx *sql.Tx) error {
		if _, err := execChunks(ctx, tx, name, c.Add,
			"INSERT INTO roster_log (connection, id) SELECT ?, column1 FROM (VALUES ", "(?)", ")"); err != nil {
			return err
		}
		var added, removed int64
		if len(c.Remove) > 0 {
			var err error
			if added, err = fold(ctx, tx, name); err != nil {
				return err
			}
			// An id that is not there deletes nothing, and does not count
			// in changes().
			if removed, err = execChunks(ctx, tx, name, c.Remove,
				"DELETE FROM roster WHERE connection = ? AND id IN (", "?", ")"); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE connections SET
				kept = 1,
				members = members + ?2,
				left_count = left_count + ?3,
				last_reconcile = coalesce(?4, last_reconcile),
				default_view = coalesce(nullif(?5, 0), default_view)
			WHERE name = ?1`,
			name, added-removed, len(c.Remove), sqlTime(c.Reconciled), int64(c.DefaultView))
		return err
	})
}

// fold moves the connection's logged ids into roster, in id order, so
// the inserts walk the B-tree from one end to the other instead of
// landing on a random page each, and deletes them from the log. An id
// already in roster, or logged twice, is ignored and does not count in
// changes(): it returns how many ids roster gained, by which the caller
// moves members in the same transaction.
func fold(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO roster (connection, id)
		SELECT connection, id FROM roster_log WHERE connection = ? ORDER BY id`, name)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM roster_log WHERE connection = ?`, name); err != nil {
		return 0, err
	}
	return n, nil
}

// execChunks runs one statement per rosterChunk ids: head, then item once
// per id, separated by commas, then tail. The parameters are anonymous
// (?), the connection name first and then the ids: the driver looks up
// every parameter's name as it binds it, which costs a scan of the
// statement's named ones (numbered ?NNN among them) per parameter, and
// made a chunk of numbered parameters cost quadratic time. It returns the
// rows the statements changed.
func execChunks(ctx context.Context, tx *sql.Tx, name string, ids []state.MemberID, head, item, tail string) (int64, error) {
	var total int64
	args := make([]any, 0, 1+min(len(ids), rosterChunk))
	for part := range slices.Chunk(ids, rosterChunk) {
		args = append(args[:0], name)
		for i := range part {
			args = append(args, part[i][:])
		}
		res, err := tx.ExecContext(ctx, head+strings.Repeat(item+", ", len(part)-1)+item+tail, args...)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Roster implements state.Store. RosterSize folds the log first; then
// the primary key orders the rows by id, and BLOBs compare as memcmp
// does: ascending byte order, which the query reads straight off the
// table in one statement, one snapshot. Ids another handle logs after the
// fold are not in it, as they would not be had they come a moment later.
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
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM roster WHERE connection = ? ORDER BY id`, name)
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
		if len(b) != len(state.MemberID{}) {
			return fail(fmt.Errorf("roster id of %d bytes, want 16", len(b)))
		}
		out = append(out, state.MemberID(b))
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// RosterSize implements state.Store. members is roster's row count at
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
	err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM roster_log WHERE connection = ?1),
		(SELECT members FROM connections WHERE name = ?1)`, name).Scan(&logged, &members)
	if err != nil {
		return 0, opError(op, name, err)
	}
	if !logged {
		return members.Int64, nil
	}
	var n int64
	err = s.write(ctx, op, name, func(tx *sql.Tx) error {
		folded, err := fold(ctx, tx, name)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `UPDATE connections SET members = members + ?2
			WHERE name = ?1 RETURNING members`, name, folded).Scan(&n)
	})
	return n, err
}
