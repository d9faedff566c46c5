package engine

import (
	"context"
	"sync"
)

// pass pages [since, before) from offset 0: a planner fetches the pages,
// the sequencer puts them in order and offers each to the chain (see
// offer), which checks it and hands its members to delivery.
func (v *viewPager) pass(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	v.chain = nil
	p := newPlanner(v)
	wg.Go(func() { p.plan(ctx, &wg) })
	return v.sequence(ctx, p)
}

// sequence takes the planner's pages in paging order, whatever order they
// arrive in, and offers each to the chain, until the view is complete or a
// page fails.
func (v *viewPager) sequence(ctx context.Context, p *planner) error {
	pending := map[int]fetched{}
	next, planned := 0, -1
	for {
		if planned >= 0 && next >= planned {
			// Every planned page was accepted and the last one was full:
			// the window did not shrink as expected. Page on one by one.
			return v.extend(ctx)
		}
		select {
		case f := <-p.results:
			pending[f.index] = f
		case n := <-p.planned:
			planned = n
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
			p.taken()
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
	stride := v.attempt.engine.PageSize - v.attempt.engine.Overlap
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
