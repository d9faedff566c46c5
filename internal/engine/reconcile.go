package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// mirror runs once a run's window has been delivered: it counts the
// roster, decides whether the run reconciles, and reconciles.
func (e *Engine) mirror(ctx context.Context, job Job, st state.ConnectionState, sum *Summary, a *attempt) error {
	size, err := e.Store.RosterSize(ctx, job.Connection)
	if err != nil {
		return fmt.Errorf("counting the roster: %w", err)
	}
	sum.Members = size
	reason := forcedReason(job, st, sum.Started)
	if reason == "" {
		reason = e.countsReason(job, st, &a.counts, size)
	}
	if reason == "" {
		return nil
	}
	// Keep the delivered window, should the reconcile be cut short: the
	// next run then starts where this one's window ended.
	if cp := a.checkpoint(); cp != nil {
		if err := e.Store.SaveCheckpoint(ctx, job.Connection, *cp); err != nil {
			return err
		}
	}
	r := &reconcile{engine: e, job: job, sum: sum, reason: reason,
		slots: make(chan struct{}, e.PageConcurrency), views: viewsFor(job.Statuses)}
	return r.run(ctx)
}

// reconcile finds the members of the roster that left the connection and
// deletes them from the target. It never deletes a member that exists:
//
//   - The roster is read before the scan starts, so a member delivered
//     later is never a candidate.
//   - The scan pages every member id of every view. Offset paging of a
//     list that changes meanwhile can miss a member (one that leaves
//     shifts every later one down a place), so not being seen proves
//     nothing: each roster id the scan did not see is a candidate only,
//     and is confirmed with a GET of that member by its hash. A 404 (the
//     member was deleted for good, or its address changed and with it its
//     id) or a status outside the connection's filter makes it gone; any
//     other answer keeps it.
//   - A 404 also answers for a list that was deleted meanwhile, so before
//     deleting anything the reconcile checks that the list still answers.
type reconcile struct {
	engine *Engine
	job    Job
	sum    *Summary
	reason string
	views  []view
	// slots bound the reconcile's Mailchimp requests in flight, as the
	// attempt's do.
	slots chan struct{}

	roster []state.MemberID // sorted, read before the scan
	seen   [][]uint64       // per view, a bit per roster index
	extra  []state.MemberID // build only: scanned ids the roster lacks
	mu     sync.Mutex       // guards seen and extra
}

func (r *reconcile) run(ctx context.Context) error {
	e, job := r.engine, r.job
	build := r.reason == reasonBuild
	roster, err := e.Store.Roster(ctx, job.Connection)
	if err != nil {
		return fmt.Errorf("reading the roster: %w", err)
	}
	r.roster = roster
	r.seen = make([][]uint64, len(r.views))
	for i := range r.seen {
		r.seen[i] = make([]uint64, (len(roster)+63)/64)
	}
	if err := r.scan(ctx, build); err != nil {
		return fmt.Errorf("reconcile: scanning member ids: %w", err)
	}
	candidates := r.unseen()
	gone, err := r.confirm(ctx, candidates)
	if err != nil {
		return fmt.Errorf("reconcile: confirming %d members the scan did not see: %w", len(candidates), err)
	}
	if build {
		if err := r.addExtra(ctx); err != nil {
			return err
		}
	}
	left, err := r.delete(ctx, gone)
	r.sum.Tombstoned += left
	if err != nil {
		return fmt.Errorf("reconcile: deleting %d members that left: %w", len(gone), err)
	}
	learned := r.learned()
	if err := e.Store.UpdateRoster(ctx, job.Connection, state.RosterChange{Reconciled: e.Clock.Now(), DefaultView: learned}); err != nil {
		return err
	}
	size, err := e.Store.RosterSize(ctx, job.Connection)
	if err != nil {
		return fmt.Errorf("counting the roster: %w", err)
	}
	r.sum.Members, r.sum.Reconciled, r.sum.ReconcileReason = size, true, r.reason
	e.Logger.Info("reconciled the roster with Mailchimp", "connection", job.Connection, "reason", r.reason,
		"roster", len(r.roster), "added", len(r.extra), "candidates", len(candidates), "left", left, "members", size,
		"default_view", learned.String())
	return nil
}

// scan pages every member id of every view, the views side by side.
func (r *reconcile) scan(ctx context.Context, build bool) error {
	g, ctx := errgroup.WithContext(ctx)
	for i, v := range r.views {
		g.Go(func() error { return r.scanView(ctx, i, v, build) })
	}
	return g.Wait()
}

// scanView pages one view's ids: the first page gives the total, the rest
// go out together, and pages past the total follow while they come back
// full (members who joined during the scan).
func (r *reconcile) scanView(ctx context.Context, vi int, v view, build bool) error {
	size := r.engine.PageSize
	q := mailchimp.MembersQuery{Count: size, Fields: []string{"members.id"}, Status: v.status}
	fetch := func(ctx context.Context, offset int) (int, int, error) {
		q := q
		q.Offset = offset
		page, err := r.members(ctx, q)
		if err != nil {
			return 0, 0, err
		}
		return len(page.Members), page.TotalItems, r.mark(vi, page, build)
	}
	n, total, err := fetch(ctx, 0)
	if err != nil {
		return err
	}
	if build {
		r.mu.Lock()
		r.extra = slices.Grow(r.extra, total)
		r.mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	last := 0 // the offset of the last page the total calls for
	if total > size {
		last = (total - 1) / size * size
	}
	for off := size; off <= last; off += size {
		g.Go(func() error {
			got, _, err := fetch(gctx, off)
			if off == last {
				n = got
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for off := last + size; n == size; off += size {
		if n, _, err = fetch(ctx, off); err != nil {
			return err
		}
	}
	return nil
}

// members makes one request, holding one of the reconcile's slots.
func (r *reconcile) members(ctx context.Context, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error) {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	defer func() { <-r.slots }()
	return r.job.Mailchimp.Members(ctx, r.job.ListID, q)
}

// mark records the page's ids as seen in view vi; building, it keeps the
// ids the roster lacks.
func (r *reconcile) mark(vi int, page *mailchimp.MembersPage, build bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range page.Members {
		id, err := state.ParseMemberID(m.ID())
		if err != nil {
			return fmt.Errorf("mailchimp sent a member whose id is not an MD5: %w", err)
		}
		if i, ok := slices.BinarySearchFunc(r.roster, id, compareIDs); ok {
			r.seen[vi][i/64] |= 1 << (i % 64)
		} else if build {
			r.extra = append(r.extra, id)
		}
	}
	return nil
}

func compareIDs(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) }

// unseen lists the roster ids that no view's scan saw.
func (r *reconcile) unseen() []state.MemberID {
	var out []state.MemberID
	for w := range (len(r.roster) + 63) / 64 {
		var seen uint64
		for _, s := range r.seen {
			seen |= s[w]
		}
		for b := range 64 {
			if i := w*64 + b; i < len(r.roster) && seen&(1<<b) == 0 {
				out = append(out, r.roster[i])
			}
		}
	}
	return out
}

// confirm asks Mailchimp about each candidate, and returns those that are
// gone: deleted for good (404) or, with a status filter, outside it.
func (r *reconcile) confirm(ctx context.Context, candidates []state.MemberID) ([]state.MemberID, error) {
	gone := make([]bool, len(candidates))
	var notFound atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for i, id := range candidates {
		g.Go(func() error {
			select {
			case r.slots <- struct{}{}:
			case <-gctx.Done():
				return context.Cause(gctx)
			}
			defer func() { <-r.slots }()
			m, err := r.job.Mailchimp.Member(gctx, r.job.ListID, id.String(), []string{"id", "status"})
			switch {
			case errors.Is(err, mailchimp.ErrMemberNotFound):
				gone[i] = true
				notFound.Add(1)
			case err != nil:
				return err
			case len(r.job.Statuses) > 0:
				status, _ := m["status"].(string)
				gone[i] = !slices.Contains(r.job.Statuses, status)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if notFound.Load() > 0 {
		// A list deleted meanwhile answers 404 for every member too.
		if _, err := r.members(ctx, mailchimp.MembersQuery{Count: 1, Fields: []string{"total_items"}, Status: r.views[0].status}); err != nil {
			return nil, fmt.Errorf("%d members answered 404, and the audience itself no longer answers: %w", notFound.Load(), err)
		}
	}
	var out []state.MemberID
	for i, id := range candidates {
		if gone[i] {
			out = append(out, id)
		}
	}
	return out, nil
}

// addChunk bounds one roster write of a build: a store that keeps items
// of limited size (DynamoDB's 400 KB) splits less.
const addChunk = 10000

// addExtra adds the ids a build scan found and the roster lacked: members
// delivered by earlier releases, which the target holds.
func (r *reconcile) addExtra(ctx context.Context) error {
	slices.SortFunc(r.extra, compareIDs)
	r.extra = slices.Compact(r.extra)
	for chunk := range slices.Chunk(r.extra, addChunk) {
		if err := r.engine.Store.UpdateRoster(ctx, r.job.Connection, state.RosterChange{Add: chunk}); err != nil {
			return fmt.Errorf("reconcile: adding the members found to the roster: %w", err)
		}
	}
	return nil
}

// delete sends the gone members' deletes through the same batches,
// retries and roster writes as every record, and returns how many the
// target acknowledged.
func (r *reconcile) delete(ctx context.Context, gone []state.MemberID) (int64, error) {
	if len(gone) == 0 {
		return 0, nil
	}
	var left atomic.Int64
	d := newDelivery(r.job.Sink, r.job.BatchSize, r.engine.DeliveryConcurrency, r.engine.rosterWriter(r.job),
		func(b *batch) { left.Add(int64(len(b.deletes))) })
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		err := d.deliver(ctx)
		cancel(err)
		done <- err
	}()
	for _, id := range gone {
		if err := d.send(ctx, change{op: target.Delete(id.String()), member: id}); err != nil {
			break // deliver reports why
		}
	}
	d.close()
	err := <-done
	return left.Load(), err
}

// learned is what the scan showed about the default view: whether the
// archived members the archived view returned were also in the default
// view. Unknown without archived members, or with a status filter (which
// never pages the default view).
func (r *reconcile) learned() state.DefaultView {
	if len(r.views) != 2 || r.views[0].status != "" || r.views[1].status != "archived" {
		return state.DefaultViewUnknown
	}
	var archived, both int
	for w := range r.seen[1] {
		archived += bits.OnesCount64(r.seen[1][w])
		both += bits.OnesCount64(r.seen[0][w] & r.seen[1][w])
	}
	switch {
	case archived == 0:
		return state.DefaultViewUnknown
	case 2*both > archived:
		// Most, not all: a member archived during the scan can be seen in
		// both views even where the default view leaves them out.
		return state.DefaultViewWithArchived
	}
	return state.DefaultViewWithoutArchived
}
