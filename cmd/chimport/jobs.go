package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// clientOptions is what the commands share when they build a connection's
// clients.
type clientOptions struct {
	// limiter is the process-wide one: connections on one API key or
	// access token share its 10 slots.
	limiter *mailchimp.Limiter
	// datacenters is the process-wide cache of each access token's data
	// center, which Mailchimp's OAuth metadata endpoint tells: thousands of
	// connections on one token look it up once. Nil means one per client.
	datacenters *mailchimp.Datacenters
	logger      *slog.Logger
	// mailchimpRetry is the Mailchimp client's retry policy; zero fields
	// take the defaults. check gives up sooner, since a person is waiting.
	mailchimpRetry retry.Policy
	// retryClock, if set, waits between the retries of both clients; nil
	// is the wall clock.
	retryClock clock.Clock
}

// newClients builds a connection's Mailchimp client and target sink. Every
// command builds them here, so what check probes is exactly what run and
// serve send to: the same base URL, credentials, headers, timeout, and a
// target client that does not follow redirects.
func newClients(conn config.Connection, opts clientOptions) (*mailchimp.Client, *target.HTTP, error) {
	mc, err := newMailchimp(conn, opts)
	if err != nil {
		return nil, nil, err
	}
	mp, err := mappingOf(conn)
	if err != nil {
		return nil, nil, err
	}
	idKey, _ := mp.IDKey() // validation made sure deletes have one
	sink, err := target.NewHTTP(target.HTTPConfig{
		Connection: conn.Name,
		URL:        conn.Target.URL,
		Headers:    targetHeaders(conn),
		Timeout:    conn.Target.Timeout.D(),
		Deletes:    target.DeleteMode(conn.Target.Deletes),
		IDKey:      idKey,
		Tombstone:  tombstoneOf(conn, mp),
		DeleteURL:  deleteURLOf(conn),
		// Let a target's Retry-After (capped at target.MaxRetryAfter) be
		// honoured in full; the exponential steps stay far below this.
		Retry:  withClock(retry.Policy{MaxDelay: target.MaxRetryAfter}, opts.retryClock),
		Logger: opts.logger,
	})
	if err != nil {
		return nil, nil, err
	}
	return mc, sink, nil
}

// newMailchimp builds a connection's Mailchimp client: with its API key, or
// with its OAuth access token (whose data center comes from mailchimp.dc,
// or else from Mailchimp's metadata endpoint, once per token).
func newMailchimp(conn config.Connection, opts clientOptions) (*mailchimp.Client, error) {
	return mailchimp.New(mailchimp.Config{
		APIKey:      conn.Mailchimp.APIKey.Reveal(),
		AccessToken: conn.Mailchimp.AccessToken.Reveal(),
		DC:          conn.Mailchimp.DC,
		MetadataURL: conn.Mailchimp.MetadataURL,
		Datacenters: opts.datacenters,
		BaseURL:     conn.Mailchimp.BaseURL,
		Connection:  conn.Name,
		Limiter:     opts.limiter,
		Retry:       withClock(opts.mailchimpRetry, opts.retryClock),
		Logger:      opts.logger,
	})
}

// tombstoneOf is what the connection's tombstones carry besides the member
// id. When the records say which audience they belong to (a field whose
// path is list_id, as in the default mapping of a connection with several
// audiences), so does the tombstone: a target keyed on id and list_id then
// removes the record of this audience, not the same person's record in
// another one.
func tombstoneOf(conn config.Connection, mp *mapping.Mapping) config.Tombstone {
	key, ok := mp.KeyOf("list_id")
	if !ok || conn.Discovers() {
		return conn.Target.Tombstone
	}
	out := maps.Clone(conn.Target.Tombstone)
	if out == nil {
		out = config.Tombstone{}
	}
	out[key] = conn.Mailchimp.ListID
	return out
}

// deleteURLOf is the connection's delete_url with {list_id} replaced by its
// audience id, so that a target shared by several audiences can be told
// which one's record to delete (e.g. .../records/{id}?list_id={list_id}).
func deleteURLOf(conn config.Connection) string {
	if conn.Discovers() {
		return conn.Target.DeleteURL // a "*" connection itself deletes nothing
	}
	return strings.ReplaceAll(conn.Target.DeleteURL, "{list_id}", url.QueryEscape(conn.Mailchimp.ListID))
}

// withClock is p waiting on clk, unless clk is nil.
func withClock(p retry.Policy, clk clock.Clock) retry.Policy {
	if clk != nil {
		p.Clock = clk
	}
	return p
}

// runMode is what `run` may ask of every run beyond the usual: read the
// whole audience again (--full), or reconcile the roster whatever the
// counts say (--reconcile). retryClock, if set, waits between the clients'
// retries: run passes the process clock, so tests that inject one wait on
// it too.
type runMode struct {
	full, reconcile bool
	retryClock      clock.Clock
}

// newJob turns a configured connection into one engine run. Each job gets
// its own Mailchimp client (so its request count is the run's) but shares
// the process-wide limiter.
func newJob(conn config.Connection, shared clientOptions, mode runMode) (engine.Job, error) {
	mp, err := mappingOf(conn)
	if err != nil {
		return engine.Job{}, err
	}
	shared.retryClock = mode.retryClock
	mc, sink, err := newClients(conn, shared)
	if err != nil {
		return engine.Job{}, err
	}
	return engine.Job{
		Connection: conn.Name,
		ListID:     conn.Mailchimp.ListID,
		Settle:     conn.Mailchimp.Settle.D(),
		Statuses:   conn.Mailchimp.Statuses,
		Mapping:    mp,
		BatchSize:  conn.Target.BatchSize,
		Full:       mode.full,
		Reconcile:  mode.reconcile,
		// ReconcileEvery (24h) and MaxRejected (100) are defaulted by
		// the config.
		ReconcileEvery: conn.ReconcileEvery.D(),
		MaxRejected:    conn.Target.MaxRejected,
		Mailchimp:      mc,
		Sink:           sink,
	}, nil
}

// mappingOf compiles the connection's record shape.
func mappingOf(conn config.Connection) (*mapping.Mapping, error) {
	fields := make([]mapping.Field, len(conn.Mapping))
	for i, f := range conn.Mapping {
		fields[i] = mapping.Field{Key: f.Key, Path: f.Path}
	}
	return mapping.New(fields)
}

// targetHeaders are the connection's target headers with their values
// revealed, for the code that sends them.
func targetHeaders(conn config.Connection) map[string]string {
	headers := make(map[string]string, len(conn.Target.Headers))
	for k, v := range conn.Target.Headers {
		headers[k] = v.Reveal()
	}
	return headers
}

// outcome is one connection's run: its summary, or why it failed.
type outcome struct {
	summary engine.Summary
	err     error
}

// syncAll runs every connection once, up to parallel at a time, with the
// clients' shared limiter and caches, and returns the outcomes in the
// order of conns. after, if set, is called on
// each connection's own goroutine once its run has ended, with the run's
// error (nil on success): run's alerts. progress, if set, is given each
// job before it starts so it can attach a progress callback.
func syncAll(ctx context.Context, eng *engine.Engine, conns []config.Connection, mode runMode, parallel int, shared clientOptions, after func(ctx context.Context, name string, err error), progress func(name string, job *engine.Job)) []outcome {
	logger := shared.logger
	if after == nil {
		after = func(context.Context, string, error) {}
	}
	out := make([]outcome, len(conns))
	var g errgroup.Group
	g.SetLimit(parallel)
	for _, i := range acrossKeys(conns) {
		conn := conns[i]
		g.Go(func() error {
			job, err := newJob(conn, shared, mode)
			if err != nil {
				out[i] = outcome{summary: engine.Summary{Connection: conn.Name, Result: state.ResultFailed}, err: err}
				after(ctx, conn.Name, err)
				return nil
			}
			if progress != nil {
				progress(conn.Name, &job)
			}
			sum, err := eng.Run(ctx, job)
			out[i] = outcome{summary: sum, err: err}
			logRun(logger, sum, err, progress != nil)
			after(ctx, conn.Name, err)
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// acrossKeys is the order to start conns in: one connection of each API
// key or access token in turn, in the config's order within each. A key
// has only 10 request slots, so the --parallel runs in flight are best
// spread over as many keys as there are: started in the config's order,
// the 10 audiences of one account would run together and wait for each
// other's slots while other keys sat idle.
func acrossKeys(conns []config.Connection) []int {
	var keys []string
	byKey := map[string][]int{}
	for i, c := range conns {
		k := string(c.Mailchimp.APIKey) + "\x00" + string(c.Mailchimp.AccessToken)
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	order := make([]int, 0, len(conns))
	for round := 0; len(order) < len(conns); round++ {
		for _, k := range keys {
			if idx := byKey[k]; round < len(idx) {
				order = append(order, idx[round])
			}
		}
	}
	return order
}

// logRun logs a finished run for log collectors. With progress bars on a
// terminal, the summary table says the same, so the line drops to debug
// and does not tear the bars.
func logRun(logger *slog.Logger, s engine.Summary, err error, bars bool) {
	attrs := []any{"connection", s.Connection, "read", s.Read, "delivered", s.Delivered,
		"tombstoned", s.Tombstoned, "members", s.Members, "rejected", s.Rejected, "refused", s.Refused,
		"requests", s.MailchimpStats.Requests, "duration", s.Duration.Round(1e6).String(), "window_end", s.WindowEnd}
	if err != nil {
		logger.Error("run failed", append(attrs, "error", err)...)
		return
	}
	level := slog.LevelInfo
	if bars {
		level = slog.LevelDebug
	}
	logger.Log(context.Background(), level, "run completed", attrs...)
}

// openStore opens the configured state store. A bad URL is a config error.
func openStore(ctx context.Context, cfg *config.Config) (state.Store, error) {
	st, err := state.Open(ctx, cfg.State)
	if err != nil {
		return nil, fmt.Errorf("state %s: %w", state.RedactPassword(cfg.State), err)
	}
	return st, nil
}
