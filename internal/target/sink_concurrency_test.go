package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/retry"
)

// waitFor fails the test if ch yields nothing within a generous deadline:
// a hang is a failure, not a slow pass.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestSendCancel(t *testing.T) {
	tests := []struct {
		name     string
		status   int // 0 = hang until the request is cancelled
		clock    clock.Clock
		wantReqs int64
	}{
		// The real clock with an hour of backoff: only cancellation can end the wait.
		{name: "during an attempt", clock: clock.NewFake(start), wantReqs: 1},
		{name: "during the backoff wait", status: 503, clock: clock.Real{}, wantReqs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arrived := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Read the body first: net/http only notices a client going
				// away, and cancels r.Context(), once the body is consumed.
				_, _ = io.Copy(io.Discard, r.Body)
				arrived <- struct{}{}
				if tt.status == 0 {
					<-r.Context().Done()
					return
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			waiting := make(chan struct{}, 1)
			sink, _ := newTestSink(t, srv.URL+"/r?"+query, func(c *HTTPConfig) {
				c.Retry = retry.Policy{MaxAttempts: 3, BaseDelay: time.Hour, MaxDelay: time.Hour, Clock: tt.clock,
					OnRetry: func(int, error, time.Duration) { waiting <- struct{}{} }}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- sink.Send(ctx, testRecords) }()

			waitFor(t, arrived, "the request")
			if tt.status != 0 {
				waitFor(t, waiting, "the backoff wait")
			}
			cancel()
			err := waitFor(t, done, "Send to return after cancel")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Send = %v, want context.Canceled", err)
			}
			if strings.Contains(err.Error(), query) {
				t.Errorf("error leaks the query string: %v", err)
			}
			if got := sink.Stats(); got.Requests != tt.wantReqs || got.Batches != 0 {
				t.Errorf("Stats = %+v, want %d request(s) and no batch delivered", got, tt.wantReqs)
			}
		})
	}

	t.Run("already cancelled", func(t *testing.T) {
		target := &scriptedTarget{}
		srv := httptest.NewServer(target)
		defer srv.Close()
		sink, _ := newTestSink(t, srv.URL, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := sink.Send(ctx, testRecords); !errors.Is(err, context.Canceled) {
			t.Errorf("Send = %v, want context.Canceled", err)
		}
		if n := len(target.requests()); n != 0 {
			t.Errorf("target got %d requests, want none", n)
		}
	})
}

// Twenty goroutines share one sink; every even batch is refused once with
// 503, so retries interleave with first attempts.
func TestSendConcurrent(t *testing.T) {
	const senders, perBatch = 20, 50
	var mu sync.Mutex
	keys := map[string]int{} // Idempotency-Key -> requests carrying it
	delivered := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []struct {
			ID    string `json:"id"`
			Batch int    `json:"batch"`
		}
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil || len(batch) != perBatch {
			t.Errorf("bad batch (%d records): %v", len(batch), err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Idempotency-Key")
		keys[key]++
		if keys[key] == 1 && batch[0].Batch%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		for _, rec := range batch {
			delivered[rec.ID]++
		}
	}))
	defer srv.Close()
	sink, _ := newTestSink(t, srv.URL, nil)

	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			records := make([]json.RawMessage, perBatch)
			for i := range records {
				records[i] = json.RawMessage(fmt.Sprintf(`{"id":"%d-%d","batch":%d}`, g, i, g))
			}
			if err := sink.Send(context.Background(), records); err != nil {
				t.Errorf("sender %d: %v", g, err)
			}
		})
	}
	wg.Wait()

	if len(keys) != senders {
		t.Errorf("%d distinct Idempotency-Keys, want %d", len(keys), senders)
	}
	if len(delivered) != senders*perBatch {
		t.Errorf("%d distinct records delivered, want %d", len(delivered), senders*perBatch)
	}
	for id, n := range delivered {
		if n != 1 {
			t.Errorf("record %s delivered %d times", id, n)
		}
	}
	want := Stats{Requests: 30, Retries: 10, Batches: senders, Records: senders * perBatch,
		ByStatus: map[int]int64{200: 20, 503: 10}}
	if diff := cmp.Diff(want, sink.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

// A target that answers before reading a large body leaves the transport
// still reading it after Send has returned and recycled the buffer; later
// batches from the same pool must still go out intact (and -race must stay
// quiet).
func TestSendEarlyAnswerKeepsBuffersApart(t *testing.T) {
	early := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusRequestEntityTooLarge) // without reading the body
	}))
	defer early.Close()
	echo := &scriptedTarget{}
	srv := httptest.NewServer(echo)
	defer srv.Close()
	bigSink, _ := newTestSink(t, early.URL, nil)
	sink, _ := newTestSink(t, srv.URL, nil)

	big := make([]json.RawMessage, 5_000) // ~0.5 MB, past the 256 KB net/http discards for an unread body
	for i := range big {
		big[i] = json.RawMessage(`{"id":"` + strings.Repeat("x", 100) + `"}`)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				err := bigSink.Send(context.Background(), big)
				var e *Error
				if !errors.As(err, &e) || (e.Status != http.StatusRequestEntityTooLarge && e.Status != 0) {
					t.Errorf("big batch: %v, want HTTP 413 (or a reset connection)", err)
				}
				small := []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"id":"%d-%d"}`, g, i))}
				if err := sink.Send(context.Background(), small); err != nil {
					t.Errorf("small batch: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, r := range echo.requests() {
		var got []map[string]string
		if err := json.Unmarshal([]byte(r.Body), &got); err != nil || len(got) != 1 {
			t.Errorf("small batch arrived as %.100q: %v", r.Body, err)
		}
	}
	if n := len(echo.requests()); n != 20 {
		t.Errorf("%d small batches arrived, want 20", n)
	}
}
