package mailchimp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/retry"
)

const (
	testKey   = "0123456789abcdef0123456789abcdef-us6"
	otherKey  = "fedcba9876543210fedcba9876543210-us6"
	testList  = "abc123"
	testConn  = "acme-main"
	maxTries  = 4
	firstWait = 500 * time.Millisecond // Backoff(1) with BaseDelay 1s and Rand 0
)

var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// testConfig returns a config pointed at url whose retries are instant
// (fake clock) and whose waits are exact (Rand pinned to 0).
func testConfig(url string) (mailchimp.Config, *clock.Fake) {
	clk := clock.NewFake(epoch)
	return mailchimp.Config{
		APIKey:     testKey,
		BaseURL:    url + "/3.0",
		Connection: testConn,
		Retry: retry.Policy{
			MaxAttempts: maxTries,
			BaseDelay:   time.Second,
			MaxDelay:    30 * time.Second,
			Clock:       clk,
			Rand:        func() float64 { return 0 },
		},
	}, clk
}

func newClient(t *testing.T, cfg mailchimp.Config) *mailchimp.Client {
	t.Helper()
	c, err := mailchimp.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// testLogger captures debug logs for the secret scan.
func testLogger() (*slog.Logger, *bytes.Buffer) {
	var buf syncBuffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf.buf
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func writeProblem(w http.ResponseWriter, status int, title, detail string, fieldErrs ...mailchimp.FieldError) {
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	doc := map[string]any{
		"type":     "https://mailchimp.com/developer/marketing/docs/errors/",
		"title":    title,
		"status":   status,
		"detail":   detail,
		"instance": "2b6a3e2e-0000-4000-8000-000000000000",
	}
	if len(fieldErrs) > 0 {
		doc["errors"] = fieldErrs
	}
	_ = json.NewEncoder(w).Encode(doc)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

// Faults a handler can inject.
func htmlBadGateway(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprint(w, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>")
}

func emptyForbidden(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }

func tooMany(w http.ResponseWriter, _ *http.Request) {
	writeProblem(w, http.StatusTooManyRequests, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")
}

func serverError(w http.ResponseWriter, _ *http.Request) {
	writeProblem(w, http.StatusInternalServerError, "Internal Server Error", "An unexpected internal error has occurred.")
}

// dropConnection closes the TCP connection without answering.
func dropConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// truncatedBody promises more bytes than it sends, then hangs up.
func truncatedBody(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "4096")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, `{"members":[{"id":"0000","email_address":"a@exa`)
}

// htmlOK is a 2xx that is not JSON (a captive portal or a misrouted proxy).
func htmlOK(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	fmt.Fprint(w, "<html>hello</html>")
}

// member builds the i-th member of a synthetic audience.
func member(i int) map[string]any {
	return map[string]any{
		"id":            fmt.Sprintf("%032x", i),
		"email_address": fmt.Sprintf("user%d@example.com", i),
		"status":        "subscribed",
		"merge_fields":  map[string]any{"FNAME": "First" + strconv.Itoa(i), "LNAME": "", "AGE": 30 + i%50},
		"member_rating": 2,
		"last_changed":  epoch.Add(time.Duration(i) * time.Second).Format("2006-01-02T15:04:05+00:00"),
		"tags":          []any{map[string]any{"id": 1, "name": "vip"}},
		"list_id":       testList,
	}
}

// membersHandler serves an audience of n members with Mailchimp's paging
// rules (count default 10, max 1000; offset past the end gives []).
func membersHandler(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		count, offset := 10, 0
		if v, err := strconv.Atoi(q.Get("count")); err == nil {
			count = min(v, 1000)
		}
		if v, err := strconv.Atoi(q.Get("offset")); err == nil {
			offset = v
		}
		members := []any{}
		for i := offset; i < min(offset+count, n); i++ {
			members = append(members, member(i))
		}
		writeJSON(w, map[string]any{"members": members, "list_id": testList, "total_items": n, "_links": []any{}})
	}
}

// server starts an httptest server whose handler is h and counts requests.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		s.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *server) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

// failFirst answers the first n requests with fault, the rest with ok.
func failFirst(n int, fault, ok http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	seen := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		bad := seen <= n
		mu.Unlock()
		if bad {
			fault(w, r)
			return
		}
		ok(w, r)
	}
}

func chimpy(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]string{"health_status": "Everything's Chimpy!"})
}

// blockingClock's Sleep announces itself, then waits for ctx to end (or
// for release, when set): a backoff far longer than any test.
type blockingClock struct {
	sleeping chan struct{}
	release  chan struct{}
}

func newBlockingClock() *blockingClock {
	return &blockingClock{sleeping: make(chan struct{}, 16), release: make(chan struct{})}
}

func (*blockingClock) Now() time.Time { return epoch }

func (c *blockingClock) Sleep(ctx context.Context, _ time.Duration) error {
	c.sleeping <- struct{}{}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.release:
		return nil
	}
}

// within fails the test if ch does not deliver within a generous deadline;
// it exists to turn a hang into a failure, not to measure time.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}
