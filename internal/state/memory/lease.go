package memory

import (
	"context"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// ClaimLease implements state.Store. The check and the claim happen under
// one lock, so of several racing claimers exactly one sees the lease free.
func (s *Store) ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (state.Lease, error) {
	const op = "claim lease"
	exp, err := state.CheckClaim(owner, now, ttl)
	if err != nil {
		return state.Lease{}, opError(op, name, err)
	}
	lease := state.Lease{Connection: name, Owner: owner, Expires: exp}
	err = s.write(ctx, op, name, func(r *record) error {
		// Free when released (no owner), expired (Expires <= now), or the
		// claimer's own.
		if r.leaseOwner != "" && r.leaseOwner != owner && r.leaseExpires.After(now) {
			return &state.LeaseHeldError{Connection: name, Owner: r.leaseOwner, Expires: r.leaseExpires}
		}
		r.leaseToken++
		r.leaseOwner, r.leaseExpires = owner, exp
		lease.Token = r.leaseToken
		return nil
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
	err = s.write(ctx, op, lease.Connection, func(r *record) error {
		// A released lease has no owner, so it cannot be renewed.
		if r.leaseOwner != lease.Owner || r.leaseToken != lease.Token {
			return state.Fenced(lease.Token, r.leaseToken, r.leaseOwner)
		}
		r.leaseExpires = exp
		return nil
	})
	if err != nil {
		return state.Lease{}, err
	}
	lease.Expires = exp
	return lease, nil
}

// ReleaseLease implements state.Store. The token stays, so the next claim
// still gets a larger one.
func (s *Store) ReleaseLease(ctx context.Context, lease state.Lease) error {
	const op = "release lease"
	if err := state.CheckLease(lease); err != nil {
		return opError(op, lease.Connection, err)
	}
	return s.write(ctx, op, lease.Connection, func(r *record) error {
		if err := r.fence(lease.Token); err != nil {
			return err
		}
		r.leaseOwner, r.leaseExpires = "", time.Time{}
		return nil
	})
}

// SetAlert implements state.Store: the read and the flip happen under one
// lock, so exactly one of several racing callers sees changed.
func (s *Store) SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (bool, error) {
	const op = "set alert"
	if err := state.CheckAlert(kind, open, at); err != nil {
		return false, opError(op, name, err)
	}
	opened, _ := utc(at) // CheckAlert refused what utc would; at is ignored when closing
	var changed bool
	err := s.write(ctx, op, name, func(r *record) error {
		alerts := r.state.Alerts
		if _, isOpen := alerts[kind]; isOpen == open {
			return nil
		}
		changed = true
		if !open {
			delete(alerts, kind)
			if len(alerts) == 0 {
				r.state.Alerts = nil // "none open" reads as nil, as Alerts promises
			}
			return nil
		}
		if alerts == nil {
			r.state.Alerts = map[string]time.Time{}
		}
		r.state.Alerts[kind] = opened
		return nil
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}
