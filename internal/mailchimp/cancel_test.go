package mailchimp_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/chimport/chimport/internal/mailchimp"
)

// Cancelling during a backoff wait ends the call at once: no further
// attempt, and the error matches context.Canceled.
func TestCancelDuringBackoff(t *testing.T) {
	s := newServer(t, serverError)
	clk := newBlockingClock()
	cfg, _ := testConfig(s.URL)
	cfg.Retry.Clock = clk
	c := newClient(t, cfg)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Members(ctx, testList, mailchimp.MembersQuery{})
		done <- err
	}()
	within(t, clk.sleeping, "the first backoff")
	cancel()
	err := within(t, done, "Members to return after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !mailchimp.IsKind(err, mailchimp.KindServer) {
		t.Errorf("err = %v, want the last failure (KindServer) kept for the log", err)
	}
	if s.count() != 1 {
		t.Errorf("requests = %d, want 1", s.count())
	}
}

// Cancelling while a request is in flight aborts it and is not retried.
func TestCancelDuringRequest(t *testing.T) {
	arrived := make(chan struct{}, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	cfg, clk := testConfig(s.URL)
	c := newClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Ping(ctx) }()
	within(t, arrived, "the request")
	cancel()
	err := within(t, done, "Ping to return after cancel")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	var e *mailchimp.Error
	if errors.As(err, &e) {
		t.Errorf("a cancellation is not a Mailchimp failure, got %v", e)
	}
	if s.count() != 1 || len(clk.Slept()) != 0 {
		t.Errorf("requests = %d, waits = %v; want 1 and none", s.count(), clk.Slept())
	}
}

// Cancelling while waiting for a limiter slot returns without sending.
func TestCancelWaitingForSlot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unblock := make(chan struct{})
		s, httpClient := newPipeServer(t, func(w http.ResponseWriter, r *http.Request) {
			<-unblock
			chimpy(w, r)
		})
		var unblockOnce sync.Once
		release := func() { unblockOnce.Do(func() { close(unblock) }) }
		t.Cleanup(release) // runs before the server stops, even on failure
		cfg := pipeConfig(httpClient)
		cfg.Limiter = mailchimp.NewLimiter(1)
		c := newClient(t, cfg)

		holder := make(chan error, 1)
		go func() { holder <- c.Ping(t.Context()) }()
		synctest.Wait()
		if n := s.requests.Load(); n != 1 {
			t.Fatalf("the slot holder's request did not arrive (%d requests)", n)
		}

		ctx, cancel := context.WithCancel(t.Context())
		waiter := make(chan error, 1)
		go func() { waiter <- c.Ping(ctx) }()
		// The waiter has gone as far as it can: it must be stuck at the
		// limiter, not at the server.
		synctest.Wait()
		if n := s.requests.Load(); n != 1 {
			t.Fatal("a second request got past a full limiter")
		}
		cancel()
		if err := <-waiter; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		release()
		if err := <-holder; err != nil {
			t.Errorf("holder: %v", err)
		}
		if n := s.requests.Load(); n != 1 {
			t.Errorf("requests = %d, want 1 (the cancelled call must not send)", n)
		}
	})
}

func TestAlreadyCancelled(t *testing.T) {
	s := newServer(t, chimpy)
	cfg, _ := testConfig(s.URL)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newClient(t, cfg).Ping(ctx); !errors.Is(err, context.Canceled) || s.count() != 0 {
		t.Errorf("err = %v, requests = %d; want context.Canceled and none", err, s.count())
	}
}
