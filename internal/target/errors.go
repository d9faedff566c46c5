package target

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/advice"
)

const (
	// MaxRetryAfter caps the wait a target may ask for with Retry-After.
	// A target that asks for longer is effectively down for this run; the
	// retry policy's MaxDelay caps the wait further, and the next run
	// picks the batch up again.
	MaxRetryAfter = 5 * time.Minute

	// bodyExcerpt is how much of an error response an *Error keeps: enough
	// for an API's one-line complaint, too little to flood a log or alert.
	bodyExcerpt = 200
)

// Error is a failed request to the target: for a delivery (a batch's POST,
// or one record's DELETE), the last attempt's outcome, once the retry
// policy gave up or decided not to retry; for a probe, its one HEAD
// request. It never contains a header value or the URL's query string or
// password.
type Error struct {
	Connection string
	Method     string // the request's method: "" means POST, a batch; DELETE, HEAD
	URL        string // RedactURL(url): no query string, no password; a DELETE's holds the id
	Status     int    // HTTP status; 0 for transport errors and timeouts
	// Location is where a redirect points, redacted like URL; "" if the
	// answer was not a redirect or named no place.
	Location string
	// Body is the start of the response body: at most 200 bytes, valid
	// UTF-8, trimmed, with configured header values blanked out in case the
	// target echoed them. Response headers are never kept.
	Body     string
	Attempts int   // attempts made for this batch, the first included
	Err      error // underlying transport error, if any

	retryAfter time.Duration
}

// Error returns one line: which connection, what request, what came back,
// and what to do next.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("target")
	if e.Connection != "" {
		fmt.Fprintf(&b, " connection %q", e.Connection)
	}
	fmt.Fprintf(&b, ": %s %s: ", e.method(), e.URL)
	if e.Status != 0 {
		b.WriteString("HTTP " + strconv.Itoa(e.Status))
		if text := http.StatusText(e.Status); text != "" {
			b.WriteString(" " + text)
		}
		if e.Location != "" {
			b.WriteString(" to " + e.Location)
		}
		if e.Body != "" {
			b.WriteString(": " + e.Body)
		}
	} else {
		b.WriteString("no response")
		if e.Err != nil {
			b.WriteString(": " + e.Err.Error())
		}
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	b.WriteString("; " + e.hint())
	// Targets put newlines in error bodies; a log or alert line stays whole.
	return strings.Join(strings.Fields(b.String()), " ")
}

func (e *Error) method() string {
	if e.Method == "" {
		return http.MethodPost
	}
	return e.Method
}

// Advice says what failed and what a person should do, for the errors that
// retrying cannot fix: credentials or records refused, no such endpoint, a
// batch too large, a redirect, a rejected TLS certificate. ok is false for
// the errors a later attempt may get over (408, 429, 5xx, timeouts, other
// transport errors). The alert policy and the error message both take
// their text from here. A DELETE's advice names target.delete_url.
func (e *Error) Advice() (a advice.Advice, ok bool) {
	if e.Retryable() {
		return advice.Advice{}, false
	}
	if e.Method == http.MethodDelete {
		return e.deleteAdvice(), true
	}
	a.Status = e.Status
	switch s := e.Status; {
	case s == 0:
		// Not retryable without a status: the certificate was refused.
		a.Problem = "the target's TLS certificate was not accepted"
		a.Action = "Check target.url and the target's certificate: it may have expired, be self-signed, or be for another host name."
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		a.Problem = "the target rejected the credentials"
		a.Action = credentialsAction
	case s == http.StatusBadRequest, s == http.StatusUnprocessableEntity:
		a.Problem = "the target rejected the records"
		a.Action = "Check the mapping of this connection against what the target's API accepts; the error quotes the start of the target's answer."
	case s == http.StatusNotFound, s == http.StatusMethodNotAllowed:
		a.Problem = "the target has no such endpoint"
		a.Action = "Check target.url for this connection."
	case s == http.StatusRequestEntityTooLarge:
		a.Problem = "the target refused a batch as too large"
		a.Action = "Lower target.batch_size for this connection."
	case s >= 300 && s < 400:
		// Redirects are not followed: a 301/302 would turn the POST into a
		// GET and drop the records, and custom auth headers would go to
		// whatever host the Location names.
		a.Problem = "the target answered with a redirect"
		a.Action = "Set target.url to the final address: chimport does not follow redirects, which would drop the records or send the credentials elsewhere."
	default:
		a.Problem = "the target refused the request"
		a.Action = "Check target.url and what the target's API expects."
	}
	return a, true
}

const credentialsAction = "Check target.headers (for example Authorization) for this connection: the token may have expired or been revoked."

// deleteAdvice is Advice for a DELETE that retrying cannot fix. 404 and
// 410 never get here: they mean the record is gone.
func (e *Error) deleteAdvice() advice.Advice {
	a := advice.Advice{Status: e.Status}
	switch s := e.Status; {
	case s == 0:
		a.Problem = "the target's TLS certificate was not accepted"
		a.Action = "Check target.delete_url and the target's certificate: it may have expired, be self-signed, or be for another host name."
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		a.Problem = "the target rejected the credentials for a delete"
		a.Action = credentialsAction
	case s == http.StatusMethodNotAllowed:
		a.Problem = "the target does not accept DELETE there"
		a.Action = "Check target.delete_url for this connection, or set target.deletes to tombstone (a record saying it was deleted) or off."
	case s >= 300 && s < 400:
		a.Problem = "the target answered a delete with a redirect"
		a.Action = "Set target.delete_url to the final address: chimport does not follow redirects, which could send the credentials elsewhere."
	default:
		a.Problem = "the target refused to delete a record"
		a.Action = "Check target.delete_url for this connection and what the target's API expects of a DELETE; the error quotes the start of the target's answer."
	}
	return a
}

// hint ends the error message: the advice, or for an error a later attempt
// may get over, what happens next.
func (e *Error) hint() string {
	if a, ok := e.Advice(); ok {
		return a.String()
	}
	if e.Method == http.MethodHead {
		// A probe: nothing retries it, a person is looking at the answer.
		return "the target is unavailable: check target.url and that the target is running and reachable from here"
	}
	return "the target is unavailable; the next run will retry"
}

// Retryable reports whether the same batch may succeed later: 408, 429,
// 5xx, timeouts and transport errors other than a rejected certificate.
// It is what retry.Policy.Do consults.
func (e *Error) Retryable() bool {
	switch s := e.Status; {
	case s == 0:
		return !isCertError(e.Err)
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		return true
	}
	return false
}

// Refused reports whether the target refused what the request carried
// (400 or 422): a batch of records, or one record's DELETE. Sent in
// smaller parts, the rest of a refused batch may be accepted; the engine
// splits it to find the records refused on their own.
func (e *Error) Refused() bool {
	return e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity
}

// TooLarge reports a batch the target refused for its size (413): not a
// refusal of its records, which go again in smaller batches.
func (e *Error) TooLarge() bool { return e.Status == http.StatusRequestEntityTooLarge }

// RetryAfter is the wait the target asked for (at most MaxRetryAfter), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

func (e *Error) Unwrap() error { return e.Err }

// NeedsPerson reports whether the error has Advice: retrying cannot help
// until someone changes the config or the target.
func (e *Error) NeedsPerson() bool {
	_, ok := e.Advice()
	return ok
}

// isCertError reports a TLS verification failure: it will not fix itself
// between attempts, so it is not retried.
func isCertError(err error) bool {
	var cv *tls.CertificateVerificationError
	return err != nil && errors.As(err, &cv)
}

// parseRetryAfter reads a Retry-After header as delta-seconds or an HTTP
// date, capped at MaxRetryAfter; anything else is 0 (use the backoff).
//
// A date is measured from the response's own Date header when there is one,
// so clock skew between us and the target neither stretches nor cuts the
// wait; otherwise from now.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	secs, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil && secs >= int64(MaxRetryAfter/time.Second),
		errors.Is(err, strconv.ErrRange) && secs > 0:
		return MaxRetryAfter // also keeps secs*time.Second from overflowing
	case err == nil:
		d = time.Duration(secs) * time.Second
	default:
		at, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		base := now
		if date, err := http.ParseTime(h.Get("Date")); err == nil {
			base = date
		}
		d = at.Sub(base)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// excerpt makes Error.Body from the start of a response body. redact runs
// before the cut so a secret straddling the 200-byte mark is still caught.
func excerpt(raw []byte, redact func(string) string) string {
	s := strings.TrimSpace(redact(string(raw)))
	if len(s) > bodyExcerpt {
		s = s[:bodyExcerpt]
	}
	// The cut may split a rune, and the target may send any bytes at all.
	return strings.TrimSpace(strings.ToValidUTF8(s, ""))
}
