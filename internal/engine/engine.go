package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// Engine runs syncs. One Engine serves every connection of a process; its
// fields are tuning knobs with safe defaults.
type Engine struct {
	Store  state.Store
	Clock  clock.Clock  // default clock.Real{}
	Logger *slog.Logger // default: discard

	// PageSize is the members requested per page (Mailchimp's maximum,
	// 1000, by default).
	PageSize int
	// Overlap is how many members consecutive pages share, to prove that
	// no member hid between them (see viewPager). Default 10.
	Overlap int
	// PageConcurrency is the pages of one view in flight at once. The
	// per-key limiter in the Mailchimp client caps the total anyway.
	// Default 10.
	PageConcurrency int
	// DeliveryConcurrency is the batches in flight to the target. Default 4.
	DeliveryConcurrency int
}

func (e *Engine) withDefaults() *Engine {
	c := *e
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PageSize <= 0 || c.PageSize > mailchimp.MaxPageSize {
		c.PageSize = mailchimp.MaxPageSize
	}
	if c.Overlap <= 0 {
		c.Overlap = 10
	}
	if c.Overlap >= c.PageSize {
		c.Overlap = c.PageSize / 2
	}
	if c.PageConcurrency <= 0 {
		c.PageConcurrency = 10
	}
	if c.DeliveryConcurrency <= 0 {
		c.DeliveryConcurrency = 4
	}
	return &c
}

// Job is one run of one connection.
type Job struct {
	Connection string
	ListID     string
	// Settle holds back changes younger than this for the next run.
	Settle time.Duration
	// Statuses limits the run to these member statuses; empty means every
	// status, archived included.
	Statuses  []string
	Mapping   *mapping.Mapping
	BatchSize int
	// Full ignores the watermark and any checkpoint: the whole audience
	// is read again.
	Full bool

	// LeaseToken is the fencing token of the lease `serve` holds for this
	// run; 0 for a run without a lease (`chimport run`). With a token, the
	// store refuses the run's writes once another worker has claimed the
	// connection, and the run stops.
	LeaseToken int64

	Mailchimp *mailchimp.Client // used by this job only, so its Stats count this run
	Sink      target.Sink
	// Progress, if set, is called as members are read and delivered. It
	// must be quick and safe for concurrent use.
	Progress func(Progress)
}

// Progress is a running count for progress bars.
type Progress struct {
	Read, Delivered int64
	// Estimate is the members expected in the window, from the first
	// total_items of each view; 0 until known.
	Estimate int64
}

// Summary is the outcome of one run.
type Summary struct {
	Connection string
	Full       bool
	// Result is state.ResultOK, state.ResultFailed or
	// state.ResultCancelled, decided once by the engine and recorded in
	// the run history as it is here: callers (run, serve, the metrics)
	// read it rather than work it out from the error again.
	Result      string
	Resumed     bool      // continued from a checkpoint of a failed run
	WindowStart time.Time // the watermark the run started from (zero: from the beginning)
	WindowEnd   time.Time // T; the new watermark when Completed
	Completed   bool      // the watermark moved to WindowEnd
	Read        int64     // members received from Mailchimp (page overlaps included)
	Delivered   int64     // records acknowledged by the target
	Requests    int64     // Mailchimp HTTP requests, retries included (MailchimpStats.Requests)
	// MailchimpStats counts this run's Mailchimp traffic: attempts,
	// retries and responses by status.
	MailchimpStats mailchimp.Stats
	Started        time.Time
	Duration       time.Duration
}

// resultOf is the result a run's error stands for. A run stopped by its
// caller is cancelled, not failed: nothing needs a person.
func resultOf(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return state.ResultOK
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return state.ResultCancelled
	}
	return state.ResultFailed
}

// statsSince is what a client counted since before: this run's share when
// the client is shared with another run.
func statsSince(now, before mailchimp.Stats) mailchimp.Stats {
	d := mailchimp.Stats{Requests: now.Requests - before.Requests, Retries: now.Retries - before.Retries,
		ByStatus: make(map[int]int64, len(now.ByStatus))}
	for status, n := range now.ByStatus {
		if n -= before.ByStatus[status]; n != 0 {
			d.ByStatus[status] = n
		}
	}
	return d
}

// Run syncs one connection: it reads the watermark W, picks a window end T
// safely in Mailchimp's past, pages every view of [W, T), delivers the
// members and, when every one of them has been acknowledged by the target,
// moves the watermark to T. A failure at any point leaves the watermark
// where it was; checkpoints let the next run resume.
func (e *Engine) Run(ctx context.Context, job Job) (Summary, error) {
	e = e.withDefaults()
	started := e.Clock.Now()
	statsBefore := job.Mailchimp.Stats()
	sum := Summary{Connection: job.Connection, Full: job.Full, Started: started}
	countRequests := func() {
		sum.MailchimpStats = statsSince(job.Mailchimp.Stats(), statsBefore)
		sum.Requests = sum.MailchimpStats.Requests
	}
	// finish is every way out of Run: the result is set here and nowhere
	// else, after the run history was written with the same value.
	finish := func(err error) (Summary, error) {
		countRequests()
		if err != nil {
			sum.Completed = false // e.g. the completion itself was refused
		}
		sum.Result = resultOf(ctx, err)
		sum.Duration = e.Clock.Now().Sub(started)
		return sum, err
	}

	st, err := e.Store.Connection(ctx, job.Connection)
	if err != nil {
		return finish(err)
	}
	if err := e.Store.StartRun(ctx, job.Connection, started); err != nil {
		return finish(err)
	}
	if !job.Full {
		sum.WindowStart = st.Watermark
	}
	cp := st.Checkpoint
	if job.Full || cp == nil || !cp.WindowStart.Equal(sum.WindowStart) {
		cp = nil
	}
	sum.Resumed = cp != nil

	// The window end comes from our clock, and each response's Date header
	// proves it lies in Mailchimp's past. If our clock runs ahead, learn
	// Mailchimp's time and try once more.
	now := started
	for attempt := 0; ; attempt++ {
		sum.WindowEnd = windowEnd(now, job.Settle)
		if !sum.WindowEnd.After(sum.WindowStart) {
			// Runs more often than settle: nothing can be closed yet.
			sum.WindowEnd = sum.WindowStart
			sum.Completed = true
			countRequests()
			return finish(e.complete(ctx, job, &sum))
		}
		r := e.newRun(job, &sum, cp)
		r.keyKnownGood = !st.LastSuccess.IsZero()
		err = r.execute(ctx)
		var ahead *clockAheadError
		if errors.As(err, &ahead) && attempt == 0 {
			e.Logger.Warn("local clock is ahead of Mailchimp; using Mailchimp's time", "connection", job.Connection, "skew", started.Sub(ahead.serverTime).String())
			now = ahead.serverTime
			cp = r.checkpoint() // keep what this attempt delivered
			continue
		}
		sum.Read += r.read.Load()
		sum.Delivered += r.delivered.Load()
		countRequests()
		if err != nil {
			return finish(e.fail(ctx, job, &sum, r, err))
		}
		sum.Completed = true
		return finish(e.complete(ctx, job, &sum))
	}
}

// windowEnd is now minus settle, truncated to Mailchimp's one-second
// resolution, and at least one second back: a member changed during the
// run is stamped at or after the current second, so it can never enter a
// window that ends a second earlier. Nothing can enter the window while it
// is paged, which is what makes offset paging provable.
func windowEnd(now time.Time, settle time.Duration) time.Time {
	if settle < time.Second {
		settle = time.Second
	}
	return now.Add(-settle).Truncate(time.Second).UTC()
}

func (e *Engine) complete(ctx context.Context, job Job, sum *Summary) error {
	return e.Store.CompleteRun(ctx, state.Run{
		Connection: job.Connection, Token: job.LeaseToken, Started: sum.Started, Finished: e.Clock.Now(),
		WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd, Full: job.Full,
		Result: state.ResultOK, Read: sum.Read, Delivered: sum.Delivered, Requests: sum.Requests,
	})
}

// fail records a failed run: the checkpoint of what was delivered, the
// pages that failed, and the error. The watermark does not move. These
// writes use a context that survives cancellation, so SIGTERM still leaves
// a checkpoint behind.
func (e *Engine) fail(ctx context.Context, job Job, sum *Summary, r *run, runErr error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	if cp := r.checkpoint(); cp != nil {
		errs = append(errs, e.Store.SaveCheckpoint(wctx, job.Connection, *cp))
	}
	for _, pe := range r.failedPages {
		errs = append(errs, e.Store.AddFailure(wctx, state.Failure{
			Connection: job.Connection, WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd,
			View: pe.view, Offset: pe.offset, Error: pe.err.Error(), At: e.Clock.Now(),
		}))
	}
	errs = append(errs, e.Store.FailRun(wctx, state.Run{
		Connection: job.Connection, Token: job.LeaseToken, Started: sum.Started, Finished: e.Clock.Now(),
		WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd, Full: job.Full,
		Result: resultOf(ctx, runErr), Read: sum.Read, Delivered: sum.Delivered,
		Requests: sum.Requests, Error: runErr.Error(),
	}))
	if err := errors.Join(errs...); err != nil {
		return errors.Join(runErr, fmt.Errorf("recording the failure: %w", err))
	}
	return runErr
}

// run is the state of one attempt at a window.
type run struct {
	engine   *Engine
	job      Job
	logger   *slog.Logger
	sum      *Summary
	delivery *delivery
	views    []*viewPager

	read, delivered atomic.Int64
	// abort stops the run with a cause (a lost lease).
	abort context.CancelCauseFunc
	// failedPages are the pages that failed after retries, one per view
	// at most, for the failures log.
	failedPages []*pageError
	// keyKnownGood is set when the connection has completed a run before,
	// so requests may be sent before the first answer proves the key.
	keyKnownGood bool

	mu     sync.Mutex
	totals map[string]int64 // first total_items per view
	// checkpointDue wakes the checkpoint writer; it holds at most one
	// wake-up, so moves that come while a write is under way coalesce.
	checkpointDue chan struct{}
}

func (e *Engine) newRun(job Job, sum *Summary, cp *state.Checkpoint) *run {
	r := &run{engine: e, job: job, sum: sum, totals: map[string]int64{}, checkpointDue: make(chan struct{}, 1),
		logger: e.Logger.With("connection", job.Connection)}
	r.delivery = newDelivery(job.Sink, job.BatchSize, e.DeliveryConcurrency, func(n int) {
		r.delivered.Add(int64(n))
		r.reportProgress()
	})
	for _, v := range viewsFor(job.Statuses) {
		start := sum.WindowStart
		if cp != nil && cp.Views[v.name].After(start) {
			start = cp.Views[v.name]
		}
		r.views = append(r.views, &viewPager{
			run: r, view: v, since: start, before: sum.WindowEnd,
			progress: newViewProgress(v.name, start, r.onMove),
		})
	}
	return r
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
func (r *run) execute(ctx context.Context) error {
	ctx, r.abort = context.WithCancelCause(ctx)
	defer r.abort(nil)
	vctx, vcancel := context.WithCancelCause(ctx)
	defer vcancel(nil)
	stopCheckpoints := make(chan struct{})
	cpDone := make(chan struct{})
	go func() { r.writeCheckpoints(ctx, stopCheckpoints); close(cpDone) }()
	// The writer stops, finishing a write under way rather than cutting
	// it off, before the run reports back: so a checkpoint write can never
	// land after CompleteRun has cleared the checkpoint.
	defer func() { close(stopCheckpoints); <-cpDone }()
	deliveryErr := make(chan error, 1)
	go func() {
		err := r.delivery.run(ctx)
		if err != nil {
			vcancel(err)
		}
		deliveryErr <- err
	}()

	viewErrs := make([]error, len(r.views))
	var wg sync.WaitGroup
	for i, v := range r.views {
		wg.Go(func() { viewErrs[i] = v.page(vctx) })
	}
	wg.Wait()
	r.delivery.close()
	if err := <-deliveryErr; err != nil {
		return err
	}
	var failed []error
	seen := map[string]bool{}
	for i, v := range r.views {
		err := viewErrs[i]
		if err == nil {
			v.progress.finish(r.sum.WindowEnd)
			continue
		}
		var pe *pageError
		if errors.As(err, &pe) {
			r.failedPages = append(r.failedPages, pe)
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

// query is the members query for a view's pass over [since, before).
func (r *run) query(v view, since, before time.Time) mailchimp.MembersQuery {
	q := mailchimp.MembersQuery{
		Count:     r.engine.PageSize,
		Fields:    r.job.Mapping.Fields(),
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

func (r *run) noteTotal(view string, total int) {
	r.mu.Lock()
	if _, ok := r.totals[view]; !ok {
		r.totals[view] = int64(total)
	}
	r.mu.Unlock()
}

func (r *run) reportProgress() {
	if r.job.Progress == nil {
		return
	}
	r.mu.Lock()
	var est int64
	for _, n := range r.totals {
		est += n
	}
	r.mu.Unlock()
	r.job.Progress(Progress{Read: r.read.Load(), Delivered: r.delivered.Load(), Estimate: est})
}

// onMove runs when a view's delivered position moves. It only wakes the
// checkpoint writer, so delivery never waits on the state store.
func (r *run) onMove() {
	select {
	case r.checkpointDue <- struct{}{}:
	default:
	}
}

// writeCheckpoints saves the latest checkpoint whenever a view's position
// moves, until ctx ends. After a crash or kill -9 the next run resumes from
// the last one written, losing at most the pages delivered since.
func (r *run) writeCheckpoints(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-r.checkpointDue:
		}
		if cp := r.checkpoint(); cp != nil {
			err := r.engine.Store.SaveCheckpoint(ctx, r.job.Connection, *cp)
			switch {
			case errors.Is(err, state.ErrFenced):
				// Another worker owns the connection now: stop at once.
				r.abort(err)
				return
			case err != nil && ctx.Err() == nil:
				r.logger.Warn("saving a checkpoint failed; the run goes on", "error", err)
			}
		}
	}
}

// checkpoint describes how far each view has been delivered, or nil when
// no view has moved past the window start.
func (r *run) checkpoint() *state.Checkpoint {
	cp := &state.Checkpoint{
		Token:       r.job.LeaseToken,
		WindowStart: r.sum.WindowStart,
		WindowEnd:   r.sum.WindowEnd,
		Views:       map[string]time.Time{},
		UpdatedAt:   r.engine.Clock.Now(),
	}
	for _, v := range r.views {
		if pos, _ := v.progress.snapshot(); pos.After(r.sum.WindowStart) {
			cp.Views[v.view.name] = pos
		}
	}
	if len(cp.Views) == 0 {
		return nil
	}
	return cp
}
