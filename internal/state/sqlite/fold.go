package sqlite

// The fold: how logged ids reach the roster's buckets (see roster.go).

import (
	"bytes"
	"cmp"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/chimport/chimport/internal/state"
)

// fold moves the connection's logged ids, and add, into its buckets,
// takes remove out of them, and empties the connection's log. Its memory
// is the log, 16 bytes an id, and a little more: the log is read a
// logChunk of rows at a time into one slice, sized by a count, and sorted
// and deduplicated in place; the buckets it touches (only those) are then
// read, merged and written back foldGroup at a time, each once, an
// emptied one deleted, into one merge buffer used again by every group.
// It returns how the roster's size moved: the ids that were new, less the
// ids removed that were there; the caller moves members by it in the
// same transaction.
func fold(w *writeTx, name string, add, remove []state.MemberID) (int64, error) {
	logged, nLogged, err := readLog(w, name, len(add))
	if err != nil {
		return 0, err
	}
	if nLogged == 0 && len(add) == 0 && len(remove) == 0 {
		return 0, nil
	}
	adds := sortedIDs(append(logged, add...))
	removes := sortedIDs(slices.Clone(remove)) // the caller's, left as it is
	var moved int64
	var old, buf []byte
	group := make([]bucketChange, 0, foldGroup)
	for len(adds) > 0 || len(removes) > 0 {
		b := rosterBuckets
		if len(adds) > 0 {
			b = bucketOf(adds[0][:])
		}
		if len(removes) > 0 {
			b = min(b, bucketOf(removes[0][:]))
		}
		c := bucketChange{bucket: b}
		c.add, adds = cutBucket(adds, b)
		c.remove, removes = cutBucket(removes, b)
		group = append(group, c)
		if len(group) == foldGroup || len(adds) == 0 && len(removes) == 0 {
			m, err := foldBuckets(w, name, group, &old, &buf)
			if err != nil {
				return 0, err
			}
			moved += m
			group = group[:0]
		}
	}
	return moved, clearLog(w, name, nLogged)
}

// foldGroup is how many touched buckets fold reads, merges and writes at
// once: 64 buckets of a roster of a million are 250 KB, read and written
// again, and a change with removes, which touches a few hundred, takes a
// few statements.
const foldGroup = 64

// bucketChange is one touched bucket's share of a fold: its sorted,
// distinct adds and removes.
type bucketChange struct {
	bucket      int
	add, remove []state.MemberID
}

// cutBucket splits the sorted ids into those of bucket b, their head,
// and the rest.
func cutBucket(ids []state.MemberID, b int) (in, rest []state.MemberID) {
	n := 0
	for n < len(ids) && bucketOf(ids[n][:]) == b {
		n++
	}
	return ids[:n], ids[n:]
}

// foldBuckets reads the group's buckets into *old, merges each with its adds and
// removes into *buf (grown once for the group and kept for the next, so
// a fold allocates no new bucket per bucket), and writes the ones that
// changed back, deleting the ones emptied. It returns how the roster's
// size moved.
func foldBuckets(w *writeTx, name string, group []bucketChange, old, buf *[]byte) (int64, error) {
	have, err := readBuckets(w, name, group, old)
	if err != nil {
		return 0, err
	}
	need := 0
	for i, c := range group {
		need += len(have[i]) + idSize*len(c.add)
	}
	out := slices.Grow((*buf)[:0], need)
	var moved int64
	write := make([]any, 0, 3*len(group))
	drop := make([]any, 1, 1+len(group))
	drop[0] = name
	for i, c := range group {
		start := len(out)
		var added, removed int
		out, added = mergeIDs(out, have[i], c.add)
		var ids []byte
		ids, removed = removeIDs(out[start:], c.remove)
		out = out[:start+len(ids)]
		switch {
		case added == 0 && removed == 0:
			out = out[:start]
		case len(ids) == 0:
			drop = append(drop, c.bucket)
		default:
			write = append(write, name, c.bucket, out[start:len(out):len(out)])
		}
		moved += int64(added - removed)
	}
	*buf = out
	if len(write) > 0 {
		if _, err := w.exec(`INSERT INTO roster_bucket (connection, bucket, ids) VALUES `+
			placeholders("(?, ?, ?)", len(write)/3)+` ON CONFLICT (connection, bucket) DO UPDATE SET ids = excluded.ids`, write...); err != nil {
			return 0, err
		}
	}
	if len(drop) > 1 {
		if _, err := w.exec(`DELETE FROM roster_bucket WHERE connection = ? AND bucket IN (`+
			placeholders("?", len(drop)-1)+")", drop...); err != nil {
			return 0, err
		}
	}
	return moved, nil
}

// logChunk is how many logged ids one statement of readLog concatenates:
// 1 MB, so SQLite never builds a value of the whole log.
const logChunk = 65536

// readLog returns the connection's logged ids, in no particular order,
// in a slice with room for spare more, and how many there are. The log
// is concatenated in SQL (group_concat does not look at the bytes), a
// value per range of logChunk seqs (a range of the rowid, so each
// statement reads only its pages) instead of a row per id: a row
// costs the driver more than the scan costs SQLite, and a first sync's
// fold reads a million. A BLOB becomes TEXT and the TEXT a BLOB again
// byte for byte: the file is UTF-8, which SQLite does not check. The
// count, read first with the range of seqs, sizes the slice (growing it by appends would hold up
// to twice the log), and the chunks are scanned as sql.RawBytes, copied
// straight into it.
func readLog(w *writeTx, name string, spare int) ([]state.MemberID, int, error) {
	var n int
	var first, last sql.NullInt64
	if err := w.queryRow(`SELECT count(*), min(seq), max(seq) FROM roster_log WHERE connection = ?`,
		name).Scan(&n, &first, &last); err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, nil
	}
	out := make([]state.MemberID, 0, n+spare)
	read := func(from int64) error {
		rows, err := w.query(`SELECT CAST(group_concat(id, '') AS BLOB) FROM roster_log
			WHERE connection = ? AND seq >= ? AND seq < ?`, name, from, from+logChunk)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var packed sql.RawBytes // valid until the next row: copied at once
			if err := rows.Scan(&packed); err != nil {
				return err
			}
			if len(packed)%idSize != 0 || len(out)+len(packed)/idSize > n {
				return fmt.Errorf("roster log chunk of %d bytes, not a whole number of ids or more than the log's %d", len(packed), n)
			}
			for ; len(packed) > 0; packed = packed[idSize:] {
				out = append(out, state.MemberID(packed[:idSize]))
			}
		}
		return rows.Err()
	}
	for from := first.Int64; from <= last.Int64; from += logChunk {
		if err := read(from); err != nil {
			return nil, 0, err
		}
	}
	if len(out) != n {
		return nil, 0, fmt.Errorf("roster log of %d ids read as %d", n, len(out))
	}
	return out, n, nil
}

// sortedIDs sorts ids and drops repeats, in place.
func sortedIDs(ids []state.MemberID) []state.MemberID {
	slices.SortFunc(ids, compareIDs)
	return slices.Compact(ids)
}

// clearLog deletes the connection's n logged ids. When they are the whole
// log, what it is but while two connections sync at once, it deletes
// without a WHERE clause, which SQLite does by freeing the table's pages
// (the truncate optimisation) instead of deleting a million rows one by
// one; that is also why roster_log has no foreign key, which would turn
// the optimisation off. Counting the table is cheap: count(*) counts each
// page's cells without reading them.
func clearLog(w *writeTx, name string, n int) error {
	if n == 0 {
		return nil
	}
	var all int
	if err := w.queryRow(`SELECT count(*) FROM roster_log`).Scan(&all); err != nil {
		return err
	}
	query := `DELETE FROM roster_log WHERE connection = ?`
	args := []any{name}
	if all == n {
		query, args = `DELETE FROM roster_log`, nil
	}
	_, err := w.exec(query, args...)
	return err
}

// readBuckets returns the stored ids of the group's buckets, in the
// group's order, copied into *buf (kept for the next group); a bucket
// with no row is empty.
func readBuckets(w *writeTx, name string, group []bucketChange, buf *[]byte) ([][]byte, error) {
	var span [foldGroup][2]int
	old := (*buf)[:0]
	at := make(map[int]int, len(group))
	args := make([]any, 1, 1+len(group))
	args[0] = name
	for i, c := range group {
		at[c.bucket] = i
		args = append(args, c.bucket)
	}
	rows, err := w.query(`SELECT bucket, ids FROM roster_bucket WHERE connection = ? AND bucket IN (`+
		placeholders("?", len(group))+")", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var b int
		var ids sql.RawBytes // valid until the next row: copied at once
		if err := rows.Scan(&b, &ids); err != nil {
			return nil, err
		}
		i, ok := at[b]
		if !ok || len(ids)%idSize != 0 {
			return nil, fmt.Errorf("roster bucket %d holds %d bytes, not a whole number of ids", b, len(ids))
		}
		span[i] = [2]int{len(old), len(old) + len(ids)}
		old = append(old, ids...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	*buf = old
	have := make([][]byte, len(group))
	for i := range have {
		have[i] = old[span[i][0]:span[i][1]]
	}
	return have, nil
}

// compareIDs orders ids as bytes.Compare does, a half at a time: sorting a
// million takes half as long.
func compareIDs(a, b state.MemberID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// mergeIDs appends to out the sorted ids of have with add's (sorted,
// distinct) among them, and returns how many of add were not there
// already.
func mergeIDs(out, have []byte, add []state.MemberID) ([]byte, int) {
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

// removeIDs takes remove's ids (sorted, distinct) out of the sorted ids
// of have, in place, and returns what is left and how many were there.
func removeIDs(have []byte, remove []state.MemberID) ([]byte, int) {
	if len(remove) == 0 || len(have) == 0 {
		return have, 0
	}
	out := have[:0]
	removed := 0
	for rest := have; len(rest) > 0; rest = rest[idSize:] {
		for len(remove) > 0 && bytes.Compare(remove[0][:], rest[:idSize]) < 0 {
			remove = remove[1:]
		}
		if len(remove) > 0 && bytes.Equal(remove[0][:], rest[:idSize]) {
			remove = remove[1:]
			removed++
		} else {
			out = append(out, rest[:idSize]...)
		}
	}
	return out, removed
}

// placeholders is item n times, separated by commas.
func placeholders(item string, n int) string {
	return strings.Repeat(item+", ", n-1) + item
}
