package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/state"
)

// Engine runs syncs. One Engine serves every connection of a process; its
// fields are tuning knobs with safe defaults.
type Engine struct {
	Store  Store        // every state.Store is one
	Clock  clock.Clock  // default clock.Real{}
	Logger *slog.Logger // default: discard

	// PageSize is the members requested per page (Mailchimp's maximum,
	// 1000, by default).
	PageSize int
	// Overlap is how many members consecutive pages share, to prove that
	// no member hid between them (see viewPager). Default 10.
	Overlap int
	// PageConcurrency is the Mailchimp requests a run has in flight at
	// once, every view's pages together (Mailchimp allows 10 per key, and
	// the client's per-key limiter holds every run of a key to that).
	// Default 10.
	PageConcurrency int
	// DeliveryConcurrency is the batches in flight to the target. Default
	// DefaultDeliveryConcurrency.
	DeliveryConcurrency int
}

// DefaultDeliveryConcurrency is Engine.DeliveryConcurrency's default.
const DefaultDeliveryConcurrency = 4

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
		c.DeliveryConcurrency = DefaultDeliveryConcurrency
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
	// is read again, and reconciled.
	Full bool
	// Reconcile makes the run reconcile the roster with Mailchimp after
	// its window, whatever the counts say (`chimport run --reconcile`).
	Reconcile bool
	// ReconcileEvery is the longest a connection goes without a
	// reconcile, even when Mailchimp's counts agree with the roster.
	// Default DefaultReconcileEvery (24h).
	ReconcileEvery time.Duration

	// MaxRejected is the most records the target may refuse in one run,
	// besides those already in the rejected log, before the run stops as
	// one whose refusals are not a few bad records but a broken mapping
	// or target. Default DefaultMaxRejected.
	MaxRejected int

	// LeaseToken is the fencing token of the lease `serve` holds for this
	// run; 0 for a run without a lease (`chimport run`). With a token, the
	// store refuses the run's writes once another worker has claimed the
	// connection, and the run stops.
	LeaseToken int64

	// Mailchimp is where members come from: a *mailchimp.Client, or in
	// tests the simulator's in-process source. Its Stats before and after
	// the run give the run's requests.
	Mailchimp MemberSource
	// Sink is where records go: a *target.HTTP, or a test's stand-in.
	Sink Sink
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
	// Members is the size of the connection's roster at the end of the
	// run: the members the target holds (the roster may count a few the
	// target never received: an id enters it just before its batch is
	// sent).
	Members int64
	// Reconciled says the run reconciled the roster with Mailchimp, and
	// ReconcileReason why: "build" (the connection had no roster yet),
	// "full" (a full re-sync), "asked" (Job.Reconcile), "due" (reconcile_every passed), "counts"
	// (the roster held more ids than Mailchimp has members) or "learn"
	// (finding out whether the default view holds archived members).
	Reconciled      bool
	ReconcileReason string
	// Tombstoned counts the members that left the target in this run:
	// tombstones or DELETEs it acknowledged, or, with deletes off, members
	// dropped from the roster without a word to it.
	Tombstoned int64
	// Rejected is the size of the connection's rejected log at the end of
	// the run: the records the target refused, in this run or before, and
	// has not accepted since. RejectedSample is one of them (the latest
	// refused), nil when Rejected is 0. Refused counts the refusals of
	// this run, retries refused again included.
	Rejected       int64
	RejectedSample *state.Rejection
	Refused        int64
	// MailchimpStats counts this run's Mailchimp traffic: HTTP requests
	// (retries included), retries, and responses by status.
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
	}
	run := runWrites{
		roster:    &runRoster{store: e.Store, name: job.Connection},
		rejected:  newRejectedLog(e.Store, job, e.Clock),
		batchSize: newBatchLimit(job.BatchSize, job.Connection, e.Logger),
	}
	// finish is every way out of Run: the result is set here and nowhere
	// else, after the run history was written with the same value.
	finish := func(err error) (Summary, error) {
		countRequests()
		e.sumRejected(ctx, &sum, run.rejected)
		if err != nil {
			sum.Completed = false // e.g. the completion itself was refused
		}
		sum.Result = resultOf(ctx, err)
		sum.Duration = e.Clock.Now().Sub(started)
		return sum, err
	}

	ctx = (&errorNotes{store: e.Store, name: job.Connection, clock: e.Clock}).watch(ctx)
	st, cp, err := e.begin(ctx, job, &sum, run.roster)
	if err != nil {
		return finish(err)
	}
	entries, err := run.rejected.load(ctx, st)
	if err == nil {
		err = e.retryRejected(ctx, job, st, entries, run, &sum)
	}
	if err != nil {
		countRequests()
		return finish(e.fail(ctx, job, &sum, nil, err))
	}
	forced := forcedReason(job, st, started)
	// The window end comes from our clock, and each response's Date header
	// proves it lies in Mailchimp's past. If our clock runs ahead, learn
	// Mailchimp's time and try once more.
	now := started
	for try := 0; ; try++ {
		sum.WindowEnd = windowEnd(now, job.Settle)
		if !sum.WindowEnd.After(sum.WindowStart) {
			// Runs more often than settle: nothing can be closed yet. A
			// reconcile asked for (or due) still runs.
			sum.WindowEnd = sum.WindowStart
			sum.Completed = true
			if err := e.mirror(ctx, job, st, &sum, nil, run); err != nil {
				countRequests()
				return finish(e.fail(ctx, job, &sum, nil, err))
			}
			countRequests()
			return finish(e.complete(ctx, job, &sum))
		}
		a := e.newAttempt(job, &sum, cp, run)
		a.keyKnownGood = !st.LastSuccess.IsZero()
		a.countViews = forced == ""
		err = a.execute(ctx)
		var ahead *clockAheadError
		if errors.As(err, &ahead) && try == 0 {
			e.Logger.Warn("local clock is ahead of Mailchimp; using Mailchimp's time", "connection", job.Connection, "skew", started.Sub(ahead.serverTime).String())
			now = ahead.serverTime
			cp = a.checkpoint() // keep what this attempt delivered
			continue
		}
		sum.Read += a.read.Load()
		sum.Delivered += a.delivered.Load()
		if err == nil {
			err = e.mirror(ctx, job, st, &sum, a, run)
		}
		countRequests()
		if err != nil {
			return finish(e.fail(ctx, job, &sum, a, err))
		}
		sum.Completed = true
		return finish(e.complete(ctx, job, &sum))
	}
}

// runWrites is what the deliveries of a run share: how they write the
// roster and the rejected log, and the batch size they learned.
type runWrites struct {
	roster    *runRoster
	rejected  *rejectedLog
	batchSize *batchLimit
}

// sumRejected reports the rejected log at the end of the run. The sample
// costs a read only when the log holds anything.
func (e *Engine) sumRejected(ctx context.Context, sum *Summary, log *rejectedLog) {
	sum.Refused = log.refusals()
	sum.Rejected = int64(log.size())
	if sum.Rejected == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if st, err := e.Store.Connection(rctx, sum.Connection); err == nil {
		sum.Rejected, sum.RejectedSample = st.Rejected.Count, st.Rejected.Sample
	}
}

// begin reads the connection's state and records the attempt. The window
// starts at the watermark (at the beginning for a full run); a checkpoint
// of a run that failed in the same window is returned to resume from.
func (e *Engine) begin(ctx context.Context, job Job, sum *Summary, roster *runRoster) (state.ConnectionState, *state.Checkpoint, error) {
	st, err := e.Store.Connection(ctx, job.Connection)
	if err != nil {
		return st, nil, err
	}
	if err := e.Store.StartRun(ctx, job.Connection, sum.Started); err != nil {
		return st, nil, err
	}
	if !st.Roster.Complete() && freshConnection(st) {
		// Nothing was ever delivered, so the roster starts empty and
		// exact: as good as reconciled now. The run's first roster write
		// records it.
		roster.fresh = sum.Started
		st.Roster.Kept, st.Roster.LastReconcile = true, sum.Started
	}
	if !job.Full {
		sum.WindowStart = st.Watermark
	}
	cp := st.Checkpoint
	if job.Full || !cp.Resumes() || !cp.WindowStart.Equal(sum.WindowStart) {
		cp = nil
	}
	sum.Resumed = cp != nil
	sum.Members = st.Roster.Members // until the run counts the roster again
	return st, cp, nil
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
		Result: state.ResultOK, Read: sum.Read, Delivered: sum.Delivered, Requests: sum.MailchimpStats.Requests,
	})
}

// fail records a failed run: the checkpoint of what was delivered, the
// pages that failed, and the error. The watermark does not move. These
// writes use a context that survives cancellation, so SIGTERM still leaves
// a checkpoint behind.
func (e *Engine) fail(ctx context.Context, job Job, sum *Summary, a *attempt, runErr error) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	if a != nil { // nil: a run with no window to page, whose reconcile failed
		if cp := a.unsaved(a.checkpoint()); cp != nil {
			errs = append(errs, e.Store.SaveCheckpoint(wctx, job.Connection, *cp))
		}
		for _, pe := range a.failedPages {
			errs = append(errs, e.Store.AddFailure(wctx, state.Failure{
				Connection: job.Connection, WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd,
				View: pe.view, Offset: pe.offset, Error: pe.err.Error(), At: e.Clock.Now(),
			}))
		}
	}
	errs = append(errs, e.Store.FailRun(wctx, state.Run{
		Connection: job.Connection, Token: job.LeaseToken, Started: sum.Started, Finished: e.Clock.Now(),
		WindowStart: sum.WindowStart, WindowEnd: sum.WindowEnd, Full: job.Full,
		Result: resultOf(ctx, runErr), Read: sum.Read, Delivered: sum.Delivered,
		Requests: sum.MailchimpStats.Requests, Error: runErr.Error(),
	}))
	if err := errors.Join(errs...); err != nil {
		return errors.Join(runErr, fmt.Errorf("recording the failure: %w", err))
	}
	return runErr
}
