package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// write runs fn as part of a write transaction on behalf of operation op
// on connection name, after making sure the connection's row exists (so
// the store "knows" every connection it was ever told about, and the
// logs' foreign keys hold). Every mutation goes through here. The
// transaction may hold other writes too (see group.go), each in a
// savepoint of its own; write returns once the transaction has committed
// fn's writes, or with an error, and then nothing of fn's is committed.
// Fenced writes put their lease check into their first UPDATE (see
// fenceCondition and fenced), so the check and the write are one
// statement, and a fenced write rolls back everything it wrote.
func (s *Store) write(ctx context.Context, op, name string, fn func(w *writeTx) error) error {
	if name == "" {
		return opError(op, name, errors.New("empty connection name"))
	}
	if err := ctx.Err(); err != nil {
		return opError(op, name, err)
	}
	err := s.submit(&pendingWrite{ctx: ctx, name: name, fn: fn, done: make(chan struct{})})
	if err != nil {
		return opError(op, name, err)
	}
	return nil
}

func opError(op, name string, err error) error {
	return fmt.Errorf("state: %s for %q: %w", op, name, err)
}

// StartRun implements state.Store.
func (s *Store) StartRun(ctx context.Context, name string, at time.Time) error {
	return s.write(ctx, "start run", name, func(w *writeTx) error {
		_, err := w.exec(`UPDATE connections
			SET last_attempt = ?2, first_attempt = coalesce(first_attempt, ?2)
			WHERE name = ?1`, name, sqlTime(at))
		return err
	})
}

// SaveCheckpoint implements state.Store.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	enc, err := state.EncodeCheckpoint(cp)
	if err != nil {
		return opError("save checkpoint", name, err)
	}
	return s.write(ctx, "save checkpoint", name, func(w *writeTx) error {
		res, err := w.exec(`UPDATE connections SET checkpoint = ?1
			WHERE name = ?2 AND `+fenceCondition(3), enc, name, cp.Token)
		return fenced(w, name, cp.Token, res, err)
	})
}

// CompleteRun implements state.Store.
func (s *Store) CompleteRun(ctx context.Context, run state.Run) error {
	const op = "complete run"
	// A zero window end would read as "nothing delivered" and a zero finish
	// time could not resolve failures; both mean a caller bug.
	if run.WindowEnd.IsZero() {
		return opError(op, run.Connection, errors.New("run has no window end"))
	}
	if run.Finished.IsZero() {
		return opError(op, run.Connection, errors.New("run has no finish time"))
	}
	return s.write(ctx, op, run.Connection, func(w *writeTx) error {
		// The watermark moves in this one statement, by max() against the
		// stored value rather than a value read earlier: however commits from
		// this process and others interleave, the larger window end wins.
		// The fence is part of the same statement, and the statement comes
		// first: a fenced run writes nothing at all.
		res, err := w.exec(`UPDATE connections SET
				watermark = max(coalesce(watermark, ?2), ?2),
				checkpoint = NULL,
				last_error = '',
				last_error_at = NULL,
				last_success = ?4,
				last_read = ?5,
				last_delivered = ?6,
				total_delivered = total_delivered + ?6
			WHERE name = ?1 AND `+fenceCondition(3),
			run.Connection, sqlTime(run.WindowEnd), run.Token, sqlTime(run.Finished), run.Read, run.Delivered)
		if err := fenced(w, run.Connection, run.Token, res, err); err != nil {
			return err
		}
		// The run delivered every member with last_changed < WindowEnd, so a
		// failure inside any window ending no later than that is repaired.
		// A failure without a window end predates every window.
		if _, err := w.exec(`UPDATE failures SET resolved_at = ?3
			WHERE connection = ?1 AND resolved_at IS NULL AND (window_end IS NULL OR window_end <= ?2)`,
			run.Connection, sqlTime(run.WindowEnd), sqlTime(run.Finished)); err != nil {
			return err
		}
		return s.appendRun(w, run)
	})
}

// FailRun implements state.Store.
func (s *Store) FailRun(ctx context.Context, run state.Run) error {
	return s.write(ctx, "fail run", run.Connection, func(w *writeTx) error {
		res, err := w.exec(`UPDATE connections SET last_error = ?2, last_error_at = ?4
			WHERE name = ?1 AND `+fenceCondition(3), run.Connection, run.Error, run.Token, sqlTime(run.Finished))
		if err := fenced(w, run.Connection, run.Token, res, err); err != nil {
			return err
		}
		return s.appendRun(w, run)
	})
}

// fenceCondition is the lease check of a fenced UPDATE of connections,
// whose parameter number param is the writer's token: token 0 (an unleased
// writer) always passes.
func fenceCondition(param int) string {
	return fmt.Sprintf("(?%[1]d = 0 OR lease_token = ?%[1]d)", param)
}

// fenced turns a fenced UPDATE (one row by name, which write has made sure
// exists) that matched no row into an error wrapping ErrFenced. The caller
// returns it, so write rolls the whole transaction back.
func fenced(w *writeTx, name string, token int64, res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil || n > 0 {
		return err
	}
	var current int64
	var owner string
	if err := w.queryRow(`SELECT lease_token, lease_owner FROM connections WHERE name = ?`,
		name).Scan(&current, &owner); err != nil {
		return err
	}
	return state.Fenced(token, current, owner)
}

// appendRun adds run to the history and trims it to the newest keepRuns.
func (s *Store) appendRun(w *writeTx, run state.Run) error {
	if _, err := w.exec(`INSERT INTO runs (connection, started, finished,
			window_start, window_end, full_sync, result, read_count, delivered_count, request_count, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		run.Connection, sqlTime(run.Started), sqlTime(run.Finished), sqlTime(run.WindowStart),
		sqlTime(run.WindowEnd), run.Full, run.Result, run.Read, run.Delivered, run.Requests, run.Error); err != nil {
		return err
	}
	return trim(w, "runs", run.Connection, s.keepRuns)
}

// AddFailure implements state.Store.
func (s *Store) AddFailure(ctx context.Context, f state.Failure) error {
	return s.write(ctx, "add failure", f.Connection, func(w *writeTx) error {
		if _, err := w.exec(`INSERT INTO failures (connection, window_start, window_end,
				view_name, page_offset, error, failed_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			f.Connection, sqlTime(f.WindowStart), sqlTime(f.WindowEnd), f.View, f.Offset, f.Error, sqlTime(f.At)); err != nil {
			return err
		}
		return trim(w, "failures", f.Connection, s.keepFailures)
	})
}

// trim deletes all but the newest keep rows of one connection from table
// (runs or failures; never user input). Ids grow with every insert, so "all
// but the newest" is everything at or below the id keep places down, found
// through the (connection, id) index.
func trim(w *writeTx, table, name string, keep int) error {
	_, err := w.exec(`DELETE FROM `+table+` WHERE connection = ?1 AND id <=
		(SELECT id FROM `+table+` WHERE connection = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`,
		name, keep)
	return err
}
