package mailchimp_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
)

// Every transient fault is retried with backoff and then succeeds; when it
// never clears, a typed error reports every attempt.
func TestTransientFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      http.HandlerFunc
		wantKind   mailchimp.Kind
		wantStatus int
	}{
		{"429 problem", tooMany, mailchimp.KindRateLimited, 429},
		{"403 without body", emptyForbidden, mailchimp.KindRateLimited, 403},
		{"403 with HTML", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, "<html>Access Denied</html>")
		}, mailchimp.KindRateLimited, 403},
		{"500 problem", serverError, mailchimp.KindServer, 500},
		{"502 HTML from a proxy", htmlBadGateway, mailchimp.KindServer, 502},
		{"503 empty", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) }, mailchimp.KindServer, 503},
		{"dropped connection", dropConnection, mailchimp.KindTransport, 0},
		{"truncated 200 body", truncatedBody, mailchimp.KindBadBody, 200},
		{"HTML 200 body", htmlOK, mailchimp.KindBadBody, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/recovers", func(t *testing.T) {
			s := newServer(t, failFirst(2, tt.fault, membersHandler(3)))
			cfg, clk := testConfig(s.URL)
			c := newClient(t, cfg)
			page, err := c.Members(context.Background(), testList, mailchimp.MembersQuery{Count: 10})
			if err != nil {
				t.Fatalf("Members: %v", err)
			}
			if len(page.Members) != 3 {
				t.Errorf("members = %d, want 3", len(page.Members))
			}
			if diff := cmp.Diff([]time.Duration{firstWait, 2 * firstWait}, clk.Slept()); diff != "" {
				t.Errorf("waits (-want +got):\n%s", diff)
			}
			st := c.Stats()
			if st.Requests != 3 || st.Retries != 2 || st.ByStatus[200] < 1 {
				t.Errorf("stats = %+v, want 3 requests, 2 retries", st)
			}
		})
		t.Run(tt.name+"/exhausts", func(t *testing.T) {
			s := newServer(t, tt.fault)
			cfg, clk := testConfig(s.URL)
			_, err := newClient(t, cfg).Members(context.Background(), testList, mailchimp.MembersQuery{})
			var e *mailchimp.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *mailchimp.Error", err)
			}
			got := []any{e.Kind, e.Status, e.Attempts, e.Retryable(), e.Connection, e.Method, e.Endpoint, s.count(), len(clk.Slept())}
			want := []any{tt.wantKind, tt.wantStatus, maxTries, true, testConn, "GET", "/lists/abc123/members", maxTries, maxTries - 1}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kind, status, attempts, retryable, conn, method, endpoint, requests, waits (-want +got):\n%s", diff)
			}
			if msg := err.Error(); !strings.Contains(msg, "retried 3 times") || strings.Contains(msg, "\n") {
				t.Errorf("message %q should be one line and say it retried 3 times", msg)
			}
		})
	}
}

func TestConnectionRefused(t *testing.T) {
	s := newServer(t, chimpy)
	url := s.URL
	s.Close() // nothing listens there any more
	cfg, _ := testConfig(url)
	err := newClient(t, cfg).Ping(context.Background())
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Kind != mailchimp.KindTransport || e.Attempts != maxTries || e.Err == nil {
		t.Fatalf("err = %#v, want KindTransport after %d attempts with a cause", err, maxTries)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("a transport error must not look like the caller's context: %v", err)
	}
}

// Errors that need a person are returned after exactly one request.
func TestPermanentErrorsNotRetried(t *testing.T) {
	tests := []struct {
		name      string
		fault     http.HandlerFunc
		want      mailchimp.Error
		wantInMsg string
	}{
		{
			"401",
			func(w http.ResponseWriter, _ *http.Request) {
				writeProblem(w, 401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
			},
			mailchimp.Error{Kind: mailchimp.KindAuth, Status: 401, Title: "API Key Invalid",
				Detail: "Your API key may be invalid, or you've attempted to access the wrong datacenter."},
			"check mailchimp.api_key",
		},
		{
			"404",
			func(w http.ResponseWriter, _ *http.Request) {
				writeProblem(w, 404, "Resource Not Found", "The requested resource could not be found.")
			},
			mailchimp.Error{Kind: mailchimp.KindNotFound, Status: 404, Title: "Resource Not Found",
				Detail: "The requested resource could not be found."},
			"check mailchimp.list_id",
		},
		{
			"400 with field errors",
			func(w http.ResponseWriter, _ *http.Request) {
				writeProblem(w, 400, "Invalid Resource", "The resource submitted could not be validated.",
					mailchimp.FieldError{Field: "since_last_changed", Message: "Invalid date"})
			},
			mailchimp.Error{Kind: mailchimp.KindInvalid, Status: 400, Title: "Invalid Resource",
				Detail:      "The resource submitted could not be validated.",
				FieldErrors: []mailchimp.FieldError{{Field: "since_last_changed", Message: "Invalid date"}}},
			"[since_last_changed: Invalid date]",
		},
		{
			"403 with a problem body",
			func(w http.ResponseWriter, _ *http.Request) {
				writeProblem(w, 403, "Forbidden", "You don't have permission to access this resource.")
			},
			mailchimp.Error{Kind: mailchimp.KindForbidden, Status: 403, Title: "Forbidden",
				Detail: "You don't have permission to access this resource."},
			"Mailchimp refused the API key access",
		},
		{
			"414 is invalid, not retried",
			func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(414) },
			mailchimp.Error{Kind: mailchimp.KindInvalid, Status: 414, Title: "Request URI Too Long", Detail: "empty response body"},
			"Request URI Too Long",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.fault)
			cfg, clk := testConfig(s.URL)
			c := newClient(t, cfg)
			_, err := c.Members(context.Background(), testList, mailchimp.MembersQuery{})
			var e *mailchimp.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *mailchimp.Error", err)
			}
			want := tt.want
			want.Connection, want.Method, want.Endpoint, want.Attempts = testConn, "GET", "/lists/abc123/members", 1
			if tt.want.Status != 414 {
				want.Instance = "2b6a3e2e-0000-4000-8000-000000000000"
			}
			if diff := cmp.Diff(&want, e, cmpErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if e.Retryable() || s.count() != 1 || len(clk.Slept()) != 0 || c.Stats().Retries != 0 {
				t.Errorf("retryable=%v requests=%d waits=%v; want not retryable, 1 request, no wait",
					e.Retryable(), s.count(), clk.Slept())
			}
			if !strings.Contains(err.Error(), tt.wantInMsg) {
				t.Errorf("message %q lacks %q", err.Error(), tt.wantInMsg)
			}
		})
	}
}

// cmpErr compares what an operator sees; the cause and the unexported
// Retry-After are checked elsewhere.
var cmpErr = cmp.Options{
	cmpopts.IgnoreUnexported(mailchimp.Error{}),
	cmpopts.IgnoreFields(mailchimp.Error{}, "Err"),
}

func TestRetryAfterHonoured(t *testing.T) {
	s := newServer(t, failFirst(1, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		tooMany(w, r)
	}, chimpy))
	cfg, clk := testConfig(s.URL)
	if err := newClient(t, cfg).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]time.Duration{7 * time.Second}, clk.Slept()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		err  *mailchimp.Error
		want string
	}{
		{
			&mailchimp.Error{Kind: mailchimp.KindAuth, Connection: "c1", Method: "GET", Endpoint: "/ping", Status: 401,
				Title: "API Key Invalid", Detail: "Your API key may be invalid.", Attempts: 1},
			`mailchimp connection "c1": GET /ping: 401 API Key Invalid: Your API key may be invalid. (Mailchimp rejected the API key: check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed.)`,
		},
		{
			&mailchimp.Error{Kind: mailchimp.KindTransport, Method: "GET", Endpoint: "/lists/x/members",
				Err: errors.New("dial tcp 10.0.0.1:443: connect: connection refused"), Attempts: 6},
			`mailchimp: GET /lists/x/members: transport error: dial tcp 10.0.0.1:443: connect: connection refused (retried 5 times; Mailchimp or the network is unavailable, the next run will retry)`,
		},
		{
			&mailchimp.Error{Kind: mailchimp.KindRateLimited, Method: "GET", Endpoint: "/ping", Status: 429,
				Title: "Too Many Requests", Detail: "multi\nline", Attempts: 1},
			`mailchimp: GET /ping: 429 Too Many Requests: multi line (Mailchimp is rate limiting this API key, the next run will retry)`,
		},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() =\n%s\nwant\n%s", got, tt.want)
		}
	}
}

// The HTTP client's own per-attempt timeout is a transient transport
// fault: it is retried, and it is not mistaken for the caller's deadline.
// In a synctest bubble the 200 ms timeout passes on the fake clock, as
// soon as the hanging request is all that is left.
func TestAttemptTimeoutRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
		_, httpClient := newPipeServer(t, failFirst(1, hang, chimpy))
		httpClient.Timeout = 200 * time.Millisecond
		cfg := pipeConfig(httpClient)
		clk := cfg.Retry.Clock.(*clock.Fake)
		c := newClient(t, cfg)
		if err := c.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if len(clk.Slept()) != 1 || c.Stats().ByStatus[0] != 1 {
			t.Errorf("waits = %v, stats = %+v; want one retry after one timed-out attempt", clk.Slept(), c.Stats())
		}

		_, hanging := newPipeServer(t, hang)
		hanging.Timeout = 200 * time.Millisecond
		cfg = pipeConfig(hanging)
		cfg.Retry.MaxAttempts = 1
		err := newClient(t, cfg).Ping(t.Context())
		if !mailchimp.IsKind(err, mailchimp.KindTransport) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want KindTransport that does not match context.DeadlineExceeded", err)
		}
	})
}
