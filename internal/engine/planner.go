package engine

import (
	"context"
	"sync"

	"github.com/chimport/chimport/internal/mailchimp"
)

// fetched is a page, or the error that replaced it, in paging order.
type fetched struct {
	index  int
	offset int
	page   *mailchimp.MembersPage
	err    error
}

// planner decides which offsets one pass of a view fetches, and fetches
// them: page i at offset i x stride, where the stride is a little shorter
// than a page so that consecutive pages overlap (see viewPager). Until the
// first answer tells how many members the window holds (total_items), only
// the speculative first pages are asked for; then every offset up to that
// total. Planning stops early at the first failed fetch: the sequencer
// reports it.
//
// The planner only fetches; the sequencer puts the pages in order and
// checks them. Between the two, at most `ahead` pages are in flight or
// waiting to be checked, so memory stays flat however large the audience;
// each fetch in flight also holds one of the attempt's request slots.
type planner struct {
	pager       *viewPager
	stride      int
	speculative int

	ahead   chan struct{} // a token per page in flight or waiting
	results chan fetched
	planned chan int // how many pages were planned, once planning stops

	totalKnown chan struct{}
	totalOnce  sync.Once
	total      int

	// failed is closed by the first fetch that fails, whether or not the
	// total is known by then: the pass ends at that page, so planning more
	// would only spend requests on pages nobody will look at.
	failed     chan struct{}
	failedOnce sync.Once
}

func newPlanner(v *viewPager) *planner {
	e := v.attempt.engine
	// Half as many pages again as can be in flight may wait to be
	// checked, so a page that arrives late rarely leaves a request slot
	// idle, while memory stays bounded (a decoded page is about a
	// megabyte).
	ahead := e.PageConcurrency + e.PageConcurrency/2
	return &planner{
		pager:       v,
		stride:      e.PageSize - e.Overlap,
		speculative: v.speculativePages(),
		ahead:       make(chan struct{}, ahead),
		results:     make(chan fetched, ahead),
		planned:     make(chan int, 1),
		totalKnown:  make(chan struct{}),
		failed:      make(chan struct{}),
	}
}

// speculativePages is how many pages of a pass are asked for before the
// first answer. One, normally: a run with nothing changed then makes one
// request a view, and so does a rejected key. A full read of the default
// view (the large one) of a connection that has succeeded before, so its
// key is good, asks for a round of pages at once: on a large audience that
// saves a round trip.
func (v *viewPager) speculativePages() int {
	if v.since.IsZero() && v.view.status == "" && v.attempt.keyKnownGood {
		return v.attempt.engine.PageConcurrency
	}
	return 1
}

// setTotal records the first total_items of the pass; 0 after a failure,
// which ends planning.
func (p *planner) setTotal(n int) {
	p.totalOnce.Do(func() { p.total = n; close(p.totalKnown) })
}

// plan fetches pages in order until the total calls for no more or ctx
// ends. Each fetch runs in its own goroutine, which wg tracks.
func (p *planner) plan(ctx context.Context, wg *sync.WaitGroup) {
	i := 0
	defer func() { p.planned <- i }()
	for ; ; i++ {
		if i >= p.speculative {
			select {
			case <-p.totalKnown:
			case <-ctx.Done():
				return
			}
			if i*p.stride >= p.total {
				return
			}
		}
		select {
		case <-p.failed:
			return
		default:
		}
		select {
		case p.ahead <- struct{}{}:
		case <-p.failed:
			return
		case <-ctx.Done():
			return
		}
		page := i // i outlives the iteration: planning reports it when it stops
		wg.Go(func() { p.fetch(ctx, page) })
	}
}

// fetch reads page i and hands it to the sequencer.
func (p *planner) fetch(ctx context.Context, i int) {
	offset := i * p.stride
	page, err := p.pager.fetch(ctx, offset)
	if err == nil {
		p.setTotal(page.TotalItems)
	} else {
		// Stop planning; the sequencer reports the error when it reaches
		// this page, which comes before every page not yet planned.
		p.setTotal(0)
		p.failedOnce.Do(func() { close(p.failed) })
	}
	select {
	case p.results <- fetched{index: i, offset: offset, page: page, err: err}:
	case <-ctx.Done():
	}
}

// taken frees the token of a page the sequencer has taken.
func (p *planner) taken() { <-p.ahead }
