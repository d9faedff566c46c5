package mailchimp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
)

func TestMembersQuery(t *testing.T) {
	since := time.Date(2015, 10, 21, 15, 41, 36, 0, time.FixedZone("PDT", -7*3600))
	before := time.Date(2015, 10, 22, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    mailchimp.MembersQuery
		want url.Values
	}{
		{"empty query sends nothing", mailchimp.MembersQuery{}, url.Values{}},
		{
			"count and offset",
			mailchimp.MembersQuery{Count: 1000, Offset: 2000},
			url.Values{"count": {"1000"}, "offset": {"2000"}},
		},
		{"count capped at 1000", mailchimp.MembersQuery{Count: 5000}, url.Values{"count": {"1000"}}},
		{
			"fields get total_items",
			mailchimp.MembersQuery{Fields: []string{"members.id", "members.merge_fields.FNAME"}},
			url.Values{"fields": {"members.id,members.merge_fields.FNAME,total_items"}},
		},
		{
			"total_items not duplicated",
			mailchimp.MembersQuery{Fields: []string{"total_items", "members.id"}},
			url.Values{"fields": {"total_items,members.id"}},
		},
		{
			"exclude_fields never drops total_items",
			mailchimp.MembersQuery{ExcludeFields: []string{"_links", "total_items", "members._links"}},
			url.Values{"exclude_fields": {"_links,members._links"}},
		},
		{
			"since in UTC, before, status, sort",
			mailchimp.MembersQuery{Since: since, Before: before, Status: "archived", SortField: "last_changed", SortDir: "ASC"},
			url.Values{
				"since_last_changed":  {"2015-10-21T22:41:36+00:00"},
				"before_last_changed": {"2015-10-22T00:00:00+00:00"},
				"status":              {"archived"},
				"sort_field":          {"last_changed"},
				"sort_dir":            {"ASC"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, membersHandler(0))
			cfg, _ := testConfig(s.URL)
			if _, err := newClient(t, cfg).Members(context.Background(), testList, tt.q); err != nil {
				t.Fatalf("Members: %v", err)
			}
			r := s.last()
			if r.URL.Path != "/3.0/lists/"+testList+"/members" {
				t.Errorf("path = %q", r.URL.Path)
			}
			if diff := cmp.Diff(tt.want, r.URL.Query()); diff != "" {
				t.Errorf("query (-want +got):\n%s", diff)
			}
		})
	}
	// The caller's slice must not grow a hidden "total_items".
	fields := make([]string, 1, 4)
	fields[0] = "members.id"
	s := newServer(t, membersHandler(0))
	cfg, _ := testConfig(s.URL)
	_, _ = newClient(t, cfg).Members(context.Background(), testList, mailchimp.MembersQuery{Fields: fields})
	if got := fields[:cap(fields)][1]; got != "" {
		t.Errorf("Members wrote %q into the caller's Fields backing array", got)
	}
}

// A '+' in the offset must be escaped, or the server reads a space.
func TestMembersQueryEscapesPlus(t *testing.T) {
	s := newServer(t, membersHandler(0))
	cfg, _ := testConfig(s.URL)
	q := mailchimp.MembersQuery{Since: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := newClient(t, cfg).Members(context.Background(), testList, q); err != nil {
		t.Fatal(err)
	}
	if raw := s.last().URL.RawQuery; raw != "since_last_changed=2024-01-01T00%3A00%3A00%2B00%3A00" {
		t.Errorf("raw query = %q", raw)
	}
}

func TestPager(t *testing.T) {
	tests := []struct {
		name        string
		members     int
		handler     func(n int) http.HandlerFunc
		count       int
		wantSizes   []int
		wantOffsets []int
		wantReqs    int
	}{
		{"2500 in pages of 1000", 2500, membersHandler, 1000, []int{1000, 1000, 500}, []int{0, 1000, 2000}, 3},
		{"zero count means 1000", 2500, membersHandler, 0, []int{1000, 1000, 500}, []int{0, 1000, 2000}, 3},
		{"exact multiple needs no empty page", 2000, membersHandler, 1000, []int{1000, 1000}, []int{0, 1000}, 2},
		{"empty audience", 0, membersHandler, 1000, nil, nil, 1},
		{
			"stops on an empty page even if total_items overstates",
			1500,
			func(n int) http.HandlerFunc {
				h := membersHandler(n)
				return func(w http.ResponseWriter, r *http.Request) {
					rec := &totalOverride{ResponseWriter: w, total: 9999}
					h(rec, r)
				}
			},
			1000, []int{1000, 500}, []int{0, 1000}, 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.handler(tt.members))
			cfg, _ := testConfig(s.URL)
			p := newClient(t, cfg).Pager(testList, mailchimp.MembersQuery{Count: tt.count, Fields: []string{"members.id"}})
			var sizes, offsets []int
			seen := map[string]bool{}
			for p.Next(context.Background()) {
				page := p.Page()
				sizes = append(sizes, len(page.Members))
				offsets = append(offsets, page.Offset)
				for _, m := range page.Members {
					if seen[m.ID()] {
						t.Fatalf("member %s delivered twice", m.ID())
					}
					seen[m.ID()] = true
				}
			}
			if err := p.Err(); err != nil {
				t.Fatalf("Err: %v", err)
			}
			if diff := cmp.Diff(tt.wantSizes, sizes); diff != "" {
				t.Errorf("page sizes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantOffsets, offsets); diff != "" {
				t.Errorf("page offsets (-want +got):\n%s", diff)
			}
			if len(seen) != tt.members || s.count() != tt.wantReqs {
				t.Errorf("got %d members in %d requests, want %d in %d", len(seen), s.count(), tt.members, tt.wantReqs)
			}
		})
	}
}

// totalOverride rewrites total_items in a JSON members response.
type totalOverride struct {
	http.ResponseWriter
	total int
}

func (o *totalOverride) Write(b []byte) (int, error) {
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return o.ResponseWriter.Write(b)
	}
	doc["total_items"] = o.total
	out, _ := json.Marshal(doc)
	_, err := o.ResponseWriter.Write(out)
	return len(b), err
}

func TestPagerStopsOnError(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("offset") == "" {
			membersHandler(1500)(w, r)
			return
		}
		writeProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
	})
	cfg, _ := testConfig(s.URL)
	p := newClient(t, cfg).Pager(testList, mailchimp.MembersQuery{Count: 1000})
	pages := 0
	for p.Next(context.Background()) {
		pages++
	}
	if pages != 1 || !mailchimp.IsKind(p.Err(), mailchimp.KindNotFound) || p.Page() != nil || p.Offset() != 1000 {
		t.Errorf("pages=%d err=%v page=%v offset=%d; want 1 page, KindNotFound, nil page, offset 1000",
			pages, p.Err(), p.Page(), p.Offset())
	}
	if p.Next(context.Background()) || s.count() != 2 {
		t.Errorf("Next after an error must not send requests (sent %d)", s.count())
	}
}

func TestMemberAccessors(t *testing.T) {
	date := "Fri, 01 Mar 2024 12:00:07 GMT"
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", date)
		membersHandler(1)(w, r)
	})
	cfg, _ := testConfig(s.URL)
	page, err := newClient(t, cfg).Members(context.Background(), testList, mailchimp.MembersQuery{Count: 10})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 3, 1, 12, 0, 7, 0, time.UTC); !page.ServerTime.Equal(want) {
		t.Errorf("ServerTime = %v, want %v", page.ServerTime, want)
	}
	if page.ListID != testList || page.TotalItems != 1 || len(page.Members) != 1 {
		t.Fatalf("page = %+v", page)
	}
	m := page.Members[0]
	if m.ID() != "00000000000000000000000000000000" {
		t.Errorf("ID = %q", m.ID())
	}
	if lc, err := m.LastChanged(); err != nil || !lc.Equal(epoch) {
		t.Errorf("LastChanged = %v, %v; want %v", lc, err, epoch)
	}
	lookups := []struct {
		path string
		want any
		ok   bool
	}{
		{"merge_fields.FNAME", "First0", true},
		{"merge_fields.LNAME", "", true},
		{"merge_fields.AGE", json.Number("30"), true}, // numbers stay numbers
		{"member_rating", json.Number("2"), true},
		{"tags.0.name", "vip", true},
		{"tags.1.name", nil, false},
		{"merge_fields.NOPE", nil, false},
		{"email_address.x", nil, false},
	}
	for _, l := range lookups {
		got, ok := m.Lookup(l.path)
		if ok != l.ok || !cmp.Equal(got, l.want) {
			t.Errorf("Lookup(%q) = %#v, %v; want %#v, %v", l.path, got, ok, l.want, l.ok)
		}
	}
	if _, err := (mailchimp.Member{"id": "x"}).LastChanged(); err == nil {
		t.Error("LastChanged without the field should fail")
	}
}

func TestMember(t *testing.T) {
	hash := mailchimp.SubscriberHash("User7@Example.com")
	if hash != mailchimp.SubscriberHash("user7@example.com") || len(hash) != 32 {
		t.Fatalf("SubscriberHash is not the MD5 of the lower-cased address: %q", hash)
	}
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/3.0/lists/" + testList + "/members/" + hash:
			writeJSON(w, member(7))
		case "/3.0/lists/" + testList + "/members/bad":
			writeProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid.")
		default:
			writeProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		}
	})
	cfg, _ := testConfig(s.URL)
	c := newClient(t, cfg)
	ctx := context.Background()

	// A mapping's Fields (the members endpoint's form) may be passed as
	// they are: the prefix and total_items are dropped.
	m, err := c.Member(ctx, testList, hash, []string{"members.id", "members.merge_fields.AGE", "total_items"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.last().URL.Query().Get("fields"); got != "id,merge_fields.AGE" {
		t.Errorf("fields = %q, want id,merge_fields.AGE", got)
	}
	if age, _ := m.Lookup("merge_fields.AGE"); m.ID() != fmt.Sprintf("%032x", 7) || age != json.Number("37") {
		t.Errorf("member = %v; want member 7 with its AGE kept as a json.Number", m)
	}

	_, err = c.Member(ctx, testList, "0000", nil)
	if !errors.Is(err, mailchimp.ErrMemberNotFound) || mailchimp.IsKind(err, mailchimp.KindNotFound) || !strings.Contains(err.Error(), testConn) {
		t.Errorf("deleted member: err = %v; want ErrMemberNotFound naming the connection, not a missing-audience error", err)
	}
	if _, err := c.Member(ctx, testList, "bad", nil); !mailchimp.IsKind(err, mailchimp.KindAuth) {
		t.Errorf("rejected key: err = %v, want KindAuth", err)
	}
	if _, err := c.Member(ctx, testList, "", nil); err == nil {
		t.Error("an empty hash was sent")
	}
	if n := s.count(); n != 3 {
		t.Errorf("%d requests, want 3 (a 404 and a 401 are not retried)", n)
	}
}
