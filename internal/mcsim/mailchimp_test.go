package mcsim

import (
	"encoding/json"
	"net/http"
	"regexp"
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
