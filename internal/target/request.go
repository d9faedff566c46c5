package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// One request to the target, from the first attempt to its outcome: what
// the POST of a batch and the DELETE of a record share.

// exchange is one request that the sink retries until it is done: the POST
// of a batch, or the DELETE of one record.
type exchange struct {
	method   string
	url      string
	shownURL string // RedactURL(url), for errors and logs
	body     *batch // nil: no body
	key      string // Idempotency-Key, the same on every attempt
	logAttr  slog.Attr
}

// exchange makes the attempts of x under the retry policy. It returns nil
// once x is done, the last attempt's *Error when the policy gave up or the
// answer cannot improve, or an error matching ctx.Err() when ctx ended.
func (s *HTTP) exchange(ctx context.Context, x *exchange) error {
	policy := s.retry
	userHook := policy.OnRetry
	policy.OnRetry = func(attempt int, err error, wait time.Duration) {
		s.count(func(st *Stats) { st.Retries++ })
		attrs := []slog.Attr{
			slog.String("connection", s.connection),
			slog.String("method", x.method),
			slog.String("url", x.shownURL),
			x.logAttr,
			slog.Int("attempt", attempt),
			slog.Duration("wait", wait),
			slog.String("error", err.Error()),
		}
		var e *Error
		if errors.As(err, &e) {
			attrs = append(attrs, slog.Int("status", e.Status))
		}
		s.log.LogAttrs(ctx, slog.LevelDebug, "target request failed, retrying", attrs...)
		if userHook != nil {
			userHook(attempt, err, wait)
		}
	}

	attempts := 0
	err := policy.Do(ctx, func(ctx context.Context, attempt int) error {
		attempts = attempt
		return s.attempt(ctx, x)
	})
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		e.Attempts = attempts
	}
	if ctx.Err() != nil || e == nil {
		// Stopped by the caller: keep ctx.Err() matchable, name the request.
		return fmt.Errorf("target connection %q: %s %s: %w", s.connection, x.method, x.shownURL, err)
	}
	// The typed error itself, not retry's wrapper: its message already
	// says how many attempts were made and what to do.
	return e
}

// attempt sends x once and classifies the outcome.
func (s *HTTP) attempt(ctx context.Context, x *exchange) error {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, x.method, x.url, nil)
	if err != nil {
		return fmt.Errorf("target connection %q: building the request: %w", s.connection, err)
	}
	req.Header = s.headers.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	if x.body != nil {
		b := x.body
		req.Body, req.ContentLength = b.reader(), int64(b.size)
		req.GetBody = func() (io.ReadCloser, error) { return b.reader(), nil }
		req.Header.Set("Content-Type", "application/json")
	}
	// Also lets the transport replay the request itself: net/http retries
	// a request carrying an Idempotency-Key on a stale keep-alive
	// connection, which it would not do for a POST or a DELETE otherwise.
	req.Header.Set("Idempotency-Key", x.key)

	isDelete := x.method == http.MethodDelete
	s.count(func(st *Stats) {
		st.Requests++
		if isDelete {
			st.DeleteRequests++
		}
	})
	resp, err := s.client.Do(req)
	if err != nil {
		s.count(func(st *Stats) { st.ByStatus[0]++ })
		return s.transportError(ctx, actx, x, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		_ = resp.Body.Close()
	}()
	s.count(func(st *Stats) { st.ByStatus[resp.StatusCode]++ })
	if code := resp.StatusCode; code >= 200 && code <= 299 || isDelete && deleteDone(code) {
		return nil
	}
	// The status decides what happens next; a body cut short only loses
	// detail, so its read error is ignored.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
	e := &Error{Connection: s.connection, URL: x.shownURL, Status: resp.StatusCode, Body: excerpt(raw, s.redactor.Replace)}
	if isDelete {
		e.Method = http.MethodDelete
	}
	if e.Retryable() {
		e.retryAfter = parseRetryAfter(resp.Header, s.retry.Clock.Now())
	}
	return e
}

// transportError classifies a request that got no response; x is nil for
// the probe.
func (s *HTTP) transportError(ctx, actx context.Context, x *exchange, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr // the caller stopped us; not the network's fault
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // *url.Error repeats the URL, query string included
	}
	switch {
	case actx.Err() != nil:
		// Our per-attempt timeout. Flattened so that retry.Do does not
		// take it for the caller's own deadline and stop retrying.
		err = fmt.Errorf("no answer within %v", s.timeout)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A caller-supplied Client's own Timeout: flattened likewise.
		err = errors.New("timed out: " + err.Error())
	}
	e := &Error{Connection: s.connection, URL: s.shownURL, Err: err}
	if x != nil && x.method == http.MethodDelete {
		e.Method, e.URL = x.method, x.shownURL
	}
	return e
}
