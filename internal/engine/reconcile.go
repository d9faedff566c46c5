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
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// mirror runs once a run's window has been delivered: it decides whether
// the run reconciles (counting the roster, unless it reconciles anyway),
// and reconciles.
// a is the attempt that delivered the window, for its counts and
// checkpoint; nil when the run had no window to page (it runs more often
// than settle), and then only a forced reconcile runs.
func (e *Engine) mirror(ctx context.Context, job Job, st state.ConnectionState, sum *Summary, a *attempt, run runWrites) error {
	if err := run.roster.settle(ctx); err != nil {
		return fmt.Errorf("recording the new connection's roster: %w", err)
	}
	// A run that reconciles anyway needs no count first: the reconcile
	// reads the whole roster, and counts it again when it is done.
	reason := forcedReason(job, st, sum.Started)
	if reason == "" {
		size, err := e.Store.RosterSize(ctx, job.Connection)
		if err != nil {
			return fmt.Errorf("counting the roster: %w", err)
		}
		sum.Members = size
		if a != nil {
			reason = e.countsReason(job, st, &a.counts, size)
		}
	}
	if reason == "" {
		return nil
	}
	// Keep the delivered window, should the reconcile be cut short: the
	// next run then starts where this one's window ended.
	// The checkpoint writer has most often saved it already.
	var cp *state.Checkpoint
	if a != nil {
		cp = a.checkpoint()
		if save := a.unsaved(cp); save != nil {
			if err := e.Store.SaveCheckpoint(ctx, job.Connection, *save); err != nil {
				return fmt.Errorf("saving the delivered window before the reconcile: %w", err)
			}
		}
	}
	r := &reconcile{engine: e, job: job, sum: sum, reason: reason, checkpoint: cp, writes: run,
		slots: make(slots, e.PageConcurrency), views: viewsFor(job.Statuses), build: reason == reasonBuild}
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
	slots slots

	// checkpoint is the delivered window, saved before the reconcile; it
	// is written again, fenced by the lease, before each batch of deletes.
	checkpoint *state.Checkpoint
	writes     runWrites // what the deletes' deliveries share with the run

	// Memory: 16 bytes a member for the roster, and a few bits for the
	// rest, so a reconcile of a million members holds about 17 MB.
	roster []state.MemberID // sorted, read before the scan
	seen   [][]uint64       // per view, a bit per roster index
	gone   []uint64         // a bit per roster index: confirmed gone
	build  bool             // add the scanned ids the roster lacks
	extra  []state.MemberID // building: scanned ids not yet added, at most addChunk
	added  int              // building: ids added to the roster so far
	mu     sync.Mutex       // guards seen, extra and added
}

func (r *reconcile) run(ctx context.Context) error {
	e, job := r.engine, r.job
	roster, err := e.Store.Roster(ctx, job.Connection)
	if err != nil {
		return fmt.Errorf("reconcile: reading the roster: %w", err)
	}
	r.roster = roster
	r.sum.Members = int64(len(roster)) // until the reconcile counts it again
	words := (len(roster) + 63) / 64
	r.seen = make([][]uint64, len(r.views))
	for i := range r.seen {
		r.seen[i] = make([]uint64, words)
	}
	r.gone = make([]uint64, words)
	if err := r.scan(ctx); err != nil {
		return fmt.Errorf("reconcile: scanning member ids: %w", err)
	}
	candidates, err := r.confirm(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: confirming the %d members the scan did not see: %w", candidates, err)
	}
	if err := r.flushExtra(ctx, 1); err != nil {
		return err
	}
	gone := 0
	for _, w := range r.gone {
		gone += bits.OnesCount64(w)
	}
	left, err := r.delete(ctx)
	r.sum.Tombstoned += left
	if err != nil {
		return fmt.Errorf("reconcile: deleting the %d members that left: %w", gone, err)
	}
	learned := r.learned()
	if err := e.Store.UpdateRoster(ctx, job.Connection, state.RosterChange{Reconciled: e.Clock.Now(), DefaultView: learned}); err != nil {
		return fmt.Errorf("reconcile: recording it in the roster: %w", err)
	}
	size, err := e.Store.RosterSize(ctx, job.Connection)
	if err != nil {
		return fmt.Errorf("reconcile: counting the roster: %w", err)
	}
	r.sum.Members, r.sum.Reconciled, r.sum.ReconcileReason = size, true, r.reason
	e.Logger.Info("reconciled the roster with Mailchimp", "connection", job.Connection, "reason", r.reason,
		"roster", len(r.roster), "added", r.added, "candidates", candidates, "left", left, "members", size,
		"default_view", learned.String())
	return nil
}

// scan pages every member id of every view, the views side by side.
func (r *reconcile) scan(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for i, v := range r.views {
		g.Go(func() error { return r.scanView(ctx, i, v) })
	}
	return g.Wait()
}

// scanView pages one view's ids: the first page gives the total, the rest
// go out together, and pages past the total follow while they come back
// full (members who joined during the scan).
func (r *reconcile) scanView(ctx context.Context, vi int, v view) error {
	size := r.engine.PageSize
	q := mailchimp.MembersQuery{Count: size, Fields: []string{"members.id"}, Status: v.status}
	fetch := func(ctx context.Context, offset int) (int, int, error) {
		q := q
		q.Offset = offset
		page, err := r.members(ctx, q)
		if err != nil {
			return 0, 0, err
		}
		return len(page.Members), page.TotalItems, r.mark(ctx, vi, page)
	}
	n, total, err := fetch(ctx, 0)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cap(r.slots)) // no more goroutines than requests can be in flight
	last := 0                // the offset of the last page the total calls for
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
	if err := r.slots.take(ctx); err != nil {
		return nil, err
	}
	defer r.slots.give()
	return r.job.Mailchimp.Members(ctx, r.job.ListID, q)
}

// mark records the page's ids as seen in view vi. Building, it collects
// the ids the roster lacks and adds them a chunk at a time: they are
// members Mailchimp has, which an earlier release delivered.
func (r *reconcile) mark(ctx context.Context, vi int, page *mailchimp.MembersPage) error {
	r.mu.Lock()
	for _, m := range page.Members {
		id, err := state.ParseMemberID(m.ID())
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("mailchimp sent a member whose id is not an MD5: %w", err)
		}
		if i, ok := slices.BinarySearchFunc(r.roster, id, compareIDs); ok {
			r.seen[vi][i/64] |= 1 << (i % 64)
		} else if r.build {
			r.extra = append(r.extra, id)
		}
	}
	r.mu.Unlock()
	return r.flushExtra(ctx, addChunk)
}

// flushExtra adds the collected ids to the roster once there are at least
// min of them.
func (r *reconcile) flushExtra(ctx context.Context, min int) error {
	r.mu.Lock()
	if len(r.extra) < min || len(r.extra) == 0 {
		r.mu.Unlock()
		return nil
	}
	chunk := r.extra
	r.extra = make([]state.MemberID, 0, addChunk)
	r.added += len(chunk)
	r.mu.Unlock()
	if err := r.engine.Store.UpdateRoster(ctx, r.job.Connection, state.RosterChange{Add: chunk}); err != nil {
		return fmt.Errorf("reconcile: adding the members found to the roster: %w", err)
	}
	return nil
}

func compareIDs(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) }

// confirm asks Mailchimp about each roster id no view's scan saw, and
// marks gone those deleted for good (404) or, with a status filter,
// outside it. It returns how many it asked about.
func (r *reconcile) confirm(ctx context.Context) (int, error) {
	var candidates int
	var notFound atomic.Int64
	var mu sync.Mutex // guards r.gone
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(cap(r.slots))
	for i := range r.roster {
		if r.wasSeen(i) {
			continue
		}
		candidates++
		id := r.roster[i]
		g.Go(func() error {
			gone, err := r.isGone(gctx, id)
			if errors.Is(err, mailchimp.ErrMemberNotFound) {
				gone, err = true, nil
				notFound.Add(1)
			}
			if gone {
				mu.Lock()
				r.gone[i/64] |= 1 << (i % 64)
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return candidates, err
	}
	if n := notFound.Load(); n > 0 {
		if err := r.engine.checkListAnswers(ctx, r.job, int(n)); err != nil {
			return candidates, err
		}
	}
	return candidates, nil
}

func (r *reconcile) wasSeen(i int) bool {
	for _, s := range r.seen {
		if s[i/64]&(1<<(i%64)) != 0 {
			return true
		}
	}
	return false
}

// isGone asks Mailchimp for one member; a 404 comes back as
// mailchimp.ErrMemberNotFound.
func (r *reconcile) isGone(ctx context.Context, id state.MemberID) (bool, error) {
	if err := r.slots.take(ctx); err != nil {
		return false, err
	}
	defer r.slots.give()
	m, err := r.job.Mailchimp.Member(ctx, r.job.ListID, id.String(), []string{"id", "status"})
	if err != nil || len(r.job.Statuses) == 0 {
		return false, err
	}
	status, _ := m["status"].(string)
	return !slices.Contains(r.job.Statuses, status), nil
}

// addChunk bounds one roster write of a build: a store that keeps items
// of limited size (DynamoDB's 400 KB) splits less.
const addChunk = 10000

// delete sends the gone members' deletes through the same batches,
// retries and roster writes as every record, and returns how many the
// target acknowledged.
func (r *reconcile) delete(ctx context.Context) (int64, error) {
	var left atomic.Int64
	d := newDelivery(deliveryOf{
		sink: r.engine.fenced(r.job, r.sum, r.checkpoint), batchSize: r.writes.batchSize, workers: r.engine.DeliveryConcurrency,
		roster: r.writes.roster.write, rejected: r.writes.rejected, logger: r.engine.Logger,
		onSent: func(b batch) { left.Add(int64(len(b))) },
	})
	err := d.feed(ctx, func(ctx context.Context) error {
		for w, bits := range r.gone {
			for b := range 64 {
				if bits&(1<<b) == 0 {
					continue
				}
				id := r.roster[w*64+b]
				if err := d.send(ctx, change{op: target.Delete(id.String()), member: id}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return left.Load(), err
}

// fenced is the job's sink, behind a check that this run still holds its
// lease before each batch that deletes: a worker that lost the connection
// must not delete a member that came back meanwhile (it resubscribed, or
// its address changed back) and that the new owner delivered. The check
// is a fenced write of cp, the checkpoint the run already stands on (nil:
// one that claims nothing delivered), which the store refuses once
// another worker has claimed the connection. A run without a lease
// (chimport run) has nothing to check.
func (e *Engine) fenced(job Job, sum *Summary, cp *state.Checkpoint) Sink {
	return e.fencedIf(job, sum, cp, func(op target.Op) bool { return op.Kind == target.OpDelete })
}

// fencedIf is fenced for the batches holding an operation that needs it.
func (e *Engine) fencedIf(job Job, sum *Summary, cp *state.Checkpoint, needs func(target.Op) bool) Sink {
	if job.LeaseToken == 0 {
		return job.Sink
	}
	if cp == nil {
		cp = &state.Checkpoint{WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd, Views: map[string]time.Time{}}
	}
	check := *cp
	check.Token = job.LeaseToken
	return sinkFunc(func(ctx context.Context, ops []target.Op) error {
		if slices.ContainsFunc(ops, needs) {
			c := check // batches go at once: each its own copy
			c.UpdatedAt = e.Clock.Now()
			if err := e.Store.SaveCheckpoint(ctx, job.Connection, c); err != nil {
				return fmt.Errorf("checking the lease before deleting: %w", err)
			}
		}
		return job.Sink.Apply(ctx, ops)
	})
}

// sinkFunc is a Sink in one function.
type sinkFunc func(ctx context.Context, ops []target.Op) error

func (f sinkFunc) Apply(ctx context.Context, ops []target.Op) error { return f(ctx, ops) }

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
