package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// last_changed, ties by Mailchimp's stable order). Each page is a contiguous
// run of the window as it was when that page was read. So if two
// consecutive pages share at least one member, nothing that is still in the
// window can sit between them. Pages are therefore requested with a stride
// a little shorter than the page (the overlap), and the pager checks that
// every page shares a member with the one before it. The first page starts
// at offset 0, and a short page proves the end. When a check fails, the
// pager fetches a bridging page between the two, and if even that fails it
// starts a new pass at the last verified last_changed.
type viewPager struct {
	run  *run
	view view

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
		v.run.logger.Debug("restarting view pass", "view", v.view.name, "since", v.since)
	}
}

// fetched is a page, or the error that replaced it, in paging order.
type fetched struct {
	index  int
	offset int
	page   *mailchimp.MembersPage
	err    error
}

// pass pages [since, before) from offset 0. At most 1.5 x PageConcurrency
// pages are in flight or waiting to be checked, so memory stays flat however
// large the audience.
func (v *viewPager) pass(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	e := v.run.engine
	stride := e.PageSize - e.Overlap
	// Half as many pages again as can be in flight may wait to be checked,
	// so a page that arrives late rarely leaves a request slot idle, while
	// memory stays bounded (a decoded page is about a megabyte).
	slots := make(chan struct{}, e.PageConcurrency+e.PageConcurrency/2)
	results := make(chan fetched, e.PageConcurrency+e.PageConcurrency/2)
	planned := make(chan int, 1)
	totalKnown := make(chan struct{})
	var total int
	var totalOnce sync.Once
	setTotal := func(n int) {
		totalOnce.Do(func() { total = n; close(totalKnown) })
	}
	// Normally only the first page is requested before total_items is
	// known, so a run with nothing changed, or with a rejected key, makes
	// one request a view. A full read of the default view (the large one)
	// of a connection that has succeeded before, so its key is good, asks
	// for the first pages at once instead: on a large audience that saves
	// one round trip in twenty.
	speculative := 1
	if v.since.IsZero() && v.view.status == "" && v.run.keyKnownGood {
		speculative = e.PageConcurrency
	}
	v.chain = nil

	wg.Add(1)
	go func() {
		defer wg.Done()
		i := 0
		defer func() { planned <- i }()
		for ; ; i++ {
			if i >= speculative {
				select {
				case <-totalKnown:
				case <-ctx.Done():
					return
				}
				if i*stride >= total {
					return
				}
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				page, err := v.fetch(ctx, i*stride)
				if err == nil {
					setTotal(page.TotalItems)
				} else {
					setTotal(0) // stop planning; the sequencer reports the error
				}
				select {
				case results <- fetched{index: i, offset: i * stride, page: page, err: err}:
				case <-ctx.Done():
				}
			}(i)
		}
	}()

	pending := map[int]fetched{}
	next, plannedN := 0, -1
	for {
		if plannedN >= 0 && next >= plannedN {
			// Every planned page was accepted and the last one was full:
			// the window did not shrink as expected. Page on one by one.
			return v.extend(ctx)
		}
		select {
		case f := <-results:
			pending[f.index] = f
		case n := <-planned:
			plannedN = n
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		for {
			f, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			<-slots
			if f.err != nil {
				return &pageError{view: v.view.name, offset: f.offset, err: f.err}
			}
			done, err := v.offer(ctx, f.page)
			if err != nil || done {
				return err
			}
		}
	}
}

// extend fetches pages one at a time after the last accepted page until a
// short page proves the end.
func (v *viewPager) extend(ctx context.Context) error {
	stride := v.run.engine.PageSize - v.run.engine.Overlap
	for {
		offset := 0
		if v.chain != nil {
			offset = v.chain.offset + stride
		}
		page, err := v.fetch(ctx, offset)
		if err != nil {
			return &pageError{view: v.view.name, offset: offset, err: err}
		}
		if done, err := v.offer(ctx, page); err != nil || done {
			return err
		}
	}
}

// offer checks that page continues the chain and accepts it, bridging the
// gap first when it does not. It reports whether the view is complete.
func (v *viewPager) offer(ctx context.Context, page *mailchimp.MembersPage) (bool, error) {
	for bridges := 0; ; bridges++ {
		if s, ok := v.tieAtBoundary(page); ok {
			// page starts in the second the chain ends in. Once that
			// second is covered on its own, page continues the chain:
			// it holds every member of its range after s, whatever the
			// order among ties. No new pass, so the pages in flight are
			// not thrown away.
			if err := v.coverTieGroup(ctx, s); err != nil {
				return false, err
			}
			return v.accept(ctx, page)
		}
		if v.connects(page) {
			return v.accept(ctx, page)
		}
		if bridges == maxBridges {
			return false, errChainBroken
		}
		b, err := v.bridge(ctx, page.Offset)
		if err != nil {
			return false, err
		}
		if s, ok := v.tieAtBoundary(b); ok {
			if err := v.coverTieGroup(ctx, s); err != nil {
				return false, err
			}
		}
		if done, err := v.accept(ctx, b); err != nil || done {
			return done, err
		}
	}
}

// connects reports whether page continues the chain: the first page of a
// pass must start at offset 0, and every later one must share a member
// with the page accepted before it.
func (v *viewPager) connects(page *mailchimp.MembersPage) bool {
	if v.chain == nil {
		return page.Offset == 0
	}
	for _, m := range page.Members {
		if _, ok := v.chain.ids[m.ID()]; ok {
			return true
		}
	}
	return false
}

// bridge finds a page between the last accepted page and offset hi that
// shares a member with the last accepted page, halving the distance each
// time. Removals only ever shift members towards lower offsets, so a closer
// offset is more likely to overlap.
func (v *viewPager) bridge(ctx context.Context, hi int) (*mailchimp.MembersPage, error) {
	lo := v.chain.offset
	for {
		m := lo + (hi-lo)/2
		page, err := v.fetch(ctx, m)
		if err != nil {
			return nil, &pageError{view: v.view.name, offset: m, err: err}
		}
		if v.connects(page) {
			v.run.logger.Debug("bridged a gap between pages", "view", v.view.name, "offset", m)
			return page, nil
		}
		if m == lo {
			return nil, errChainBroken
		}
		hi = m
	}
}

// accept hands the page's new members to delivery and makes it the last
// page of the chain. A short page means the window has been paged to its
// end.
func (v *viewPager) accept(ctx context.Context, page *mailchimp.MembersPage) (bool, error) {
	e := v.run.engine
	ids := make(map[string]struct{}, len(page.Members))
	handedOver := make(map[string]struct{}, len(page.Members))
	fresh := make([]mailchimp.Member, 0, len(page.Members))
	var last time.Time
	for _, m := range page.Members {
		id := m.ID()
		if id == "" {
			return false, fmt.Errorf("view %s, offset %d: a member has no id", v.view.name, page.Offset)
		}
		ids[id] = struct{}{}
		lc, err := m.LastChanged()
		if err != nil {
			return false, fmt.Errorf("view %s, offset %d: member %s: %w", v.view.name, page.Offset, id, err)
		}
		last = lc
		if v.dedupe != nil {
			if _, dup := v.dedupe.handedOver[id]; dup {
				handedOver[id] = struct{}{}
				continue
			}
		}
		if !v.tieDone.IsZero() && !lc.After(v.tieDone) && !lc.Before(v.since) {
			handedOver[id] = struct{}{} // by the tie group's own pager
			continue
		}
		// The query looks back one second (since may be inclusive or
		// exclusive) and before may be inclusive: keep [since, before).
		if lc.Before(v.since) || !lc.Before(v.before) {
			continue
		}
		handedOver[id] = struct{}{}
		fresh = append(fresh, m)
	}
	v.run.read.Add(int64(len(page.Members)))

	if len(page.Members) > 0 {
		position := last
		if v.natural {
			// In natural order last_changed says nothing about what came
			// before: until the whole group is paged, claim only what
			// precedes it. (This also keeps a restart at the group start.)
			position = v.since
		}
		if end := v.tieDone.Add(time.Second); !v.tieDone.IsZero() && position.Before(end) {
			position = end
		}
		if position.After(v.before) {
			position = v.before
		}
		if position.Before(v.since) {
			position = v.since
		}
		ack := v.progress.open(position, len(fresh))
		for _, m := range fresh {
			body, err := v.run.job.Mapping.Append(nil, m)
			if err != nil {
				return false, err
			}
			if err := v.run.delivery.send(ctx, record{body: body, page: ack}); err != nil {
				return false, err
			}
		}
		v.progress.seal(ack)
		v.lastLC = position
	}
	accepted := &acceptedPage{offset: page.Offset, ids: ids, handedOver: handedOver, lastLC: last}
	v.chain = accepted
	v.dedupe = accepted
	v.run.reportProgress()
	return len(page.Members) < e.PageSize, nil
}

// tieAtBoundary reports whether page starts in the same last_changed
// second as the last accepted page ends: a tie group straddles the page
// boundary. Mailchimp does not promise any order among members that share
// a last_changed value, and a database may order them differently from one
// query to the next; then two pages can overlap and still miss a member of
// that group. Only such straddling groups are at risk: every member with a
// last_changed strictly inside a page's range sorts inside the page,
// whatever the order of ties.
func (v *viewPager) tieAtBoundary(page *mailchimp.MembersPage) (time.Time, bool) {
	if v.natural || v.chain == nil || len(page.Members) == 0 {
		return time.Time{}, false
	}
	first, err := page.Members[0].LastChanged()
	if err != nil || !first.Equal(v.chain.lastLC) {
		return time.Time{}, false
	}
	// A group outside [since, before) is the lookback second or the
	// window end: none of it is to be delivered in this window.
	if first.Before(v.since) || !first.Before(v.before) {
		return time.Time{}, false
	}
	return first, true
}

// coverTieGroup delivers every member whose last_changed is the second s,
// paging that one second in Mailchimp's natural order, which (unlike the
// order among ties) is stable, with the same overlap proof. Afterwards
// everything before s+1 has been handed over, and the page that started in
// s continues the chain (see offer).
func (v *viewPager) coverTieGroup(ctx context.Context, s time.Time) error {
	if !s.After(v.tieDone) {
		return nil // covered already
	}
	v.run.logger.Debug("paging a tie group on its own", "view", v.view.name, "last_changed", s)
	group := &viewPager{
		run: v.run, view: v.view, since: s, before: s.Add(time.Second), natural: true,
		progress: v.progress, dedupe: v.dedupe,
	}
	if err := group.page(ctx); err != nil {
		return err
	}
	// Every member stamped s has been handed over too. The outer dedupe
	// stays: the next page may share members after s with the chain's
	// last page.
	v.tieDone = s
	end := s.Add(time.Second)
	v.progress.seal(v.progress.open(end, 0))
	if end.After(v.lastLC) {
		v.lastLC = end
	}
	return nil
}

// fetch reads one page of the view at offset, and refuses a window whose
// end is not safely in Mailchimp's past.
func (v *viewPager) fetch(ctx context.Context, offset int) (*mailchimp.MembersPage, error) {
	q := v.run.query(v.view, v.since, v.before)
	if v.natural {
		q.SortField, q.SortDir = "", ""
	}
	q.Offset = offset
	page, err := v.run.job.Mailchimp.Members(ctx, v.run.job.ListID, q)
	if err != nil {
		return nil, err
	}
	if !page.ServerTime.IsZero() && page.ServerTime.Add(-time.Second).Before(v.before) {
		return nil, &clockAheadError{windowEnd: v.before, serverTime: page.ServerTime}
	}
	v.run.noteTotal(v.view.name, page.TotalItems)
	return page, nil
}
