package target

import (
	"context"
	"io"
	"net/http"
	"net/url"
)

// ProbeResult is what a probe learned about a target.
type ProbeResult struct {
	Status int // HTTP status of the HEAD request
}

// Probe checks that the target answers without sending it data: one HEAD
// request to the sink's URL through the sink's own client, with its
// headers, User-Agent and per-attempt timeout. So it judges the target as
// Send will: a redirect, which Send does not follow, fails the probe too.
//
// Any answer below 500 other than a redirect, 401 and 403 passes: many APIs
// answer HEAD on a POST-only route with 404 or 405, and that still proves
// the server is there. A failure is an *Error (Method HEAD) whose message
// says what to do; it is not retried, since a person is waiting.
func (s *HTTP) Probe(ctx context.Context) (ProbeResult, error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodHead, s.url, nil)
	if err != nil {
		return ProbeResult{}, &Error{Connection: s.connection, Method: http.MethodHead, URL: s.shownURL, Err: err}
	}
	req.Header = s.headers.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		err = s.transportError(ctx, actx, nil, err)
		if e, ok := err.(*Error); ok {
			e.Method = http.MethodHead
		}
		return ProbeResult{}, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	res := ProbeResult{Status: resp.StatusCode}
	switch code := resp.StatusCode; {
	case code >= 300 && code < 400, code == http.StatusUnauthorized, code == http.StatusForbidden, code >= 500:
	default:
		return res, nil
	}
	e := &Error{Connection: s.connection, Method: http.MethodHead, URL: s.shownURL, Status: resp.StatusCode, Attempts: 1}
	if loc, err := resp.Location(); err == nil {
		e.Location = RedactURL(loc.String())
	}
	return res, e
}

// RedactURL returns u without its query string, fragment and password, for
// messages: customers sometimes put tokens in a target URL.
func RedactURL(u string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	parsed.User = nil
	if parsed.RawQuery != "" {
		parsed.RawQuery = "REDACTED"
	}
	parsed.Fragment = ""
	return parsed.String()
}
