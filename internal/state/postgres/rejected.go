package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chimport/chimport/internal/state"
)

// RecordRejections implements state.Store: one upsert of every member, in
// one statement. Every entry is checked first, so a bad one writes
// nothing; a member given twice is written once, with its last entry (an
// upsert may not touch a row twice).
func (s *Store) RecordRejections(ctx context.Context, name string, rs []state.Rejection) error {
	const op = "record rejections"
	for _, r := range rs {
		if err := state.CheckRejection(r); err != nil {
			return opError(op, name, err)
		}
	}
	// Sorted by member, so that writers lock rows in one order (see
	// sortedIDs).
	rs = state.LastPerMember(rs)
	slices.SortFunc(rs, func(a, b state.Rejection) int { return bytes.Compare(a.Member[:], b.Member[:]) })
	members := make([][]byte, len(rs))
	keys := make([]string, len(rs))
	statuses := make([]int32, len(rs))
	reasons := make([]string, len(rs))
	times := make([]int64, len(rs))
	for i := range rs {
		members[i] = rs[i].Member[:]
		keys[i], reasons[i] = text(rs[i].Key), clip(text(rs[i].Reason), state.MaxRejectionReason)
		statuses[i] = int32(rs[i].Status)
		n, _ := state.Nanos(rs[i].LastAttempt) // CheckRejection saw it is set and in range
		times[i] = *n
	}
	return s.write(ctx, op, name, func(tx pgx.Tx) error {
		if len(rs) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO rejected AS r
				(connection, member, record_key, status, reason, first_seen, last_attempt, attempts)
			SELECT $1, m, k, st, re, t, t, 1
			FROM unnest($2::bytea[], $3::text[], $4::integer[], $5::text[], $6::bigint[]) AS u (m, k, st, re, t)
			ON CONFLICT (connection, member) DO UPDATE SET
				record_key = excluded.record_key,
				status = excluded.status,
				reason = excluded.reason,
				last_attempt = excluded.last_attempt,
				attempts = r.attempts + 1`,
			name, members, keys, statuses, reasons, times)
		return err
	})
}

// ClearRejections implements state.Store: the members' rows go, in one
// statement; a member without one deletes nothing.
func (s *Store) ClearRejections(ctx context.Context, name string, members []state.MemberID) error {
	return s.write(ctx, "clear rejections", name, func(tx pgx.Tx) error {
		if len(members) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `DELETE FROM rejected WHERE connection = $1 AND member IN (`+lockInOrder("rejected")+`)`,
			name, idArray(sortedIDs(members)))
		return err
	})
}

// RejectedLog implements state.Store, in member (memcmp) order.
func (s *Store) RejectedLog(ctx context.Context, name string) ([]state.Rejection, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT member, record_key, status, reason, first_seen, last_attempt, attempts
		FROM rejected WHERE connection = $1 ORDER BY member`, name)
	if err != nil {
		return nil, fmt.Errorf("state: read rejected log for %q: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (state.Rejection, error) {
		var r state.Rejection
		var member []byte
		if err := row.Scan(&member, &r.Key, &r.Status, &r.Reason, (*nanos)(&r.FirstSeen),
			(*nanos)(&r.LastAttempt), &r.Attempts); err != nil {
			return r, err
		}
		if len(member) != len(r.Member) {
			return r, fmt.Errorf("member id of %d bytes, want %d", len(member), len(r.Member))
		}
		r.Member = state.MemberID(member)
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read rejected log for %q: %w", name, err)
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
	return s.writeOne(ctx, op, name, func(q querier) error {
		_, err := q.Exec(ctx, `UPDATE connections SET last_error = $2, last_error_at = $3
			WHERE name = $1 AND (last_error_at IS NULL OR last_error_at <= $3)`, name, text(msg), nanos(at))
		return err
	})
}

// clip cuts s to at most n bytes on a character boundary: text may have
// made a reason longer (a NUL byte becomes three).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") // s was valid: only a character cut in two goes
}
