package target

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ProbeResult is what a probe learned about a target.
type ProbeResult struct {
	Status int // HTTP status of the HEAD request
}

// ProbeError says why a target failed its probe, and what to do about it.
// It never carries header values or the URL's query string.
type ProbeError struct {
	URL    string // the target URL with any query string and password removed
	Status int    // 0 when no HTTP response arrived
	Reason string
	Hint   string
}

func (e *ProbeError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("target %s answered HTTP %d: %s; %s", e.URL, e.Status, e.Reason, e.Hint)
	}
	return fmt.Sprintf("target %s: %s; %s", e.URL, e.Reason, e.Hint)
}

// Probe checks that a target accepts connections and the configured headers
// without sending it data: it makes a HEAD request to url with headers.
//
// Any answer below 500 other than 401 and 403 passes: many APIs answer HEAD on
// a POST-only route with 404 or 405, and that still proves the server is
// there. 401 and 403 mean the credentials in the headers were rejected; 5xx
// means the server is unwell.
func Probe(ctx context.Context, client *http.Client, rawURL string, headers map[string]string) (ProbeResult, error) {
	shown := RedactURL(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return ProbeResult{}, &ProbeError{URL: shown, Reason: "the URL is not valid", Hint: "check target.url"}
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("User-Agent", "chimport")
	resp, err := client.Do(req)
	if err != nil {
		return ProbeResult{}, &ProbeError{URL: shown, Reason: "no answer: " + transportReason(err), Hint: "check target.url and that the target is running and reachable from here"}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return ProbeResult{Status: resp.StatusCode}, &ProbeError{URL: shown, Status: resp.StatusCode, Reason: "it rejected the credentials", Hint: "check target.headers (e.g. Authorization)"}
	case resp.StatusCode >= 500:
		return ProbeResult{Status: resp.StatusCode}, &ProbeError{URL: shown, Status: resp.StatusCode, Reason: "server error", Hint: "the target is unwell; try again later or ask its owners"}
	}
	return ProbeResult{Status: resp.StatusCode}, nil
}

// transportReason describes a transport error without the URL, which
// *url.Error would repeat (with its query string).
func transportReason(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
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
