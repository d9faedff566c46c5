package mailchimp_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
)

// pipeServer serves a handler over in-memory connections (net.Pipe), for
// tests inside a synctest bubble. A goroutine blocked on a pipe is durably
// blocked, unlike one blocked on a socket, so synctest.Wait returns exactly
// when every request has gone as far as it can: a "must not happen" check
// after it needs no time window.
type pipeServer struct {
	srv      *http.Server
	conns    chan net.Conn
	closed   chan struct{}
	requests atomic.Int64
}

// newPipeServer starts h in the bubble and returns a client whose
// requests reach it; both stop when the test ends.
func newPipeServer(t *testing.T, h http.HandlerFunc) (*pipeServer, *http.Client) {
	t.Helper()
	s := &pipeServer{conns: make(chan net.Conn), closed: make(chan struct{})}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h(w, r)
	})}
	go func() { _ = s.srv.Serve(s) }()
	tr := &http.Transport{DialContext: s.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = s.srv.Close()
	})
	return s, &http.Client{Transport: tr}
}

func (s *pipeServer) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case s.conns <- server:
		return client, nil
	case <-s.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Accept, Close and Addr make the server its own net.Listener.
func (s *pipeServer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *pipeServer) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}

func (s *pipeServer) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeConfig is testConfig for a client of a pipeServer.
func pipeConfig(client *http.Client) mailchimp.Config {
	cfg, _ := testConfig("http://mailchimp.test")
	cfg.HTTPClient = client
	return cfg
}

// 50 callers on one key through two Clients never have more than 10
// requests in flight, and do reach 10. The server holds every request
// until all 50 callers are stuck, so a limiter that lets an 11th through
// is caught every time, not only when it is quick enough.
func TestLimiterSharedAcrossClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 10, 50
		var inflight, peak atomic.Int64
		held := make(chan struct{})
		s, httpClient := newPipeServer(t, func(w http.ResponseWriter, r *http.Request) {
			n := inflight.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-held
			// Leave before the body is written: the client cannot finish
			// reading (and free its slot) before this line has run.
			inflight.Add(-1)
			chimpy(w, r)
		})
		var heldOnce sync.Once
		release := func() { heldOnce.Do(func() { close(held) }) }
		t.Cleanup(release) // runs before the server stops, even on failure
		lim := mailchimp.NewLimiter(limit)
		var clients []*mailchimp.Client
		for range 2 {
			cfg := pipeConfig(httpClient)
			cfg.Limiter = lim
			cfg.Retry.MaxAttempts = 1
			clients = append(clients, newClient(t, cfg))
		}
		errs := make(chan error, callers)
		for i := range callers {
			go func() { errs <- clients[i%2].Ping(t.Context()) }()
		}
		synctest.Wait() // every caller is in the handler or waiting for a slot
		if got := inflight.Load(); got != limit {
			t.Errorf("in flight once every caller is stuck = %d, want exactly %d", got, limit)
		}
		release()
		for range callers {
			if err := <-errs; err != nil {
				t.Errorf("Ping: %v", err)
			}
		}
		if got := peak.Load(); got != limit {
			t.Errorf("peak in flight = %d, want exactly %d", got, limit)
		}
		if got := clients[0].Stats().Requests + clients[1].Stats().Requests; got != callers || s.requests.Load() != callers {
			t.Errorf("requests = %d (server saw %d), want %d", got, s.requests.Load(), callers)
		}
	})
}

// Two keys have separate slots: with one slot per key, a request on key A
// and one on key B are in flight together. Each waits for the other at the
// server; in the bubble, the 10 s bound passes only once both are stuck,
// so it costs no wall-clock time even when the limiter is broken.
func TestLimiterKeysIndependent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		arrived := map[string]chan struct{}{testKey: make(chan struct{}), otherKey: make(chan struct{})}
		partner := map[string]string{testKey: otherKey, otherKey: testKey}
		_, httpClient := newPipeServer(t, func(w http.ResponseWriter, r *http.Request) {
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
			cfg := pipeConfig(httpClient)
			cfg.APIKey, cfg.Limiter, cfg.Retry.MaxAttempts = key, lim, 1
			c := newClient(t, cfg)
			go func() { errs <- c.Ping(t.Context()) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("Ping: %v", err)
			}
		}
	})
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

// A token has its own 10 slots, shared by every Client on it, and a key
// with the very same text has 10 others: 30 callers on each, held at the
// server until all are stuck, put exactly 10 of each in flight.
func TestLimiterPerToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 10, 30
		var mu sync.Mutex
		inflight := map[string]int{}
		held := make(chan struct{})
		_, httpClient := newPipeServer(t, func(w http.ResponseWriter, r *http.Request) {
			kind, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			mu.Lock()
			inflight[kind]++
			mu.Unlock()
			<-held
			chimpy(w, r)
		})
		var heldOnce sync.Once
		release := func() { heldOnce.Do(func() { close(held) }) }
		t.Cleanup(release)
		lim := mailchimp.NewLimiter(limit)
		const secret = "0123456789abcdef0123456789abcdef-us6" // a key and a token alike
		var clients []*mailchimp.Client
		for i := range 4 {
			cfg := pipeConfig(httpClient)
			cfg.Limiter, cfg.Retry.MaxAttempts = lim, 1
			cfg.APIKey = secret
			if i%2 == 1 {
				cfg.APIKey, cfg.AccessToken = "", secret
			}
			clients = append(clients, newClient(t, cfg))
		}
		errs := make(chan error, 2*callers)
		for i := range 2 * callers {
			go func() { errs <- clients[i%4].Ping(t.Context()) }()
		}
		synctest.Wait()
		mu.Lock()
		got := map[string]int{"Basic": inflight["Basic"], "Bearer": inflight["Bearer"]}
		mu.Unlock()
		if got["Basic"] != limit || got["Bearer"] != limit {
			t.Errorf("in flight once every caller is stuck = %v, want %d with the key and %d with the token", got, limit, limit)
		}
		release()
		for range 2 * callers {
			if err := <-errs; err != nil {
				t.Errorf("Ping: %v", err)
			}
		}
	})
}
