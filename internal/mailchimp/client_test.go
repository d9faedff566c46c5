package mailchimp_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
)

func TestDatacenter(t *testing.T) {
	tests := []struct {
		key, want string
		wantErr   bool
	}{
		{key: "0123abcd-us6", want: "us6"},
		{key: "0123abcd-US21", want: "us21"},
		{key: "  0123abcd-us6\n", want: "us6"},
		{key: "a-b-c-us19", want: "us19"},
		{key: "0123abcd", wantErr: true},
		{key: "0123abcd-", wantErr: true},
		{key: "-us6", wantErr: true},
		{key: "0123abcd-evil.example.com/x", wantErr: true},
		{key: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := mailchimp.Datacenter(tt.key)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("Datacenter = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "0123abcd") {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
}

// roundTripFunc records requests without any network.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestBaseURL(t *testing.T) {
	tests := []struct {
		name, key, baseURL, want string
	}{
		{"dc from key", "0123abcd-us6", "", "https://us6.api.mailchimp.com/3.0/ping"},
		{"other dc", "0123abcd-us21", "", "https://us21.api.mailchimp.com/3.0/ping"},
		{"override", "0123abcd-us6", "http://127.0.0.1:9/3.0", "http://127.0.0.1:9/3.0/ping"},
		{"override, trailing slash, key without dc", "0123abcd", "http://sim.local/3.0/", "http://sim.local/3.0/ping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r.URL.String()
				return &http.Response{
					StatusCode: 200,
					Header:     http.Header{"Content-Type": {"application/json"}},
					Body:       io.NopCloser(strings.NewReader(`{"health_status":"Everything's Chimpy!"}`)),
				}, nil
			})}
			c := newClient(t, mailchimp.Config{APIKey: tt.key, BaseURL: tt.baseURL, HTTPClient: hc})
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if got != tt.want {
				t.Errorf("URL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  mailchimp.Config
	}{
		{"empty key", mailchimp.Config{}},
		{"no dc, no base URL", mailchimp.Config{APIKey: "0123abcd"}},
		{"relative base URL", mailchimp.Config{APIKey: "0123abcd-us6", BaseURL: "/3.0"}},
		{"credentials in base URL", mailchimp.Config{APIKey: "0123abcd-us6", BaseURL: "https://u:0123abcd-us6@x/3.0"}},
		{"ftp base URL", mailchimp.Config{APIKey: "0123abcd-us6", BaseURL: "ftp://x/3.0"}},
		{"key and token", mailchimp.Config{APIKey: "0123abcd-us6", AccessToken: "0123abcd"}},
		{"blank token", mailchimp.Config{AccessToken: "  "}},
		{"token, dc not letters and digits", mailchimp.Config{AccessToken: "0123abcd", DC: "evil.example.com/x"}},
		{"key, another dc", mailchimp.Config{APIKey: "0123abcd-us6", DC: "us7"}},
		{"token, metadata URL with credentials", mailchimp.Config{AccessToken: "0123abcd", MetadataURL: "https://u:0123abcd@x/oauth2/metadata"}},
		{"token, relative metadata URL", mailchimp.Config{AccessToken: "0123abcd", MetadataURL: "/oauth2/metadata"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mailchimp.New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			if strings.Contains(err.Error(), "0123abcd") {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
}

func TestRequestHeaders(t *testing.T) {
	s := newServer(t, chimpy)
	cfg, _ := testConfig(s.URL)
	if err := newClient(t, cfg).Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	r := s.last()
	user, pass, ok := r.BasicAuth()
	got := map[string]any{
		"basic":     ok,
		"password":  pass == testKey,
		"user set":  user != "",
		"agent":     r.UserAgent(),
		"path":      r.URL.Path,
		"userinfo":  r.URL.User == nil,
		"key in RQ": strings.Contains(r.URL.RawQuery, testKey),
	}
	want := map[string]any{
		"basic": true, "password": true, "user set": true, "agent": "chimport",
		"path": "/3.0/ping", "userinfo": true, "key in RQ": false,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

func TestPingUnhealthy(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"health_status": "Not so chimpy"})
	})
	cfg, _ := testConfig(s.URL)
	err := newClient(t, cfg).Ping(context.Background())
	if !mailchimp.IsKind(err, mailchimp.KindServer) {
		t.Fatalf("err = %v, want KindServer", err)
	}
	if s.count() != maxTries {
		t.Errorf("requests = %d, want %d (unhealthy is transient)", s.count(), maxTries)
	}
}

func TestList(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/3.0/lists/"+testList {
			writeProblem(w, 404, "Resource Not Found", "The requested resource could not be found.")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"abc123","web_id":123456,"name":"Newsletter","date_created":"2020-01-02T03:04:05+00:00",
			"stats":{"member_count":2500,"unsubscribe_count":12,"cleaned_count":3,"member_count_since_send":7,
			"total_contacts":2515,"last_sub_date":"2024-01-01T00:00:00+00:00","last_unsub_date":""},
			"contact":{"company":"Acme"}}`)
	})
	cfg, _ := testConfig(s.URL)
	c := newClient(t, cfg)
	got, err := c.List(context.Background(), testList)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := &mailchimp.List{
		ID: "abc123", WebID: 123456, Name: "Newsletter", DateCreated: "2020-01-02T03:04:05+00:00",
		Stats: mailchimp.ListStats{
			MemberCount: 2500, UnsubscribeCount: 12, CleanedCount: 3, MemberCountSinceSend: 7,
			TotalContacts: 2515, LastSubDate: "2024-01-01T00:00:00+00:00",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if f := s.last().URL.Query().Get("fields"); f == "" {
		t.Error("List should ask only for the fields it decodes")
	}

	_, err = c.List(context.Background(), "nope")
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Kind != mailchimp.KindNotFound || e.Endpoint != "/lists/nope" {
		t.Fatalf("err = %#v, want KindNotFound on /lists/nope", err)
	}
}
