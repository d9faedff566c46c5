package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
)

// view is one slice of the audience that Mailchimp pages separately: the
// default view (every status but archived) or one status.
type view struct {
	name   string // "default", or the status
	status string // the `status` query parameter; "" for the default view
}

// errChainBroken means the pages fetched no longer overlap: so many members
// left the window between two fetches that a gap may hide one. The pager
// starts a new pass from the last verified position.
var errChainBroken = errors.New("pages no longer overlap")

// pageError is a page that could not be fetched, even after retries.
type pageError struct {
	view   string
	offset int
	err    error
}

func (e *pageError) Error() string {
	return fmt.Sprintf("%v (reading the %s view at offset %d)", e.err, e.view, e.offset)
}
func (e *pageError) Unwrap() error { return e.err }

// clockAheadError says the window end is not safely in Mailchimp's past:
// a member changed now could still land inside the window.
type clockAheadError struct {
	windowEnd, serverTime time.Time
}

func (e *clockAheadError) Error() string {
	return fmt.Sprintf("window end %s is not at least 1s before Mailchimp's clock (%s): the local clock is ahead",
		e.windowEnd.UTC().Format(time.RFC3339), e.serverTime.UTC().Format(time.RFC3339))
}

// acceptedPage is what the pager remembers of the last page it accepted.
type acceptedPage struct {
	offset int
	ids    map[string]struct{} // every member on the page: the overlap proof
	// handedOver are the members of the page that went to delivery, in
	// this page or the one before: the only ones a following page may skip
	// as duplicates. A member outside [since, before) is on the page but
	// was not delivered, and must not be skipped later.
	handedOver map[string]struct{}
	lastLC     time.Time // last_changed of the page's last member
}

// viewPager pages one view through [since, before) and hands every member
// to delivery exactly once per pass, proving as it goes that no member was
// skipped. How: the window can only lose members while it is paged, never
// gain one, and the remaining members keep their order (sorted by
// last_changed; ties, whose order Mailchimp does not promise, are dealt
// with on their own: see tieAtBoundary). Each page is a contiguous stretch
// of the window as it was when that page was read. So if two consecutive
// pages share at least one member, nothing that is still in the window can
// sit between them. The planner therefore requests pages with a stride a
// little shorter than the page (the overlap), and the chain (offer) checks
// that every page shares a member with the one before it. The first page
// starts at offset 0, and a short page proves the end. When a check fails,
// the pager fetches a bridging page between the two, and if even that fails
// it starts a new pass at the last verified last_changed.
type viewPager struct {
	attempt *attempt
	view    view

	since  time.Time // members with last_changed < since were delivered earlier
	before time.Time // the window end T
	// natural pages in Mailchimp's natural order instead of by
	// last_changed; used for the members of one tie group (see
	// coverTieGroup).
	natural bool
	// tieDone is the last tie group paged on its own: every member with
	// last_changed <= tieDone has been handed over (zero: none yet).
	tieDone time.Time

	progress *viewProgress

	chain  *acceptedPage // last page accepted in this pass
	dedupe *acceptedPage // last page accepted in any pass, to skip its members
	lastLC time.Time     // last_changed of the last member accepted
}

// maxBridges bounds the bridging fetches between two pages before the
// pager gives up on the pass and starts a new one.
const (
	maxBridges  = 8
	maxRestarts = 20
)

// page through the view until it is complete.
func (v *viewPager) page(ctx context.Context) error {
	for restarts := 0; ; restarts++ {
		err := v.pass(ctx)
		if !errors.Is(err, errChainBroken) {
			return err
		}
		if restarts == maxRestarts {
			return fmt.Errorf("view %s: members kept leaving the window faster than it could be paged (%d passes); the next run continues from the checkpoint", v.view.name, restarts+1)
		}
		// Everything before the last accepted member's last_changed has
		// been handed over; start again from there.
		if v.lastLC.After(v.since) {
			v.since = v.lastLC
		}
		v.attempt.logger.Debug("restarting view pass", "view", v.view.name, "since", v.since)
	}
}

// fetch reads one page of the view at offset, and refuses a window whose
// end is not safely in Mailchimp's past.
func (v *viewPager) fetch(ctx context.Context, offset int) (*mailchimp.MembersPage, error) {
	q := v.attempt.query(v.view, v.since, v.before)
	if v.natural {
		q.SortField, q.SortDir = "", ""
	}
	q.Offset = offset
	page, err := v.attempt.members(ctx, q)
	if err != nil {
		return nil, err
	}
	v.attempt.provenKey()
	if !page.ServerTime.IsZero() && page.ServerTime.Add(-time.Second).Before(v.before) {
		return nil, &clockAheadError{windowEnd: v.before, serverTime: page.ServerTime}
	}
	v.attempt.noteTotal(v.view.name, page.TotalItems)
	return page, nil
}
