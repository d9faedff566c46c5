package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/shard"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/statuspage"
	"github.com/chimport/chimport/internal/worker"
)

type serveOptions struct {
	listen string
	// webhookListen serves the webhook routes, and only those, on a
	// listener of their own; "" serves none.
	webhookListen string
	owner         string
	leaseTTL      time.Duration
	maxParallel   int
	lagEvery      time.Duration
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
	f.StringVar(&opts.webhookListen, "webhook-listen", "", "address for Mailchimp's webhook calls, and only those (needs webhooks.secret in the config)")
	f.StringVar(&opts.owner, "worker-id", "", "this worker's name in leases (default host-pid-random)")
	f.DurationVar(&opts.leaseTTL, "lease-ttl", schedule.DefaultLeaseTTL, "how long a claimed connection stays claimed without renewal; a dead worker's connections wait this long")
	f.IntVar(&opts.maxParallel, "parallel", schedule.DefaultMaxParallel, "runs at once in this worker")
	f.DurationVar(&opts.lagEvery, "lag-check", worker.DefaultLagEvery, "how often lag is measured for metrics and alerts")
	return cmd
}

func runServe(ctx context.Context, e env, global *globalOptions, cfg *config.Config, opts serveOptions) error {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return usageError{err}
	}
	defer store.Close()
	notifier, err := newNotifier(ctx, cfg, global.logger)
	if err != nil {
		return err
	}
	owner := opts.owner
	if owner == "" {
		owner = schedule.DefaultOwner()
	}
	clk := e.clock
	if opts.webhookListen != "" && !cfg.Webhooks.Enabled() {
		return usageErrorf("--webhook-listen %s: the config has no webhooks.secret, so no connection takes webhooks", opts.webhookListen)
	}
	// One limiter for runs and webhook fetches: a key's 10 slots are
	// shared by everything that uses it.
	shared := clientOptions{limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey), datacenters: mailchimp.NewDatacenters(),
		logger: global.logger, retryClock: clk}
	eng := &engine.Engine{Store: store, Clock: clk, Logger: global.logger}
	if cfg, err = serveExpansion(ctx, cfg, store, notifier, shared, clk); err != nil {
		return err
	}
	notifier = coalesced(notifier, cfg.Connections, global.logger)
	wcfg := worker.Config{
		Connections: workerConnections(cfg),
		Store:       store,
		Run:         connectionRunner(cfg, eng, shared),
		Notifier:    notifier,
		Clock:       clk,
		LagEvery:    opts.lagEvery,
		Owner:       owner,
		LeaseTTL:    opts.leaseTTL,
		MaxParallel: opts.maxParallel,
		Logger:      global.logger,
	}
	if opts.webhookListen != "" {
		wcfg.Refresh = connectionRefresher(cfg, eng, shared)
	}
	w, err := worker.New(wcfg)
	if err != nil {
		return usageError{err}
	}
	hooks, err := startWebhooks(ctx, e, global.logger, cfg, w, clk, opts.webhookListen)
	if err != nil {
		return err
	}
	defer hooks.stop()

	ln, err := net.Listen("tcp", opts.listen)
	if err != nil {
		return usageErrorf("--listen %s: %v", opts.listen, err)
	}
	var alive atomic.Bool
	httpSrv := &http.Server{Handler: routes(&alive, w, clk), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = httpSrv.Serve(ln) }()
	fmt.Fprintf(e.stdout, "chimport serve: worker %s, %d connections, http://%s/ (status), /metrics, /healthz\n", owner, len(cfg.Connections), ln.Addr())

	if err := serveWithEndpoints(ctx, w, httpSrv, &alive); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	global.logger.Info("serve stopped", "worker", owner)
	return nil
}

// serveListing bounds how long serve waits at start for the audiences of
// its "*" connections, so that a Mailchimp that hangs cannot keep it from
// answering its health checks; each listing also gives up after a few
// quick tries.
const serveListing = 30 * time.Second

// serveExpansion is cfg with every list_id "*" replaced by the audiences
// its account has when serve starts: serve lists them once, and a restart
// picks up audiences added since (`run` lists them at every run). An
// account whose audiences cannot be listed in time keeps the audiences the
// state store knows of it (they run, and fall behind while Mailchimp
// fails, like any connection), and alerts at once if only a person can fix
// it.
func serveExpansion(ctx context.Context, cfg *config.Config, store state.Store, n alert.Notifier, shared clientOptions, clk clock.Clock) (*config.Config, error) {
	lctx, cancel := context.WithTimeout(ctx, serveListing)
	defer cancel()
	quick := shared
	quick.mailchimpRetry = retry.Policy{MaxAttempts: 3}
	x, err := expandConnections(lctx, cfg, store, nil, shard.Shard{}, quick, 16, clk.Now())
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, o := range x.failed {
		shared.logger.Error("listing the audiences failed; serve runs the other connections", "connection", o.summary.Connection, "error", o.err)
		if a, ok := alert.NeedsPerson(o.summary.Connection, o.err, clk.Now()); ok {
			if err := n.Notify(ctx, a); err != nil {
				shared.logger.Warn("sending an alert failed", "connection", o.summary.Connection, "error", err)
			}
		}
	}
	out := *cfg
	out.Connections = slices.Concat(x.conns, x.stalledConns)
	return &out, nil
}

// serveWithEndpoints runs the worker until ctx ends and its runs drained.
// The HTTP endpoints stop with the signal, while runs in flight drain, or
// if the worker ever returns on its own; /healthz fails from then on.
func serveWithEndpoints(ctx context.Context, w *worker.Worker, httpSrv *http.Server, alive *atomic.Bool) error {
	served := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-served:
		}
		alive.Store(false)
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(shutdownCtx)
	})
	alive.Store(true)
	err := w.Serve(ctx)
	alive.Store(false)
	close(served)
	wg.Wait()
	return err
}

// workerConnections is each configured connection's schedule and lag
// policy: its own lag threshold, or the global one.
func workerConnections(cfg *config.Config) []worker.Connection {
	out := make([]worker.Connection, len(cfg.Connections))
	for i, c := range cfg.Connections {
		out[i] = worker.Connection{
			Connection: schedule.Connection{Name: c.Name, Every: c.Every.D(), Cron: c.Cron},
			Lag:        lagPolicyOf(cfg, c),
		}
	}
	return out
}

// connectionRunner runs one connection once for the worker: a job built the
// way every command builds it, under the lease's fencing token. Jobs share
// one limiter, so connections on one API key share its 10 slots. It logs a
// completed run; the worker logs a failed one.
func connectionRunner(cfg *config.Config, eng *engine.Engine, shared clientOptions) func(context.Context, string, int64) (engine.Summary, error) {
	conns := make(map[string]config.Connection, len(cfg.Connections))
	for _, c := range cfg.Connections {
		conns[c.Name] = c
	}
	return func(ctx context.Context, name string, leaseToken int64) (engine.Summary, error) {
		job, err := newJob(conns[name], shared, runMode{})
		if err != nil {
			return engine.Summary{Connection: name, Result: state.ResultFailed}, err
		}
		job.LeaseToken = leaseToken
		sum, err := eng.Run(ctx, job)
		if err == nil {
			// A failure is the worker's to log, once, with what to do.
			logRun(shared.logger, sum, nil, false)
		}
		return sum, err
	}
}

// routes serves /healthz, /metrics and the status page.
func routes(alive *atomic.Bool, w *worker.Worker, clk clock.Clock) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		if !alive.Load() {
			http.Error(rw, "scheduler not running", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", w.Metrics().Handler())
	mux.Handle("GET /{$}", statuspage.Handler(w.StatusRows, clk.Now))
	return mux
}
