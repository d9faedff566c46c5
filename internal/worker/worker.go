package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/metrics"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
)

// DefaultLagEvery is how often lag is measured when Config.LagEvery is 0.
const DefaultLagEvery = 30 * time.Second

// Store is what a worker needs of the shared state store: the connections'
// state, the alert incidents, and the leases the scheduler claims.
type Store interface {
	Connection(ctx context.Context, name string) (state.ConnectionState, error)
	Connections(ctx context.Context) ([]state.ConnectionState, error)
	alert.AlertStore
	ClaimLease(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (state.Lease, error)
	RenewLease(ctx context.Context, lease state.Lease, now time.Time, ttl time.Duration) (state.Lease, error)
	ReleaseLease(ctx context.Context, lease state.Lease) error
}

// Connection is one configured connection: when it runs, and when it lags.
type Connection struct {
	schedule.Connection
	Lag alert.LagPolicy
}

// Config configures a Worker. Store, Run and Notifier are required; zero
// fields take their defaults.
type Config struct {
	Connections []Connection
	Store       Store
	// Run runs the named connection once, under the lease's fencing token
	// (the engine with a job built for it), and returns the engine's
	// summary and error.
	Run func(ctx context.Context, name string, leaseToken int64) (engine.Summary, error)
	// Refresh, when set, fetches and delivers the named members of a
	// connection under the lease's fencing token (the engine's Refresh
	// with a job built for it): what a webhook event asks for (Refresh).
	Refresh  func(ctx context.Context, name string, leaseToken int64, members []string) (engine.RefreshSummary, error)
	Notifier alert.Notifier
	// Metrics receives the run counters and the gauges. Nil means a fresh
	// metrics.New().
	Metrics *metrics.Metrics
	// Clock tells the time and waits, for the worker and its scheduler. Nil
	// means clock.Real{}.
	Clock clock.Clock
	// LagEvery is the lag beat. Zero means DefaultLagEvery.
	LagEvery time.Duration
	// Owner, LeaseTTL, MaxParallel and Jitter configure the scheduler (see
	// schedule.Config); zero values take its defaults.
	Owner       string
	LeaseTTL    time.Duration
	MaxParallel int
	Jitter      func(name string, every time.Duration) time.Duration
	// Logger receives each failed run (error, once, with what to do) and
	// warnings (a store or notifier that failed). Nil discards.
	Logger *slog.Logger
}

// Worker is one serve process's scheduler and bookkeeping. Make one with
// New; Serve runs it.
type Worker struct {
	cfg    Config
	conns  []Connection
	byName map[string]Connection
	sched  *schedule.Scheduler
	log    *slog.Logger
	// stopping ends when Serve's context does (SIGTERM), while the runs in
	// flight go on for the scheduler's grace period: alerting after a run
	// stops with it, so a hung notifier cannot hold up the shutdown.
	stopping context.Context
	stop     context.CancelFunc
	hints    hints
	// webhookOwner claims leases for webhook refreshes; events is when
	// each connection last heard from Mailchimp.
	webhookOwner string
	events       lastEvents
}

// New checks cfg and returns a Worker. Invalid schedules are reported with
// their connection's name.
func New(cfg Config) (*Worker, error) {
	if cfg.Store == nil || cfg.Run == nil || cfg.Notifier == nil {
		return nil, errors.New("worker: Store, Run and Notifier are required")
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.LagEvery <= 0 {
		cfg.LagEvery = DefaultLagEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		cfg.Owner = schedule.DefaultOwner()
	}
	w := &Worker{cfg: cfg, conns: cfg.Connections, byName: make(map[string]Connection, len(cfg.Connections)), log: cfg.Logger,
		webhookOwner: cfg.Owner + schedule.WebhooksOwnerSuffix}
	w.stopping, w.stop = context.WithCancel(context.Background())
	plan := make([]schedule.Connection, len(cfg.Connections))
	for i, c := range cfg.Connections {
		plan[i] = c.Connection
		w.byName[c.Name] = c
	}
	sched, err := schedule.New(schedule.Config{
		Owner: cfg.Owner, Clock: cfg.Clock, Leases: storeLeases{cfg.Store},
		LeaseTTL: cfg.LeaseTTL, MaxParallel: cfg.MaxParallel, Jitter: cfg.Jitter, Logger: cfg.Logger,
		Run: w.runConnection,
	}, plan)
	if err != nil {
		return nil, err
	}
	w.sched = sched
	return w, nil
}

// Serve sets every connection's gauges from the store, then runs the
// scheduler and the lag beat until ctx ends. Then it takes no new run, lets
// the runs in flight finish within the scheduler's grace period, and
// returns. It may be called once.
func (w *Worker) Serve(ctx context.Context) error {
	defer context.AfterFunc(ctx, w.stop)()
	defer w.stop()
	w.setGauges(ctx)

	beat, stopBeat := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.watchLag(beat) })
	err := w.sched.Run(ctx)
	stopBeat()
	wg.Wait()
	return err
}

// Metrics is where the worker counts runs and sets the gauges.
func (w *Worker) Metrics() *metrics.Metrics { return w.cfg.Metrics }

// runConnection is one scheduled run under lease, then its bookkeeping. It
// logs a failed run itself and returns nil for it, so the scheduler does not
// log it a second time; only a run the scheduler stopped, or that was
// fenced, comes back as an error, for the scheduler to explain.
func (w *Worker) runConnection(ctx context.Context, name string, lease schedule.Lease) error {
	sum, runErr := w.cfg.Run(ctx, name, lease.Token)
	// Bookkeeping is bounded by the worker's own stop, not only by the
	// run's context (which outlives SIGTERM by the grace period).
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(w.stopping, cancel)()
	w.afterRun(bctx, name, sum, runErr)
	if runErr == nil {
		return nil
	}
	if ctx.Err() != nil || errors.Is(runErr, state.ErrFenced) || errors.Is(runErr, schedule.ErrFenced) {
		// The scheduler stopped the run (its lease was lost, or the
		// shutdown's grace period ended), or another worker owns the
		// connection now: the scheduler's own line says why.
		return runErr
	}
	w.logFailure(name, sum, runErr)
	// Logged: the scheduler would log the same failure again.
	return nil
}

// logFailure is the one log record of a failed run: what failed and what
// to do about it, which the status page shows too.
func (w *Worker) logFailure(name string, sum engine.Summary, runErr error) {
	conn, ok := w.byName[name]
	if !ok {
		conn = Connection{Connection: schedule.Connection{Name: name}}
	}
	action := hintOf(conn, runErr, w.cfg.Clock.Now())
	w.hints.set(name, runErr.Error(), action)
	w.log.Error("run failed", "connection", name, "error", runErr, "action", action,
		"read", sum.Read, "delivered", sum.Delivered, "tombstoned", sum.Tombstoned, "duration", sum.Duration.Round(time.Millisecond).String())
}

// afterRun counts a finished run, then, unless it was fenced, sets the
// connection's gauges (the members in the target and the rejected records
// from a completed run's Summary, then all of them from the store) and
// applies the alert policy: permanent errors, lag, rejected records.
func (w *Worker) afterRun(ctx context.Context, name string, sum engine.Summary, runErr error) {
	w.cfg.Metrics.ObserveRun(name, sum.Result, sum.Read, sum.Delivered, sum.Tombstoned, sum.Duration, sum.MailchimpStats)
	if errors.Is(runErr, state.ErrFenced) {
		return // another worker owns the connection now: it speaks for it
	}
	if sum.Completed {
		// The run counted its roster and its rejected log last thing; the
		// state read back below holds the same counts, and sets them
		// again, unless that read fails.
		w.cfg.Metrics.SetRosterMembers(name, sum.Members, true)
		w.cfg.Metrics.SetRejected(name, sum.Rejected)
	}
	conn, ok := w.byName[name]
	if !ok {
		return
	}
	st, err := w.cfg.Store.Connection(ctx, name)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading the connection's state after its run failed", "connection", name, "error", err)
		}
		return
	}
	now := w.cfg.Clock.Now()
	w.observe(name, st, now)
	read := alert.ReadFreshness(w.cfg.Store, name, st)
	if err := conn.Lag.AfterRunConfirmed(ctx, w.cfg.Store, w.cfg.Notifier, name, runErr, read, now); err != nil {
		w.log.Warn("alerting failed", "connection", name, "error", err)
	}
	// Whatever the run's result: the log is what it is now. A failed run
	// may just have opened an error incident, which the rejected alert
	// waits for (one cause pages once): read the state it left.
	if runErr != nil {
		if again, err := w.cfg.Store.Connection(ctx, name); err == nil {
			st = again
		}
	}
	if err := alert.CheckRejected(ctx, w.cfg.Store, w.cfg.Notifier, name, st, now); err != nil {
		w.log.Warn("rejected records alert failed", "connection", name, "error", err)
	}
}
