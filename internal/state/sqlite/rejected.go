package sqlite

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// rejectedColumns are the two columns of connectionColumns that sum up a
// connection's rejected log: how many entries it has, and the latest
// refusal (the smallest member id of those refused at the same instant)
// as JSON, NULL when there is none. Both are correlated subqueries that
// read one range of the rejected_latest index (the count without
// touching the rows, the sample at the range's first entry), so listing
// 10,000 connections costs a seek per connection and sorts nothing. The
// member is in hex: JSON holds no BLOBs.
const rejectedColumns = `(SELECT count(*) FROM rejected WHERE rejected.connection = connections.name),
	(SELECT json_object('member', hex(member), 'key', record_key, 'status', status, 'reason', reason,
			'first_seen', first_seen, 'last_attempt', last_attempt, 'attempts', attempts)
		FROM rejected WHERE rejected.connection = connections.name
		ORDER BY last_attempt DESC, member LIMIT 1)`

// sampleRecord is rejectedColumns' JSON.
type sampleRecord struct {
	Member      string `json:"member"`
	Key         string `json:"key"`
	Status      int    `json:"status"`
	Reason      string `json:"reason"`
	FirstSeen   int64  `json:"first_seen"`
	LastAttempt int64  `json:"last_attempt"`
	Attempts    int    `json:"attempts"`
}

func decodeSample(s string) (*state.Rejection, error) {
	var r sampleRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("decode rejected sample: %w", err)
	}
	var id state.MemberID
	if n, err := hex.Decode(id[:], []byte(r.Member)); err != nil || n != len(id) {
		return nil, fmt.Errorf("decode rejected sample: member %q is not 16 bytes of hex", r.Member)
	}
	return &state.Rejection{Member: id, Key: r.Key, Status: r.Status, Reason: r.Reason,
		FirstSeen: state.FromNanos(&r.FirstSeen), LastAttempt: state.FromNanos(&r.LastAttempt),
		Attempts: r.Attempts}, nil
}

// RecordRejections implements state.Store: one upsert per member, in one
// write transaction. Every entry is checked before the transaction
// begins, so a bad one writes nothing; a member given twice is written
// once, with its last entry.
func (s *Store) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	const op = "record rejections"
	for _, r := range rs {
		if err := state.CheckRejection(r); err != nil {
			return opError(op, name, err)
		}
	}
	rs = state.LastPerMember(rs)
	return s.write(ctx, op, name, func(w *writeTx) error {
		for _, r := range rs {
			if _, err := w.exec(`INSERT INTO rejected
					(connection, member, record_key, status, reason, first_seen, last_attempt, attempts)
				VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
				ON CONFLICT (connection, member) DO UPDATE SET
					record_key = excluded.record_key,
					status = excluded.status,
					reason = excluded.reason,
					last_attempt = excluded.last_attempt,
					attempts = attempts + 1`,
				name, r.Member[:], r.Key, r.Status, r.Reason, sqlTime(r.LastAttempt)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ClearRejections implements state.Store: the members' rows go, in one
// write transaction; a member without one deletes nothing.
func (s *Store) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	return s.write(ctx, "clear rejections", name, func(w *writeTx) error {
		for _, id := range members {
			if _, err := w.exec(`DELETE FROM rejected WHERE connection = ? AND member = ?`, name, id[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// RejectedLog implements state.Store. ORDER BY member compares the BLOBs
// with memcmp: ascending byte order.
func (s *Store) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	fail := func(err error) ([]state.Rejection, error) {
		return nil, fmt.Errorf("state: read rejected log for %q: %w", name, err)
	}
	rows, err := s.query(ctx, `
		SELECT member, record_key, status, reason, first_seen, last_attempt, attempts
		FROM rejected WHERE connection = ? ORDER BY member`, name)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []state.Rejection
	for rows.Next() {
		var r state.Rejection
		var member []byte
		if err := rows.Scan(&member, &r.Key, &r.Status, &r.Reason, (*sqlTime)(&r.FirstSeen),
			(*sqlTime)(&r.LastAttempt), &r.Attempts); err != nil {
			return fail(err)
		}
		if len(member) != len(r.Member) {
			return fail(fmt.Errorf("member id of %d bytes, want %d", len(member), len(r.Member)))
		}
		r.Member = state.MemberID(member)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// NoteError implements state.Store: one UPDATE, whose condition leaves a
// newer error in place.
func (s *Store) NoteError(ctx context.Context, name, msg string, at time.Time) error {
	const op = "note error"
	if err := state.CheckNoteError(msg, at); err != nil {
		return opError(op, name, err)
	}
	return s.write(ctx, op, name, func(w *writeTx) error {
		_, err := w.exec(`UPDATE connections SET last_error = ?2, last_error_at = ?3
			WHERE name = ?1 AND (last_error_at IS NULL OR last_error_at <= ?3)`, name, msg, sqlTime(at))
		return err
	})
}
