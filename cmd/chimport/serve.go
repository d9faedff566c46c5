package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/metrics"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/statuspage"
)

type serveOptions struct {
	listen      string
	owner       string
	leaseTTL    time.Duration
	maxParallel int
	lagEvery    time.Duration
}

func newServeCmd(e env, global *globalOptions) *cobra.Command {
	opts := serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Keep every connection in sync on its schedule, with health, metrics and a status page",
		Long: `serve runs each connection every "every" (or on its "cron:" expression), with a
stable jitter so thousands of connections do not start in the same second. Several
serve processes may share one state store: a connection's run is claimed with a
lease, so it never runs twice at once, and a dead worker's connections are picked up
when its lease expires. It serves /healthz, /metrics (Prometheus) and a status page
on --listen. On SIGTERM it stops taking new runs, lets runs in flight reach a
checkpoint, and exits 0.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.lagEvery <= 0 {
				return usageErrorf("--lag-check must be greater than 0, got %s", opts.lagEvery)
			}
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), e, global, cfg, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.listen, "listen", "127.0.0.1:9187", "address for /healthz, /metrics and the status page")
	f.StringVar(&opts.owner, "worker-id", "", "this worker's name in leases (default host-pid-random)")
	f.DurationVar(&opts.leaseTTL, "lease-ttl", schedule.DefaultLeaseTTL, "how long a claimed connection stays claimed without renewal; a dead worker's connections wait this long")
	f.IntVar(&opts.maxParallel, "parallel", schedule.DefaultMaxParallel, "runs at once in this worker")
	f.DurationVar(&opts.lagEvery, "lag-check", 30*time.Second, "how often lag is measured for metrics and alerts")
	return cmd
}

// server is one serve process: the scheduler, what it shares with the
// HTTP endpoints, and the lag alerts.
type server struct {
	cfg     *config.Config
	conns   map[string]config.Connection
	store   state.Store
	engine  *engine.Engine
	limiter *mailchimp.Limiter
	notify  alert.Notifier
	metrics *metrics.Metrics
	global  *globalOptions
	sched   *schedule.Scheduler
	alive   atomic.Bool
	// stopping ends at SIGTERM, while runs in flight go on for the grace
	// period.
	stopping context.Context
}

func runServe(ctx context.Context, e env, global *globalOptions, cfg *config.Config, opts serveOptions) error {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return usageError{err}
	}
	defer store.Close()
	notify, err := newNotifier(ctx, cfg, global.logger)
	if err != nil {
		return err
	}
	owner := opts.owner
	if owner == "" {
		owner = schedule.DefaultOwner()
	}
	s := &server{
		cfg: cfg, conns: map[string]config.Connection{}, store: store,
		engine:  &engine.Engine{Store: store, Logger: global.logger},
		limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey),
		notify:  notify, metrics: metrics.New(), global: global, stopping: ctx,
	}
	var plan []schedule.Connection
	for _, c := range cfg.Connections {
		s.conns[c.Name] = c
		plan = append(plan, schedule.Connection{Name: c.Name, Every: c.Every.D(), Cron: c.Cron})
	}
	s.sched, err = schedule.New(schedule.Config{
		Owner: owner, Leases: storeLeases{store}, LeaseTTL: opts.leaseTTL, MaxParallel: opts.maxParallel,
		Logger: global.logger, Run: s.runConnection,
	}, plan)
	if err != nil {
		return usageError{err}
	}

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return usageErrorf("--listen %s: %v", opts.listen, err)
	}
	httpSrv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = httpSrv.Serve(ln) }()
	fmt.Fprintf(e.stdout, "chimport serve: worker %s, %d connections, http://%s/ (status), /metrics, /healthz\n", owner, len(plan), ln.Addr())

	// The helpers below stop with the signal, or if the scheduler ever
	// returns on its own; the HTTP endpoints stop while it drains.
	helpersCtx, stopHelpers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.watchLag(helpersCtx, opts.lagEvery) })
	wg.Go(func() {
		<-helpersCtx.Done()
		s.alive.Store(false)
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(shutdownCtx)
	})
	s.alive.Store(true)
	err = s.sched.Run(ctx)
	s.alive.Store(false)
	stopHelpers()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	global.logger.Info("serve stopped", "worker", owner)
	return nil
}

// runConnection is one scheduled run under lease: sync, record metrics,
// then alert if a person is needed or the connection lags.
func (s *server) runConnection(ctx context.Context, name string, lease schedule.Lease) error {
	conn := s.conns[name]
	job, err := newJob(conn, s.limiter, s.global.logger, false)
	if err != nil {
		return err
	}
	job.LeaseToken = lease.Token
	sum, runErr := s.engine.Run(ctx, job)
	logRun(s.global.logger, sum, runErr, false)
	result := metrics.ResultOK
	switch {
	case errors.Is(runErr, context.Canceled):
		result = metrics.ResultCancelled
	case runErr != nil:
		result = metrics.ResultFailed
	}
	s.metrics.ObserveRun(name, result, sum.Read, sum.Delivered, sum.Duration, job.Mailchimp.Stats())
	if errors.Is(runErr, state.ErrFenced) {
		return runErr // another worker owns the connection now: it alerts
	}
	f, err := s.freshness(ctx, name)
	if err != nil {
		return errors.Join(runErr, err)
	}
	lag, known := f.Lag(time.Now())
	s.metrics.SetLag(name, lag, known)
	// Alerting is bounded by serve's own context, not the run's (which
	// outlives SIGTERM by the grace period): a hung webhook must not keep
	// the process from stopping within 10 s.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.stopping, cancel)()
	read := func(ctx context.Context) (alert.Freshness, error) { return s.freshness(ctx, name) }
	if err := s.policy(conn).AfterRunConfirmed(actx, s.store, s.notify, name, runErr, read, time.Now()); err != nil {
		s.global.logger.Warn("alerting failed", "connection", name, "error", err)
	}
	return runErr
}

// watchLag measures every connection's lag for the metrics and the lag
// alerts, on a steady beat, so a connection whose runs all fail (or that
// no worker runs) is noticed too.
func (s *server) watchLag(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for name, conn := range s.conns {
			st, err := s.store.Connection(ctx, name)
			if err != nil {
				continue
			}
			lag, known := freshnessOf(st).Lag(time.Now())
			s.metrics.SetLag(name, lag, known)
			if !st.LastSuccess.IsZero() {
				s.metrics.SetLastSuccess(name, st.LastSuccess)
			}
			read := func(ctx context.Context) (alert.Freshness, error) { return s.freshness(ctx, name) }
			if err := s.policy(conn).CheckConfirmed(ctx, s.store, s.notify, name, read, time.Now()); err != nil && ctx.Err() == nil {
				s.global.logger.Warn("lag alert failed", "connection", name, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// policy is the connection's lag threshold, or the global one.
func (s *server) policy(conn config.Connection) alert.LagPolicy {
	if conn.LagThreshold > 0 {
		return alert.LagPolicy{Threshold: conn.LagThreshold.D()}
	}
	return alert.LagPolicy{Threshold: s.cfg.Alerts.LagThreshold.D()}
}

// freshness reads what the lag policy needs from the store, fresh: a
// decision on stale data could reopen what another worker just closed.
func (s *server) freshness(ctx context.Context, name string) (alert.Freshness, error) {
	st, err := s.store.Connection(ctx, name)
	return freshnessOf(st), err
}

// freshnessOf is what the lag policy needs of a connection's state.
func freshnessOf(st state.ConnectionState) alert.Freshness {
	f := alert.Freshness{Watermark: st.Watermark, FirstAttempt: st.FirstAttempt, LastError: st.LastError}
	if st.LastError != "" {
		f.LastErrorAt = st.LastAttempt
	}
	return f
}

// routes serves /healthz, /metrics and the status page.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !s.alive.Load() {
			http.Error(w, "scheduler not running", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.Handle("GET /{$}", statuspage.Handler(s.statusRows, time.Now))
	return mux
}

func (s *server) statusRows(ctx context.Context) ([]statuspage.Row, error) {
	now := time.Now()
	rows := make([]statuspage.Row, 0, len(s.cfg.Connections))
	for _, conn := range s.cfg.Connections {
		st, err := s.store.Connection(ctx, conn.Name)
		if err != nil {
			return nil, err
		}
		f := freshnessOf(st)
		row := statuspage.Row{Name: conn.Name, LastError: st.LastError, Lagging: s.policy(conn).Lagging(f, now)}
		if lag, known := f.Lag(now); known && !st.Watermark.IsZero() {
			row.Lag = &lag
		}
		if !st.LastSuccess.IsZero() {
			t := st.LastSuccess
			row.LastSuccess = &t
		}
		if next, ok := s.sched.Next(conn.Name); ok {
			row.NextRun = &next
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// storeLeases adapts the state store's leases to the scheduler's seam.
type storeLeases struct{ store state.Store }

func (l storeLeases) Claim(ctx context.Context, name, owner string, now time.Time, ttl time.Duration) (schedule.Lease, error) {
	lease, err := l.store.ClaimLease(ctx, name, owner, now, ttl)
	var held *state.LeaseHeldError
	if errors.As(err, &held) {
		return schedule.Lease{Connection: name, Owner: held.Owner, Expires: held.Expires}, fmt.Errorf("%w: %w", schedule.ErrLeaseHeld, err)
	}
	return schedule.Lease(lease), err
}

func (l storeLeases) Renew(ctx context.Context, lease schedule.Lease, now time.Time, ttl time.Duration) (schedule.Lease, error) {
	renewed, err := l.store.RenewLease(ctx, state.Lease(lease), now, ttl)
	if errors.Is(err, state.ErrFenced) {
		return schedule.Lease{}, fmt.Errorf("%w: %w", schedule.ErrFenced, err)
	}
	return schedule.Lease(renewed), err
}

func (l storeLeases) Release(ctx context.Context, lease schedule.Lease) error {
	err := l.store.ReleaseLease(ctx, state.Lease(lease))
	if errors.Is(err, state.ErrFenced) {
		return nil // someone else holds it now: nothing to hand back
	}
	return err
}

func (l storeLeases) LastAttempt(ctx context.Context, name string) (time.Time, error) {
	st, err := l.store.Connection(ctx, name)
	return st.LastAttempt, err
}
