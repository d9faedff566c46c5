package mcsim

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const simToken = "tok-0123456789abcdef"

// bearer makes a request with "Authorization: <scheme> <token>".
func (s *simServer) bearer(scheme, token, path string, query url.Values) response {
	s.t.Helper()
	u := s.srv.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", scheme+" "+token)
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

// An access token works as a Bearer header on every API route until it is
// revoked; then it gets Mailchimp's 401, and so does the metadata endpoint.
func TestAccessTokenAuth(t *testing.T) {
	s := newSimServer(t, Options{Members: 3})
	if r := s.bearer("Bearer", simToken, "/3.0/ping", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown token: status %d, want 401", r.status)
	}
	s.sim.AddAccessToken(simToken)
	for _, path := range []string{"/3.0/ping", "/3.0/lists", "/3.0/lists/" + s.sim.ListID(), "/3.0/lists/" + s.sim.ListID() + "/members"} {
		if r := s.bearer("Bearer", simToken, path, nil); r.status != http.StatusOK {
			t.Errorf("GET %s with the token: status %d: %s", path, r.status, r.body)
		}
	}
	if r := s.request(simToken, "/3.0/ping", nil); r.status != http.StatusUnauthorized {
		t.Errorf("the token as a Basic auth key: status %d, want 401 (a token is no key)", r.status)
	}

	s.sim.RevokeAccessToken(simToken)
	r := s.bearer("Bearer", simToken, "/3.0/ping", nil)
	if p := decodeProblem(t, r); r.status != http.StatusUnauthorized || p.Title != "API Key Invalid" || p.Status != 401 {
		t.Errorf("revoked token: status %d, problem %+v; want 401 API Key Invalid", r.status, p)
	}
	if strings.Contains(string(r.body), simToken) {
		t.Error("the 401 echoes the token")
	}
	if m := s.bearer("OAuth", simToken, MetadataPath, nil); m.status != http.StatusUnauthorized || string(m.body) != `{"error":"invalid_token"}` {
		t.Errorf("metadata with a revoked token: %d %s", m.status, m.body)
	}
}

// The metadata endpoint names the simulator itself as api_endpoint, counts
// its requests apart, and wants the OAuth scheme.
func TestMetadataEndpoint(t *testing.T) {
	s := newSimServer(t, Options{})
	s.sim.AddAccessToken(simToken)
	r := s.bearer("OAuth", simToken, MetadataPath, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var doc map[string]any
	decodeJSON(t, r.body, &doc)
	if doc["dc"] != "us1" || doc["role"] != "owner" || doc["api_endpoint"] != s.srv.URL || doc["accountname"] == "" || doc["login_url"] == "" {
		t.Errorf("metadata = %v, want dc us1, role owner, api_endpoint %s", doc, s.srv.URL)
	}
	for _, bad := range []struct{ scheme, token string }{{"Bearer", simToken}, {"OAuth", "unknown"}, {"OAuth", ""}} {
		if r := s.bearer(bad.scheme, bad.token, MetadataPath, nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s %q: status %d, want 401", bad.scheme, bad.token, r.status)
		}
	}
	if st := s.sim.Stats(); st.MetadataRequests != 4 || st.Requests != 0 || len(st.ByStatus) != 0 {
		t.Errorf("stats %+v; want 4 metadata requests and nothing else", st)
	}
}

// A token has its own MaxConnsPerKey slots, apart from a key of the same
// text.
func TestConnectionLimitPerToken(t *testing.T) {
	s := newSimServer(t, Options{MaxConnsPerKey: 2})
	s.sim.AddAccessToken(simToken)
	s.sim.AddAPIKey(simToken)
	arrived, release := make(chan struct{}), make(chan struct{})
	s.sim.testHookAcquired = func(cred string) {
		arrived <- struct{}{}
		<-release
	}
	done := make(chan int, 2)
	for range 2 {
		go func() { done <- s.bearer("Bearer", simToken, "/3.0/ping", nil).status }()
		<-arrived
	}
	if r := s.bearer("Bearer", simToken, "/3.0/ping", nil); r.status != http.StatusTooManyRequests {
		t.Errorf("3rd request on a token with 2 slots: status %d, want 429", r.status)
	}
	go func() { done <- s.request(simToken, "/3.0/ping", nil).status }()
	<-arrived // the key of the same text still had a slot
	close(release)
	for range 3 {
		if st := <-done; st != http.StatusOK {
			t.Errorf("held request: status %d", st)
		}
	}
}

// listsPage is the decoded GET /lists response.
type listsPage struct {
	Lists []map[string]any `json:"lists"`
	Total int              `json:"total_items"`
}

func (s *simServer) lists(scheme, cred string, query url.Values) listsPage {
	s.t.Helper()
	var r response
	if scheme == "" {
		r = s.request(cred, "/3.0/lists", query)
	} else {
		r = s.bearer(scheme, cred, "/3.0/lists", query)
	}
	if r.status != http.StatusOK {
		s.t.Fatalf("GET /lists: status %d: %s", r.status, r.body)
	}
	var p listsPage
	decodeJSON(s.t, r.body, &p)
	return p
}

func listIDs(p listsPage) []string {
	var out []string
	for _, l := range p.Lists {
		out = append(out, l["id"].(string))
	}
	return out
}

// A credential that owns lists sees those only, in /lists and on their
// routes; one that owns none sees every list. /lists pages and trims like
// the other endpoints; a removed list is gone from both.
func TestAccountsAndLists(t *testing.T) {
	s := newSimServer(t, Options{Members: 2})
	s.sim.AddAccessToken(simToken)
	for _, id := range []string{"c3", "a1", "b2"} {
		s.sim.AddAccountList(simToken, id, 2, 7)
	}
	s.sim.AddList("other", 1, 1)

	p := s.lists("Bearer", simToken, vals("fields", "lists.id,lists.name,total_items"))
	if diff := cmp.Diff([]string{"a1", "b2", "c3"}, listIDs(p)); diff != "" || p.Total != 3 {
		t.Errorf("the token's lists (-want +got):\n%s total %d", diff, p.Total)
	}
	if got := keysOf(p.Lists[0]); !cmp.Equal(got, []string{"id", "name"}) {
		t.Errorf("trimmed list keys = %v, want id and name", got)
	}
	if r := s.bearer("Bearer", simToken, "/3.0/lists/other/members", nil); r.status != http.StatusNotFound {
		t.Errorf("another account's list: status %d, want 404", r.status)
	}
	if all := s.lists("", s.sim.APIKey(), nil); all.Total != 5 || len(all.Lists) != 5 || all.Lists[0]["stats"] == nil {
		t.Errorf("a key that owns no list: %d of %d lists, want all 5 with stats", len(all.Lists), all.Total)
	}
	paged := s.lists("Bearer", simToken, vals("count", "2", "offset", "1"))
	if diff := cmp.Diff([]string{"b2", "c3"}, listIDs(paged)); diff != "" || paged.Total != 3 {
		t.Errorf("count=2 offset=1 (-want +got):\n%s total %d", diff, paged.Total)
	}
	if r := s.bearer("Bearer", simToken, "/3.0/lists", vals("count", "x")); r.status != http.StatusBadRequest {
		t.Errorf("count=x: status %d, want 400", r.status)
	}

	s.sim.RemoveList("b2")
	if diff := cmp.Diff([]string{"a1", "c3"}, listIDs(s.lists("Bearer", simToken, nil))); diff != "" {
		t.Errorf("after RemoveList (-want +got):\n%s", diff)
	}
	for _, path := range []string{"/3.0/lists/b2", "/3.0/lists/b2/members", "/3.0/lists/b2/webhooks"} {
		if r := s.bearer("Bearer", simToken, path, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s of a removed list: status %d, want 404", path, r.status)
		}
	}
}

// Every member document carries list_id, trimmed by fields like any other
// field.
func TestMembersCarryListID(t *testing.T) {
	s := newSimServer(t, Options{Members: 2, ListID: "l1"})
	page := s.members(vals("fields", "members.id,members.list_id"))
	for _, m := range page.Members {
		if m["list_id"] != "l1" || len(m) != 2 {
			t.Errorf("member %v, want id and list_id l1", m)
		}
	}
	id := page.Members[0]["id"].(string)
	var one map[string]any
	decodeJSON(t, s.get("/3.0/lists/l1/members/"+id, nil).body, &one)
	if one["list_id"] != "l1" {
		t.Errorf("one member's list_id = %v, want l1", one["list_id"])
	}
	one = nil
	decodeJSON(t, s.get("/3.0/lists/l1/members/"+id, vals("fields", "id")).body, &one)
	if _, ok := one["list_id"]; ok {
		t.Errorf("fields=id kept list_id: %v", one)
	}
}
