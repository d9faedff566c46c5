package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Lease is a connection's claim by one worker, as the store granted it. Its
// fields are state.Lease's, in the same order, so the two convert with a
// plain type conversion.
type Lease struct {
	Connection string
	Owner      string    // the worker's id
	Token      int64     // fencing token, larger for every claim
	Expires    time.Time // the lease is free from this instant on
}

// Errors a Leases implementation wraps so the scheduler can tell a lost
// race from a broken store.
var (
	// ErrLeaseHeld: another owner holds an unexpired lease.
	ErrLeaseHeld = errors.New("schedule: lease held by another worker")
	// ErrFenced: the lease was claimed by someone else since (or released);
	// this worker lost the connection.
	ErrFenced = errors.New("schedule: lease lost to another worker")
)

// Leases is what the scheduler needs from the shared state store. The
// store's ClaimLease, RenewLease, ReleaseLease and Connection(...).LastAttempt
// implement it through a small adapter that maps the store's errors to
// ErrLeaseHeld and ErrFenced.
type Leases interface {
	// Claim claims name for owner until now+ttl. When another owner holds
	// it, the error wraps ErrLeaseHeld, and the returned Lease should carry
	// the holder's Owner and Expires if known (zero otherwise), so the
	// scheduler comes back when it expires instead of polling.
	Claim(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (Lease, error)
	// Renew moves the expiry to now+ttl. Once the lease is no longer the
	// connection's current one, the error wraps ErrFenced.
	Renew(ctx context.Context, lease Lease, now time.Time, ttl time.Duration) (Lease, error)
	// Release frees the lease at once.
	Release(ctx context.Context, lease Lease) error
	// LastAttempt is when the connection's last run started, by any
	// worker; zero if it never ran.
	LastAttempt(ctx context.Context, name string) (time.Time, error)
}

// leaseCallTimeout bounds a renewal or release on the wall clock. They run
// on a context that outlives the shutdown signal (a lease should be handed
// back, not left to expire), so a hung store must not hold shutdown forever.
const leaseCallTimeout = 10 * time.Second

// runLeased calls Config.Run for c under lease, renewing the lease until the
// run returns, then releases it. The run's context derives from runBase,
// which the shutdown cancels only after the grace period.
func (s *Scheduler) runLeased(runBase context.Context, name string, lease Lease) {
	log := s.log.With("connection", name, "token", lease.Token)
	runCtx, cancelRun := context.WithCancelCause(runBase)
	defer cancelRun(nil)
	// finished ends the renewal sleeps the moment the run returns.
	finished, markFinished := context.WithCancel(context.WithoutCancel(runBase))
	defer markFinished()
	done := make(chan error, 1)
	start := s.cfg.Clock.Now()
	log.Debug("run starting")
	go func() {
		done <- s.cfg.Run(runCtx, name, lease)
		markFinished()
	}()

	lease, held := s.keepLease(finished, runBase, lease, cancelRun, log)
	err := <-done
	took := s.cfg.Clock.Now().Sub(start)
	switch cause := context.Cause(runCtx); {
	case err == nil:
		log.Debug("run finished", "took", took)
	case !held:
		log.Warn("run stopped: lease lost", "took", took, "error", err, "cause", cause)
	default:
		log.Warn("run failed", "took", took, "error", err)
	}
	if !held {
		return // nothing of ours to release, and releasing would fail
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(runBase), leaseCallTimeout)
	defer cancel()
	if err := s.cfg.Leases.Release(ctx, lease); err != nil {
		// Not fatal: the lease expires on its own after LeaseTTL.
		log.Warn("cannot release lease", "error", err)
	}
}

// keepLease renews lease every LeaseTTL/3 until finished ends. It returns
// the latest lease and whether this worker still holds it. When the lease
// is lost it cancels the run, whose writes the store would refuse anyway.
func (s *Scheduler) keepLease(finished, runBase context.Context, lease Lease, cancelRun context.CancelCauseFunc, log *slog.Logger) (Lease, bool) {
	ttl := s.cfg.LeaseTTL
	for {
		if s.cfg.Clock.Sleep(finished, ttl/3) != nil {
			return lease, true
		}
		now := s.cfg.Clock.Now()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(runBase), leaseCallTimeout)
		renewed, err := s.cfg.Leases.Renew(ctx, lease, now, ttl)
		cancel()
		switch {
		case err == nil:
			lease = renewed
		case errors.Is(err, ErrFenced):
			cancelRun(fmt.Errorf("connection %q: %w", lease.Connection, err))
			return lease, false
		case !now.Before(lease.Expires):
			// Past the expiry another worker may have claimed it; the
			// run must not go on as if it still held the connection.
			cancelRun(fmt.Errorf("connection %q: %w: not renewed before it expired: %v", lease.Connection, ErrFenced, err))
			return lease, false
		default:
			log.Warn("cannot renew lease, will retry", "expires", lease.Expires, "error", err)
		}
	}
}
