package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
)

// storeLeases adapts the state store's leases to the scheduler's seam.
type storeLeases struct{ store Store }

var _ schedule.Leases = storeLeases{}

func (l storeLeases) Claim(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (schedule.Lease, error) {
	lease, err := l.store.ClaimLease(ctx, name, owner, now, ttl)
	var held *state.LeaseHeldError
	if errors.As(err, &held) {
		return schedule.Lease{Connection: name, Owner: held.Owner, Expires: held.Expires}, fmt.Errorf("%w: %w", schedule.ErrLeaseHeld, err)
	}
	return schedule.Lease(lease), err
}

func (l storeLeases) Renew(ctx context.Context, lease schedule.Lease, now time.Time, ttl time.Duration) (schedule.Lease, error) {
	renewed, err := l.store.RenewLease(ctx, state.Lease(lease), now, ttl)
	if errors.Is(err, state.ErrFenced) {
		return schedule.Lease{}, fmt.Errorf("%w: %w", schedule.ErrFenced, err)
	}
	return schedule.Lease(renewed), err
}

func (l storeLeases) Release(ctx context.Context, lease schedule.Lease) error {
	err := l.store.ReleaseLease(ctx, state.Lease(lease))
	if errors.Is(err, state.ErrFenced) {
		return nil // someone else holds it now: nothing to hand back
	}
	return err
}

func (l storeLeases) LastAttempt(ctx context.Context, name string) (time.Time, error) {
	st, err := l.store.Connection(ctx, name)
	return st.LastAttempt, err
}
