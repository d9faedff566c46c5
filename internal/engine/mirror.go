package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
)

// The mirror: besides delivering what changed, a run makes sure the target
// holds no record of a member that left the connection (deleted for good,
// moved to a new address and so a new id, or out of the status filter).
// Such members vanish from Mailchimp without a trace; what remembers them
// is the roster, the ids the target may hold (state.Rosters). Each run
// checks cheaply whether the roster and Mailchimp still agree (one count
// per view, taken beside the window's first requests), and when they do
// not, or when a reconcile is due anyway, it reconciles: scans every
// member id, confirms each roster id the scan did not see with a GET of
// that member, and deletes the gone ones from the target (reconcile.go).

// DefaultReconcileEvery is how often a connection is reconciled when
// nothing suggests it is needed sooner.
const DefaultReconcileEvery = 24 * time.Hour

// runRoster writes one run's changes to the connection's roster. On a
// fresh connection's first run it also records, with the run's first
// write, that the roster is complete (it starts empty, and every id the
// run sends enters it): one store call fewer per connection than a write
// of its own, which matters with thousands of small connections.
type runRoster struct {
	store Store
	name  string
	mu    sync.Mutex
	fresh time.Time // the fresh connection's mark, until written
}

func (r *runRoster) write(ctx context.Context, c state.RosterChange) error {
	r.mu.Lock()
	fresh := r.fresh
	r.mu.Unlock()
	if !fresh.IsZero() && c.Reconciled.IsZero() {
		c.Reconciled = fresh
	}
	if err := r.store.UpdateRoster(ctx, r.name, c); err != nil {
		return err
	}
	if !fresh.IsZero() {
		r.mu.Lock()
		r.fresh = time.Time{}
		r.mu.Unlock()
	}
	return nil
}

// settle writes the fresh connection's mark if no change carried it: a
// run that sent nothing.
func (r *runRoster) settle(ctx context.Context) error {
	r.mu.Lock()
	pending := !r.fresh.IsZero()
	r.mu.Unlock()
	if !pending {
		return nil
	}
	return r.write(ctx, state.RosterChange{})
}

// viewCounts are Mailchimp's counts of a connection's members, one per
// view, with no window: taken at the start of a run, so that they count
// every member the run's window can deliver and none that left before.
type viewCounts struct {
	mu     sync.Mutex
	counts map[string]int
	err    error // the first count that failed; the check is then skipped
}

// count asks Mailchimp how many members the view holds: one member's worth
// of page and only total_items. For a key not yet known to be good it
// waits for the first answer, and gives up when the views end without one.
func (a *attempt) count(ctx context.Context, v view, viewsDone <-chan struct{}) {
	c := &a.counts
	if !a.keyKnownGood {
		select {
		case <-a.keyProven:
		case <-viewsDone:
			select {
			case <-a.keyProven: // both were ready: the key is good
			default:
				c.fail(fmt.Errorf("counting the %s view: no page of the window was read, so the key is not known to be good", v.name))
				return
			}
		case <-ctx.Done():
			c.fail(fmt.Errorf("counting the %s view: %w", v.name, context.Cause(ctx)))
			return
		}
	}
	page, err := a.members(ctx, mailchimp.MembersQuery{Count: 1, Fields: []string{"total_items"}, Status: v.status})
	if err != nil {
		c.fail(fmt.Errorf("counting the %s view: %w", v.name, err))
		return
	}
	c.mu.Lock()
	c.counts[v.name] = page.TotalItems
	c.mu.Unlock()
}

func (c *viewCounts) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (a *attempt) provenKey() { a.keyProvenOnce.Do(func() { close(a.keyProven) }) }

// forcedReason says why this run reconciles whatever the counts say, or
// "" when only the counts can tell.
func forcedReason(job Job, st state.ConnectionState, now time.Time) string {
	switch {
	case !st.Roster.Complete():
		return reasonBuild
	case job.Full:
		return reasonFull
	case job.Reconcile:
		return reasonAsked
	case now.Sub(st.Roster.LastReconcile) >= reconcileEvery(job):
		return reasonDue
	}
	return ""
}

// countsReason says why this run must reconcile, from Mailchimp's counts
// taken at its start and the roster's size after its window was
// delivered, or "" when they agree.
func (e *Engine) countsReason(job Job, st state.ConnectionState, counts *viewCounts, size int64) string {
	if counts.err != nil {
		e.Logger.Warn("could not count the audience's members, so this run cannot tell whether members left it; the next run or reconcile will",
			"connection", job.Connection, "error", counts.err)
		return ""
	}
	total := int64(0)
	for _, n := range counts.counts {
		total += int64(n)
	}
	archived := int64(counts.counts["archived"])
	filtered := len(job.Statuses) > 0
	if !filtered && st.Roster.DefaultView == state.DefaultViewWithArchived {
		total -= archived // the default view counted them already
	}
	if size > total {
		// The roster holds ids that Mailchimp no longer has: some members
		// left. (Fewer ids than members is normal: members who joined
		// since the window end are delivered by the next run.)
		return reasonCounts
	}
	if !filtered && st.Roster.DefaultView == state.DefaultViewUnknown && archived > 0 && size != total {
		// Counting archived members twice would hide as many deletions:
		// learn once what this account's default view does.
		return reasonLearn
	}
	return ""
}

func reconcileEvery(job Job) time.Duration {
	if job.ReconcileEvery > 0 {
		return job.ReconcileEvery
	}
	return DefaultReconcileEvery
}

// Why a run reconciles.
const (
	reasonBuild  = "build"  // no roster yet: state from a release without one
	reasonFull   = "full"   // a full re-sync reconciles too
	reasonAsked  = "asked"  // the caller asked for it (run --reconcile)
	reasonDue    = "due"    // reconcile_every has passed
	reasonCounts = "counts" // the roster holds more ids than Mailchimp has members
	reasonLearn  = "learn"  // learn whether the default view holds archived members
)

// freshConnection reports whether st belongs to a connection that never
// delivered anything: its roster starts empty and complete. Any checkpoint
// counts, even a lease check's: a webhook refresh before the first run may
// have delivered members, whom the first run must reconcile.
func freshConnection(st state.ConnectionState) bool {
	return st.Watermark.IsZero() && st.Checkpoint == nil && st.TotalDelivered == 0 && st.LastSuccess.IsZero()
}
