package state

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ConnectionState is everything the store remembers about one connection.
type ConnectionState struct {
	Connection string
	// Watermark W: every member whose last_changed < W has been delivered.
	// Zero until a run completes. Only CompleteRun writes it, and never
	// backwards.
	Watermark time.Time
	// FirstAttempt is when the first run ever started; the lag of a
	// connection that never completed counts from here.
	FirstAttempt time.Time
	LastAttempt  time.Time
	LastSuccess  time.Time
	// LastError is the error of the last failed run, or the latest error
	// a run under way is retrying (NoteError); "" after a success.
	LastError string
	// LastErrorAt dates LastError: the end of the failed run, or the
	// retry NoteError recorded. Zero with no LastError, and in state a
	// release before NoteError wrote (LastAttempt dates the error then).
	LastErrorAt time.Time
	// LastRead and LastDelivered are the counts of the last completed run.
	LastRead, LastDelivered int64
	// TotalDelivered sums Delivered over every completed run.
	TotalDelivered int64
	// Checkpoint is nil unless a run is part-way.
	Checkpoint *Checkpoint
	// Alerts maps each open alert's kind ("lag", "permanent_error", ...)
	// to when it was opened; nil when none is open. Only SetAlert changes
	// it.
	Alerts map[string]time.Time
	// Roster describes the connection's roster of member ids; see
	// Rosters.
	Roster RosterState
	// Rejected describes the connection's rejected log; see Rejections.
	Rejected RejectedState
}

// Checkpoint records how far a part-way run got, so a large first sync that
// fails resumes without starting over.
type Checkpoint struct {
	WindowStart time.Time // the watermark the part-way run started from
	WindowEnd   time.Time // the window end it was working towards
	// Views maps a member view ("default", "archived", ...) to a time V:
	// every member of that view with last_changed < V is delivered. A
	// checkpoint read back from a store always has a non-nil Views, so the
	// engine can update it in place.
	Views     map[string]time.Time
	UpdatedAt time.Time
	// Token fences the write: see Lease. It is the writer's credential,
	// not part of the checkpoint, so it is not stored: a checkpoint read
	// back has Token 0.
	Token int64
}

// Resumes reports whether cp records a part-way run that the next run can
// go on from. A checkpoint of no view records nothing delivered: it is a
// lease check's (a webhook refresh's, a retried delete's), written only
// because the store fences checkpoint writes.
func (cp *Checkpoint) Resumes() bool { return cp != nil && len(cp.Views) > 0 }

// Failure is one entry of the failures log: a page that could not be read or
// delivered. It stays pending until a completed run covers its window.
type Failure struct {
	Connection             string
	WindowStart, WindowEnd time.Time
	View                   string
	Offset                 int
	Error                  string
	At                     time.Time
}

// Retention: how many entries of each log a store keeps per connection
// (see "Retention" in the package doc). Appending past the limit drops the
// oldest.
const (
	KeepRuns     = 1000
	KeepFailures = 1000
)

// Run results.
const (
	ResultOK        = "ok"
	ResultFailed    = "failed"
	ResultCancelled = "cancelled"
)

// Run is one entry of a connection's run history.
type Run struct {
	Connection             string
	Started, Finished      time.Time
	WindowStart, WindowEnd time.Time
	Full                   bool   // a full sync from the zero watermark
	Result                 string // ResultOK, ResultFailed or ResultCancelled
	Read, Delivered        int64
	Requests               int64
	Error                  string
	// Token fences CompleteRun and FailRun: see Lease. It is not stored in
	// the history: a run read back has Token 0.
	Token int64
}

// Lease is a connection's claim by one worker: while it is unexpired, no
// other owner can claim the connection, so runs of one connection never
// overlap. A worker renews it while its run is alive; a dead worker's lease
// simply expires, and any worker may claim the connection after that.
//
// Expiry alone cannot stop a worker that was paused (a GC pause, a frozen
// VM, a network partition) and wakes up after another worker claimed its
// connection. The Token does: every successful claim of a connection gets
// a token larger than any before it, and writes that carry a token
// (Checkpoint.Token, Run.Token) are applied only while that token is still
// the connection's current one, checked by the store inside the write.
// The late worker's writes fail with ErrFenced and change nothing.
//
// Token 0 means an unleased writer (`chimport run` by hand): its writes are
// not fenced, as before leases existed. The watermark still never moves
// backwards, whoever writes it.
type Lease struct {
	Connection string
	Owner      string    // the worker's id
	Token      int64     // fencing token; >= 1 for a claimed lease
	Expires    time.Time // the lease is free from this instant on
}

// ErrLeaseHeld is wrapped (by a *LeaseHeldError) when ClaimLease finds
// another owner's unexpired lease.
var ErrLeaseHeld = errors.New("lease held by another owner")

// ErrFenced is wrapped when a write carried a lease token that is no longer
// the connection's current one: a newer claim exists (or there never was a
// lease), so the writer lost the connection and must stop. Nothing was
// written.
var ErrFenced = errors.New("fenced: the lease token is no longer current")

// LeaseHeldError says who holds a lease and until when, so a scheduler can
// come back once it expires. It matches ErrLeaseHeld with errors.Is.
type LeaseHeldError struct {
	Connection, Owner string
	Expires           time.Time
}

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("lease held by %q until %s", e.Owner, e.Expires.UTC().Format(time.RFC3339Nano))
}

func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Store keeps connection state, the failures log, the run history, leases
// and alert state.
//
// Every method takes the times it records from its arguments rather than a
// clock of its own, so callers (and tests) decide what "now" is. Each method
// is atomic: a crash leaves either all or none of its writes.
type Store interface {
	// Connection returns the state of one connection; the zero state (with
	// Connection set) if it never ran.
	Connection(ctx context.Context, name string) (ConnectionState, error)
	// Connections returns every connection the store knows, sorted by name.
	Connections(ctx context.Context) ([]ConnectionState, error)
	// StartRun records an attempt: LastAttempt = at, FirstAttempt = at if
	// unset.
	StartRun(ctx context.Context, name string, at time.Time) error
	// SaveCheckpoint replaces the connection's checkpoint. With a non-zero
	// cp.Token it writes only while that is the connection's current lease
	// token, and otherwise returns an error wrapping ErrFenced.
	SaveCheckpoint(ctx context.Context, name string, cp Checkpoint) error
	// CompleteRun records a run that delivered its whole window:
	// Watermark = max(Watermark, run.WindowEnd), the checkpoint and
	// LastError (with LastErrorAt) are cleared, LastSuccess = run.Finished, LastRead and
	// LastDelivered take the run's counts, TotalDelivered grows by
	// run.Delivered, every pending failure with WindowEnd <= run.WindowEnd
	// is resolved (the completed window covered it), and the run is
	// appended to the history. run.WindowEnd and run.Finished must be set.
	// A non-zero run.Token fences it as SaveCheckpoint's: when fenced,
	// nothing at all is written, not even the run history entry.
	CompleteRun(ctx context.Context, run Run) error
	// FailRun records a run that did not complete: LastError = run.Error,
	// LastErrorAt = run.Finished, and the run is appended to the history. The watermark and the checkpoint
	// stay as they were, so the next run resumes. Fenced by run.Token as
	// CompleteRun is.
	FailRun(ctx context.Context, run Run) error
	// AddFailure appends to the failures log. It is not fenced: an entry
	// from a worker that lost its lease is a true report of a page that
	// failed, and a later completed run resolves it like any other.
	AddFailure(ctx context.Context, f Failure) error
	// Failures returns the connection's pending failures, oldest first.
	Failures(ctx context.Context, name string) ([]Failure, error)
	// Runs returns the connection's runs newest first (in the order they
	// were recorded), at most limit of them.
	Runs(ctx context.Context, name string, limit int) ([]Run, error)

	// ClaimLease claims the connection for owner from now until now+ttl.
	// It succeeds when the connection has no lease, when its lease has
	// expired (Expires <= now) or was released, or when owner already
	// holds it; otherwise it returns a *LeaseHeldError. Every success
	// returns a Token larger than every token the connection had before,
	// even for the same owner: a re-claim fences writes that carry the
	// owner's previous token.
	ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (Lease, error)
	// RenewLease moves the lease's expiry to now+ttl, while lease.Token
	// and lease.Owner are still the connection's current lease, even if it
	// has expired meanwhile (no one else claimed it, so no one else wrote).
	// Once another claim exists, or the lease was released, it returns an
	// error wrapping ErrFenced: the caller has lost the connection.
	RenewLease(ctx context.Context, lease Lease, now time.Time, ttl time.Duration) (Lease, error)
	// ReleaseLease frees the lease at once, so any worker may claim the
	// connection without waiting for the expiry. The token stays, so the
	// next claim still gets a larger one. Releasing a lease that was
	// already released is a no-op; releasing one that has been claimed
	// again since returns an error wrapping ErrFenced and changes nothing,
	// which a caller that is giving the connection up anyway may ignore.
	ReleaseLease(ctx context.Context, lease Lease) error

	// SetAlert opens (open = true, recording at as the opening time) or
	// closes the connection's alert of the given kind, as a compare-and-set:
	// changed is true only for the call that actually flipped it, so of
	// several workers that see the same lag, exactly one sends the alert
	// (and exactly one the recovery notice). Opening an open alert or
	// closing a closed one changes nothing and returns false. at is
	// ignored when closing.
	SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (changed bool, err error)

	// Rosters keeps each connection's roster of member ids, the record of
	// what the target holds.
	Rosters

	// Rejections keeps each connection's rejected log: the records its
	// target refused, until they are delivered or gone.
	Rejections

	// Errors records the error a run under way is retrying.
	Errors

	Close() error
}
