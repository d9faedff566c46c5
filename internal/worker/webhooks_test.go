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
