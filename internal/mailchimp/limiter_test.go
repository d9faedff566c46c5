package mailchimp_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
)

// 50 callers on one key through two Clients never have more than 10
// requests in flight, and do reach 10.
func TestLimiterSharedAcrossClients(t *testing.T) {
	const limit, callers = 10, 50
	var inflight, peak atomic.Int64
	full, over := make(chan struct{}), make(chan struct{})
	var fullOnce, overOnce sync.Once
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n >= limit {
			fullOnce.Do(func() { close(full) })
		}
		if n > limit {
			overOnce.Do(func() { close(over) })
		}
		// Hold the first wave until the limit is reached, then give the
		// other 40 callers a moment to get past a broken limiter. A correct
		// limiter passes whatever the timing; the window only decides how
		// surely a broken one is caught. The 10 s bound turns a limiter
		// that admits too few into a failure rather than a hang.
		select {
		case <-full:
			select {
			case <-over:
			case <-time.After(100 * time.Millisecond):
			}
		case <-time.After(10 * time.Second):
		}
		// Leave before the body is written: the client cannot finish
		// reading (and free its slot) before this line has run.
		inflight.Add(-1)
		chimpy(w, r)
	})
	lim := mailchimp.NewLimiter(limit)
	var clients []*mailchimp.Client
	for range 2 {
		cfg, _ := testConfig(s.URL)
		cfg.Limiter = lim
		cfg.Retry.MaxAttempts = 1
		clients = append(clients, newClient(t, cfg))
	}
	errs := make(chan error, callers)
	for i := range callers {
		go func() { errs <- clients[i%2].Ping(context.Background()) }()
	}
	for range callers {
		if err := within(t, errs, "a Ping"); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	if got := peak.Load(); got != limit {
		t.Errorf("peak in flight = %d, want exactly %d", got, limit)
	}
	if got := clients[0].Stats().Requests + clients[1].Stats().Requests; got != callers {
		t.Errorf("requests = %d, want %d", got, callers)
	}
}

// Two keys have separate slots: with one slot per key, a request on key A
// and one on key B are in flight together.
func TestLimiterKeysIndependent(t *testing.T) {
	arrived := map[string]chan struct{}{testKey: make(chan struct{}), otherKey: make(chan struct{})}
	partner := map[string]string{testKey: otherKey, otherKey: testKey}
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, key, _ := r.BasicAuth()
		close(arrived[key])
		select {
		case <-arrived[partner[key]]:
			chimpy(w, r)
		case <-time.After(10 * time.Second):
			writeProblem(w, 400, "Test", "the other key's request never arrived")
		}
	})
	lim := mailchimp.NewLimiter(1)
	errs := make(chan error, 2)
	for _, key := range []string{testKey, otherKey} {
		cfg, _ := testConfig(s.URL)
		cfg.APIKey, cfg.Limiter, cfg.Retry.MaxAttempts = key, lim, 1
		c := newClient(t, cfg)
		go func() { errs <- c.Ping(context.Background()) }()
	}
	for range 2 {
		if err := within(t, errs, "a Ping"); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
}

// A slot is free while its request waits out a backoff: with one slot, a
// second client gets through while the first is sleeping.
func TestLimiterSlotFreeDuringBackoff(t *testing.T) {
	s := newServer(t, failFirst(1, serverError, chimpy))
	lim := mailchimp.NewLimiter(1)

	sleepy := newBlockingClock()
	cfg, _ := testConfig(s.URL)
	cfg.Limiter, cfg.Retry.Clock = lim, sleepy
	first := newClient(t, cfg)
	done := make(chan error, 1)
	go func() { done <- first.Ping(context.Background()) }()
	within(t, sleepy.sleeping, "the first client's backoff")

	cfg2, _ := testConfig(s.URL)
	cfg2.Limiter, cfg2.Retry.MaxAttempts = lim, 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := newClient(t, cfg2).Ping(ctx); err != nil {
		t.Fatalf("second client blocked while the first was backing off: %v", err)
	}
	close(sleepy.release)
	if err := within(t, done, "the first Ping"); err != nil {
		t.Errorf("first Ping: %v", err)
	}
}
