package mailchimp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/advice"
)

// Kind sorts failures by what should happen next: retry, fix the
// configuration, or report a bug.
type Kind int

const (
	KindAuth        Kind = iota + 1 // 401: the API key or access token was rejected
	KindForbidden                   // 403 with a problem document: the key may not do this
	KindNotFound                    // 404: usually a wrong list id
	KindInvalid                     // 400 and other 4xx: the request itself is wrong
	KindRateLimited                 // 429, and 403 without a JSON body (Mailchimp's edge under load)
	KindServer                      // 5xx, including HTML pages from a proxy
	KindTransport                   // dial, reset, timeout, dropped connection
	KindBadBody                     // a 2xx whose body is truncated or not the expected JSON
)

var kindNames = map[Kind]string{
	KindAuth:        "auth",
	KindForbidden:   "forbidden",
	KindNotFound:    "not_found",
	KindInvalid:     "invalid",
	KindRateLimited: "rate_limited",
	KindServer:      "server",
	KindTransport:   "transport",
	KindBadBody:     "bad_body",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown(" + strconv.Itoa(int(k)) + ")"
}

// FieldError is one entry of a problem document's "errors" array.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a failed Mailchimp call after the retry policy gave up or
// decided not to retry. It never contains the API key or access token.
type Error struct {
	Kind        Kind
	Connection  string // connection name from the config, for the operator
	Method      string
	Endpoint    string // path below the base URL, without query: "/lists/abc123/members"
	Status      int    // HTTP status; 0 for transport errors
	Title       string
	Detail      string
	Instance    string // Mailchimp's request id, for support tickets
	FieldErrors []FieldError
	Attempts    int   // attempts made for this call, the first included
	Err         error // underlying cause (transport or decode error), if any

	retryAfter time.Duration // from a Retry-After header; Mailchimp sends none today
	token      bool          // the call carried an OAuth access token, not an API key
}

// Error returns one line: where, what, and what to do next.
func (e *Error) Error() string { return e.summary() + " (" + e.hint() + ")" }

// summary is Error without the hint: where and what. Retry log lines use
// it, since "the next run will retry" is not yet true there.
func (e *Error) summary() string {
	var b strings.Builder
	b.WriteString(callPrefix(e.Connection, e.Method, e.Endpoint))
	switch {
	case e.Status != 0:
		b.WriteString(strconv.Itoa(e.Status))
		if e.Title != "" {
			b.WriteString(" " + e.Title)
		}
	default:
		b.WriteString(e.Kind.String() + " error")
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, fe := range e.FieldErrors {
		sep := "; "
		if i == 0 {
			sep = " ["
		}
		b.WriteString(sep + fe.Field + ": " + fe.Message)
		if i == len(e.FieldErrors)-1 {
			b.WriteString("]")
		}
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return oneLine(b.String())
}

// Advice says what failed and what a person should do, for the errors
// that retrying cannot fix (a rejected key, refused access, a missing
// audience, an invalid request); ok is false for every other error, which
// the next run retries. The alert policy and the error message both take
// their text from here.
func (e *Error) Advice() (a advice.Advice, ok bool) {
	if a, ok := e.webhookAdvice(); ok {
		return a, true
	}
	if a, ok := e.tokenAdvice(); ok {
		return a, true
	}
	a.Status = e.Status
	switch e.Kind {
	case KindAuth:
		a.Problem = "Mailchimp rejected the API key"
		a.Action = "Check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed."
	case KindForbidden:
		a.Problem = "Mailchimp refused the API key access to the audience"
		a.Action = "Check that mailchimp.api_key belongs to the Mailchimp account that owns mailchimp.list_id, and that the account is active."
	case KindNotFound:
		a.Problem = "Mailchimp has no audience with this list id"
		a.Action = "Check mailchimp.list_id: the audience may have been deleted, or it belongs to another account than the API key."
	case KindInvalid:
		a.Problem = "Mailchimp rejected a request as invalid"
		a.Action = "Check the connection's mapping and mailchimp.statuses. If they look right, report a chimport bug with this error."
	default:
		return advice.Advice{}, false
	}
	return a, true
}

// tokenAdvice is the advice of a call with an OAuth access token where it
// differs from a key's: a token is not typed in but granted when someone
// connects their account, so a refused one means connecting it again; and
// the metadata lookup has its own config fields.
func (e *Error) tokenAdvice() (advice.Advice, bool) {
	a := advice.Advice{Status: e.Status}
	switch {
	case !e.token:
		return a, false
	case e.Kind == KindAuth:
		a.Problem = "Mailchimp refused the OAuth access token"
		a.Action = "The access token was refused or revoked: connect the Mailchimp account again (OAuth) and set the new token as mailchimp.access_token for this connection."
	case e.Endpoint == MetadataEndpoint && (e.Kind == KindForbidden || e.Kind == KindNotFound || e.Kind == KindInvalid):
		a.Problem = "Mailchimp's OAuth metadata endpoint refused to name the account's data center"
		a.Action = "Check mailchimp.metadata_url (unset means " + DefaultMetadataURL + "), or set mailchimp.dc for this connection."
	case e.Kind == KindForbidden:
		a.Problem = "Mailchimp refused the access token access to the audience"
		a.Action = "Check that the Mailchimp account connected with mailchimp.access_token owns mailchimp.list_id, and that the account is active."
	case e.Kind == KindNotFound:
		a.Problem = "Mailchimp has no audience with this list id"
		a.Action = "Check mailchimp.list_id: the audience may have been deleted, or it belongs to another account than the access token's."
	default:
		return a, false
	}
	return a, true
}

// hint ends the error message: the advice, or for an error the next run
// retries, why it failed and that it will be retried.
func (e *Error) hint() string {
	if a, ok := e.Advice(); ok {
		return a.String()
	}
	cause := "Mailchimp or the network is unavailable"
	switch {
	case e.Kind == KindRateLimited && e.token:
		cause = "Mailchimp is rate limiting this access token"
	case e.Kind == KindRateLimited:
		cause = "Mailchimp is rate limiting this API key"
	}
	if e.Attempts > 1 {
		return fmt.Sprintf("retried %d times; %s, the next run will retry", e.Attempts-1, cause)
	}
	return cause + ", the next run will retry"
}

// Retryable reports whether the same request may succeed later. It is what
// retry.Policy.Do consults.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited, KindServer, KindTransport, KindBadBody:
		return true
	}
	return false
}

// RetryAfter is the wait the server asked for, or 0.
func (e *Error) RetryAfter() time.Duration { return e.retryAfter }

func (e *Error) Unwrap() error { return e.Err }

// IsKind reports whether err is, or wraps, an *Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// maxErrorBody bounds how much of an error response is read: problem
// documents are small, and a proxy's HTML page is not worth more.
const maxErrorBody = 64 << 10

// problem is Mailchimp's application/problem+json error document.
type problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Errors   []FieldError `json:"errors"`
	// Error is what the OAuth endpoints send instead ({"error":"invalid_token"}).
	Error string `json:"error"`
}

// statusError builds the *Error for a non-2xx response from its (already
// size-limited) body. redact scrubs anything the server echoed back.
func statusError(resp *http.Response, body []byte, now time.Time, redact func(string) string) *Error {
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	var p problem
	trimmed := bytes.TrimSpace(body)
	isProblem := len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &p) == nil
	switch {
	case isProblem:
		if p.Title != "" {
			e.Title = p.Title
		}
		e.Detail, e.Instance = p.Detail, p.Instance
		if e.Detail == "" {
			e.Detail = p.Error
		}
		for _, fe := range p.Errors {
			e.FieldErrors = append(e.FieldErrors, FieldError{Field: clip(redact(fe.Field)), Message: clip(redact(fe.Message))})
		}
	case len(trimmed) == 0:
		e.Detail = "empty response body"
	default:
		// Never quote a non-JSON body: a proxy page may echo request headers.
		e.Detail = "response body is not JSON (" + mediaType(resp) + "), probably from a proxy or gateway"
	}
	e.Title, e.Detail = clip(redact(e.Title)), clip(redact(e.Detail))

	switch s := resp.StatusCode; {
	case s == http.StatusUnauthorized:
		e.Kind = KindAuth
	case s == http.StatusForbidden && isProblem:
		e.Kind = KindForbidden
	case s == http.StatusForbidden, s == http.StatusTooManyRequests:
		// At high volume Mailchimp answers 403 with no JSON at all: that is
		// throttling, not a permission problem.
		e.Kind = KindRateLimited
	case s == http.StatusNotFound:
		e.Kind = KindNotFound
	case s >= 500:
		e.Kind = KindServer
	default:
		e.Kind = KindInvalid
	}
	if e.Retryable() {
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return e
}

func mediaType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt == "" {
		return "no content type"
	}
	return mt
}

// parseRetryAfter reads delta-seconds or an HTTP date; anything else is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(secs)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// callPrefix names a call the same way in every error: which connection,
// which method and endpoint.
func callPrefix(connection, method, endpoint string) string {
	if connection == "" {
		return "mailchimp: " + method + " " + endpoint + ": "
	}
	return fmt.Sprintf("mailchimp connection %q: %s %s: ", connection, method, endpoint)
}

// oneLine keeps log and alert lines whole when a server puts newlines in
// a detail.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// clip bounds a server-supplied string so one odd response cannot flood
// the logs.
func clip(s string) string {
	const maxLen = 500
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "") + "…"
	}
	return s
}
