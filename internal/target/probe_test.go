package target

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	const secret = "Bearer s3cr3t-token"
	tests := []struct {
		name       string
		status     int
		headers    map[string]string
		wantErr    string // substring; "" = success
		wantStatus int
	}{
		{name: "ok", status: 200, headers: map[string]string{"Authorization": secret}, wantStatus: 200},
		{name: "method not allowed still proves the server is there", status: 405, wantStatus: 405},
		{name: "rejected credentials", status: 401, headers: map[string]string{"Authorization": "wrong"}, wantErr: "rejected the credentials; check target.headers", wantStatus: 401},
		{name: "forbidden", status: 403, wantErr: "HTTP 403", wantStatus: 403},
		{name: "server error", status: 503, wantErr: "server error", wantStatus: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotAuth, gotMethod string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotAuth, gotMethod = r.Header.Get("Authorization"), r.Method
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			res, err := Probe(context.Background(), srv.Client(), srv.URL+"/records?token=abc", tt.headers)
			if gotMethod != http.MethodHead {
				t.Errorf("method = %s, want HEAD", gotMethod)
			}
			if want := tt.headers["Authorization"]; gotAuth != want {
				t.Errorf("Authorization sent = %q, want %q", gotAuth, want)
			}
			if res.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.Status, tt.wantStatus)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Probe: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Probe error = %v, want it to contain %q", err, tt.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "token=abc") || strings.Contains(err.Error(), "s3cr3t")) {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestProbeUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/records?key=hidden"
	srv.Close() // nothing listens there any more
	_, err := Probe(context.Background(), http.DefaultClient, url, nil)
	if err == nil {
		t.Fatal("Probe of a closed port succeeded")
	}
	if !strings.Contains(err.Error(), "no answer") || strings.Contains(err.Error(), "hidden") {
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
