package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/webhook"
	"github.com/chimport/chimport/internal/worker"
)

// webhookServer is serve's webhook receiver: its own listener and the queue
// behind it. The zero value (webhooks off) stops as a no-op.
type webhookServer struct {
	srv    *http.Server
	cancel context.CancelFunc
	queue  sync.WaitGroup
}

// startWebhooks serves the webhook routes on listen, when set, for the
// connections that take webhooks. The queue refreshes through the worker,
// under each connection's lease.
func startWebhooks(ctx context.Context, e env, logger *slog.Logger, cfg *config.Config, w *worker.Worker, clk clock.Clock, listen string) (*webhookServer, error) {
	h := &webhookServer{}
	if listen == "" {
		if cfg.Webhooks.Enabled() {
			logger.Info("webhooks are configured but serve has no --webhook-listen: changes arrive with the polling runs only")
		}
		return h, nil
	}
	lists := map[string]string{}
	for _, c := range cfg.Connections {
		if c.WebhooksOn(cfg.Webhooks) {
			lists[c.Name] = c.Mailchimp.ListID
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, usageErrorf("--webhook-listen %s: %v", listen, err)
	}
	hooks := w.WebhookHooks()
	q := webhook.NewQueue(webhook.QueueConfig{Refresher: w, Clock: clk, Hooks: hooks, Logger: logger})
	var qctx context.Context
	qctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	h.queue.Go(func() { q.Run(qctx) })
	recv := webhook.NewReceiver(cfg.Webhooks.Secret.Reveal(), lists, q, hooks, logger)
	h.srv = &http.Server{Handler: recv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	fmt.Fprintf(e.stdout, "chimport serve: webhooks for %d connections on http://%s%s{connection}/{token}\n", len(lists), ln.Addr(), webhook.PathPrefix)
	return h, nil
}

// stop closes the listener and the queue: members still queued are left
// to the polling runs.
func (h *webhookServer) stop() {
	if h.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
	h.cancel()
	h.queue.Wait()
}

// connectionRefresher fetches and delivers named members of a connection
// for the worker's webhook refreshes: a job built the way every command
// builds it, under the lease's fencing token.
func connectionRefresher(cfg *config.Config, eng *engine.Engine, shared clientOptions) func(context.Context, string, int64, []string) (engine.RefreshSummary, error) {
	conns := make(map[string]config.Connection, len(cfg.Connections))
	for _, c := range cfg.Connections {
		conns[c.Name] = c
	}
	return func(ctx context.Context, name string, leaseToken int64, members []string) (engine.RefreshSummary, error) {
		job, err := newJob(conns[name], shared, runMode{})
		if err != nil {
			return engine.RefreshSummary{}, err
		}
		job.LeaseToken = leaseToken
		return eng.Refresh(ctx, job, members)
	}
}
