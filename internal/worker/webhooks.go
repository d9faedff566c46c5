package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/webhook"
)

// WebhookLeaseTTL is how long a webhook refresh holds its connection's
// lease. It is short: a scheduled run that finds the lease held comes back
// when it expires, and a refresh takes well under a second.
const WebhookLeaseTTL = 15 * time.Second

// Webhook refreshes are serialized with the connection's runs, on this
// worker and on every other, by the connection's lease: a refresh claims
// it under an owner of its own (the worker's id and "/webhooks", so that
// it neither takes over this worker's own run nor is taken for it), and
// its writes to the target are fenced by the token. So a refresh can
// never deliver an older state after a run delivered a newer one, nor a
// run after a refresh: whichever fetched later delivers later.

// Refresh implements webhook.Refresher: it claims the connection's lease,
// fetches and delivers the members, and gives the lease back. While a run
// holds the lease, or is about to take it (RunWaiting), it returns
// webhook.ErrBusy, and the queue tries again.
func (w *Worker) Refresh(ctx context.Context, connection string, members []string) (map[string]string, error) {
	if w.cfg.Refresh == nil {
		return nil, errors.New("worker: webhook refreshes are not configured")
	}
	if w.sched.RunWaiting(connection) {
		// A run of it is coming back for the lease: it goes first.
		return nil, webhook.ErrBusy
	}
	lease, err := w.cfg.Store.ClaimLease(ctx, connection, w.webhookOwner, w.cfg.Clock.Now(), WebhookLeaseTTL)
	if errors.Is(err, state.ErrLeaseHeld) {
		return nil, webhook.ErrBusy
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := w.cfg.Store.ReleaseLease(rctx, lease); err != nil && !errors.Is(err, state.ErrFenced) {
			w.log.Warn("releasing a webhook refresh's lease failed; it expires on its own", "connection", connection, "error", err)
		}
	}()
	// The lease is not renewed: a refresh must end well inside it (the
	// queue's batches are sized for that), and one that does not is cut
	// off rather than let run on unfenced.
	rctx, cancel := context.WithTimeout(ctx, WebhookLeaseTTL*2/3)
	defer cancel()
	sum, err := w.cfg.Refresh(rctx, connection, lease.Token, members)
	w.cfg.Metrics.Webhooks().Fetches(connection, sum.MailchimpRequests)
	if err != nil {
		return nil, err
	}
	return sum.Outcome, nil
}

// WebhookHooks are the webhook queue's and receiver's hooks: metrics, the
// status page's last event, and a polling run at once when a queue
// overflows.
func (w *Worker) WebhookHooks() webhook.Hooks {
	m := w.cfg.Metrics.Webhooks()
	return webhook.Hooks{
		Event: func(connection, eventType, outcome string) {
			m.Event(eventType, outcome)
			if _, ok := w.byName[connection]; ok && outcome != "bad_token" {
				w.events.seen(connection, w.cfg.Clock.Now())
			}
		},
		Delivered: func(_ string, d time.Duration) { m.Latency(d) },
		Depth:     m.Depth,
		Overflow: func(connection string) {
			if !w.sched.RunSoon(connection) {
				w.log.Warn("a webhook queue overflowed for a connection the scheduler does not know", "connection", connection)
			}
		},
	}
}

// lastEvents is when each connection last received a webhook event.
type lastEvents struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (l *lastEvents) seen(connection string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = map[string]time.Time{}
	}
	l.at[connection] = t
}

func (l *lastEvents) get(connection string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.at[connection]
	return t, ok
}
