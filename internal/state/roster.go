package state

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// The roster of a connection is the set of member ids that may be in its
// target: every id the engine handed to the target, minus the ids whose
// removal the target acknowledged. A member id is the MD5 of the member's
// lower-cased address (32 hex digits in the API), kept here in its 16
// bytes. Comparing the roster with Mailchimp is how the engine learns that
// members were deleted for good, changed address (a new id) or left the
// connection's status filter: all three vanish from the API without a
// trace, and only the roster remembers that the target still holds them.
//
// The roster may hold more than the target (an id is added before its
// batch is sent, so a crash between the two cannot leave a record the
// roster forgot); it never holds less. A removal for an id the target
// never had is harmless: a tombstone for a member that is gone, or a
// DELETE answered 404.

// MemberID is a member id in binary.
type MemberID [16]byte

// ParseMemberID reads the 32 hex digits of a Mailchimp member id.
func ParseMemberID(s string) (MemberID, error) {
	var id MemberID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("member id %q: want 32 hex digits", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("member id %q: want 32 hex digits", s)
	}
	return id, nil
}

// String is the id as Mailchimp writes it: 32 lower-case hex digits.
func (id MemberID) String() string { return hex.EncodeToString(id[:]) }

// DefaultView is what a reconcile learned about a part of the API that
// Mailchimp does not document: whether the default view of the members
// endpoint (no status filter) leaves archived members out. The cheap
// check of a run adds the archived view's count to the default view's
// only when it does; counting archived members twice, or not at all,
// would either hide deletions or reconcile on every run.
type DefaultView uint8

const (
	// DefaultViewUnknown: no reconcile has seen an archived member yet.
	DefaultViewUnknown DefaultView = iota
	// DefaultViewWithoutArchived: archived members are only in the
	// archived view (what Mailchimp most likely does).
	DefaultViewWithoutArchived
	// DefaultViewWithArchived: the default view holds archived members too.
	DefaultViewWithArchived
)

func (v DefaultView) String() string {
	switch v {
	case DefaultViewWithoutArchived:
		return "without archived"
	case DefaultViewWithArchived:
		return "with archived"
	}
	return "unknown"
}

// RosterState is what a store keeps about a connection's roster besides
// its ids; it is part of ConnectionState.
type RosterState struct {
	// Kept is true once anything was written to the connection's roster.
	// False for a connection that never ran, and for state written by a
	// release without rosters (or a watermark taken over from the Python
	// importer). The roster is complete, holding every id the target may
	// hold, once LastReconcile is set too: the engine records it on a
	// fresh connection's first run and when a scan has built the roster
	// of an older one; until then the next run builds it.
	Kept bool
	// Members is the roster's size: the members in the target. Exact after
	// RosterSize; UpdateRoster may leave it behind until then in a store
	// that appends changes (see RosterSize).
	Members int64
	// LastReconcile is when the last reconcile finished; zero if none did.
	LastReconcile time.Time
	// Left counts the members that left the target over the connection's
	// life: tombstones and DELETEs acknowledged by the target, and, with
	// deletes off, members dropped from the roster without a word to it.
	Left int64
	// DefaultView is what the last reconcile learned; see DefaultView.
	DefaultView DefaultView
}

// Complete reports whether the roster holds every id the target may hold:
// it is kept and a reconcile (or a fresh connection's first run) has
// recorded LastReconcile. Until then its size says little, and the next
// run builds it.
func (r RosterState) Complete() bool { return r.Kept && !r.LastReconcile.IsZero() }

// RosterChange is one write to a connection's roster. Adding an id that is
// there, or removing one that is not, changes nothing: a change may be
// applied twice (a retry after a timeout) with the same result.
type RosterChange struct {
	// Add are ids about to be sent to the target.
	Add []MemberID
	// Remove are ids whose removal the target acknowledged (or, with
	// deletes off, ids dropped without telling it). RosterState.Left grows
	// by len(Remove): a caller removes only ids it found in the roster.
	Remove []MemberID
	// Reconciled, when non-zero, records a finished reconcile at that
	// time as RosterState.LastReconcile.
	Reconciled time.Time
	// DefaultView, when not DefaultViewUnknown, records what a reconcile
	// learned about the default view.
	DefaultView DefaultView
}

// Rosters is the part of a Store that keeps rosters. Every write marks
// the connection's roster as kept (RosterState.Kept), even an empty
// change: that is how a connection's first run says its roster starts
// empty and complete.
//
// Roster writes are not fenced by lease tokens. An id added by a worker
// that has lost its lease is one it did hand to the target, and an id it
// removes is one whose removal the target acknowledged: both are true, and
// applying them can only make the roster hold more than the target, never
// less, which the next reconcile settles.
type Rosters interface {
	// UpdateRoster applies c to the connection's roster atomically.
	UpdateRoster(ctx context.Context, name string, c RosterChange) error
	// Roster returns every id of the connection's roster, sorted in
	// ascending byte order, each once; empty (not an error) when it has
	// none.
	Roster(ctx context.Context, name string) ([]MemberID, error)
	// RosterSize returns the exact number of ids in the roster, and
	// records it as RosterState.Members. A store that appends changes and
	// folds them later (DynamoDB's) folds here, so the cost of a roster
	// write stays proportional to the change, and the cost of an exact
	// count to the changes since the last one.
	RosterSize(ctx context.Context, name string) (int64, error)
}
