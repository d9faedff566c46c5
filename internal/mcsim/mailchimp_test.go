package mcsim

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuth(t *testing.T) {
	s := newSimServer(t, Options{Members: 3})
	tests := []struct {
		name string
		key  string
		want int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"wrong key", "0123456789abcdef0123456789abcdef-us1", http.StatusUnauthorized},
		{"accepted key", s.sim.APIKey(), http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.request(tc.key, "/3.0/ping", nil)
			if r.status != tc.want {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.want, r.body)
			}
			if r.status != http.StatusUnauthorized {
				return
			}
			p := decodeProblem(t, r)
			want := problemDoc{
				Type:     "https://mailchimp.com/developer/marketing/docs/errors/",
				Title:    "API Key Invalid",
				Status:   401,
				Detail:   "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
				Instance: p.Instance,
			}
			if diff := cmp.Diff(want, p); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
			if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(p.Instance) {
				t.Errorf("instance %q is not uuid-like", p.Instance)
			}
			if tc.key != "" && strings.Contains(string(r.body), tc.key) {
				t.Errorf("the body echoes the key")
			}
		})
	}
}

func TestAddAPIKey(t *testing.T) {
	s := newSimServer(t, Options{APIKey: "first-us1"})
	s.sim.AddAPIKey("second-us1")
	for _, key := range []string{"first-us1", "second-us1"} {
		if r := s.request(key, "/3.0/ping", nil); r.status != http.StatusOK {
			t.Errorf("key %s: status %d", key, r.status)
		}
	}
}

func TestNewAPIKeyShape(t *testing.T) {
	key := New(Options{Seed: 7}).APIKey()
	if !regexp.MustCompile(`^[0-9a-f]{32}-us1$`).MatchString(key) {
		t.Errorf("generated key %q has the wrong shape", key)
	}
	if again := New(Options{Seed: 7}).APIKey(); again != key {
		t.Errorf("same seed gave keys %q and %q", key, again)
	}
}

func TestPingAndDateHeader(t *testing.T) {
	s := newSimServer(t, Options{})
	s.clock.Set(time.Date(2015, 10, 21, 15, 41, 36, 0, time.UTC))
	r := s.get("/3.0/ping", nil)
	if diff := cmp.Diff(`{"health_status":"Everything's Chimpy!"}`, string(r.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if got, want := r.header.Get("Date"), "Wed, 21 Oct 2015 15:41:36 GMT"; got != want {
		t.Errorf("Date = %q, want %q (from the injected clock)", got, want)
	}
}

func TestRouting(t *testing.T) {
	s := newSimServer(t, Options{Members: 3})
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantTitle          string
	}{
		{"unknown list", "GET", "/3.0/lists/nope", 404, "Resource Not Found"},
		{"members of unknown list", "GET", "/3.0/lists/nope/members", 404, "Resource Not Found"},
		{"unknown path", "GET", "/3.0/campaigns", 404, "Resource Not Found"},
		{"outside the API", "GET", "/favicon.ico", 404, "Resource Not Found"},
		{"wrong method", "POST", "/3.0/lists/" + DefaultListID + "/members", 405, "Method Not Allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.srv.URL+tc.path, nil)
			req.SetBasicAuth("u", s.sim.APIKey())
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p problemDoc
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || p.Status != tc.wantStatus || p.Title != tc.wantTitle {
				t.Errorf("got %d %d %q, want %d %q", resp.StatusCode, p.Status, p.Title, tc.wantStatus, tc.wantTitle)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestListResource(t *testing.T) {
	s := newSimServer(t, Options{Members: 500, Seed: 3})
	r := s.get("/3.0/lists/"+DefaultListID, nil)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var got map[string]any
	decodeJSON(t, r.body, &got)

	counts := map[string]int{}
	for _, m := range s.sim.Members(DefaultListID) {
		counts[m.Status]++
	}
	stats := got["stats"].(map[string]any)
	for field, want := range map[string]int{
		"member_count":      counts[StatusSubscribed],
		"unsubscribe_count": counts[StatusUnsubscribed],
		"cleaned_count":     counts[StatusCleaned],
		"total_contacts":    500,
	} {
		if g := stats[field].(json.Number).String(); g != itoa(want) {
			t.Errorf("stats.%s = %s, want %d", field, g, want)
		}
	}
	if got["id"] != DefaultListID || got["name"] == "" {
		t.Errorf("id/name = %v/%v", got["id"], got["name"])
	}
	for _, k := range []string{"web_id", "contact", "date_created", "campaign_defaults", "_links"} {
		if _, ok := got[k]; !ok {
			t.Errorf("list resource lacks %s", k)
		}
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$`).MatchString(stats["last_sub_date"].(string)) {
		t.Errorf("last_sub_date = %q", stats["last_sub_date"])
	}

	r = s.get("/3.0/lists/"+DefaultListID, vals("fields", "id,stats.member_count"))
	var narrowed map[string]any
	decodeJSON(t, r.body, &narrowed)
	if diff := cmp.Diff([]string{"id", "stats"}, keysOf(narrowed)); diff != "" {
		t.Errorf("fields on the list resource (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"member_count"}, keysOf(narrowed["stats"])); diff != "" {
		t.Errorf("fields stats.member_count (-want +got):\n%s", diff)
	}
}

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

func TestMemberJSONShape(t *testing.T) {
	s := newSimServer(t, Options{})
	const list = "shape"
	s.sim.AddList(list, 0, 1)
	id, err := s.sim.Add(list, Member{
		EmailAddress:  "Zoë.Ørsted@Example.com",
		UniqueEmailID: "3eb8a920e9",
		ContactID:     "2339939832d39de535220d2188836484",
		WebID:         440689824,
		Status:        StatusSubscribed,
		MergeFields:   map[string]any{"FNAME": "Zoë", "LNAME": `O"Ørsted`, "ADDRESS": "", "SCORE": 42, "ZZ_EXTRA": "x"},
		Interests:     map[string]bool{"b2": false, "a1": true},
		Stats:         MemberStats{AvgOpenRate: 0.5, AvgClickRate: 0.25},
		IPOpt:         "192.0.2.1",
		MemberRating:  4,
		Location:      Location{Latitude: 1.5, Longitude: -2, GMTOff: 1, DSTOff: 2, CountryCode: "DK", Timezone: "Europe/Copenhagen"},
		Source:        "Import",
		Tags:          []Tag{{ID: 7, Name: "vip"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.get("/3.0/lists/"+list+"/members", nil)
	var p membersPage
	decodeJSON(t, r.body, &p)
	now := "2025-03-01T12:00:00+00:00"
	want := map[string]any{
		"id": id, "email_address": "Zoë.Ørsted@Example.com", "unique_email_id": "3eb8a920e9",
		"contact_id": "2339939832d39de535220d2188836484", "full_name": `Zoë O"Ørsted`,
		"web_id": json.Number("440689824"), "email_type": "html", "status": "subscribed",
		"merge_fields": map[string]any{"FNAME": "Zoë", "LNAME": `O"Ørsted`, "ADDRESS": "", "SCORE": json.Number("42"), "ZZ_EXTRA": "x"},
		"interests":    map[string]any{"a1": true, "b2": false},
		"stats":        map[string]any{"avg_open_rate": json.Number("0.5"), "avg_click_rate": json.Number("0.25")},
		"ip_signup":    "", "timestamp_signup": now, "ip_opt": "192.0.2.1", "timestamp_opt": now,
		"member_rating": json.Number("4"), "last_changed": now, "language": "", "vip": false, "email_client": "",
		"location": map[string]any{
			"latitude": json.Number("1.5"), "longitude": json.Number("-2"), "gmtoff": json.Number("1"),
			"dstoff": json.Number("2"), "country_code": "DK", "timezone": "Europe/Copenhagen",
		},
		"source": "Import", "tags_count": json.Number("1"),
		"tags":    []any{map[string]any{"id": json.Number("7"), "name": "vip"}},
		"list_id": list,
	}
	if len(p.Members) != 1 {
		t.Fatalf("got %d members", len(p.Members))
	}
	if diff := cmp.Diff(want, p.Members[0]); diff != "" {
		t.Errorf("member (-want +got):\n%s", diff)
	}
	if id != MemberID("zoë.ørsted@example.com") {
		t.Errorf("id %s is not the MD5 of the lower-cased email", id)
	}
	// MarshalJSON gives the same encoding as the endpoint.
	enc, err := json.Marshal(s.sim.Members(list)[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.body), string(enc)) {
		t.Errorf("MarshalJSON differs from the served member:\n%s", enc)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{"", "plain", `quo"te\back`, "tab\tnl\ncr\r", "\x00\x1f", "Zoë 山田 Łukasz", "bad\xffutf8", "line\u2028sep\u2029"} {
		var got string
		if err := json.Unmarshal(appendString(nil, in), &got); err != nil {
			t.Errorf("appendString(%q) is not valid JSON: %v", in, err)
			continue
		}
		want := strings.ToValidUTF8(in, "\uFFFD")
		if got != want {
			t.Errorf("round trip of %q = %q, want %q", in, got, want)
		}
	}
}
