package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/target"
	"github.com/google/go-cmp/cmp"
)

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func mcErr(kind mailchimp.Kind, status int, title string) *mailchimp.Error {
	return &mailchimp.Error{Kind: kind, Connection: "newsletter", Method: "GET", Endpoint: "/lists/a1b2c3d4e5/members", Status: status, Title: title, Attempts: 1}
}

func tgtErr(status int, body string) *target.Error {
	return &target.Error{Connection: "newsletter", URL: "https://api.example.com/record", Status: status, Body: body, Attempts: 1}
}

// pageErr wraps like the engine's own page error: a struct with Unwrap.
type pageErr struct{ err error }

func (e *pageErr) Error() string {
	return fmt.Sprintf("%v (reading the default view at offset 3000)", e.err)
}
func (e *pageErr) Unwrap() error { return e.err }

func TestNeedsPerson(t *testing.T) {
	certErr := &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
	tests := []struct {
		name string
		err  error
		want bool
		// subject is the part after "needs attention: ", when want is true
		subject string
		status  int
	}{
		{"nil", nil, false, "", 0},
		{"plain error", errors.New("boom"), false, "", 0},
		{"context canceled", context.Canceled, false, "", 0},
		{"deadline", fmt.Errorf("run: %w", context.DeadlineExceeded), false, "", 0},

		{"mailchimp 401", mcErr(mailchimp.KindAuth, 401, "API Key Invalid"), true, "Mailchimp rejected the API key (HTTP 401)", 401},
		{"mailchimp 401 in a page error", &pageErr{mcErr(mailchimp.KindAuth, 401, "API Key Invalid")}, true, "Mailchimp rejected the API key (HTTP 401)", 401},
		{"mailchimp 404 joined with another view's", errors.Join(
			&pageErr{mcErr(mailchimp.KindNotFound, 404, "Resource Not Found")},
			&pageErr{mcErr(mailchimp.KindNotFound, 404, "Resource Not Found")},
		), true, "Mailchimp has no audience with this list id (HTTP 404)", 404},
		{"mailchimp 403 with a body", fmt.Errorf("sync: %w", mcErr(mailchimp.KindForbidden, 403, "Forbidden")), true, "Mailchimp refused the API key access to the audience (HTTP 403)", 403},
		{"mailchimp 400", mcErr(mailchimp.KindInvalid, 400, "Invalid Resource"), true, "Mailchimp rejected a request as invalid (HTTP 400)", 400},
		{"mailchimp 403 without a body is throttling", mcErr(mailchimp.KindRateLimited, 403, "Forbidden"), false, "", 0},
		{"mailchimp 429", mcErr(mailchimp.KindRateLimited, 429, "Too Many Requests"), false, "", 0},
		{"mailchimp 503", &pageErr{mcErr(mailchimp.KindServer, 503, "Service Unavailable")}, false, "", 0},
		{"mailchimp transport", &mailchimp.Error{Kind: mailchimp.KindTransport, Err: io.ErrUnexpectedEOF}, false, "", 0},
		{"mailchimp cancelled", &mailchimp.Error{Kind: mailchimp.KindTransport, Err: context.Canceled}, false, "", 0},
		{"mailchimp bad body", mcErr(mailchimp.KindBadBody, 200, ""), false, "", 0},

		{"target 401", fmt.Errorf("delivering: %w", tgtErr(401, "")), true, "the target rejected the credentials (HTTP 401)", 401},
		{"target 403", tgtErr(403, "nope"), true, "the target rejected the credentials (HTTP 403)", 403},
		{"target 400", tgtErr(400, `{"error":"bad"}`), true, "the target rejected the records (HTTP 400)", 400},
		{"target 422", tgtErr(422, ""), true, "the target rejected the records (HTTP 422)", 422},
		{"target 404", tgtErr(404, ""), true, "the target has no such endpoint (HTTP 404)", 404},
		{"target 405", tgtErr(405, ""), true, "the target has no such endpoint (HTTP 405)", 405},
		{"target 413", tgtErr(413, ""), true, "the target refused a batch as too large (HTTP 413)", 413},
		{"target 301", tgtErr(301, ""), true, "the target answered with a redirect (HTTP 301)", 301},
		{"target 418", tgtErr(418, ""), true, "the target refused the request (HTTP 418)", 418},
		{"target certificate", &target.Error{Connection: "newsletter", Err: certErr}, true, "the target's TLS certificate was not accepted", 0},
		{"target 429", tgtErr(429, ""), false, "", 0},
		{"target 408", tgtErr(408, ""), false, "", 0},
		{"target 500", tgtErr(500, "<html>"), false, "", 0},
		{"target timeout", &target.Error{Err: &net.OpError{Op: "dial", Err: errors.New("i/o timeout")}}, false, "", 0},
		{"target cancelled", &target.Error{Err: context.Canceled}, false, "", 0},

		// A run fails on several views, or on both sides, at once: the one
		// that needs a person is found wherever it sits.
		{"transient first, then a rejected key", errors.Join(
			&pageErr{mcErr(mailchimp.KindServer, 502, "Bad Gateway")},
			fmt.Errorf("view archived: %w", &pageErr{mcErr(mailchimp.KindAuth, 401, "API Key Invalid")}),
		), true, "Mailchimp rejected the API key (HTTP 401)", 401},
		{"cancelled and a target 401", errors.Join(context.Canceled, fmt.Errorf("batch: %w", tgtErr(401, ""))), true, "the target rejected the credentials (HTTP 401)", 401},
		{"the engine's recording failure around a transient error", errors.Join(
			tgtErr(503, ""), fmt.Errorf("recording the failure: %w", errors.New("database is locked")),
		), false, "", 0},
	}
	type result struct {
		OK      bool
		Subject string
		Status  int
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := NeedsPerson("newsletter", tt.err, at)
			got := result{ok, strings.TrimPrefix(a.Subject, "chimport: newsletter needs attention: "), a.Status}
			want := result{tt.want, tt.subject, tt.status}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("NeedsPerson(%v) (-want +got):\n%s", tt.err, diff)
			}
			if !ok {
				if diff := cmp.Diff(Alert{}, a); diff != "" {
					t.Errorf("not ok, but returned an alert:\n%s", diff)
				}
				return
			}
			if a.Kind != KindPermanentError || a.Connection != "newsletter" || !a.At.Equal(at) ||
				a.Problem == "" || a.Action == "" || a.Error != tt.err.Error() {
				t.Errorf("incomplete alert: %+v", a)
			}
			// One text: the error's own message ends with the advice the
			// alert gives.
			action := strings.ToLower(a.Action[:1]) + a.Action[1:]
			if !strings.Contains(tt.err.Error(), action) {
				t.Errorf("the error message %q lacks the alert's action %q", tt.err.Error(), action)
			}
		})
	}
}

func TestNeedsPersonClipsLongErrors(t *testing.T) {
	var errs []error
	for i := range 100 {
		errs = append(errs, fmt.Errorf("view %d: %w", i, mcErr(mailchimp.KindAuth, 401, "API Key Invalid "+strings.Repeat("é", 20))))
	}
	a, ok := NeedsPerson("newsletter", errors.Join(errs...), at)
	if !ok {
		t.Fatal("NeedsPerson = false")
	}
	if len(a.Error) > maxErrorText || !strings.HasSuffix(a.Error, "...") || !strings.HasPrefix(a.Error, "view 0: mailchimp") {
		t.Errorf("Error not clipped to %d bytes: %d bytes, ends %q", maxErrorText, len(a.Error), a.Error[len(a.Error)-10:])
	}
	if !strings.Contains(a.Text(), "view 0: mailchimp") {
		t.Error("Text lacks the error")
	}
}

func TestTextAndSubject(t *testing.T) {
	err := &pageErr{&mailchimp.Error{
		Kind: mailchimp.KindAuth, Connection: "newsletter", Method: "GET", Endpoint: "/lists/a1b2c3d4e5/members",
		Status: 401, Title: "API Key Invalid", Detail: "Your API key may be invalid, or you've attempted to access the wrong datacenter.", Attempts: 1,
	}}
	a, ok := NeedsPerson("newsletter", errors.Join(err, err), at)
	if !ok {
		t.Fatal("NeedsPerson = false")
	}
	wantSubject := "chimport: newsletter needs attention: Mailchimp rejected the API key (HTTP 401)"
	if a.Subject != wantSubject {
		t.Errorf("Subject = %q, want %q", a.Subject, wantSubject)
	}
	line := `mailchimp connection "newsletter": GET /lists/a1b2c3d4e5/members: 401 API Key Invalid: Your API key may be invalid, or you've attempted to access the wrong datacenter. (Mailchimp rejected the API key: check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed.) (reading the default view at offset 3000)`
	want := `Connection:    newsletter
What failed:   Mailchimp rejected the API key.
HTTP status:   401 Unauthorized
What to do:    Check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed.
Error:         ` + line + `
               ` + line + `
Time:          2026-03-04T05:06:07Z
`
	if diff := cmp.Diff(want, a.Text()); diff != "" {
		t.Errorf("Text() (-want +got):\n%s", diff)
	}
}

func TestTextLagAndRecovery(t *testing.T) {
	tests := []struct {
		name string
		a    Alert
		want string
	}{
		{
			name: "lag",
			a:    Alert{Kind: KindLag, Connection: "shop", Problem: "Changes since 02:00 UTC have not reached the target.", Lag: 3*time.Hour + 2*time.Minute + 500*time.Millisecond, Action: "See chimport status.", At: at.In(time.FixedZone("x", 3600))},
			want: "Connection:    shop\nWhat failed:   Changes since 02:00 UTC have not reached the target.\nLag:           3h2m1s\nWhat to do:    See chimport status.\nTime:          2026-03-04T05:06:07Z\n",
		},
		{
			name: "recovery",
			a:    Alert{Kind: KindRecovered, Connection: "shop", Problem: "Caught up.", Lag: 90 * time.Second},
			want: "Connection:    shop\nWhat happened: Caught up.\nLag:           1m30s\n",
		},
		{
			name: "empty fields are left out",
			a:    Alert{Kind: KindPermanentError, Connection: "shop"},
			want: "Connection:    shop\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.a.Text()); diff != "" {
				t.Errorf("Text() (-want +got):\n%s", diff)
			}
		})
	}
}

// A target's answer quoted in an error may hold control characters: the
// alert shows them as escapes.
func TestNeedsPersonEscapesControlCharacters(t *testing.T) {
	err := &target.Error{Connection: "shop", URL: "https://api.example.com/records", Status: 401, Body: "denied\x1b[2J\u202e\nforged line"}
	a, ok := NeedsPerson("shop", err, at)
	if !ok {
		t.Fatal("NeedsPerson = false")
	}
	if strings.ContainsAny(a.Error, "\x1b\u202e") || !strings.Contains(a.Error, `denied\x1b[2J\u202e`) {
		t.Errorf("Error = %q, want its control characters escaped", a.Error)
	}
}
