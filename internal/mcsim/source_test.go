package mcsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/retry"
)

// sourcePair is two simulators built alike, one behind HTTP and the
// Mailchimp client, the other answering through an in-process Source: fed
// the same calls, they must give the same answers.
type sourcePair struct {
	http, inProcess *Mailchimp
	client          *mailchimp.Client
	source          *Source
}

func newSourcePair(t *testing.T, opts Options) *sourcePair {
	t.Helper()
	o1, o2 := opts, opts
	o1.Clock, o2.Clock = newFakeAtStart(), newFakeAtStart()
	p := &sourcePair{http: New(o1), inProcess: New(o2)}
	srv := httptest.NewServer(p.http)
	t.Cleanup(srv.Close)
	var err error
	p.client, err = mailchimp.New(mailchimp.Config{APIKey: p.http.APIKey(), BaseURL: srv.URL + "/3.0",
		Retry: retry.Policy{MaxAttempts: 1, Clock: newFakeAtStart()}})
	if err != nil {
		t.Fatal(err)
	}
	p.source = p.inProcess.Source(p.inProcess.APIKey())
	return p
}

// TestSourceAgreesWithHTTP pages the same queries, under churn and with
// either inclusivity, through HTTP and in process: every page must match.
func TestSourceAgreesWithHTTP(t *testing.T) {
	windowEnd := start.Add(-time.Second)
	queries := []mailchimp.MembersQuery{
		{Count: 100, SortField: "last_changed", SortDir: "ASC", Before: windowEnd},
		{Count: 100, Offset: 90, SortField: "last_changed", SortDir: "ASC", Before: windowEnd, Fields: []string{"members.id", "members.last_changed", "members.merge_fields.FNAME"}},
		{Count: 50, Status: StatusArchived, SortField: "last_changed", SortDir: "ASC"},
		{Count: 1000, Since: start.Add(-30 * 24 * time.Hour), Before: windowEnd, ExcludeFields: []string{"members.tags", "_links"}},
		{Count: 10, Offset: 5000}, // past the end
		{Count: 20, Status: StatusSubscribed, SortField: "timestamp_opt", SortDir: "DESC"},
	}
	for _, inclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("inclusive=%v", inclusive), func(t *testing.T) {
			p := newSourcePair(t, Options{Members: 800, Seed: 3, Inclusive: inclusive})
			p.http.SetChurnPerRequest(p.http.ListID(), 4)
			p.inProcess.SetChurnPerRequest(p.inProcess.ListID(), 4)
			ctx := context.Background()
			for i, q := range queries {
				want, err := p.client.Members(ctx, DefaultListID, q)
				if err != nil {
					t.Fatalf("query %d over HTTP: %v", i, err)
				}
				got, err := p.source.Members(ctx, DefaultListID, q)
				if err != nil {
					t.Fatalf("query %d in process: %v", i, err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("query %d %+v: in-process page differs (-HTTP +in process):\n%s", i, q, diff)
				}
			}
			hs, is := p.http.Stats(), p.inProcess.Stats()
			if hs.Requests != is.Requests || hs.MemberPages != is.MemberPages || hs.MembersServed != is.MembersServed {
				t.Errorf("simulator stats differ: HTTP %+v, in process %+v", hs, is)
			}
			if st := p.source.Stats(); st.Requests != int64(len(queries)) || st.ByStatus[http.StatusOK] != int64(len(queries)) {
				t.Errorf("source stats = %+v, want %d requests answered 200", st, len(queries))
			}
		})
	}
}

// TestSourceFaultsAndAuth: an injected fault fails the in-process call with
// the error the client gives once its retries run out; a wrong key gets 401.
func TestSourceFaultsAndAuth(t *testing.T) {
	sim := New(Options{Members: 30, Seed: 4, Clock: newFakeAtStart()})
	src := sim.Source(sim.APIKey())
	ctx := context.Background()
	q := mailchimp.MembersQuery{Count: 10}
	kinds := map[Fault]mailchimp.Kind{
		FaultServerHTML:      mailchimp.KindServer,
		FaultRateLimit:       mailchimp.KindRateLimited,
		FaultForbiddenNoBody: mailchimp.KindRateLimited,
		FaultDrop:            mailchimp.KindTransport,
		FaultTruncate:        mailchimp.KindBadBody,
	}
	for _, f := range allFaults {
		sim.FailNext(f)
		if _, err := src.Members(ctx, DefaultListID, q); !mailchimp.IsKind(err, kinds[f]) {
			t.Errorf("%s: err = %v, want kind %s", f, err, kinds[f])
		}
	}
	if page, err := src.Members(ctx, DefaultListID, q); err != nil || len(page.Members) != 10 {
		t.Fatalf("after the faults: %v, %v", page, err)
	}
	if st := sim.Stats(); st.Faults != len(allFaults) || st.MemberPages != 1 || st.Requests != len(allFaults)+1 {
		t.Errorf("simulator stats = %+v, want %d faults and 1 page", st, len(allFaults))
	}
	if _, err := sim.Source("ffffffffffffffffffffffffffffffff-us6").Members(ctx, DefaultListID, q); !mailchimp.IsKind(err, mailchimp.KindAuth) {
		t.Errorf("wrong key: err = %v, want KindAuth", err)
	}
	if _, err := src.Members(ctx, "nosuchlist", q); !mailchimp.IsKind(err, mailchimp.KindNotFound) {
		t.Errorf("unknown list: err = %v, want KindNotFound", err)
	}
	if _, err := src.Members(ctx, DefaultListID, mailchimp.MembersQuery{SortField: "nope"}); !mailchimp.IsKind(err, mailchimp.KindInvalid) {
		t.Errorf("bad sort_field: err = %v, want KindInvalid", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Members(cancelled, DefaultListID, q); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestOneMember: GET /lists/{id}/members/{hash} over HTTP, through the
// client and in process: fields, archived members still returned, 404 once
// deleted for good.
func TestOneMember(t *testing.T) {
	s := newSimServer(t, Options{Members: 20, Seed: 5})
	list := s.sim.ListID()
	all := s.sim.Members(list)
	m, other := all[3], all[4]
	must(t, s.sim.Archive(list, m.ID))

	r := s.get("/3.0/lists/"+list+"/members/"+m.ID, vals("fields", "id,status,merge_fields.FNAME"))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var doc map[string]any
	decodeJSON(t, r.body, &doc)
	if diff := cmp.Diff([]string{"id", "merge_fields", "status"}, keysOf(doc)); diff != "" || doc["status"] != StatusArchived {
		t.Errorf("archived member = %v; want only the fields asked for, status archived (%s)", doc, diff)
	}
	if r := s.get("/3.0/lists/"+list+"/members/"+url.PathEscape(other.EmailAddress), nil); r.status != http.StatusOK {
		t.Errorf("by address: status %d", r.status)
	}

	client, err := mailchimp.New(mailchimp.Config{APIKey: s.sim.APIKey(), BaseURL: s.srv.URL + "/3.0", Retry: retry.Policy{MaxAttempts: 1}})
	must(t, err)
	src := s.sim.Source(s.sim.APIKey())
	ctx := context.Background()
	fields := []string{"members.id", "members.status", "total_items"}
	viaHTTP, err := client.Member(ctx, list, m.ID, fields)
	must(t, err)
	inProcess, err := src.Member(ctx, list, m.ID, fields)
	must(t, err)
	if diff := cmp.Diff(viaHTTP, inProcess); diff != "" || viaHTTP["status"] != StatusArchived {
		t.Errorf("member over HTTP and in process (-HTTP +in process):\n%s", diff)
	}

	must(t, s.sim.Delete(list, m.ID))
	if r := s.get("/3.0/lists/"+list+"/members/"+m.ID, nil); r.status != http.StatusNotFound || decodeProblem(t, r).Title != "Resource Not Found" {
		t.Errorf("deleted member: status %d: %s", r.status, r.body)
	}
	if r := s.get("/3.0/lists/nosuchlist/members/"+other.ID, nil); r.status != http.StatusNotFound {
		t.Errorf("unknown list: status %d", r.status)
	}
	if _, err := client.Member(ctx, list, m.ID, nil); !errors.Is(err, mailchimp.ErrMemberNotFound) {
		t.Errorf("client, deleted member: %v", err)
	}
	if _, err := src.Member(ctx, list, m.ID, nil); !errors.Is(err, mailchimp.ErrMemberNotFound) {
		t.Errorf("in process, deleted member: %v", err)
	}
}

// TestUnstableTieOrder: with the option on, members sharing a last_changed
// second come in a new order on each request, the set unchanged.
func TestUnstableTieOrder(t *testing.T) {
	s := newSimServer(t, Options{Members: 0, Seed: 6})
	list := s.sim.ListID()
	for i := range 40 {
		_, err := s.sim.Add(list, Member{EmailAddress: fmt.Sprintf("tie%d@example.com", i)})
		must(t, err)
	}
	src := s.sim.Source(s.sim.APIKey())
	q := mailchimp.MembersQuery{Count: 1000, SortField: "last_changed", SortDir: "ASC"}
	order := func() []string {
		page, err := src.Members(context.Background(), list, q)
		must(t, err)
		var out []string
		for _, m := range page.Members {
			out = append(out, m.ID())
		}
		return out
	}
	httpOrder := func() []string {
		return ids(s.members(vals("count", "1000", "sort_field", "last_changed", "sort_dir", "ASC")).Members)
	}
	stable := order()
	if !slices.Equal(stable, order()) || !slices.Equal(stable, httpOrder()) {
		t.Fatal("ties moved with the option off")
	}
	s.sim.SetUnstableTieOrder(true)
	a, b, c := order(), order(), httpOrder()
	if slices.Equal(a, b) || slices.Equal(a, c) {
		t.Error("ties kept their order with the option on")
	}
	for _, got := range [][]string{a, b, c} {
		got = slices.Clone(got)
		slices.Sort(got)
		want := slices.Clone(stable)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatal("the shuffled page holds other members than the stable one")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
