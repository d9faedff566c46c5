package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/state/memory"
	"github.com/chimport/chimport/internal/webhook"
)

// A webhook refresh is serialized with the connection's runs by its
// lease: busy while a run holds it, under a lease of its own otherwise,
// which it gives back.
func TestWebhookRefreshTakesTheLease(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	clk := clock.NewManual(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	w := newTestWorker(t, store, clk, &recorder{}, &fakeEngine{store: store, clk: clk}, "shop")
	var tokens []int64
	w.cfg.Refresh = func(_ context.Context, name string, token int64, members []string) (engine.RefreshSummary, error) {
		tokens = append(tokens, token)
		out := map[string]string{}
		for _, m := range members {
			out[m] = engine.RefreshDelivered
		}
		return engine.RefreshSummary{Outcome: out, MailchimpRequests: int64(len(members))}, nil
	}

	run, err := store.ClaimLease(ctx, "shop", "worker-"+t.Name(), clk.Now(), time.Minute)
	must(t, err)
	if _, err := w.Refresh(ctx, "shop", []string{"a"}); !errors.Is(err, webhook.ErrBusy) {
		t.Fatalf("Refresh while this worker's own run holds the lease: %v, want ErrBusy", err)
	}
	must(t, store.ReleaseLease(ctx, run))

	out, err := w.Refresh(ctx, "shop", []string{"a"})
	if err != nil || out["a"] != engine.RefreshDelivered {
		t.Fatalf("Refresh = %v, %v", out, err)
	}
	if len(tokens) != 1 || tokens[0] <= run.Token {
		t.Errorf("refresh tokens %v, want one newer than the run's %d", tokens, run.Token)
	}
	// Given back: a run can claim at once.
	if _, err := store.ClaimLease(ctx, "shop", "another", clk.Now(), time.Minute); err != nil {
		t.Errorf("the refresh kept the lease: %v", err)
	}
	if v := scalar(t, w.Metrics(), `chimport_webhook_fetches_total{connection="shop"}`); v != 1 {
		t.Errorf("fetches = %v, want 1", v)
	}
}

// A run asked for by an overflowing queue that finds the lease held by a
// refresh comes back a second later, and this worker's refreshes stand
// aside until it has claimed the lease: a backlog cannot starve it.
func TestRunAskedForByAnOverflowGoesBeforeRefreshes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memory.New()
	clk := clock.NewManual(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, &recorder{}, eng, "shop")
	w.cfg.Refresh = func(context.Context, string, int64, []string) (engine.RefreshSummary, error) {
		return engine.RefreshSummary{Outcome: map[string]string{}}, nil
	}
	served := make(chan error, 1)
	go func() { served <- w.Serve(ctx) }()
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second) // a hang guard, not a timing
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil("the first run", func() bool { return len(eng.runs()) == 1 })

	refresh, err := store.ClaimLease(ctx, "shop", w.webhookOwner, clk.Now(), WebhookLeaseTTL)
	must(t, err)
	w.WebhookHooks().Overflow("shop")
	waitUntil("the asked-for run waits for the refresh", func() bool { return w.sched.RunWaiting("shop") })
	must(t, store.ReleaseLease(ctx, refresh))
	if _, err := w.Refresh(ctx, "shop", []string{"a"}); !errors.Is(err, webhook.ErrBusy) {
		t.Errorf("Refresh while a run waits for the lease: %v, want ErrBusy", err)
	}
	clk.Advance(time.Second)
	waitUntil("the asked-for run", func() bool { return len(eng.runs()) == 2 })
	waitUntil("the lease given back", func() bool { return !w.sched.RunWaiting("shop") })
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}
