package state

import (
	"context"
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
	// LastError is the error of the last failed run; "" after a success.
	LastError string
	// LastRead and LastDelivered are the counts of the last completed run.
	LastRead, LastDelivered int64
	// TotalDelivered sums Delivered over every completed run.
	TotalDelivered int64
	// Checkpoint is nil unless a run is part-way.
	Checkpoint *Checkpoint
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
}

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
}

// Store keeps connection state, the failures log and the run history.
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
	// SaveCheckpoint replaces the connection's checkpoint.
	SaveCheckpoint(ctx context.Context, name string, cp Checkpoint) error
	// CompleteRun records a run that delivered its whole window:
	// Watermark = max(Watermark, run.WindowEnd), the checkpoint and
	// LastError are cleared, LastSuccess = run.Finished, LastRead and
	// LastDelivered take the run's counts, TotalDelivered grows by
	// run.Delivered, every pending failure with WindowEnd <= run.WindowEnd
	// is resolved (the completed window covered it), and the run is
	// appended to the history. run.WindowEnd and run.Finished must be set.
	CompleteRun(ctx context.Context, run Run) error
	// FailRun records a run that did not complete: LastError = run.Error and
	// the run is appended to the history. The watermark and the checkpoint
	// stay as they were, so the next run resumes.
	FailRun(ctx context.Context, run Run) error
	// AddFailure appends to the failures log.
	AddFailure(ctx context.Context, f Failure) error
	// Failures returns the connection's pending failures, oldest first.
	Failures(ctx context.Context, name string) ([]Failure, error)
	// Runs returns the connection's runs newest first (in the order they
	// were recorded), at most limit of them.
	Runs(ctx context.Context, name string, limit int) ([]Run, error)
	Close() error
}
