package mcsim

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
)

// start is the fake clock's time when a test simulator is created.
var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newFakeAtStart() *clock.Fake { return clock.NewFake(start) }

// simServer is a simulator behind a real HTTP server, and a client for it.
type simServer struct {
	t     *testing.T
	sim   *Mailchimp
	clock *clock.Fake
	srv   *httptest.Server
}

func newSimServer(t *testing.T, opts Options) *simServer {
	t.Helper()
	fake := clock.NewFake(start)
	if opts.Clock == nil {
		opts.Clock = fake
	}
	sim := New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &simServer{t: t, sim: sim, clock: fake, srv: srv}
}

// response is what a test request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (s *simServer) request(key, path string, query url.Values) response {
	s.t.Helper()
	u := s.srv.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth("anystring", key)
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// get requests path with the simulator's key.
func (s *simServer) get(path string, query url.Values) response {
	s.t.Helper()
	return s.request(s.sim.APIKey(), path, query)
}

// membersPage is the decoded members response.
type membersPage struct {
	Members []map[string]any `json:"members"`
	ListID  string           `json:"list_id"`
	Total   int              `json:"total_items"`
}

// members fetches a members page of the first list and fails on anything
// but 200.
func (s *simServer) members(query url.Values) membersPage {
	s.t.Helper()
	return s.membersOf(s.sim.ListID(), query)
}

func (s *simServer) membersOf(listID string, query url.Values) membersPage {
	s.t.Helper()
	r := s.get("/3.0/lists/"+listID+"/members", query)
	if r.status != http.StatusOK {
		s.t.Fatalf("members %v: status %d: %s", query, r.status, r.body)
	}
	var p membersPage
	decodeJSON(s.t, r.body, &p)
	return p
}

func decodeJSON(t *testing.T, body []byte, into any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("decoding %q: %v", truncateForLog(body), err)
	}
}

func truncateForLog(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// ids returns the "id" of each member in a page.
func ids(ms []map[string]any) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i], _ = m["id"].(string)
	}
	return out
}

// memberIDs returns the ids of members selected by keep, in order.
func memberIDs(ms []Member, keep func(Member) bool) []string {
	var out []string
	for _, m := range ms {
		if keep == nil || keep(m) {
			out = append(out, m.ID)
		}
	}
	return out
}

func notArchived(m Member) bool { return m.Status != StatusArchived }

// keysOf returns the sorted keys of a decoded JSON object.
func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// problemDoc is a decoded problem+json body.
type problemDoc struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Errors   []fieldError `json:"errors"`
}

func decodeProblem(t *testing.T, r response) problemDoc {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problemDoc
	decodeJSON(t, r.body, &p)
	return p
}

// everyID pages a members view of the first list to its end, 1000 ids at
// a time as the engine's scan does, and returns its ids in order and the
// total_items of its first page.
func (s *simServer) everyID(query url.Values) (got []string, total int) {
	s.t.Helper()
	for offset := 0; ; offset += 1000 {
		q := withOffset(query, offset)
		q.Set("count", "1000")
		q.Set("fields", "members.id,total_items")
		p := s.members(q)
		if offset == 0 {
			total = p.Total
		}
		if len(p.Members) == 0 {
			return got, total
		}
		got = append(got, ids(p.Members)...)
	}
}

// totalItems sizes a view of the first list as the sync engine does:
// count=1 and fields=total_items.
func (s *simServer) totalItems(query url.Values) int {
	s.t.Helper()
	q := maps.Clone(query)
	if q == nil {
		q = url.Values{}
	}
	q.Set("count", "1")
	q.Set("fields", "total_items")
	r := s.get("/3.0/lists/"+s.sim.ListID()+"/members", q)
	var doc map[string]json.Number
	decodeJSON(s.t, r.body, &doc)
	if r.status != http.StatusOK || len(doc) != 1 {
		s.t.Fatalf("total_items %v: status %d: %s", query, r.status, r.body)
	}
	n, err := doc["total_items"].Int64()
	if err != nil {
		s.t.Fatal(err)
	}
	return int(n)
}

// sourceIDs pages a members view to its end through an in-process Source
// and returns its ids in order and the total_items of its first page.
func sourceIDs(t *testing.T, src *Source, listID string, q mailchimp.MembersQuery) (got []string, total int) {
	t.Helper()
	q.Count, q.Fields = 1000, []string{"members.id"}
	for q.Offset = 0; ; q.Offset += 1000 {
		page, err := src.Members(context.Background(), listID, q)
		if err != nil {
			t.Fatal(err)
		}
		if q.Offset == 0 {
			total = page.TotalItems
		}
		if len(page.Members) == 0 {
			return got, total
		}
		for _, m := range page.Members {
			got = append(got, m.ID())
		}
	}
}
