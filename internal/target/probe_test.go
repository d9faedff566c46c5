package target

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func newProbeSink(t *testing.T, url string, headers map[string]string) *HTTP {
	t.Helper()
	s, err := NewHTTP(HTTPConfig{Connection: "crm", URL: url, Headers: headers})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestProbe(t *testing.T) {
	const secret = "Bearer s3cr3t-token"
	tests := []struct {
		name       string
		status     int
		location   string
		headers    map[string]string
		wantErr    []string // substrings; none = success
		wantStatus int
	}{
		{name: "ok", status: 200, headers: map[string]string{"Authorization": secret}, wantStatus: 200},
		{name: "method not allowed still proves the server is there", status: 405, wantStatus: 405},
		{name: "rejected credentials", status: 401, headers: map[string]string{"Authorization": "wrong"}, wantErr: []string{"rejected the credentials: check target.headers"}, wantStatus: 401},
		{name: "forbidden", status: 403, wantErr: []string{"HTTP 403"}, wantStatus: 403},
		{name: "server error", status: 503, wantErr: []string{"HTTP 503 Service Unavailable", "the target is unavailable"}, wantStatus: 503},
		{name: "redirect", status: 307, location: "/final?token=abc", wantErr: []string{"HTTP 307 Temporary Redirect to http://", "/final?REDACTED", "redirect", "set target.url to the final address"}, wantStatus: 307},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotAuth, gotMethod, gotAgent string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotAuth, gotMethod, gotAgent = r.Header.Get("Authorization"), r.Method, r.Header.Get("User-Agent")
				if tt.location != "" {
					w.Header().Set("Location", tt.location)
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			res, err := newProbeSink(t, srv.URL+"/records?token=abc", tt.headers).Probe(context.Background())
			if gotMethod != http.MethodHead || gotAgent != UserAgent {
				t.Errorf("method, User-Agent = %s, %q; want HEAD, %q", gotMethod, gotAgent, UserAgent)
			}
			if want := tt.headers["Authorization"]; gotAuth != want {
				t.Errorf("Authorization sent = %q, want %q", gotAuth, want)
			}
			if res.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.Status, tt.wantStatus)
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("Probe: %v", err)
			}
			for _, want := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Probe error = %v, want it to contain %q", err, want)
				}
			}
			if err != nil && (strings.Contains(err.Error(), "token=abc") || strings.Contains(err.Error(), "s3cr3t")) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// The probe goes through the sink's client, which does not follow
// redirects, so a redirect to a server that is up still fails the probe
// (as Send would fail) instead of passing on the destination's answer.
func TestProbeDoesNotFollowRedirects(t *testing.T) {
	final := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the probe followed the redirect to %s", r.URL)
	}))
	defer final.Close()
	moved := httptest.NewServer(http.RedirectHandler(final.URL+"/records", http.StatusTemporaryRedirect))
	defer moved.Close()
	_, err := newProbeSink(t, moved.URL+"/records", nil).Probe(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect || e.Location != final.URL+"/records" {
		t.Fatalf("Probe = %v, want an *Error with status 307 and the redirect's location", err)
	}
	if a, ok := e.Advice(); !ok || !strings.Contains(a.Action, "target.url") {
		t.Errorf("Advice = %+v, %v; want advice naming target.url", a, ok)
	}
}

func TestProbeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/records?key=hidden"
	srv.Close() // nothing listens there any more
	_, err := newProbeSink(t, url, nil).Probe(context.Background())
	if err == nil {
		t.Fatal("Probe of a closed port succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, "HEAD") || !strings.Contains(msg, "no response") ||
		!strings.Contains(msg, "reachable from here") || strings.Contains(msg, "hidden") {
		t.Errorf("error = %v, want a transport failure without the query string", err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://user:pw@api.example.com/r?token=x#frag": "https://api.example.com/r?REDACTED",
		"http://127.0.0.1:8090/records":                  "http://127.0.0.1:8090/records",
	}
	for in, want := range tests {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
