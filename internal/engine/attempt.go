package engine

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
)

// attempt is one try at a run's window: every view paged into one
// delivery. A run makes a second attempt only when Mailchimp's clock shows
// that the first window end was not safely in its past.
type attempt struct {
	engine   *Engine
	job      Job
	logger   *slog.Logger
	sum      *Summary
	delivery *delivery
	views    []*viewPager

	// requests are the attempt's Mailchimp request slots, PageConcurrency
	// of them, shared by every view and every kind of fetch (planned
	// pages, bridges, tie groups): the small archived view's pages go out
	// beside the default view's instead of competing with them in the
	// client's limiter, and the engine never asks for more at once than
	// Mailchimp allows, whatever the source.
	requests slots

	read, delivered atomic.Int64
	// abort stops the attempt with a cause (a lost lease).
	abort context.CancelCauseFunc
	// failedPages are the pages that failed after retries, one per view
	// at most, for the failures log.
	failedPages []*pageError
	// keyKnownGood is set when the connection has completed a run before,
	// so requests may be sent before the first answer proves the key.
	keyKnownGood bool
	// countViews asks Mailchimp for each view's count beside the window's
	// first requests, for the run's check that no member left (mirror.go);
	// not needed when the run reconciles anyway.
	countViews bool
	counts     viewCounts
	// keyProven is closed by the first page Mailchimp answers: until then
	// a connection that never succeeded sends no count, so a rejected key
	// costs one request a view, not two.
	keyProven     chan struct{}
	keyProvenOnce sync.Once

	mu     sync.Mutex
	totals map[string]int64 // first total_items per view
	// saved is the last checkpoint the writer saved, so that the run does
	// not save the same one again before its reconcile or as it fails.
	saved *state.Checkpoint
	// checkpointDue wakes the checkpoint writer; it holds at most one
	// wake-up, so moves that come while a write is under way coalesce.
	checkpointDue chan struct{}
}

func (e *Engine) newAttempt(job Job, sum *Summary, cp *state.Checkpoint, run runWrites) *attempt {
	a := &attempt{
		engine: e, job: job, sum: sum, totals: map[string]int64{},
		counts:        viewCounts{counts: map[string]int{}},
		keyProven:     make(chan struct{}),
		requests:      make(slots, e.PageConcurrency),
		checkpointDue: make(chan struct{}, 1),
		logger:        e.Logger.With("connection", job.Connection),
	}
	a.delivery = newDelivery(deliveryOf{
		sink: job.Sink, batchSize: run.batchSize, workers: e.DeliveryConcurrency,
		roster: run.roster.write, rejected: run.rejected, logger: e.Logger,
		onSent: func(b batch) {
			a.delivered.Add(int64(len(b)))
			a.reportProgress()
		},
	})
	for _, v := range viewsFor(job.Statuses) {
		start := sum.WindowStart
		if cp != nil && cp.Views[v.name].After(start) {
			start = cp.Views[v.name]
		}
		a.views = append(a.views, &viewPager{
			attempt: a, view: v, since: start, before: sum.WindowEnd,
			progress: newViewProgress(v.name, start, a.onMove),
		})
	}
	return a
}

// viewsFor lists the views to page. Without a status filter that is the
// default view plus archived members, which Mailchimp only returns when
// asked; asking is what propagates an archival.
func viewsFor(statuses []string) []view {
	if len(statuses) == 0 {
		return []view{{name: "default"}, {name: "archived", status: "archived"}}
	}
	vs := make([]view, len(statuses))
	for i, s := range statuses {
		vs[i] = view{name: s, status: s}
	}
	return vs
}

// execute pages every view concurrently into one delivery. A view that
// fails does not stop the others: what they deliver still moves their
// checkpoints. A delivery failure stops everything.
func (a *attempt) execute(ctx context.Context) error {
	ctx, a.abort = context.WithCancelCause(ctx)
	defer a.abort(nil)
	vctx, vcancel := context.WithCancelCause(ctx)
	defer vcancel(nil)
	stopCheckpoints := make(chan struct{})
	cpDone := make(chan struct{})
	go func() { a.writeCheckpoints(ctx, stopCheckpoints); close(cpDone) }()
	// The writer stops, finishing a write under way rather than cutting
	// it off, before the attempt reports back: so a checkpoint write can
	// never land after CompleteRun has cleared the checkpoint.
	defer func() { close(stopCheckpoints); <-cpDone }()
	deliveryErr := make(chan error, 1)
	go func() {
		err := a.delivery.deliver(ctx)
		if err != nil {
			vcancel(err)
		}
		deliveryErr <- err
	}()

	viewErrs := make([]error, len(a.views))
	var wg, counting sync.WaitGroup
	viewsDone := make(chan struct{})
	for i, v := range a.views {
		if a.countViews {
			counting.Go(func() { a.count(vctx, v.view, viewsDone) })
		}
		wg.Go(func() { viewErrs[i] = v.page(vctx) })
	}
	wg.Wait()
	close(viewsDone)
	counting.Wait()
	a.delivery.close()
	if err := <-deliveryErr; err != nil {
		return err
	}
	return a.outcome(ctx, viewErrs)
}

// outcome is the attempt's error once every view has stopped: nil when
// every view was paged and delivered.
func (a *attempt) outcome(ctx context.Context, viewErrs []error) error {
	var failed []error
	seen := map[string]bool{}
	for i, v := range a.views {
		err := viewErrs[i]
		if err == nil {
			v.progress.finish(a.sum.WindowEnd)
			continue
		}
		var pe *pageError
		if errors.As(err, &pe) {
			a.failedPages = append(a.failedPages, pe)
			// A rejected key or a missing list fails every view the
			// same way: say it once.
			if seen[pe.err.Error()] {
				continue
			}
			seen[pe.err.Error()] = true
		}
		failed = append(failed, err)
	}
	if cause := context.Cause(ctx); errors.Is(cause, state.ErrFenced) {
		return cause // the lost lease, not the cancellations it caused
	}
	if err := errors.Join(failed...); err != nil {
		return err
	}
	return ctx.Err()
}

// members makes one Mailchimp request, holding one of the attempt's
// request slots while it is under way.
func (a *attempt) members(ctx context.Context, q mailchimp.MembersQuery) (*mailchimp.MembersPage, error) {
	if err := a.requests.take(ctx); err != nil {
		return nil, err
	}
	defer a.requests.give()
	return a.job.Mailchimp.Members(ctx, a.job.ListID, q)
}

// slots bound the Mailchimp requests in flight: one is taken for the
// length of each request.
type slots chan struct{}

// take waits for a free slot, or for ctx to end.
func (s slots) take(ctx context.Context) error {
	select {
	case s <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// give frees a slot taken.
func (s slots) give() { <-s }

// query is the members query for a view's pass over [since, before).
func (a *attempt) query(v view, since, before time.Time) mailchimp.MembersQuery {
	q := mailchimp.MembersQuery{
		Count:     a.engine.PageSize,
		Fields:    a.job.Mapping.Fields(),
		Status:    v.status,
		Before:    before,
		SortField: "last_changed",
		SortDir:   "ASC",
	}
	if !since.IsZero() {
		// One second of lookback: Mailchimp does not say whether since is
		// inclusive. The pager drops what it has already delivered.
		q.Since = since.Add(-time.Second)
	}
	return q
}

func (a *attempt) noteTotal(view string, total int) {
	a.mu.Lock()
	if _, ok := a.totals[view]; !ok {
		a.totals[view] = int64(total)
	}
	a.mu.Unlock()
}

func (a *attempt) reportProgress() {
	if a.job.Progress == nil {
		return
	}
	a.mu.Lock()
	var est int64
	for _, n := range a.totals {
		est += n
	}
	a.mu.Unlock()
	a.job.Progress(Progress{Read: a.read.Load(), Delivered: a.delivered.Load(), Estimate: est})
}

// onMove runs when a view's delivered position moves. It only wakes the
// checkpoint writer, so delivery never waits on the state store.
func (a *attempt) onMove() {
	select {
	case a.checkpointDue <- struct{}{}:
	default:
	}
}

// writeCheckpoints saves the latest checkpoint whenever a view's position
// moves, until ctx ends. After a crash or kill -9 the next run resumes from
// the last one written, losing at most the pages delivered since.
func (a *attempt) writeCheckpoints(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-a.checkpointDue:
		}
		if cp := a.checkpoint(); cp != nil {
			err := a.engine.Store.SaveCheckpoint(ctx, a.job.Connection, *cp)
			if err == nil {
				a.mu.Lock()
				a.saved = cp
				a.mu.Unlock()
			}
			switch {
			case errors.Is(err, state.ErrFenced):
				// Another worker owns the connection now: stop at once.
				a.abort(err)
				return
			case err != nil && ctx.Err() == nil:
				a.logger.Warn("saving a checkpoint failed; the run goes on", "error", err)
			}
		}
	}
}

// unsaved is cp, or nil when the writer has saved the same position
// already (only its UpdatedAt differs): writing it again would change
// nothing a run resumes from.
func (a *attempt) unsaved(cp *state.Checkpoint) *state.Checkpoint {
	if cp == nil {
		return nil
	}
	a.mu.Lock()
	saved := a.saved
	a.mu.Unlock()
	if saved == nil || cp.Token != saved.Token || !cp.WindowStart.Equal(saved.WindowStart) ||
		!cp.WindowEnd.Equal(saved.WindowEnd) || !maps.EqualFunc(cp.Views, saved.Views, time.Time.Equal) {
		return cp
	}
	return nil
}

// checkpoint describes how far each view has been delivered, or nil when
// no view has moved past the window start.
func (a *attempt) checkpoint() *state.Checkpoint {
	cp := &state.Checkpoint{
		Token:       a.job.LeaseToken,
		WindowStart: a.sum.WindowStart,
		WindowEnd:   a.sum.WindowEnd,
		Views:       map[string]time.Time{},
		UpdatedAt:   a.engine.Clock.Now(),
	}
	for _, v := range a.views {
		if pos, _ := v.progress.snapshot(); pos.After(a.sum.WindowStart) {
			cp.Views[v.view.name] = pos
		}
	}
	if len(cp.Views) == 0 {
		return nil
	}
	return cp
}
