package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chimport/chimport/internal/state"
)

// write runs fn as one transaction on behalf of operation op on connection
// name, after making sure the connection's row exists (so the store "knows"
// every connection it was ever told about, and the foreign keys hold):
// once per connection and handle, since no row is ever deleted.
// Every mutation goes through here (or writeOne). Transactions are READ COMMITTED:
// every write that must see the latest row (the watermark's max, the
// lease's claim, the fence) is one UPDATE, which locks the row and
// re-evaluates its WHERE clause against the newest version if another
// transaction changed it meanwhile, so none needs a stricter level or a
// retry.
//
// Two transactions that lock the same rows in opposite orders deadlock,
// and the server aborts one of them. The roster's statements sort their
// ids so that they take row locks in one order, but a delete may still
// meet the rows in the table's order, so a transaction the server chose
// to abort is run again, up to maxAttempts times: each fn is written to
// be run again from the start.
func (s *Store) write(ctx context.Context, op, name string, fn func(tx pgx.Tx) error) error {
	return s.again(ctx, op, name, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, known := s.known.Load(name); !known {
				if _, err := tx.Exec(ctx,
					`INSERT INTO connections (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
					return err
				}
			}
			return fn(tx)
		})
	})
}

// querier is what a write's statements run on: its transaction, or, for
// a write of one statement (see writeOne), the pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// writeOne is write for a write of one statement (fn may read afterwards,
// to explain a statement that changed nothing). Once the connection's row
// is known to exist, the statement runs on its own, with no transaction
// around it: one statement is atomic by itself, and without BEGIN and
// COMMIT it costs one round trip instead of three.
func (s *Store) writeOne(ctx context.Context, op, name string, fn func(q querier) error) error {
	if _, known := s.known.Load(name); !known {
		return s.write(ctx, op, name, func(tx pgx.Tx) error { return fn(tx) })
	}
	return s.again(ctx, op, name, func() error { return fn(s.pool) })
}

// again runs try, a write, and runs it again when the server aborted it
// (see write), up to maxAttempts times.
func (s *Store) again(ctx context.Context, op, name string, try func() error) error {
	if name == "" {
		return opError(op, name, errors.New("empty connection name"))
	}
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			// The two writers the server stopped would meet again if both
			// started over at once.
			select {
			case <-time.After(time.Duration(1+rand.IntN(20*attempt)) * time.Millisecond):
			case <-ctx.Done():
				return opError(op, name, ctx.Err())
			}
		}
		if err = try(); !aborted(err) {
			break
		}
	}
	if err != nil {
		return opError(op, name, err)
	}
	// The row is committed, and rows are never deleted: later writes of
	// this connection need not make sure of it, a round trip each.
	s.known.Store(name, struct{}{})
	return nil
}

// maxAttempts bounds how often write runs a transaction the server
// aborted.
const maxAttempts = 3

// aborted reports whether err is the server aborting a transaction to
// break a deadlock (or a serialisation failure), which running it again
// resolves.
func aborted(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func opError(op, name string, err error) error {
	return fmt.Errorf("state: %s for %q: %w", op, name, err)
}

// StartRun implements state.Store.
func (s *Store) StartRun(ctx context.Context, name string, at time.Time) error {
	return s.writeOne(ctx, "start run", name, func(q querier) error {
		_, err := q.Exec(ctx, `UPDATE connections
			SET last_attempt = $2, first_attempt = coalesce(first_attempt, $2)
			WHERE name = $1`, name, nanos(at))
		return err
	})
}

// SaveCheckpoint implements state.Store.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error {
	enc, err := state.EncodeCheckpoint(cp)
	if err != nil {
		return opError("save checkpoint", name, err)
	}
	return s.writeOne(ctx, "save checkpoint", name, func(q querier) error {
		tag, err := q.Exec(ctx, `UPDATE connections SET checkpoint = $1
			WHERE name = $2 AND `+fenceCondition("$3"), enc, name, cp.Token)
		return fenced(ctx, q, name, cp.Token, tag, err)
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
	return s.write(ctx, op, run.Connection, func(tx pgx.Tx) error {
		// The watermark moves in this one statement, by greatest() against
		// the stored value rather than a value read earlier: however
		// commits interleave, the larger window end wins. The fence is
		// part of the same statement, and the statement comes first: a
		// fenced run writes nothing at all.
		tag, err := tx.Exec(ctx, `UPDATE connections SET
				watermark = greatest(watermark, $2),
				checkpoint = NULL,
				last_error = '',
				last_error_at = NULL,
				last_success = $4,
				last_read = $5,
				last_delivered = $6,
				total_delivered = total_delivered + $6
			WHERE name = $1 AND `+fenceCondition("$3"),
			run.Connection, nanos(run.WindowEnd), run.Token, nanos(run.Finished), run.Read, run.Delivered)
		if err := fenced(ctx, tx, run.Connection, run.Token, tag, err); err != nil {
			return err
		}
		// The run delivered every member with last_changed < WindowEnd, so
		// a failure inside any window ending no later than that is
		// repaired. A failure without a window end predates every window.
		// The statements after the fence go in one round trip.
		var b pgx.Batch
		b.Queue(`UPDATE failures SET resolved_at = $3
			WHERE connection = $1 AND resolved_at IS NULL AND (window_end IS NULL OR window_end <= $2)`,
			run.Connection, nanos(run.WindowEnd), nanos(run.Finished))
		s.queueRun(&b, run)
		return tx.SendBatch(ctx, &b).Close()
	})
}

// FailRun implements state.Store.
func (s *Store) FailRun(ctx context.Context, run state.Run) error {
	return s.write(ctx, "fail run", run.Connection, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE connections SET last_error = $2, last_error_at = $4
			WHERE name = $1 AND `+fenceCondition("$3"), run.Connection, text(run.Error), run.Token, nanos(run.Finished))
		if err := fenced(ctx, tx, run.Connection, run.Token, tag, err); err != nil {
			return err
		}
		var b pgx.Batch
		s.queueRun(&b, run)
		return tx.SendBatch(ctx, &b).Close()
	})
}

// fenceCondition is the lease check of a fenced UPDATE of connections,
// whose parameter param is the writer's token: token 0 (an unleased
// writer) always passes.
func fenceCondition(param string) string {
	return fmt.Sprintf("(%[1]s::bigint = 0 OR lease_token = %[1]s)", param)
}

// fenced turns a fenced UPDATE (one row by name, which write has made sure
// exists) that matched no row into an error wrapping ErrFenced. The caller
// returns it, so write rolls the whole transaction back. Run on its own
// (writeOne), the UPDATE changed nothing, and the token read after it is
// only the error's explanation.
func fenced(ctx context.Context, q querier, name string, token int64, tag pgconn.CommandTag, err error) error {
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	var current int64
	var owner string
	if err := q.QueryRow(ctx, `SELECT lease_token, lease_owner FROM connections WHERE name = $1`,
		name).Scan(&current, &owner); err != nil {
		return err
	}
	return state.Fenced(token, current, owner)
}

// queueRun queues the statements that add run to the history and trim it
// to the newest keepRuns.
func (s *Store) queueRun(b *pgx.Batch, run state.Run) {
	b.Queue(`INSERT INTO runs (connection, started, finished,
			window_start, window_end, full_sync, result, read_count, delivered_count, request_count, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		run.Connection, nanos(run.Started), nanos(run.Finished), nanos(run.WindowStart),
		nanos(run.WindowEnd), run.Full, run.Result, run.Read, run.Delivered, run.Requests, text(run.Error))
	queueTrim(b, "runs", run.Connection, s.keepRuns)
}

// AddFailure implements state.Store.
func (s *Store) AddFailure(ctx context.Context, f state.Failure) error {
	return s.write(ctx, "add failure", f.Connection, func(tx pgx.Tx) error {
		var b pgx.Batch
		b.Queue(`INSERT INTO failures (connection, window_start, window_end,
				view_name, page_offset, error, failed_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			f.Connection, nanos(f.WindowStart), nanos(f.WindowEnd), f.View, f.Offset, text(f.Error), nanos(f.At))
		queueTrim(&b, "failures", f.Connection, s.keepFailures)
		return tx.SendBatch(ctx, &b).Close()
	})
}

// queueTrim queues the statement that deletes all but the newest keep rows
// of one connection from table (runs or failures; never user input). Ids
// grow with every insert, so "all but the newest" is everything at or
// below the id keep places down, found through the (connection, id)
// index.
func queueTrim(b *pgx.Batch, table, name string, keep int) {
	b.Queue(`DELETE FROM `+table+` WHERE connection = $1 AND id <=
		(SELECT id FROM `+table+` WHERE connection = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)`,
		name, keep)
}

// ClaimLease implements state.Store: one conditional UPDATE. Of several
// workers claiming at once, the row lock lets one at a time in, and each
// later one re-checks the condition against the row the earlier one left,
// so exactly one finds the lease free.
func (s *Store) ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (state.Lease, error) {
	const op = "claim lease"
	exp, err := state.CheckClaim(owner, now, ttl)
	if err != nil {
		return state.Lease{}, opError(op, name, err)
	}
	lease := state.Lease{Connection: name, Owner: owner, Expires: exp}
	err = s.writeOne(ctx, op, name, func(q querier) error {
		err := q.QueryRow(ctx, `UPDATE connections
			SET lease_owner = $2, lease_token = lease_token + 1, lease_expires = $4
			WHERE name = $1 AND (lease_owner = '' OR lease_owner = $2 OR lease_expires IS NULL OR lease_expires <= $3)
			RETURNING lease_token`,
			name, owner, nanos(now), nanos(exp)).Scan(&lease.Token)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		held := &state.LeaseHeldError{Connection: name}
		if err := q.QueryRow(ctx, `SELECT lease_owner, lease_expires FROM connections WHERE name = $1`,
			name).Scan(&held.Owner, (*nanos)(&held.Expires)); err != nil {
			return err
		}
		return held
	})
	if err != nil {
		return state.Lease{}, err
	}
	return lease, nil
}

// RenewLease implements state.Store.
func (s *Store) RenewLease(ctx context.Context, lease state.Lease, now time.Time, ttl time.Duration) (state.Lease, error) {
	const op = "renew lease"
	exp, err := state.CheckRenew(lease, now, ttl)
	if err != nil {
		return state.Lease{}, opError(op, lease.Connection, err)
	}
	err = s.writeOne(ctx, op, lease.Connection, func(q querier) error {
		// A released lease has no owner, so it cannot be renewed.
		tag, err := q.Exec(ctx, `UPDATE connections SET lease_expires = $4
			WHERE name = $1 AND lease_owner = $2 AND `+fenceCondition("$3"),
			lease.Connection, lease.Owner, lease.Token, nanos(exp))
		return fenced(ctx, q, lease.Connection, lease.Token, tag, err)
	})
	if err != nil {
		return state.Lease{}, err
	}
	lease.Expires = exp
	return lease, nil
}

// ReleaseLease implements state.Store.
func (s *Store) ReleaseLease(ctx context.Context, lease state.Lease) error {
	const op = "release lease"
	if err := state.CheckLease(lease); err != nil {
		return opError(op, lease.Connection, err)
	}
	return s.writeOne(ctx, op, lease.Connection, func(q querier) error {
		tag, err := q.Exec(ctx, `UPDATE connections SET lease_owner = '', lease_expires = NULL
			WHERE name = $1 AND `+fenceCondition("$2"), lease.Connection, lease.Token)
		return fenced(ctx, q, lease.Connection, lease.Token, tag, err)
	})
}

// SetAlert implements state.Store. An insert that meets a row another
// transaction is inserting, or a delete that meets a row another is
// deleting, waits for that transaction and then finds the row there (or
// gone): whether it changed a row is the compare-and-set's answer.
func (s *Store) SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (bool, error) {
	const op = "set alert"
	if err := state.CheckAlert(kind, open, at); err != nil {
		return false, opError(op, name, err)
	}
	var changed bool
	err := s.writeOne(ctx, op, name, func(q querier) error {
		var tag pgconn.CommandTag
		var err error
		if open {
			tag, err = q.Exec(ctx, `INSERT INTO alerts (connection, kind, opened_at) VALUES ($1, $2, $3)
				ON CONFLICT (connection, kind) DO NOTHING`, name, kind, nanos(at))
		} else {
			tag, err = q.Exec(ctx, `DELETE FROM alerts WHERE connection = $1 AND kind = $2`, name, kind)
		}
		changed = tag.RowsAffected() > 0
		return err
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}
