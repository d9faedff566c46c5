package mcsim

import (
	"context"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chimport/chimport/internal/mailchimp"
)

// TestStatsCountRequestsByKind: members pages, one-member requests and the
// rest are counted apart, whatever their outcome, over HTTP and in process
// alike, and add up to Requests; ResetStats zeroes them. Tests of the
// engine assert with them that a run with nothing changed makes at most 4
// requests.
func TestStatsCountRequestsByKind(t *testing.T) {
	s := newSimServer(t, Options{Members: 20, Seed: 2})
	list := s.sim.ListID()
	id := s.sim.Members(list)[0].ID
	visible := len(memberIDs(s.sim.Members(list), notArchived))
	gone := MemberID("nobody@example.com")
	send := func(method, path string, key string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.srv.URL+path, nil)
		if key != "" {
			req.SetBasicAuth("u", key)
		}
		resp, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	key := s.sim.APIKey()
	send("GET", "/3.0/lists/"+list+"/members?count=1000&fields=members.id,total_items", key)
	send("GET", "/3.0/lists/"+list+"/members?count=1&fields=total_items&status=archived", key)
	send("GET", "/3.0/lists/"+list+"/members/", key) // the same endpoint, default count 10
	send("GET", "/3.0/lists/"+list+"/members", "")   // 401, still a page request
	send("GET", "/3.0/lists/"+list+"/members/"+id+"?fields=id,status", key)
	send("GET", "/3.0/lists/"+list+"/members/"+gone, key)
	send("GET", "/3.0/ping", key)
	send("GET", "/3.0/lists/"+list, key)
	send("POST", "/3.0/lists/"+list+"/members", key)             // 405
	send("DELETE", "/3.0/lists/"+list+"/members/"+id, key)       // 405
	send("GET", "/3.0/lists/"+list+"/members/"+id+"/notes", key) // 404
	send("GET", "/favicon.ico", key)
	want := Stats{Requests: 12, PageRequests: 4, MemberRequests: 2, OtherRequests: 6, MemberNotFound: 1,
		ByStatus: map[int]int{200: 6, 401: 1, 404: 3, 405: 2}, MemberPages: 3, MembersServed: visible + 1 + 10}
	ignore := cmpopts.IgnoreFields(Stats{}, "BytesServed", "MaxInFlight")
	if diff := cmp.Diff(want, s.sim.Stats(), ignore); diff != "" {
		t.Errorf("over HTTP (-want +got):\n%s", diff)
	}

	s.sim.ResetStats()
	if diff := cmp.Diff(Stats{ByStatus: map[int]int{}}, s.sim.Stats()); diff != "" {
		t.Errorf("after ResetStats (-want +got):\n%s", diff)
	}

	src := s.sim.Source(key)
	ctx := context.Background()
	for _, q := range []mailchimp.MembersQuery{{Count: 1, Fields: []string{"total_items"}}, {Count: 1, Status: StatusArchived, Fields: []string{"total_items"}}} {
		_, err := src.Members(ctx, list, q)
		must(t, err)
	}
	_, err := src.Member(ctx, list, id, []string{"id", "status"})
	must(t, err)
	_, _ = src.Member(ctx, list, gone, []string{"id", "status"})
	_, _ = s.sim.Source("wrong-us1").Member(ctx, list, id, nil) // 401, still a one-member request
	want = Stats{Requests: 5, PageRequests: 2, MemberRequests: 3, MemberNotFound: 1,
		ByStatus: map[int]int{200: 3, 401: 1, 404: 1}, MemberPages: 2, MembersServed: 2}
	if diff := cmp.Diff(want, s.sim.Stats(), ignore); diff != "" {
		t.Errorf("in process (-want +got):\n%s", diff)
	}
}
