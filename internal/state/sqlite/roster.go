package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

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

// bucketChunk is how many buckets one statement reads, writes or deletes:
// 3 parameters a row written, 3,000 in all, and at most 4 MB of ids.
const bucketChunk = 1000

// bucketOf is the bucket of the id that id starts.
func bucketOf(id []byte) int {
	return int(id[0])<<(rosterBucketBits-8) | int(id[1])>>(16-rosterBucketBits)
}

// UpdateRoster implements state.Store. It is one write transaction, as
// every write is (see write). A change of adds only, what a sync writes
// before every batch, appends them to roster_log, a statement per
// rosterChunk ids, and leaves the buckets and members alone: it costs the
// same at any roster size. A change with removes folds the log and its
// own adds into the buckets first and takes the removes out after them
// (so an id in both ends up out, and an id logged by an earlier change
// cannot come back after its remove), all in one pass over the buckets
// they touch. Nothing else writes while it holds the write lock, so the
// ids the fold found new and the removes found there are exactly how the
// roster's size moved, and members stays the buckets' total without
// counting them.
func (s *Store) UpdateRoster(ctx context.Context, name string, c state.RosterChange) error {
	const op = "update roster"
	if _, err := state.Nanos(c.Reconciled); err != nil {
		return opError(op, name, fmt.Errorf("reconciled: %w", err))
	}
	if c.DefaultView > state.DefaultViewWithArchived {
		return opError(op, name, fmt.Errorf("unknown default view %d", c.DefaultView))
	}
	return s.write(ctx, op, name, func(tx *sql.Tx) error {
		var moved int64
		if len(c.Remove) == 0 {
			if err := logIDs(ctx, tx, name, c.Add); err != nil {
				return err
			}
		} else {
			var err error
			if moved, err = fold(ctx, tx, name, c.Add, c.Remove); err != nil {
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
			name, moved, len(c.Remove), sqlTime(c.Reconciled), int64(c.DefaultView))
		return err
	})
}

// logIDs appends ids to the connection's log, a statement per
// rosterChunk. The parameters are anonymous (?), the connection name
// first and then the ids: the driver looks up every parameter's name as
// it binds it, which costs a scan of the statement's named ones (numbered
// ?NNN among them) per parameter, and made a chunk of numbered parameters
// cost quadratic time.
func logIDs(ctx context.Context, tx *sql.Tx, name string, ids []state.MemberID) error {
	args := make([]any, 0, 1+min(len(ids), rosterChunk))
	for part := range slices.Chunk(ids, rosterChunk) {
		args = append(args[:0], name)
		for i := range part {
			args = append(args, part[i][:])
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO roster_log (connection, id) SELECT ?, column1 FROM (VALUES `+
			placeholders("(?)", len(part))+")", args...); err != nil {
			return err
		}
	}
	return nil
}

// fold moves the connection's logged ids, and add, into its buckets,
// takes remove out of them, and empties the connection's log. The ids are
// grouped by bucket and sorted in Go; only the buckets they touch are
// read and written, each once, an emptied one deleted. It returns how the
// roster's size moved: the ids that were new, less the ids removed that
// were there; the caller moves members by it in the same transaction.
func fold(ctx context.Context, tx *sql.Tx, name string, add, remove []state.MemberID) (int64, error) {
	logged, err := readLog(ctx, tx, name)
	if err != nil {
		return 0, err
	}
	nLogged := len(logged) / idSize
	if nLogged == 0 && len(add) == 0 && len(remove) == 0 {
		return 0, nil
	}
	adds := groupByBucket(pack(logged, add))
	removes := groupByBucket(pack(nil, remove))
	var touched []int
	for b := range rosterBuckets {
		if len(adds[b]) > 0 || len(removes[b]) > 0 {
			touched = append(touched, b)
		}
	}
	have, err := readBuckets(ctx, tx, name, touched)
	if err != nil {
		return 0, err
	}
	var moved int64
	var write, drop []int
	for _, b := range touched {
		ids, added := mergeIDs(have[b], adds[b])
		ids, removed := removeIDs(ids, removes[b])
		if added == 0 && removed == 0 {
			continue
		}
		moved += int64(added - removed)
		have[b] = ids
		if len(ids) == 0 {
			drop = append(drop, b)
		} else {
			write = append(write, b)
		}
	}
	args := make([]any, 0, 1+3*bucketChunk)
	for part := range slices.Chunk(write, bucketChunk) {
		args = args[:0]
		for _, b := range part {
			args = append(args, name, b, have[b])
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO roster_bucket (connection, bucket, ids) VALUES `+
			placeholders("(?, ?, ?)", len(part))+` ON CONFLICT (connection, bucket) DO UPDATE SET ids = excluded.ids`, args...); err != nil {
			return 0, err
		}
	}
	for part := range slices.Chunk(drop, bucketChunk) {
		args = append(args[:0], name)
		for _, b := range part {
			args = append(args, b)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM roster_bucket WHERE connection = ? AND bucket IN (`+
			placeholders("?", len(part))+")", args...); err != nil {
			return 0, err
		}
	}
	return moved, clearLog(ctx, tx, name, nLogged)
}

// readLog returns the connection's logged ids packed, 16 bytes each, in
// no particular order. The log is concatenated in SQL (group_concat does
// not look at the bytes), one value instead of a row per id: a row costs
// the driver more than the scan costs SQLite, and a first sync's fold
// reads a million. A BLOB becomes TEXT and the TEXT a BLOB again byte
// for byte: the file is UTF-8, which SQLite does not check.
func readLog(ctx context.Context, tx *sql.Tx, name string) ([]byte, error) {
	var packed []byte
	err := tx.QueryRowContext(ctx, `SELECT CAST(group_concat(id, '') AS BLOB) FROM roster_log
		WHERE connection = ?`, name).Scan(&packed)
	if err == nil && len(packed)%idSize != 0 {
		err = fmt.Errorf("roster log of %d bytes, not a whole number of ids", len(packed))
	}
	return packed, err
}

// clearLog deletes the connection's n logged ids. When they are the whole
// log, what it is but while two connections sync at once, it deletes
// without a WHERE clause, which SQLite does by freeing the table's pages
// (the truncate optimisation) instead of deleting a million rows one by
// one; that is also why roster_log has no foreign key, which would turn
// the optimisation off. Counting the table is cheap: count(*) counts each
// page's cells without reading them.
func clearLog(ctx context.Context, tx *sql.Tx, name string, n int) error {
	if n == 0 {
		return nil
	}
	var all int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM roster_log`).Scan(&all); err != nil {
		return err
	}
	query := `DELETE FROM roster_log WHERE connection = ?`
	args := []any{name}
	if all == n {
		query, args = `DELETE FROM roster_log`, nil
	}
	_, err := tx.ExecContext(ctx, query, args...)
	return err
}

// readBuckets returns the stored ids of the given buckets (ascending),
// indexed by bucket number; a bucket with no row is nil. Most buckets
// touched is what a big fold does, and then one scan of the connection's
// buckets costs less than looking each up.
func readBuckets(ctx context.Context, tx *sql.Tx, name string, buckets []int) ([][]byte, error) {
	have := make([][]byte, rosterBuckets)
	read := func(query string, args ...any) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b int
			var ids []byte
			if err := rows.Scan(&b, &ids); err != nil {
				return err
			}
			if b < 0 || b >= rosterBuckets || len(ids)%idSize != 0 {
				return fmt.Errorf("roster bucket %d holds %d bytes, not a whole number of ids", b, len(ids))
			}
			have[b] = ids
		}
		return rows.Err()
	}
	if len(buckets) > rosterBuckets/4 {
		return have, read(`SELECT bucket, ids FROM roster_bucket WHERE connection = ?`, name)
	}
	args := make([]any, 0, 1+min(len(buckets), bucketChunk))
	for part := range slices.Chunk(buckets, bucketChunk) {
		args = append(args[:0], name)
		for _, b := range part {
			args = append(args, b)
		}
		if err := read(`SELECT bucket, ids FROM roster_bucket WHERE connection = ? AND bucket IN (`+
			placeholders("?", len(part))+")", args...); err != nil {
			return nil, err
		}
	}
	return have, nil
}

// groupByBucket returns the packed ids by bucket, each bucket's sorted
// and distinct: one counting pass puts them in bucket order, and then
// only each bucket's few ids are sorted.
func groupByBucket(packed []byte) [][]state.MemberID {
	out := make([][]state.MemberID, rosterBuckets)
	n := len(packed) / idSize
	if n == 0 {
		return out
	}
	var start [rosterBuckets + 1]int
	for i := 0; i < len(packed); i += idSize {
		start[bucketOf(packed[i:])+1]++
	}
	for b := 1; b <= rosterBuckets; b++ {
		start[b] += start[b-1]
	}
	sorted := make([]state.MemberID, n)
	next := start
	for i := 0; i < len(packed); i += idSize {
		b := bucketOf(packed[i:])
		sorted[next[b]] = state.MemberID(packed[i : i+idSize])
		next[b]++
	}
	for b := range rosterBuckets {
		if part := sorted[start[b]:start[b+1]]; len(part) > 0 {
			slices.SortFunc(part, compareIDs)
			out[b] = slices.Compact(part)
		}
	}
	return out
}

// pack appends ids to packed, 16 bytes each.
func pack(packed []byte, ids []state.MemberID) []byte {
	packed = slices.Grow(packed, idSize*len(ids))
	for i := range ids {
		packed = append(packed, ids[i][:]...)
	}
	return packed
}

func compareIDs(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) }

// mergeIDs returns the packed, sorted ids of have with add's (sorted,
// distinct) among them, and how many of add were not there already.
func mergeIDs(have []byte, add []state.MemberID) ([]byte, int) {
	if len(add) == 0 {
		return have, 0
	}
	out := make([]byte, 0, len(have)+idSize*len(add))
	added := 0
	for len(have) > 0 && len(add) > 0 {
		switch c := bytes.Compare(have[:idSize], add[0][:]); {
		case c < 0:
			out, have = append(out, have[:idSize]...), have[idSize:]
		case c > 0:
			out, add = append(out, add[0][:]...), add[1:]
			added++
		default:
			add = add[1:]
		}
	}
	out = append(out, have...)
	for i := range add {
		out = append(out, add[i][:]...)
	}
	return out, added + len(add)
}

// removeIDs returns the packed, sorted ids of have without remove's
// (sorted, distinct), and how many of them were there.
func removeIDs(have []byte, remove []state.MemberID) ([]byte, int) {
	if len(remove) == 0 || len(have) == 0 {
		return have, 0
	}
	out := make([]byte, 0, len(have))
	removed := 0
	for len(have) > 0 {
		for len(remove) > 0 && bytes.Compare(remove[0][:], have[:idSize]) < 0 {
			remove = remove[1:]
		}
		if len(remove) > 0 && bytes.Equal(remove[0][:], have[:idSize]) {
			remove = remove[1:]
			removed++
		} else {
			out = append(out, have[:idSize]...)
		}
		have = have[idSize:]
	}
	return out, removed
}

// placeholders is item n times, separated by commas.
func placeholders(item string, n int) string {
	return strings.Repeat(item+", ", n-1) + item
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
	rows, err := s.db.QueryContext(ctx, `SELECT ids FROM roster_bucket WHERE connection = ? ORDER BY bucket`, name)
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
		folded, err := fold(ctx, tx, name, nil, nil)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `UPDATE connections SET members = members + ?2
			WHERE name = ?1 RETURNING members`, name, folded).Scan(&n)
	})
	return n, err
}
