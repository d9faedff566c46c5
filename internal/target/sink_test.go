package target

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/retry"
)

const (
	secret = "Bearer s3cr3t-token-value"
	query  = "token=abc123xyz"
)

var start = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// reply is one scripted answer of a test target.
type reply struct {
	status int
	header map[string]string
	noDate bool // suppress the Date header net/http would add
	body   string
	hang   bool // answer nothing until the request's context ends
}

// received is what the target saw of one request.
type received struct {
	Method, Path, Body, Auth, Tenant, ContentType, UserAgent, Key string
}

// scriptedTarget answers its n-th request with replies[n] (200 past the end)
// and records every request.
type scriptedTarget struct {
	replies []reply
	mu      sync.Mutex
	got     []received
}

func (s *scriptedTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, received{
		Method: r.Method, Path: r.URL.Path, Body: string(body),
		Auth: r.Header.Get("Authorization"), Tenant: r.Header.Get("X-Tenant"),
		ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
		Key: r.Header.Get("Idempotency-Key"),
	})
	s.mu.Unlock()
	rep := reply{status: http.StatusOK}
	if n < len(s.replies) {
		rep = s.replies[n]
	}
	if rep.hang {
		<-r.Context().Done()
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	if rep.noDate {
		w.Header()["Date"] = nil
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (s *scriptedTarget) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

// syncBuffer collects log output from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestSink returns a sink for url whose backoff runs on a fake clock.
func newTestSink(t testing.TB, url string, edit func(*HTTPConfig)) (*HTTP, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(start)
	cfg := HTTPConfig{
		Connection: "crm",
		URL:        url,
		Headers:    map[string]string{"Authorization": secret, "X-Tenant": "acme"},
		Retry:      retry.Policy{MaxAttempts: 3, Clock: clk, Rand: func() float64 { return 0 }},
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewHTTP(cfg)
	if err != nil {
		t.Fatalf("NewHTTP: %v", err)
	}
	return s, clk
}

var testRecords = []json.RawMessage{
	json.RawMessage(`{"id":"a1","email":"ann@example.com","status":"subscribed"}`),
	json.RawMessage(`{"id":"b2","firstname":"Bj\u00f8rn","email":"b@example.com"}`),
	json.RawMessage(` {"id":"c3","lastname":"O'Hara, \"Ché\""} `),
}

func TestSend(t *testing.T) {
	longBody := strings.Repeat("e", 150) + strings.Repeat("f", 50) + "TAIL-PAST-200-BYTES"
	serverDate := start.Add(-time.Hour) // our fake clock and the target disagree
	tests := []struct {
		name        string
		replies     []reply
		edit        func(*HTTPConfig)
		wantReqs    int
		wantSlept   []time.Duration
		wantStats   Stats
		wantStatus  int // of the *Error; -1 = success
		wantAttempt int
		wantPerson  bool
		wantIn      []string // substrings of the error
	}{
		{name: "200", replies: []reply{{status: 200}}, wantReqs: 1, wantStatus: -1,
			wantStats: Stats{Requests: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{200: 1}}},
		{name: "201", replies: []reply{{status: 201, body: `{"ok":true}`}}, wantReqs: 1, wantStatus: -1,
			wantStats: Stats{Requests: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{201: 1}}},
		{name: "204", replies: []reply{{status: 204}}, wantReqs: 1, wantStatus: -1,
			wantStats: Stats{Requests: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{204: 1}}},
		{name: "503 then success is retried", replies: []reply{{status: 503}, {status: 201}},
			wantReqs: 2, wantSlept: []time.Duration{500 * time.Millisecond}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{503: 1, 201: 1}}},
		{name: "408 is retried", replies: []reply{{status: 408}},
			wantReqs: 2, wantSlept: []time.Duration{500 * time.Millisecond}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{408: 1, 200: 1}}},
		{name: "429 Retry-After seconds", replies: []reply{{status: 429, header: map[string]string{"Retry-After": "7"}}},
			wantReqs: 2, wantSlept: []time.Duration{7 * time.Second}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{429: 1, 200: 1}}},
		{name: "429 Retry-After date, measured from the response's Date", replies: []reply{{status: 429, header: map[string]string{
			"Date": serverDate.Format(http.TimeFormat), "Retry-After": serverDate.Add(12 * time.Second).Format(http.TimeFormat)}}},
			wantReqs: 2, wantSlept: []time.Duration{12 * time.Second}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{429: 1, 200: 1}}},
		{name: "503 Retry-After date without Date uses our clock", replies: []reply{{status: 503, noDate: true,
			header: map[string]string{"Retry-After": start.Add(9 * time.Second).Format(http.TimeFormat)}}},
			wantReqs: 2, wantSlept: []time.Duration{9 * time.Second}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{503: 1, 200: 1}}},
		{name: "Retry-After capped at 5 minutes", replies: []reply{{status: 429, header: map[string]string{"Retry-After": "86400"}}},
			edit:     func(c *HTTPConfig) { c.Retry.MaxDelay = time.Hour },
			wantReqs: 2, wantSlept: []time.Duration{5 * time.Minute}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{429: 1, 200: 1}}},
		{name: "400 is not retried and quotes 200 bytes of the body", replies: []reply{{status: 400, body: "\n  " + longBody}},
			wantReqs: 1, wantStatus: 400, wantAttempt: 1, wantPerson: true,
			wantIn:    []string{"HTTP 400 Bad Request: " + longBody[:200] + ";", "check the mapping"},
			wantStats: Stats{Requests: 1, ByStatus: map[int]int64{400: 1}}},
		{name: "401 needs a person and leaks no secret", replies: []reply{{status: 401,
			body: "bad Authorization: " + secret + "; token s3cr3t-token-value; ?" + query + "; key abc123xyz"}},
			wantReqs: 1, wantStatus: 401, wantAttempt: 1, wantPerson: true,
			wantIn:    []string{`target connection "crm": POST http://`, "/records?REDACTED: HTTP 401", "[redacted]", "check target.headers"},
			wantStats: Stats{Requests: 1, ByStatus: map[int]int64{401: 1}}},
		{name: "404", replies: []reply{{status: 404}}, wantReqs: 1, wantStatus: 404, wantAttempt: 1, wantPerson: true,
			wantIn:    []string{"check target.url"},
			wantStats: Stats{Requests: 1, ByStatus: map[int]int64{404: 1}}},
		{name: "redirect is not followed", replies: []reply{{status: 302, header: map[string]string{"Location": "/elsewhere"}}},
			wantReqs: 1, wantStatus: 302, wantAttempt: 1, wantPerson: true,
			wantIn:    []string{"redirect"},
			wantStats: Stats{Requests: 1, ByStatus: map[int]int64{302: 1}}},
		{name: "persistent 503 exhausts the attempts", replies: []reply{{status: 503}, {status: 503}, {status: 503}, {status: 503}},
			wantReqs: 3, wantSlept: []time.Duration{500 * time.Millisecond, time.Second},
			wantStatus: 503, wantAttempt: 3,
			wantIn:    []string{"HTTP 503 Service Unavailable (after 3 attempts); the target is unavailable; the next run will retry"},
			wantStats: Stats{Requests: 3, Retries: 2, ByStatus: map[int]int64{503: 3}}},
		{name: "attempt timeout is retried", replies: []reply{{hang: true}},
			edit:     func(c *HTTPConfig) { c.Timeout = 200 * time.Millisecond },
			wantReqs: 2, wantSlept: []time.Duration{500 * time.Millisecond}, wantStatus: -1,
			wantStats: Stats{Requests: 2, Retries: 1, Batches: 1, Records: 3, ByStatus: map[int]int64{0: 1, 200: 1}}},
		{name: "attempt timeouts exhaust the attempts", replies: []reply{{hang: true}, {hang: true}},
			edit:     func(c *HTTPConfig) { c.Timeout = 200 * time.Millisecond; c.Retry.MaxAttempts = 2 },
			wantReqs: 2, wantSlept: []time.Duration{500 * time.Millisecond}, wantStatus: 0, wantAttempt: 2,
			wantIn:    []string{"no response: no answer within 200ms (after 2 attempts); the target is unavailable"},
			wantStats: Stats{Requests: 2, Retries: 1, ByStatus: map[int]int64{0: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &scriptedTarget{replies: tt.replies}
			srv := httptest.NewServer(target)
			defer srv.Close()
			logs := &syncBuffer{}
			sink, clk := newTestSink(t, srv.URL+"/records?"+query, func(c *HTTPConfig) {
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tt.edit != nil {
					tt.edit(c)
				}
			})

			err := sink.Send(context.Background(), testRecords)

			reqs := target.requests()
			if len(reqs) != tt.wantReqs {
				t.Fatalf("target got %d requests, want %d", len(reqs), tt.wantReqs)
			}
			wantBody := "[" + string(testRecords[0]) + "," + string(testRecords[1]) + "," + string(testRecords[2]) + "]"
			for i, r := range reqs {
				want := received{Method: "POST", Path: "/records", Body: wantBody, Auth: secret, Tenant: "acme",
					ContentType: "application/json", UserAgent: "chimport", Key: reqs[0].Key}
				if diff := cmp.Diff(want, r); diff != "" {
					t.Errorf("request %d (-want +got):\n%s", i+1, diff)
				}
			}
			if len(reqs) > 0 && len(reqs[0].Key) != 32 {
				t.Errorf("Idempotency-Key = %q, want 32 hex digits", reqs[0].Key)
			}
			if diff := cmp.Diff(tt.wantSlept, clk.Slept()); diff != "" {
				t.Errorf("backoff waits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, sink.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			if tt.wantStatus == -1 {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Send error = %#v, want *Error", err)
			}
			got := []any{e.Status, e.Attempts, e.NeedsPerson(), e.Retryable()}
			want := []any{tt.wantStatus, tt.wantAttempt, tt.wantPerson, !tt.wantPerson}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Status, Attempts, NeedsPerson, Retryable (-want +got):\n%s", diff)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q\nwant it to contain %q", err, s)
				}
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v matches context.DeadlineExceeded; callers would take it for their own deadline", err)
			}
			for _, leak := range []string{"s3cr3t", "abc123xyz", "TAIL"} {
				if strings.Contains(err.Error(), leak) || strings.Contains(logs.String(), leak) {
					t.Errorf("error or logs leak %q:\nerror: %v\nlogs: %s", leak, err, logs)
				}
			}
		})
	}
}

func TestSendNothingToSend(t *testing.T) {
	target := &scriptedTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()
	sink, _ := newTestSink(t, srv.URL, nil)

	if err := sink.Send(context.Background(), nil); err != nil {
		t.Errorf("Send(nil) = %v, want nil", err)
	}
	bad := []json.RawMessage{testRecords[0], json.RawMessage(`{"id":`), testRecords[1]}
	if err := sink.Send(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "record 1 ") {
		t.Errorf("Send(invalid record) = %v, want an error naming record 1", err)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("target got %d requests, want none", n)
	}
}

func TestIdempotencyKey(t *testing.T) {
	target := &scriptedTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()
	crm, _ := newTestSink(t, srv.URL, nil)
	other, _ := newTestSink(t, srv.URL, func(c *HTTPConfig) { c.Connection = "other" })

	sends := []struct {
		sink    *HTTP
		records []json.RawMessage
	}{
		{crm, testRecords},
		{crm, testRecords},       // the same records again, e.g. a member changed A -> B -> A
		{crm, testRecords[:2]},   // a different batch
		{other, testRecords[:2]}, // the same records for another connection
	}
	for i, s := range sends {
		if err := s.sink.Send(context.Background(), s.records); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	reqs := target.requests()
	// Every Send gets its own key, even for identical bytes: a target
	// deduplicating on it must not drop a later write that happens to
	// repeat an earlier one.
	got := []bool{reqs[0].Key == reqs[1].Key, reqs[1].Key == reqs[2].Key, reqs[2].Key == reqs[3].Key}
	if diff := cmp.Diff([]bool{false, false, false}, got); diff != "" {
		t.Errorf("keys equal to the previous send's (-want +got):\n%s", diff)
	}
}

func TestSendTransportErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // nothing listens there any more
	// The default client does not trust httptest's self-signed certificate.
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsSrv.Close()
	tests := []struct {
		name       string
		url        string
		wantReqs   int64
		wantPerson bool
		wantIn     string
	}{
		{"connection refused is retried", closed.URL + "/r?" + query, 3, false, "the target is unavailable; the next run will retry"},
		{"untrusted certificate is not retried", tlsSrv.URL + "/r?" + query, 1, true, "TLS certificate was not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, _ := newTestSink(t, tt.url, nil)
			err := sink.Send(context.Background(), testRecords)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Send = %v, want *Error", err)
			}
			if e.Status != 0 || e.Err == nil || e.NeedsPerson() != tt.wantPerson || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("error %q: Status %d, Err %v, NeedsPerson %v; want 0, non-nil, %v, containing %q",
					err, e.Status, e.Err, e.NeedsPerson(), tt.wantPerson, tt.wantIn)
			}
			if strings.Contains(err.Error(), query) {
				t.Errorf("error leaks the query string: %v", err)
			}
			if got := sink.Stats(); got.Requests != tt.wantReqs || got.ByStatus[0] != tt.wantReqs {
				t.Errorf("Stats = %+v, want %d requests without response", got, tt.wantReqs)
			}
		})
	}
}

func TestNewHTTP(t *testing.T) {
	tests := []struct {
		name    string
		cfg     HTTPConfig
		wantErr string // substring; "" = valid
	}{
		{name: "https", cfg: HTTPConfig{URL: "https://api.example.com/records?key=" + query}},
		{name: "empty URL", cfg: HTTPConfig{}, wantErr: "target.url"},
		{name: "relative URL", cfg: HTTPConfig{URL: "/records?" + query}, wantErr: "target.url: /records?REDACTED is not"},
		{name: "other scheme", cfg: HTTPConfig{URL: "ftp://example.com/r"}, wantErr: "target.url"},
		{name: "no host", cfg: HTTPConfig{URL: "http:///records"}, wantErr: "target.url"},
		{name: "negative timeout", cfg: HTTPConfig{URL: "http://x", Timeout: -time.Second}, wantErr: "negative"},
		{name: "bad header name", cfg: HTTPConfig{URL: "http://x", Headers: map[string]string{"Bad Name": "v"}}, wantErr: `target.headers: "Bad Name"`},
		{name: "header value with a line break", cfg: HTTPConfig{URL: "http://x", Headers: map[string]string{"Authorization": secret + "\r\nX: y"}},
			wantErr: `the value of "Authorization" contains a line break`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHTTP(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewHTTP: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("NewHTTP error = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), query)) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// TestApplyUpsertsAndRefusedDeletes: Apply sends upserts exactly as Send
// sends records, and refuses a batch holding a delete (or an operation
// without a kind, or a delete without an id) before sending anything when
// the sink was built without a DeleteMode.
func TestApplyUpsertsAndRefusedDeletes(t *testing.T) {
	target := &scriptedTarget{}
	srv := httptest.NewServer(target)
	defer srv.Close()
	sink, _ := newTestSink(t, srv.URL, nil)
	ctx := context.Background()

	ops := make([]Op, len(testRecords))
	for i, r := range testRecords {
		ops[i] = Upsert(r)
	}
	if err := sink.Apply(ctx, ops); err != nil {
		t.Fatalf("Apply(upserts) = %v", err)
	}
	if err := sink.Send(ctx, testRecords); err != nil {
		t.Fatalf("Send = %v", err)
	}
	got := target.requests()
	if len(got) != 2 || got[0].Body != got[1].Body {
		t.Fatalf("Apply and Send sent %d requests; want 2 with the same body:\n%+v", len(got), got)
	}

	var refused *DeletesNotConfiguredError
	err := sink.Apply(ctx, []Op{Upsert(testRecords[0]), Delete("gone-1"), Delete("gone-2")})
	if !errors.As(err, &refused) || refused.Deletes != 2 || !strings.Contains(err.Error(), "built without a delete mode; nothing of the batch was sent") {
		t.Errorf("Apply(with deletes) = %v, want a DeletesNotConfiguredError for 2 deletes", err)
	}
	if _, ok := refused.Advice(); !ok {
		t.Error("the refused deletes carry no advice: the alert policy would retry them silently")
	}
	if err := sink.Apply(ctx, []Op{{Record: testRecords[0]}}); err == nil || !strings.Contains(err.Error(), "operation 0") {
		t.Errorf("Apply(an op without a kind) = %v, want an error naming operation 0", err)
	}
	if err := sink.Apply(ctx, []Op{Upsert(testRecords[0]), Delete("")}); err == nil || !strings.Contains(err.Error(), "operation 1 of the batch deletes an empty id") {
		t.Errorf("Apply(a delete without an id) = %v, want an error naming operation 1", err)
	}
	if n := len(target.requests()); n != 2 {
		t.Errorf("target got %d requests after the refused batches, want still 2", n)
	}
}

// A target may echo a credential escaped, as JSON (a PHP one writes / as
// \/, common in base64 tokens) or as a URL query; the error, its body
// excerpt and the logs must hold it in none of those forms.
func TestSendRedactsEscapedSecrets(t *testing.T) {
	const (
		token  = "c2VjcmV0/dG9rZW4+c2lnbmF0dXJl=="
		auth   = "Bearer " + token
		apiKey = `k3y"quoted\back/slash&more`
		// A value that starts with another secret: the whole value wins.
		refresh = token + "/r3fr3sh"
	)
	jsonEscaped := strings.NewReplacer(`"`, `\"`, `\`, `\\`).Replace
	phpEscaped := func(s string) string { return strings.ReplaceAll(jsonEscaped(s), "/", `\/`) }
	goEscaped := func(s string) string { // encoding/json also escapes <, > and &
		b, _ := json.Marshal(s)
		return string(b[1 : len(b)-1])
	}
	tests := []struct {
		name, body, wantBody string
	}{
		{"Authorization with / as \\/", `{"error":"invalid","authorization":"` + phpEscaped(auth) + `"}`,
			`{"error":"invalid","authorization":"[redacted]"}`},
		{"the token alone with / as \\/", `{"error":"invalid token ` + phpEscaped(token) + `"}`,
			`{"error":"invalid token [redacted]"}`},
		{"Authorization query-escaped", `bad request: /records?auth=` + url.QueryEscape(auth) + `&x=1`,
			`bad request: /records?auth=[redacted]&x=1`},
		{"Authorization path-escaped", `no such record /auth/` + url.PathEscape(auth),
			`no such record /auth/[redacted]`},
		{"the token alone query-escaped", `token=` + url.QueryEscape(token),
			`token=[redacted]`},
		{"a key with \" and \\ JSON-escaped", `{"key":"` + jsonEscaped(apiKey) + `"}`,
			`{"key":"[redacted]"}`},
		{"a key with \" and \\ PHP-escaped", `{"key":"` + phpEscaped(apiKey) + `"}`,
			`{"key":"[redacted]"}`},
		{"a value starting with the token, PHP-escaped", `{"refresh":"` + phpEscaped(refresh) + `"}`,
			`{"refresh":"[redacted]"}`},
		{"a key with \" and & escaped by Go", `{"key":"` + goEscaped(apiKey) + `"}`,
			`{"key":"[redacted]"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := &scriptedTarget{replies: []reply{{status: http.StatusUnprocessableEntity, body: tt.body}}}
			srv := httptest.NewServer(target)
			defer srv.Close()
			logs := &syncBuffer{}
			sink, _ := newTestSink(t, srv.URL+"/records", func(c *HTTPConfig) {
				c.Headers = map[string]string{"Authorization": auth, "X-Api-Key": apiKey, "X-Refresh": refresh}
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})

			err := sink.Send(context.Background(), testRecords)

			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity {
				t.Fatalf("Send = %v, want a 422 *Error", err)
			}
			if diff := cmp.Diff(tt.wantBody, e.Body); diff != "" {
				t.Errorf("Error.Body (-want +got):\n%s", diff)
			}
			// Fragments of the secrets that survive every escaping.
			for _, leak := range []string{"c2VjcmV0", "dG9rZW4", "c2lnbmF0dXJl", "k3y", "quoted", "back", "more", "r3fr3sh"} {
				for what, s := range map[string]string{"error": err.Error(), "Error.Body": e.Body, "logs": logs.String()} {
					if strings.Contains(s, leak) {
						t.Errorf("%s leaks %q: %s", what, leak, s)
					}
				}
			}
		})
	}
}
