package mcsim

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
)

func itoa(n int) string { return strconv.Itoa(n) }

func TestCountAndOffset(t *testing.T) {
	s := newSimServer(t, Options{Members: 1500, Seed: 1})
	visible := len(memberIDs(s.sim.Members(DefaultListID), notArchived))
	tests := []struct {
		name      string
		count     string
		offset    string
		wantCount int
	}{
		{"default count is 10", "", "", 10},
		{"count is honoured", "25", "", 25},
		{"count above 1000 is capped silently", "5000", "", 1000},
		{"count zero", "0", "", 0},
		{"offset past the end", "10", itoa(visible + 5), 0},
		{"last partial page", "1000", "1000", visible - 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := vals("count", tc.count, "offset", tc.offset)
			r := s.get("/3.0/lists/"+DefaultListID+"/members", q)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tc.wantCount == 0 && !strings.Contains(string(r.body), `"members":[]`) {
				t.Errorf("an empty page must be members: [], got %s", truncateForLog(r.body))
			}
			var p membersPage
			decodeJSON(t, r.body, &p)
			if len(p.Members) != tc.wantCount || p.Total != visible || p.ListID != DefaultListID {
				t.Errorf("got %d members, total %d, list %q; want %d, %d, %q",
					len(p.Members), p.Total, p.ListID, tc.wantCount, visible, DefaultListID)
			}
		})
	}
}

func TestPagingReturnsEveryMemberOnce(t *testing.T) {
	s := newSimServer(t, Options{Members: 2500, Seed: 11})
	var got []string
	for offset := 0; ; offset += 1000 {
		p := s.members(vals("count", "1000", "offset", itoa(offset)))
		if len(p.Members) == 0 {
			break
		}
		got = append(got, ids(p.Members)...)
	}
	want := memberIDs(s.sim.Members(DefaultListID), notArchived)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("paged ids differ from the natural order (-want +got):\n%s", diff)
	}
	if s.sim.Stats().MemberPages != 4 {
		t.Errorf("MemberPages = %d, want 4", s.sim.Stats().MemberPages)
	}
}

func TestStatusFilter(t *testing.T) {
	s := newSimServer(t, Options{Members: 2000, Seed: 5})
	all := s.sim.Members(DefaultListID)
	for _, status := range []string{"", StatusSubscribed, StatusUnsubscribed, StatusCleaned, StatusPending, StatusTransactional, StatusArchived} {
		t.Run("status="+status, func(t *testing.T) {
			want := memberIDs(all, func(m Member) bool {
				if status == "" {
					return m.Status != StatusArchived // archived only when asked for
				}
				return m.Status == status
			})
			if len(want) == 0 {
				t.Fatalf("the generator made no %q members", status)
			}
			p := s.members(vals("count", "1000", "status", status))
			if diff := cmp.Diff(want[:min(len(want), 1000)], ids(p.Members)); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if p.Total != len(want) {
				t.Errorf("total_items = %d, want %d", p.Total, len(want))
			}
		})
	}
}

func TestChangedWindowBoundaries(t *testing.T) {
	for _, inclusive := range []bool{false, true} {
		s := newSimServer(t, Options{Inclusive: inclusive})
		const list = "window"
		s.sim.AddList(list, 0, 1)
		// Three members changed one second apart: t0, t0+1s, t0+2s.
		var added []string
		for i, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			if i > 0 {
				s.clock.Advance(time.Second)
			}
			id, err := s.sim.Add(list, Member{EmailAddress: email})
			if err != nil {
				t.Fatal(err)
			}
			added = append(added, id)
		}
		a, b, c := added[0], added[1], added[2]
		boundary := start.Add(time.Second) // exactly b's last_changed
		tests := []struct {
			param, value string
			exclusive    []string
			inclusive    []string
		}{
			{"since_last_changed", boundary.Format("2006-01-02T15:04:05+00:00"), []string{c}, []string{b, c}},
			{"since_last_changed", boundary.Format(time.RFC3339), []string{c}, []string{b, c}},
			{"before_last_changed", boundary.Format("2006-01-02T15:04:05+00:00"), []string{a}, []string{a, b}},
			{"before_last_changed", boundary.In(time.FixedZone("x", 2*3600)).Format(time.RFC3339), []string{a}, []string{a, b}},
		}
		for _, tc := range tests {
			want := tc.exclusive
			if inclusive {
				want = tc.inclusive
			}
			p := s.membersOf(list, vals(tc.param, tc.value))
			if diff := cmp.Diff(want, ids(p.Members)); diff != "" {
				t.Errorf("inclusive=%v %s=%s (-want +got):\n%s", inclusive, tc.param, tc.value, diff)
			}
		}
		p := s.membersOf(list, vals("since_last_changed", start.Format(time.RFC3339), "before_last_changed", start.Add(2*time.Second).Format(time.RFC3339)))
		want := []string{b}
		if inclusive {
			want = []string{a, b, c}
		}
		if diff := cmp.Diff(want, ids(p.Members)); diff != "" {
			t.Errorf("inclusive=%v since+before (-want +got):\n%s", inclusive, diff)
		}
	}
}

func TestSort(t *testing.T) {
	s := newSimServer(t, Options{})
	const list = "sorted"
	s.sim.AddList(list, 0, 1)
	// Natural order: m0..m3. last_changed: m0=t0+2, m1=t0, m2=t0+2, m3=t0+1.
	// timestamp_opt is set explicitly, in the reverse of natural order.
	stamps := []time.Duration{2, 0, 2, 1}
	var natural []string
	for i, d := range stamps {
		s.clock.Set(start.Add(d * time.Second))
		id, err := s.sim.Add(list, Member{
			EmailAddress: "m" + itoa(i) + "@example.com",
			TimestampOpt: start.Add(-time.Duration(i) * time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		natural = append(natural, id)
	}
	m0, m1, m2, m3 := natural[0], natural[1], natural[2], natural[3]
	tests := []struct {
		field, dir string
		want       []string
	}{
		{"", "", natural},
		{"", "DESC", natural}, // sort_dir alone does not sort
		{"last_changed", "", []string{m1, m3, m0, m2}},
		{"last_changed", "ASC", []string{m1, m3, m0, m2}},
		{"last_changed", "DESC", []string{m0, m2, m3, m1}}, // ties stay in natural order
		{"timestamp_opt", "ASC", []string{m3, m2, m1, m0}},
		{"timestamp_signup", "DESC", []string{m0, m2, m3, m1}},
	}
	for _, tc := range tests {
		p := s.membersOf(list, vals("sort_field", tc.field, "sort_dir", tc.dir))
		if diff := cmp.Diff(tc.want, ids(p.Members)); diff != "" {
			t.Errorf("sort_field=%q sort_dir=%q (-want +got):\n%s", tc.field, tc.dir, diff)
		}
	}
	// Paging a sorted view is stable across pages.
	var paged []string
	for offset := range 4 {
		p := s.membersOf(list, vals("sort_field", "last_changed", "sort_dir", "DESC", "count", "1", "offset", itoa(offset)))
		paged = append(paged, ids(p.Members)...)
	}
	if diff := cmp.Diff([]string{m0, m2, m3, m1}, paged); diff != "" {
		t.Errorf("paged one at a time (-want +got):\n%s", diff)
	}
}

func TestInvalidParameters(t *testing.T) {
	s := newSimServer(t, Options{Members: 5})
	tests := []struct {
		name       string
		query      []string
		wantFields []string
	}{
		{"bad status", []string{"status", "active"}, []string{"status"}},
		{"bad since", []string{"since_last_changed", "yesterday"}, []string{"since_last_changed"}},
		{"unescaped plus", []string{"before_last_changed", "2015-10-21T15:41:36 00:00"}, []string{"before_last_changed"}},
		{"bad sort_field", []string{"sort_field", "email_address"}, []string{"sort_field"}},
		{"lower-case sort_dir", []string{"sort_dir", "desc"}, []string{"sort_dir"}},
		{"negative count", []string{"count", "-1"}, []string{"count"}},
		{"non-numeric offset", []string{"offset", "ten"}, []string{"offset"}},
		{"every problem at once", []string{"count", "x", "offset", "-5", "status", "gone"}, []string{"count", "offset", "status"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.get("/3.0/lists/"+DefaultListID+"/members", vals(tc.query...))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			p := decodeProblem(t, r)
			if p.Title != "Invalid Resource" || p.Status != 400 || p.Detail == "" {
				t.Errorf("problem = %+v", p)
			}
			var fields []string
			for _, e := range p.Errors {
				fields = append(fields, e.Field)
				if e.Message == "" {
					t.Errorf("error for %s has no message", e.Field)
				}
			}
			if diff := cmp.Diff(tc.wantFields, fields); diff != "" {
				t.Errorf("errors[].field (-want +got):\n%s", diff)
			}
		})
	}
	if got := s.sim.Stats().ByStatus[400]; got != len(tests) {
		t.Errorf("ByStatus[400] = %d, want %d", got, len(tests))
	}
}

// TestDefaultViewArchived: whether the default view (no status) holds
// archived members is an option, off by default, and the HTTP endpoint
// and the in-process Source follow it alike, in pages and in total_items,
// sorted or not, and when it is flipped on a running simulator.
func TestDefaultViewArchived(t *testing.T) {
	windowEnd := start.Add(-24 * time.Hour) // a window, so sorted views are cut by binary search
	views := []struct {
		name   string
		http   url.Values
		source mailchimp.MembersQuery
		keep   func(Member) bool // nil: all
	}{
		{"natural order", vals(), mailchimp.MembersQuery{}, nil},
		{"by last_changed in a window", vals("sort_field", "last_changed", "sort_dir", "DESC", "before_last_changed", windowEnd.Format(time.RFC3339)),
			mailchimp.MembersQuery{SortField: "last_changed", SortDir: "DESC", Before: windowEnd},
			func(m Member) bool { return m.LastChanged.Before(windowEnd) }},
		{"by timestamp_opt", vals("sort_field", "timestamp_opt"), mailchimp.MembersQuery{SortField: "timestamp_opt"}, nil},
	}
	check := func(t *testing.T, s *simServer, withArchived bool) {
		t.Helper()
		src := s.sim.Source(s.sim.APIKey())
		all := s.sim.Members(DefaultListID)
		for _, v := range views {
			want := memberIDs(all, func(m Member) bool {
				return (withArchived || m.Status != StatusArchived) && (v.keep == nil || v.keep(m))
			})
			slices.Sort(want)
			gotHTTP, totalHTTP := s.everyID(v.http)
			gotSource, totalSource := sourceIDs(t, src, DefaultListID, v.source)
			for door, got := range map[string][]string{"HTTP": gotHTTP, "in process": gotSource} {
				got = slices.Sorted(slices.Values(got))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s, %s, with archived %v: ids (-want +got):\n%s", v.name, door, withArchived, diff)
				}
			}
			if counted := s.totalItems(v.http); totalHTTP != len(want) || totalSource != len(want) || counted != len(want) {
				t.Errorf("%s, with archived %v: total_items %d over HTTP, %d in process, %d with count=1; want %d",
					v.name, withArchived, totalHTTP, totalSource, counted, len(want))
			}
		}
		// The archived view is the same either way.
		archived := memberIDs(all, func(m Member) bool { return m.Status == StatusArchived })
		if got, total := s.everyID(vals("status", StatusArchived)); !slices.Equal(archived, got) || total != len(archived) {
			t.Errorf("with archived %v: status=archived served %d members, total %d; want %d", withArchived, len(got), total, len(archived))
		}
	}

	s := newSimServer(t, Options{Members: 500, Seed: 19})
	if n := len(memberIDs(s.sim.Members(DefaultListID), func(m Member) bool { return m.Status == StatusArchived })); n == 0 {
		t.Fatal("the generator made no archived members")
	}
	check(t, s, false)
	s.sim.SetDefaultViewIncludesArchived(true)
	check(t, s, true)
	s.sim.SetDefaultViewIncludesArchived(false)
	check(t, s, false)

	withOption := newSimServer(t, Options{Members: 500, Seed: 19, DefaultViewIncludesArchived: true})
	check(t, withOption, true)
	// A member archived now leaves the default view only without the option.
	id := memberIDs(withOption.sim.Members(DefaultListID), func(m Member) bool { return m.Status == StatusSubscribed })[0]
	must(t, withOption.sim.Archive(DefaultListID, id))
	if got, _ := withOption.everyID(vals()); !slices.Contains(got, id) {
		t.Errorf("with the option, a member just archived left the default view")
	}
}
