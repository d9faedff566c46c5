package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// ClaimLease implements state.Store. The claim is one UPDATE inside write's
// IMMEDIATE transaction, so of several handles or processes claiming at
// once, SQLite's write lock lets one at a time see the lease and take it.
func (s *Store) ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (state.Lease, error) {
	const op = "claim lease"
	exp, err := state.CheckClaim(owner, now, ttl)
	if err != nil {
		return state.Lease{}, opError(op, name, err)
	}
	lease := state.Lease{Connection: name, Owner: owner, Expires: exp}
	err = s.write(ctx, op, name, func(w *writeTx) error {
		err := w.queryRow(`UPDATE connections
			SET lease_owner = ?2, lease_token = lease_token + 1, lease_expires = ?4
			WHERE name = ?1 AND (lease_owner = '' OR lease_owner = ?2 OR lease_expires IS NULL OR lease_expires <= ?3)
			RETURNING lease_token`,
			name, owner, sqlTime(now), sqlTime(exp)).Scan(&lease.Token)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		held := &state.LeaseHeldError{Connection: name}
		if err := w.queryRow(`SELECT lease_owner, lease_expires FROM connections WHERE name = ?`,
			name).Scan(&held.Owner, (*sqlTime)(&held.Expires)); err != nil {
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
	err = s.write(ctx, op, lease.Connection, func(w *writeTx) error {
		// A released lease has no owner, so it cannot be renewed.
		res, err := w.exec(`UPDATE connections SET lease_expires = ?4
			WHERE name = ?1 AND lease_owner = ?2 AND `+fenceCondition(3),
			lease.Connection, lease.Owner, lease.Token, sqlTime(exp))
		return fenced(w, lease.Connection, lease.Token, res, err)
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
	return s.write(ctx, op, lease.Connection, func(w *writeTx) error {
		res, err := w.exec(`UPDATE connections SET lease_owner = '', lease_expires = NULL
			WHERE name = ?1 AND `+fenceCondition(2), lease.Connection, lease.Token)
		return fenced(w, lease.Connection, lease.Token, res, err)
	})
}

// SetAlert implements state.Store. Inside write's IMMEDIATE transaction the
// insert or delete sees every earlier flip, so whether it changed a row is
// the compare-and-set's answer.
func (s *Store) SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (bool, error) {
	const op = "set alert"
	if err := state.CheckAlert(kind, open, at); err != nil {
		return false, opError(op, name, err)
	}
	var changed bool
	err := s.write(ctx, op, name, func(w *writeTx) error {
		var res sql.Result
		var err error
		if open {
			res, err = w.exec(`INSERT INTO alerts (connection, kind, opened_at) VALUES (?, ?, ?)
				ON CONFLICT (connection, kind) DO NOTHING`, name, kind, sqlTime(at))
		} else {
			res, err = w.exec(`DELETE FROM alerts WHERE connection = ? AND kind = ?`, name, kind)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		changed = n > 0
		return err
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}
