package target

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
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

// Error is a failed delivery: the last attempt's outcome, once the retry
// policy gave up or decided not to retry. It never contains a header value
// or the URL's query string or password.
type Error struct {
	Connection string
	URL        string // RedactURL(url): no query string, no password
	Status     int    // HTTP status; 0 for transport errors and timeouts
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
	fmt.Fprintf(&b, ": POST %s: ", e.URL)
	if e.Status != 0 {
		b.WriteString("HTTP " + strconv.Itoa(e.Status))
		if text := http.StatusText(e.Status); text != "" {
			b.WriteString(" " + text)
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
	b.WriteString("; " + e.Hint())
	// Targets put newlines in error bodies; a log or alert line stays whole.
	return strings.Join(strings.Fields(b.String()), " ")
}

// Hint says what the operator should do about the error.
func (e *Error) Hint() string {
	switch s := e.Status; {
	case s == 0 && isCertError(e.Err):
		return "the target's TLS certificate was not accepted: check target.url and the target's certificate"
	case e.Retryable():
		return "the target is unavailable; the next run will retry"
	case s == http.StatusUnauthorized, s == http.StatusForbidden:
		return "the target rejected the credentials: check target.headers"
	case s == http.StatusBadRequest, s == http.StatusUnprocessableEntity:
		return "the target rejected the records: check the mapping and the target's API"
	case s == http.StatusNotFound, s == http.StatusMethodNotAllowed:
		return "the target has no such endpoint: check target.url"
	case s == http.StatusRequestEntityTooLarge:
		return "the batch is too large for the target: lower the batch size"
	case s >= 300 && s < 400:
		// Redirects are not followed: a 301/302 would turn the POST into a
		// GET and drop the records, and custom auth headers would go to
		// whatever host the Location names.
		return "the target answered with a redirect, which chimport does not follow: set target.url to the final address"
	}
	return "the target refused the request: check target.url and the target's API"
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

// RetryAfter is the wait the target asked for (at most MaxRetryAfter), or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

func (e *Error) Unwrap() error { return e.Err }

// NeedsPerson reports whether retrying cannot help until someone changes
// the config or the target (credentials, URL, mapping, certificate), so an
// alert should go out at once rather than after repeated failed runs.
func (e *Error) NeedsPerson() bool { return !e.Retryable() }

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
