package sqlite

import (
	"context"
	"database/sql"
	"errors"
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
// every write is (see write): the adds, then the removes (so an id in both
// ends up out), a statement per rosterChunk ids, then the connection's
// row. Nothing else writes while it holds the write lock, so the rows its
// statements changed (changes(), RowsAffected) are exactly how the
// roster's size moved, and members stays exact without counting the table.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	if _, err := state.Nanos(c.Reconciled); err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	return s.write(ctx, op, name, func(tx *sql.Tx) error {
		// An id that is already there is ignored, and one that is not
		// there deletes nothing: neither counts in changes().
		added, err := execChunks(ctx, tx, name, c.Add,
			"INSERT OR IGNORE INTO roster (connection, id) SELECT ?, column1 FROM (VALUES ", "(?)", ")")
		if err != nil {
			return err
		}
		removed, err := execChunks(ctx, tx, name, c.Remove,
			"DELETE FROM roster WHERE connection = ? AND id IN (", "?", ")")
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE connections SET
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

// Roster implements state.Store. The primary key orders the rows by id,
// and BLOBs compare as memcmp does: ascending byte order, which the
// query reads straight off the table in one statement, one snapshot.
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

// RosterSize implements state.Store. members is exact after every
// UpdateRoster, so it is read, not counted.
func (s *Store) RosterSize(ctx context.Context, name string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT members FROM connections WHERE name = ?`, name).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("state: read roster size for %q: %w", name, err)
	}
	return n, nil
}
