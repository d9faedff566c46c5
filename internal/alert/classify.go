package alert

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/target"
)

// maxErrorText bounds Alert.Error: a run that failed on many views joins
// their errors, and an alert should stay readable (SNS allows 256 KB, SMS far
// less; the full text is in the log and the state store).
const maxErrorText = 2000

// NeedsPerson returns an alert of KindPermanentError when err, a run's error,
// holds an error that retrying cannot fix, and false otherwise:
//
//   - Mailchimp: the key rejected (401), access refused (403 with a problem
//     document), the audience not found (404), a request refused as invalid
//     (400 and other 4xx).
//   - Target: a *target.Error whose NeedsPerson reports true: credentials
//     refused (401/403), records refused (400/422), no such endpoint
//     (404/405), batch too large (413), a redirect, a rejected TLS
//     certificate.
//
// Everything else is false: rate limits, 5xx, transport errors, timeouts and
// cancellation are retried by the next run, and page a person only through
// the lag policy. err may wrap these errors at any depth, through %w,
// errors.Join or any Unwrap method; the first one that needs a person wins.
func NeedsPerson(connection string, err error, now time.Time) (Alert, bool) {
	var p *permanent
	walk(err, func(e error) bool {
		switch e := e.(type) {
		case *mailchimp.Error:
			p = fromMailchimp(e)
		case *target.Error:
			p = fromTarget(e)
		}
		return p != nil
	})
	if p == nil {
		return Alert{}, false
	}
	subject := fmt.Sprintf("chimport: %s needs attention: %s", connection, p.what)
	if p.status != 0 {
		subject += fmt.Sprintf(" (HTTP %d)", p.status)
	}
	return Alert{
		Kind:       KindPermanentError,
		Connection: connection,
		Subject:    subject,
		Problem:    capitalize(p.what) + ".",
		Status:     p.status,
		Action:     p.action,
		Error:      clip(err.Error(), maxErrorText),
		At:         now,
	}, true
}

// permanent is what NeedsPerson learned from one typed error.
type permanent struct {
	what   string // lower-case phrase, fits a subject line
	status int
	action string
}

func fromMailchimp(e *mailchimp.Error) *permanent {
	p := &permanent{status: e.Status}
	switch e.Kind {
	case mailchimp.KindAuth:
		p.what = "Mailchimp rejected the API key"
		p.action = "Check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed."
	case mailchimp.KindForbidden:
		p.what = "Mailchimp refused the API key access to the audience"
		p.action = "Check that mailchimp.api_key belongs to the Mailchimp account that owns mailchimp.list_id, and that the account is active."
	case mailchimp.KindNotFound:
		p.what = "Mailchimp has no audience with this list id"
		p.action = "Check mailchimp.list_id: the audience may have been deleted, or it belongs to another account than the API key."
	case mailchimp.KindInvalid:
		p.what = "Mailchimp rejected a request as invalid"
		p.action = "Check the connection's mapping and mailchimp.statuses. If they look right, report a chimport bug with the error below."
	default:
		return nil // retried, and alerted on through lag
	}
	return p
}

func fromTarget(e *target.Error) *permanent {
	if !e.NeedsPerson() {
		return nil
	}
	p := &permanent{status: e.Status}
	switch s := e.Status; {
	case s == 0:
		// Not retryable without a status: the certificate was refused.
		p.what = "the target's TLS certificate was not accepted"
		p.action = "Check target.url and the target's certificate: it may have expired, be self-signed, or be for another host name."
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		p.what = "the target rejected the credentials"
		p.action = "Check target.headers (for example Authorization) for this connection: the token may have expired or been revoked."
	case s == http.StatusBadRequest, s == http.StatusUnprocessableEntity:
		p.what = "the target rejected the records"
		p.action = "Check the connection's mapping against what the target's API accepts; the error below quotes the start of the target's answer."
	case s == http.StatusNotFound, s == http.StatusMethodNotAllowed:
		p.what = "the target has no such endpoint"
		p.action = "Check target.url for this connection."
	case s == http.StatusRequestEntityTooLarge:
		p.what = "the target refused a batch as too large"
		p.action = "Lower target.batch_size for this connection."
	case s >= 300 && s < 400:
		p.what = "the target answered with a redirect"
		p.action = "Set target.url to the final address: chimport does not follow redirects, which would drop the records or send the credentials elsewhere."
	default:
		p.what = "the target refused the request"
		p.action = "Check target.url and what the target's API expects."
	}
	return p
}

// walk calls visit on err and everything it wraps, depth first, until visit
// returns true. Unlike errors.As it does not stop at the first error of a
// type: a run that joins a transient Mailchimp error with a rejected key
// must still alert.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, visit) {
				return true
			}
		}
	}
	return false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
