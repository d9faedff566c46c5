package engine

import (
	"context"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// The engine's three seams: what it needs of the state store, of Mailchimp
// and of the target, and no more. They are declared here, by their user, so
// a test can stand in for any of them with something small (the memory
// store, the simulator's in-process source, a sink that records), and the
// engine links no store driver and no HTTP server.

// Store is the part of the state store one run uses: read the connection
// at the start, record the attempt, save checkpoints and failed pages, and
// record how the run ended. Every state.Store is one.
type Store interface {
	Connection(ctx context.Context, name string) (state.ConnectionState, error)
	StartRun(ctx context.Context, name string, at time.Time) error
	SaveCheckpoint(ctx context.Context, name string, cp state.Checkpoint) error
	AddFailure(ctx context.Context, f state.Failure) error
	CompleteRun(ctx context.Context, run state.Run) error
	FailRun(ctx context.Context, run state.Run) error

	// The roster (state.Rosters): the members that may be in the target.
	UpdateRoster(ctx context.Context, name string, c state.RosterChange) error
	Roster(ctx context.Context, name string) ([]state.MemberID, error)
	RosterSize(ctx context.Context, name string) (int64, error)

	// The rejected log (state.Rejections): records the target refused.
	RecordRejections(ctx context.Context, name string, rs []state.Rejection) error
	ClearRejections(ctx context.Context, name string, members []state.MemberID) error
	RejectedLog(ctx context.Context, name string) ([]state.Rejection, error)

	// NoteError records the error the run is retrying (state.Errors).
	NoteError(ctx context.Context, name, err string, at time.Time) error
}

// MemberSource is what the engine needs of Mailchimp. *mailchimp.Client is
// one (over HTTP, with the per-key limiter and retries); the simulator's
// in-process source is another, for unit tests.
type MemberSource interface {
	// Members reads one page of the members of a list that q selects: a
	// view (q.Status) and a window (q.Since, q.Before), in q's order.
	Members(ctx context.Context, listID string, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error)
	// Member reads one member by subscriber hash, whatever its status
	// (archived members come back with status "archived"); once the member
	// is deleted for good the error matches mailchimp.ErrMemberNotFound.
	// A reconcile confirms with it that a member its scan did not see is
	// gone before anything is deleted.
	Member(ctx context.Context, listID, subscriberHash string, fields []string) (mailchimp.Member, error)
	// Stats counts the requests made so far; a run reports the difference
	// between its start and its end.
	Stats() mailchimp.Stats
}

// Sink is what the engine needs of the target: apply a batch of
// operations (upserts of records, deletes of record ids), returning nil
// once the target has accepted all of them. A *target.Error that is
// Refused (400, 422) or TooLarge (413) makes the engine split the batch
// to find the records refused on their own; any other error fails the run. It must be safe for concurrent
// use; the engine sends several batches at once. How a delete reaches the
// target (a tombstone record, a DELETE request, or not at all) is the
// sink's business: the engine only says which members left.
type Sink interface {
	Apply(ctx context.Context, ops []target.Op) error
}

var (
	_ Store        = state.Store(nil)
	_ MemberSource = (*mailchimp.Client)(nil)
	_ Sink         = (*target.HTTP)(nil)
)
