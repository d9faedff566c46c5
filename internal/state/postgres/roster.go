package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/chimport/chimport/internal/state"
)

// idChunk is how many ids one statement sends, as one bytea[] parameter:
// a page of members (1,000) is one statement, and a reconcile's removes
// of a large roster go in statements of a bounded size.
const idChunk = 10000

// idArray is ids as a bytea[] parameter, slices of the ids themselves.
func idArray(ids []state.MemberID) [][]byte {
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return out
}

// lockInOrder selects the rows of table (roster or rejected; never user
// input) for connection $1 whose member is in $2, locking them in member
// order. A DELETE ... = ANY on its own locks rows in the order its plan
// meets them, which for a long list is a scan in the table's order, and
// could wait on a writer that waits on it.
func lockInOrder(table string) string {
	return `SELECT member FROM ` + table + ` WHERE connection = $1 AND member = ANY ($2::bytea[]) ORDER BY member FOR UPDATE`
}

// sortedIDs is a sorted copy of ids. An insert takes its rows' locks in
// the order it is given them, so two writers adding the same ids in
// different orders could each wait for the other; in one order they
// queue instead.
func sortedIDs(ids []state.MemberID) []state.MemberID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// UpdateRoster implements state.Store: a row per id, in one transaction.
// The adds go in first and the removes after them, so an id in both ends
// up out. members moves by the rows the insert added and the delete took
// away, counted by the statements themselves: an insert that meets an id
// another transaction is adding waits for it and then adds nothing, and a
// delete of a row another is deleting finds nothing, so members equals
// the rows at every commit.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	if _, err := state.Nanos(c.Reconciled); err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	if len(c.Add) == 0 && len(c.Remove) == 0 {
		// Only the roster's state (a reconcile's mark): one statement.
		return s.writeOne(ctx, op, name, func(q querier) error {
			return markRoster(ctx, q, name, 0, c)
		})
	}
	add, remove := sortedIDs(c.Add), sortedIDs(c.Remove)
	return s.write(ctx, op, name, func(tx pgx.Tx) error {
		var moved int64
		for part := range slices.Chunk(add, idChunk) {
			tag, err := tx.Exec(ctx, `INSERT INTO roster (connection, member)
				SELECT $1, unnest($2::bytea[]) ON CONFLICT DO NOTHING`, name, idArray(part))
			if err != nil {
				return err
			}
			moved += tag.RowsAffected()
		}
		for part := range slices.Chunk(remove, idChunk) {
			tag, err := tx.Exec(ctx, `DELETE FROM roster WHERE connection = $1 AND member IN (`+lockInOrder("roster")+`)`,
				name, idArray(part))
			if err != nil {
				return err
			}
			moved -= tag.RowsAffected()
		}
		return markRoster(ctx, tx, name, moved, c)
	})
}

// markRoster records a roster change in the connection's row: the roster
// is kept, its size moved by moved, and c's removes, reconcile and
// default view.
func markRoster(ctx context.Context, q querier, name string, moved int64, c state.RosterChange) error {
	_, err := q.Exec(ctx, `UPDATE connections SET
			kept = true,
			members = members + $2,
			left_count = left_count + $3,
			last_reconcile = coalesce($4, last_reconcile),
			default_view = coalesce(nullif($5::smallint, 0), default_view)
		WHERE name = $1`,
		name, moved, len(c.Remove), nanos(c.Reconciled), int16(c.DefaultView))
	return err
}

// Roster implements state.Store: one statement, one snapshot, read
// through the primary key in member order.
func (s *Store) Roster(ctx context.Context, name string) ([]state.MemberID, error) {
	fail := func(err error) ([]state.MemberID, error) {
		return nil, fmt.Errorf("state: read roster for %q: %w", name, err)
	}
	// Both statements on one connection: with many runs at once, waiting
	// for one of the pool's costs more than either.
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Release()
	// The size sizes the slice: a roster of a million ids is 16 MB, and
	// growing it by appends would hold up to half as much again.
	size, err := rosterSize(ctx, conn, name)
	if err != nil {
		return fail(err)
	}
	rows, err := conn.Query(ctx, `SELECT member FROM roster WHERE connection = $1 ORDER BY member`, name)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	out := make([]state.MemberID, 0, size)
	// bytea's binary form is its bytes, read in place (valid until Next)
	// without an allocation a row. A pool in simple-protocol mode (for
	// PgBouncer) gets the text form, which Scan decodes.
	binary := rows.FieldDescriptions()[0].Format == pgx.BinaryFormatCode
	for rows.Next() {
		b := rows.RawValues()[0]
		if !binary {
			if err := rows.Scan(&b); err != nil {
				return fail(err)
			}
		}
		if len(b) != len(state.MemberID{}) {
			return fail(fmt.Errorf("member id of %d bytes, want %d", len(b), len(state.MemberID{})))
		}
		out = append(out, state.MemberID(b))
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// RosterSize implements state.Store. members is the rows' count at every
// commit (see UpdateRoster), so it is read, not counted; a connection the
// store does not know has none.
func (s *Store) RosterSize(ctx context.Context, name string) (int64, error) {
	n, err := rosterSize(ctx, s.pool, name)
	if err != nil {
		return 0, opError("read roster size", name, err)
	}
	return n, nil
}

func rosterSize(ctx context.Context, q querier, name string) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT coalesce((SELECT members FROM connections WHERE name = $1), 0)`, name).Scan(&n)
	return n, err
}
