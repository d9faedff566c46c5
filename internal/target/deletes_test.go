package target

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// deleteTarget answers each path with its own script (200 past the end),
// so that concurrent DELETEs get the answers meant for them, and records
// every request with its escaped path and query.
type deleteTarget struct {
	t       *testing.T
	replies map[string][]reply // by r.URL.EscapedPath()
	mu      sync.Mutex
	got     []received
	uris    []string // RequestURI of each request, in arrival order
	byPath  map[string]int
}

func newDeleteTarget(t *testing.T, replies map[string][]reply) (*deleteTarget, *httptest.Server) {
	d := &deleteTarget{t: t, replies: replies, byPath: map[string]int{}}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return d, srv
}

func (d *deleteTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := r.URL.EscapedPath()
	d.mu.Lock()
	d.got = append(d.got, received{
		Method: r.Method, Path: path, Body: string(body),
		Auth: r.Header.Get("Authorization"), Tenant: r.Header.Get("X-Tenant"),
		ContentType: r.Header.Get("Content-Type"), UserAgent: r.Header.Get("User-Agent"),
		Key: r.Header.Get("Idempotency-Key"),
	})
	d.uris = append(d.uris, r.RequestURI)
	n := d.byPath[path]
	d.byPath[path]++
	d.mu.Unlock()
	rep := reply{status: http.StatusOK}
	if script := d.replies[path]; n < len(script) {
		rep = script[n]
	}
	if rep.hang {
		<-r.Context().Done()
		return
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (d *deleteTarget) requests() ([]received, []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got), slices.Clone(d.uris)
}

func TestApplyTombstones(t *testing.T) {
	target := &scriptedTarget{replies: []reply{{status: 503}, {status: 201}}}
	srv := httptest.NewServer(target)
	defer srv.Close()
	sink, clk := newTestSink(t, srv.URL+"/records?"+query, func(c *HTTPConfig) {
		c.Deletes = DeletesTombstone
		c.IDKey = "member_id"
		c.Tombstone = map[string]any{"status": "deleted", "deleted": true, "deleted_at": nil, "version": 2}
	})

	ops := []Op{Upsert(testRecords[0]), Delete("0f1e2d3c"), Upsert(testRecords[1]), Delete(`odd "id"/50%`)}
	if err := sink.Apply(context.Background(), ops); err != nil {
		t.Fatalf("Apply: %v", err)
	}

	// One POST, the tombstones in op order among the upserts, each the id
	// first and then the tombstone's keys sorted; retried whole, with the
	// same Idempotency-Key.
	tomb := func(id string) string {
		return `{"member_id":` + id + `,"deleted":true,"deleted_at":null,"status":"deleted","version":2}`
	}
	wantBody := "[" + string(testRecords[0]) + "," + tomb(`"0f1e2d3c"`) + "," + string(testRecords[1]) + "," + tomb(`"odd \"id\"/50%"`) + "]"
	reqs := target.requests()
	if len(reqs) != 2 {
		t.Fatalf("target got %d requests, want 2 (a 503 and its retry)", len(reqs))
	}
	for i, r := range reqs {
		want := received{Method: "POST", Path: "/records", Body: wantBody, Auth: secret, Tenant: "acme",
			ContentType: "application/json", UserAgent: "chimport", Key: reqs[0].Key}
		if diff := cmp.Diff(want, r); diff != "" {
			t.Errorf("request %d (-want +got):\n%s", i+1, diff)
		}
	}
	var decoded []map[string]any
	if err := json.Unmarshal([]byte(reqs[0].Body), &decoded); err != nil {
		t.Errorf("the batch is not valid JSON: %v", err)
	}
	if diff := cmp.Diff([]time.Duration{500 * time.Millisecond}, clk.Slept()); diff != "" {
		t.Errorf("backoff waits (-want +got):\n%s", diff)
	}
	want := Stats{Requests: 2, Retries: 1, Batches: 1, Records: 4, Tombstones: 2, ByStatus: map[int]int64{503: 1, 201: 1}}
	if diff := cmp.Diff(want, sink.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}

	// A batch of deletes alone is one POST of tombstones.
	if err := sink.Apply(context.Background(), []Op{Delete("aa"), Delete("bb")}); err != nil {
		t.Fatalf("Apply(deletes only): %v", err)
	}
	reqs = target.requests()
	if got, want := reqs[len(reqs)-1].Body, "["+tomb(`"aa"`)+","+tomb(`"bb"`)+"]"; got != want {
		t.Errorf("deletes-only batch:\n got %s\nwant %s", got, want)
	}
}

func TestApplyDeleteRequests(t *testing.T) {
	const recs = "/records"
	tests := []struct {
		name      string
		ops       []Op
		replies   map[string][]reply
		wantURIs  []string // sorted; the POST, if any, first
		wantSlept []time.Duration
		wantStats Stats
		// wantStatus is the *Error's status (-1: success); wantIn are
		// substrings of its message.
		wantStatus, wantAttempts int
		wantPerson               bool
		wantIn                   []string
	}{
		{
			name: "upserts POSTed first, ids escaped, 2xx 404 and 410 all done",
			ops: []Op{Upsert(testRecords[0]), Delete("a1"), Upsert(testRecords[1]), Delete("team/7"),
				Delete("50%off"), Delete("x y?z#w")},
			replies: map[string][]reply{
				"/records/a1":            {{status: 204}},
				"/records/team%2F7":      {{status: 404, body: "no such record"}},
				"/records/50%25off":      {{status: 410}},
				"/records/x%20y%3Fz%23w": {{status: 200}},
			},
			wantURIs: []string{recs + "?" + query, recs + "/50%25off?" + query, recs + "/a1?" + query,
				recs + "/team%2F7?" + query, recs + "/x%20y%3Fz%23w?" + query},
			wantStatus: -1,
			wantStats: Stats{Requests: 5, Batches: 1, Records: 2, DeleteRequests: 4, Deleted: 4,
				ByStatus: map[int]int64{200: 2, 204: 1, 404: 1, 410: 1}},
		},
		{
			name:       "503 then 204 is retried",
			ops:        []Op{Delete("a1")},
			replies:    map[string][]reply{"/records/a1": {{status: 503, body: "<html>busy</html>"}, {status: 204}}},
			wantURIs:   []string{recs + "/a1?" + query, recs + "/a1?" + query},
			wantSlept:  []time.Duration{500 * time.Millisecond},
			wantStatus: -1,
			wantStats:  Stats{Requests: 2, Retries: 1, DeleteRequests: 2, Deleted: 1, ByStatus: map[int]int64{503: 1, 204: 1}},
		},
		{
			name:       "429 waits for its Retry-After",
			ops:        []Op{Delete("a1")},
			replies:    map[string][]reply{"/records/a1": {{status: 429, header: map[string]string{"Retry-After": "7"}}}},
			wantURIs:   []string{recs + "/a1?" + query, recs + "/a1?" + query},
			wantSlept:  []time.Duration{7 * time.Second},
			wantStatus: -1,
			wantStats:  Stats{Requests: 2, Retries: 1, DeleteRequests: 2, Deleted: 1, ByStatus: map[int]int64{429: 1, 200: 1}},
		},
		{
			name: "409 is permanent, with the URL, the answer and advice, and no secret",
			ops:  []Op{Delete("a1")},
			replies: map[string][]reply{"/records/a1": {{status: 409,
				body: `{"error":"record locked","auth":"` + secret + `","query":"` + query + `"}`}}},
			wantURIs:     []string{recs + "/a1?" + query},
			wantStatus:   409,
			wantAttempts: 1,
			wantPerson:   true,
			wantIn: []string{
				`target connection "crm": DELETE http://`,
				`/records/a1?REDACTED: HTTP 409 Conflict: {"error":"record locked","auth":"[redacted]"`,
				"the target refused to delete a record: check target.delete_url",
			},
			wantStats: Stats{Requests: 1, DeleteRequests: 1, ByStatus: map[int]int64{409: 1}},
		},
		{
			name:         "405: the target takes no DELETE",
			ops:          []Op{Delete("a1")},
			replies:      map[string][]reply{"/records/a1": {{status: 405}}},
			wantURIs:     []string{recs + "/a1?" + query},
			wantStatus:   405,
			wantAttempts: 1,
			wantPerson:   true,
			wantIn:       []string{"set target.deletes to tombstone"},
			wantStats:    Stats{Requests: 1, DeleteRequests: 1, ByStatus: map[int]int64{405: 1}},
		},
		{
			name:         "persistent 503 gives up and the batch fails",
			ops:          []Op{Delete("a1")},
			replies:      map[string][]reply{"/records/a1": {{status: 503}, {status: 503}, {status: 503}}},
			wantURIs:     []string{recs + "/a1?" + query, recs + "/a1?" + query, recs + "/a1?" + query},
			wantSlept:    []time.Duration{500 * time.Millisecond, time.Second},
			wantStatus:   503,
			wantAttempts: 3,
			wantIn:       []string{"DELETE http://", "/records/a1?REDACTED: HTTP 503 Service Unavailable (after 3 attempts); the target is unavailable"},
			wantStats:    Stats{Requests: 3, Retries: 2, DeleteRequests: 3, ByStatus: map[int]int64{503: 3}},
		},
		{
			name:         "a refused POST sends no DELETE",
			ops:          []Op{Upsert(testRecords[0]), Delete("a1")},
			replies:      map[string][]reply{recs: {{status: 400, body: "bad record"}}},
			wantURIs:     []string{recs + "?" + query},
			wantStatus:   400,
			wantAttempts: 1,
			wantPerson:   true,
			wantIn:       []string{"POST http://", "check the mapping"},
			wantStats:    Stats{Requests: 1, ByStatus: map[int]int64{400: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, srv := newDeleteTarget(t, tt.replies)
			logs := &syncBuffer{}
			sink, clk := newTestSink(t, srv.URL+recs+"?"+query, func(c *HTTPConfig) {
				c.Deletes = DeletesRequest
				c.DeleteURL = srv.URL + recs + "/{id}?" + query
				c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})

			err := sink.Apply(context.Background(), tt.ops)

			reqs, uris := target.requests()
			if len(reqs) > 0 && reqs[0].Method == http.MethodPost {
				uris = append(uris[:1], slices.Sorted(slices.Values(uris[1:]))...)
			} else {
				slices.Sort(uris)
			}
			if diff := cmp.Diff(tt.wantURIs, uris); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			keys := map[string]string{} // path -> Idempotency-Key
			for i, r := range reqs {
				if r.Method == http.MethodPost {
					if i != 0 {
						t.Errorf("request %d is the POST; upserts go before any DELETE", i+1)
					}
					continue
				}
				want := received{Method: "DELETE", Path: r.Path, Auth: secret, Tenant: "acme", UserAgent: "chimport", Key: r.Key}
				if diff := cmp.Diff(want, r); diff != "" {
					t.Errorf("request %d (-want +got):\n%s", i+1, diff)
				}
				if k, seen := keys[r.Path]; len(r.Key) != 32 || seen && k != r.Key {
					t.Errorf("DELETE %s: Idempotency-Key %q, want 32 hex digits, the same on every attempt (first %q)", r.Path, r.Key, k)
				}
				keys[r.Path] = r.Key
			}
			if diff := cmp.Diff(tt.wantSlept, clk.Slept()); diff != "" {
				t.Errorf("backoff waits (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStats, sink.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			for _, leak := range []string{"s3cr3t", "abc123xyz"} {
				if (err != nil && strings.Contains(err.Error(), leak)) || strings.Contains(logs.String(), leak) {
					t.Errorf("error or logs leak %q:\nerror: %v\nlogs: %s", leak, err, logs)
				}
			}
			if tt.wantStatus == -1 {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Apply = %#v, want *Error", err)
			}
			got := []any{e.Status, e.Attempts, e.NeedsPerson(), e.Retryable()}
			want := []any{tt.wantStatus, tt.wantAttempts, tt.wantPerson, !tt.wantPerson}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Status, Attempts, NeedsPerson, Retryable (-want +got):\n%s", diff)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q\nwant it to contain %q", err, s)
				}
			}
		})
	}
}

// An {id} in the query is escaped as a query value.
func TestApplyDeleteIDInQuery(t *testing.T) {
	target, srv := newDeleteTarget(t, nil)
	sink, _ := newTestSink(t, srv.URL+"/records", func(c *HTTPConfig) {
		c.Deletes = DeletesRequest
		c.DeleteURL = srv.URL + "/records?id={id}&tenant=acme"
	})
	if err := sink.Apply(context.Background(), []Op{Delete("a&b=c/d e")}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	_, uris := target.requests()
	if diff := cmp.Diff([]string{"/records?id=a%26b%3Dc%2Fd+e&tenant=acme"}, uris); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// A batch's DELETEs go DeleteConcurrency at once: the target holds every
// DELETE until the test lets one go, and the test lets one go only once
// DeleteConcurrency are held (fewer in flight would hang the test, more
// would show in the highest count seen).
func TestApplyDeletesConcurrency(t *testing.T) {
	const ids = 3*DeleteConcurrency + 1
	var (
		mu                sync.Mutex
		inFlight, maxSeen int
		arrived           = make(chan struct{}, ids)
		release           = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		maxSeen = max(maxSeen, inFlight)
		mu.Unlock()
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	sink, _ := newTestSink(t, srv.URL, func(c *HTTPConfig) { c.Deletes = DeletesRequest; c.DeleteURL = srv.URL + "/r/{id}" })
	ops := make([]Op, ids)
	for i := range ops {
		ops[i] = Delete(string(rune('a' + i)))
	}
	done := make(chan error, 1)
	go func() { done <- sink.Apply(context.Background(), ops) }()

	letOneGo := func() {
		t.Helper()
		select {
		case release <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out letting a DELETE go")
		}
	}
	for range DeleteConcurrency {
		waitFor(t, arrived, "the first DELETEs")
	}
	for range ids - DeleteConcurrency {
		letOneGo()
		waitFor(t, arrived, "the next DELETE")
	}
	for range DeleteConcurrency {
		letOneGo()
	}
	if err := waitFor(t, done, "Apply"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxSeen != DeleteConcurrency {
		t.Errorf("at most %d DELETEs in flight at once, want %d", maxSeen, DeleteConcurrency)
	}
	if st := sink.Stats(); st.Deleted != ids || st.DeleteRequests != ids {
		t.Errorf("Stats = %+v, want %d deleted in %d requests", st, ids, ids)
	}
}

// The first permanent failure is the batch's result: the DELETEs still in
// flight are cancelled, and no more are started.
func TestApplyDeletesStopAtFirstFailure(t *testing.T) {
	replies := map[string][]reply{"/r/bad": {{status: 409, body: "locked"}}}
	ops := []Op{Delete("bad")}
	for _, id := range []string{"h1", "h2", "h3", "h4", "h5", "h6", "h7"} {
		replies["/r/"+id] = []reply{{hang: true}} // answers only once cancelled
		ops = append(ops, Delete(id))
	}
	target, srv := newDeleteTarget(t, replies)
	sink, _ := newTestSink(t, srv.URL, func(c *HTTPConfig) { c.Deletes = DeletesRequest; c.DeleteURL = srv.URL + "/r/{id}" })

	err := sink.Apply(context.Background(), ops)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Method != http.MethodDelete || !strings.Contains(e.URL, "/r/bad") {
		t.Fatalf("Apply = %v, want the 409 of DELETE /r/bad", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("Apply = %v matches context.Canceled; the caller would take the failure for its own cancel", err)
	}
	if reqs, _ := target.requests(); len(reqs) > DeleteConcurrency {
		t.Errorf("target got %d DELETEs, want at most %d: none started after the failure", len(reqs), DeleteConcurrency)
	}
	if st := sink.Stats(); st.Deleted != 0 {
		t.Errorf("Stats.Deleted = %d, want 0", st.Deleted)
	}
}

func TestApplyDeletesCancelled(t *testing.T) {
	target, srv := newDeleteTarget(t, nil)
	sink, _ := newTestSink(t, srv.URL, func(c *HTTPConfig) { c.Deletes = DeletesRequest; c.DeleteURL = srv.URL + "/r/{id}" })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sink.Apply(ctx, []Op{Delete("a1"), Delete("b2")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply = %v, want context.Canceled", err)
	}
	if reqs, _ := target.requests(); len(reqs) != 0 {
		t.Errorf("target got %d requests, want none", len(reqs))
	}
}

func TestApplyDeletesOff(t *testing.T) {
	target, srv := newDeleteTarget(t, nil)
	sink, _ := newTestSink(t, srv.URL+"/records", func(c *HTTPConfig) { c.Deletes = DeletesOff })
	ctx := context.Background()

	if err := sink.Apply(ctx, []Op{Delete("a1"), Delete("b2")}); err != nil {
		t.Fatalf("Apply(deletes only): %v", err)
	}
	if reqs, _ := target.requests(); len(reqs) != 0 {
		t.Fatalf("deletes only: target got %d requests, want none", len(reqs))
	}
	if err := sink.Apply(ctx, []Op{Upsert(testRecords[0]), Delete("c3"), Upsert(testRecords[1])}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	reqs, _ := target.requests()
	wantBody := "[" + string(testRecords[0]) + "," + string(testRecords[1]) + "]"
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Body != wantBody {
		t.Errorf("target got %+v, want one POST of the upserts alone", reqs)
	}
	want := Stats{Requests: 1, Batches: 1, Records: 2, DeletesDropped: 3, ByStatus: map[int]int64{200: 1}}
	if diff := cmp.Diff(want, sink.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestNewHTTPDeletes(t *testing.T) {
	const records = "https://api.example.com/records"
	tomb := map[string]any{"status": "deleted"}
	tests := []struct {
		name    string
		cfg     HTTPConfig
		wantErr string // substring; "" = valid
	}{
		{name: "none", cfg: HTTPConfig{}},
		{name: "off", cfg: HTTPConfig{Deletes: DeletesOff, Tombstone: tomb}},
		{name: "tombstone", cfg: HTTPConfig{Deletes: DeletesTombstone, IDKey: "id", Tombstone: tomb}},
		{name: "request in the path", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: records + "/{id}?" + query}},
		{name: "request in the query", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: records + "?id={id}"}},
		{name: "unknown mode", cfg: HTTPConfig{Deletes: "soft"},
			wantErr: `target.deletes: "soft" is not tombstone, request or off`},
		{name: "tombstone without id key", cfg: HTTPConfig{Deletes: DeletesTombstone, Tombstone: tomb},
			wantErr: "target.deletes: tombstone needs the record's id key"},
		{name: "empty tombstone", cfg: HTTPConfig{Deletes: DeletesTombstone, IDKey: "id"},
			wantErr: "target.tombstone: empty"},
		{name: "tombstone sets the id", cfg: HTTPConfig{Deletes: DeletesTombstone, IDKey: "member", Tombstone: map[string]any{"member": "x", "status": "deleted"}},
			wantErr: `target.tombstone: sets "member", the record's id key`},
		{name: "tombstone not JSON", cfg: HTTPConfig{Deletes: DeletesTombstone, IDKey: "id", Tombstone: map[string]any{"score": math.NaN()}},
			wantErr: "target.tombstone: json: unsupported value: NaN"},
		{name: "request without URL", cfg: HTTPConfig{Deletes: DeletesRequest},
			wantErr: `target.delete_url: required with deletes "request"`},
		{name: "no {id}", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: records + "/id?" + query},
			wantErr: "target.delete_url: must hold {id} exactly once, e.g. https://api.example.com/records/{id}; it holds it 0 times"},
		{name: "two {id}", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: records + "/{id}/{id}"},
			wantErr: "it holds it 2 times"},
		{name: "{id} in the host", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: "https://{id}.example.com/r?" + query},
			wantErr: "target.delete_url: {id} must be in the path or the query of https://{id}.example.com/r?REDACTED"},
		{name: "{id} in the fragment", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: records + "#{id}"},
			wantErr: "{id} must be in the path or the query"},
		{name: "other scheme", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: "ftp://example.com/r/{id}?" + query},
			wantErr: "target.delete_url: ftp://example.com/r/{id}?REDACTED is not an absolute http or https URL"},
		{name: "relative", cfg: HTTPConfig{Deletes: DeletesRequest, DeleteURL: "/r/{id}"},
			wantErr: "target.delete_url: /r/{id} is not an absolute http or https URL"},
		{name: "delete URL without request", cfg: HTTPConfig{Deletes: DeletesTombstone, IDKey: "id", Tombstone: tomb, DeleteURL: records + "/{id}"},
			wantErr: `target.delete_url: only used with deletes "request", and deletes is "tombstone"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = records
			_, err := NewHTTP(tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("NewHTTP: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("NewHTTP error = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), query) {
				t.Errorf("error leaks the query: %v", err)
			}
		})
	}
}
