package mailchimp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
)

const testToken = "5f0c0ffee5f0c0ffee5f0c0ffee5f0c0"

// tokenSim is the simulator behind an HTTP server, accepting testToken.
func tokenSim(t *testing.T) (*mcsim.Mailchimp, *httptest.Server) {
	t.Helper()
	sim := mcsim.New(mcsim.Options{Members: 3, Seed: 1})
	sim.AddAccessToken(testToken)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// tokenConfig is a config for testToken whose data center is looked up at
// the simulator's metadata endpoint.
func tokenConfig(srvURL string) mailchimp.Config {
	cfg, _ := testConfig(srvURL)
	cfg.APIKey, cfg.BaseURL = "", ""
	cfg.AccessToken = testToken
	cfg.MetadataURL = srvURL + mcsim.MetadataPath
	return cfg
}

// A token's client finds its data center at the metadata endpoint on its
// first request, and only then; the API accepts its Bearer header.
func TestAccessTokenLooksUpDatacenter(t *testing.T) {
	sim, srv := tokenSim(t)
	c := newClient(t, tokenConfig(srv.URL))
	if got := sim.Stats().MetadataRequests; got != 0 {
		t.Fatalf("New made %d metadata requests, want none (no I/O in New)", got)
	}
	for range 3 {
		if err := c.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if _, err := c.List(context.Background(), sim.ListID()); err != nil {
		t.Fatalf("List: %v", err)
	}
	st := c.Stats()
	if st.Requests != 4 || st.MetadataRequests != 1 || st.ByStatus[200] != 4 {
		t.Errorf("client stats = %+v, want 4 API requests (all 200) and 1 metadata request", st)
	}
	if got := sim.Stats(); got.MetadataRequests != 1 || got.Requests != 4 {
		t.Errorf("simulator saw %d metadata and %d API requests, want 1 and 4", got.MetadataRequests, got.Requests)
	}
}

// 50 clients on one token, one per audience as a "*" connection makes
// them, share one lookup through a process-wide Datacenters; clients with
// their own caches look up once each.
func TestDatacentersShared(t *testing.T) {
	sim, srv := tokenSim(t)
	dcs := mailchimp.NewDatacenters()
	lim := mailchimp.NewLimiter(0)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		cfg := tokenConfig(srv.URL)
		cfg.Datacenters, cfg.Limiter = dcs, lim
		cfg.Connection = fmt.Sprintf("acme.list%d", i)
		c := newClient(t, cfg)
		wg.Go(func() { errs <- c.Ping(context.Background()) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if got := sim.Stats().MetadataRequests; got != 1 {
		t.Errorf("metadata requests for 50 clients on one token = %d, want 1", got)
	}

	sim.ResetStats()
	for range 2 {
		if err := newClient(t, tokenConfig(srv.URL)).Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if got := sim.Stats().MetadataRequests; got != 2 {
		t.Errorf("metadata requests of 2 clients with private caches = %d, want 2", got)
	}
}

// Config.DC, an API key's suffix and BaseURL each spare the lookup; the
// token goes as a Bearer header wherever the request goes.
func TestAccessTokenBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		cfg     mailchimp.Config
		want    string
		wantHdr string
	}{
		{"dc", mailchimp.Config{AccessToken: "tok", DC: "us6"}, "https://us6.api.mailchimp.com/3.0/ping", "Bearer tok"},
		{"dc in capitals", mailchimp.Config{AccessToken: "tok", DC: "US21"}, "https://us21.api.mailchimp.com/3.0/ping", "Bearer tok"},
		{"base URL wins over dc", mailchimp.Config{AccessToken: "tok", DC: "us6", BaseURL: "http://sim.local/3.0"}, "http://sim.local/3.0/ping", "Bearer tok"},
		{"base URL wins over the lookup", mailchimp.Config{AccessToken: "tok", BaseURL: "http://sim.local/3.0"}, "http://sim.local/3.0/ping", "Bearer tok"},
		{"key with its own dc repeated", mailchimp.Config{APIKey: "0123abcd-us6", DC: "us6"}, "https://us6.api.mailchimp.com/3.0/ping", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*http.Request
			tt.cfg.HTTPClient = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = append(got, r)
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(`{"health_status":"Everything's Chimpy!"}`))}, nil
			})}
			c := newClient(t, tt.cfg)
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if len(got) != 1 || got[0].URL.String() != tt.want {
				t.Fatalf("requests = %v, want one to %s", got, tt.want)
			}
			if tt.wantHdr != "" && got[0].Header.Get("Authorization") != tt.wantHdr {
				t.Errorf("Authorization = %q, want %q", got[0].Header.Get("Authorization"), tt.wantHdr)
			}
			if c.Stats().MetadataRequests != 0 {
				t.Error("a metadata lookup was made")
			}
		})
	}
}

// The metadata answer's api_endpoint wins over its dc; without one the dc
// gives the host. A 5xx is retried like any call. From Mailchimp's own
// metadata endpoint the token goes only to an https Mailchimp API host.
func TestMetadataAnswer(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"api_endpoint", `{"dc":"us6","api_endpoint":"https://us7.api.mailchimp.com"}`, "https://us7.api.mailchimp.com/3.0/ping"},
		{"dc only", `{"dc":"us19","accountname":"Acme"}`, "https://us19.api.mailchimp.com/3.0/ping"},
		{"plain http refused", `{"dc":"us6","api_endpoint":"http://us6.api.mailchimp.com"}`, ""},
		{"another host refused", `{"dc":"us6","api_endpoint":"https://api.example.com"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			answers := 0
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = append(got, r.Method+" "+r.URL.String()+" "+r.Header.Get("Authorization"))
				body, status := `{"health_status":"Everything's Chimpy!"}`, 200
				if r.URL.Path == "/oauth2/metadata" {
					if answers++; answers == 1 {
						body, status = `{"error":"upstream"}`, 503
					} else {
						body = tt.body
					}
				}
				return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(body))}, nil
			})}
			cfg := tokenConfig("http://unused")
			cfg.MetadataURL, cfg.HTTPClient = "", hc
			c := newClient(t, cfg)
			err := c.Ping(context.Background())
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "no usable api_endpoint") || strings.Contains(err.Error(), testToken) {
					t.Fatalf("Ping: %v, want the answer refused", err)
				}
				for _, r := range got {
					if !strings.HasPrefix(r, "GET "+mailchimp.DefaultMetadataURL+" ") {
						t.Errorf("the token went to %s; want only the metadata lookups", r)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Ping: %v", err)
			}
			meta := "GET " + mailchimp.DefaultMetadataURL + " OAuth " + testToken
			want := []string{meta, meta, "GET " + tt.want + " Bearer " + testToken}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if st := c.Stats(); st.MetadataRequests != 2 || st.Requests != 1 || st.Retries != 0 {
				t.Errorf("stats = %+v, want 2 metadata requests, 1 API request, no API retries", st)
			}
		})
	}
}

// A token Mailchimp refuses, at the lookup or later on the API, is a
// KindAuth error that says to connect the account again, names the
// connection and the call, and shows the token nowhere. A failed lookup is
// not cached.
func TestRevokedAccessToken(t *testing.T) {
	sim, srv := tokenSim(t)
	logger, logs := testLogger()
	cfg := tokenConfig(srv.URL)
	cfg.Logger = logger
	cfg.Datacenters = mailchimp.NewDatacenters()

	sim.RevokeAccessToken(testToken)
	atLookup := newClient(t, cfg).Ping(context.Background())
	checkRefusedToken(t, atLookup, "GET oauth2/metadata")

	sim.AddAccessToken(testToken) // connected again
	c := newClient(t, cfg)
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping after the token was accepted again: %v", err)
	}
	if got := sim.Stats().MetadataRequests; got != 2 {
		t.Errorf("metadata requests = %d, want 2 (the failed lookup is not cached)", got)
	}

	sim.RevokeAccessToken(testToken)
	_, atAPI := c.List(context.Background(), sim.ListID())
	checkRefusedToken(t, atAPI, "GET /lists/"+sim.ListID())

	for _, s := range []string{atLookup.Error(), atAPI.Error(), fmt.Sprintf("%#v", atLookup), fmt.Sprintf("%#v", atAPI), logs.String()} {
		if strings.Contains(s, testToken) {
			t.Errorf("the token leaked in %q", s)
		}
	}
}

func checkRefusedToken(t *testing.T, err error, call string) {
	t.Helper()
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Kind != mailchimp.KindAuth || e.Retryable() {
		t.Fatalf("err = %v, want a KindAuth *Error", err)
	}
	a, ok := e.Advice()
	if !ok || !strings.Contains(a.Action, "connect the Mailchimp account again") || strings.Contains(a.Action, "api_key") {
		t.Errorf("advice = %+v, want the token's (connect again), not the key's", a)
	}
	if msg := err.Error(); !strings.Contains(msg, `connection "`+testConn+`"`) || !strings.Contains(msg, call) {
		t.Errorf("error %q should name the connection and %s", msg, call)
	}
}

// Lists pages GET /lists a thousand at a time, fields trimmed, and answers
// the audiences of the token's account only, sorted by id.
func TestListsPaging(t *testing.T) {
	sim, srv := tokenSim(t)
	const n = 2500
	for i := range n {
		sim.AddAccountList(testToken, fmt.Sprintf("l%05d", n-i), 0, int64(i))
	}
	c := newClient(t, tokenConfig(srv.URL))
	sim.ResetStats()
	lists, err := c.Lists(context.Background())
	if err != nil {
		t.Fatalf("Lists: %v", err)
	}
	if len(lists) != n || lists[0].ID != "l00001" || lists[n-1].ID != fmt.Sprintf("l%05d", n) {
		t.Fatalf("Lists = %d lists from %v to %v, want %d sorted by id", len(lists), lists[0], lists[len(lists)-1], n)
	}
	for _, l := range lists {
		if l.Name == "" || l.ID == sim.ListID() {
			t.Fatalf("list %+v: want a name, and only the account's own lists", l)
		}
	}
	if got := sim.Stats().Requests; got != 3 {
		t.Errorf("requests = %d, want 3 pages", got)
	}
}

// Lists stops on an empty page, and on a page that brings nothing new, so
// a total that moves or a server that repeats itself cannot keep it going.
func TestListsGuards(t *testing.T) {
	tests := []struct {
		name      string
		pages     func(offset int) (ids []string, total int)
		want      int
		wantCalls int
	}{
		{"total grows forever, same page", func(int) ([]string, int) { return []string{"a", "b"}, 1 << 30 }, 2, 2},
		{"short page, then empty", func(off int) ([]string, int) {
			if off == 0 {
				return []string{"a"}, 5
			}
			return nil, 5
		}, 1, 2},
		{"total shrinks", func(off int) ([]string, int) {
			if off == 0 {
				return []string{"a", "b", "c"}, 10
			}
			return []string{"c", "d"}, 4
		}, 4, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				calls++
				var off int
				fmt.Sscan(r.URL.Query().Get("offset"), &off)
				ids, total := tt.pages(off)
				items := []map[string]string{}
				for _, id := range ids {
					items = append(items, map[string]string{"id": id, "name": "List " + id})
				}
				writeJSON(w, map[string]any{"lists": items, "total_items": total})
			})
			cfg, _ := testConfig(s.URL)
			lists, err := newClient(t, cfg).Lists(context.Background())
			if err != nil {
				t.Fatalf("Lists: %v", err)
			}
			if len(lists) != tt.want || calls != tt.wantCalls {
				t.Errorf("Lists = %v after %d requests, want %d lists after %d", lists, calls, tt.want, tt.wantCalls)
			}
			q := s.last().URL.Query()
			if q.Get("count") != "1000" || q.Get("fields") != "lists.id,lists.name,total_items" {
				t.Errorf("query = %v, want count=1000 and the trimmed fields", q)
			}
		})
	}
}
