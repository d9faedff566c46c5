package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/retry"
)

const (
	// UserAgent is sent with every request unless the headers set one.
	UserAgent = "chimport"
	// DefaultTimeout bounds one attempt, response body included.
	DefaultTimeout = 30 * time.Second

	maxErrorRead    = 4 << 10  // of an error body: the excerpt plus room for redaction
	maxDrain        = 64 << 10 // of a 2xx body, so the connection can be reused
	maxPooledBuffer = 8 << 20  // bigger batch buffers go to the GC, not the pool
	minSecretLen    = 8        // shorter header values are not secrets worth blanking
)

// HTTPConfig configures delivery to one connection's target.
type HTTPConfig struct {
	Connection string // names the connection in errors and logs
	URL        string // absolute http or https URL the batches are POSTed to
	// Headers are sent on every request (e.g. Authorization). Their values
	// are never logged or put in an error. Content-Type and Idempotency-Key
	// are always the sink's own; a configured User-Agent wins over ours.
	Headers map[string]string
	// Timeout bounds each attempt, response included. Zero means
	// DefaultTimeout. It is applied through the request context, so it
	// also holds for a caller-supplied Client.
	Timeout time.Duration
	// Client sends the requests. Nil means a client on a transport shared
	// by all target sinks (a pool separate from Mailchimp's, so paging and
	// delivery do not queue behind each other) that does not follow
	// redirects.
	Client *http.Client
	// Retry is the backoff policy; zero fields take retry's defaults. Its
	// MaxDelay also caps a target's Retry-After. Its OnRetry, if set, is
	// called after the sink's own logging and counting.
	Retry retry.Policy
	// Logger receives a debug line per retry. Nil discards.
	Logger *slog.Logger
}

// Stats counts what an HTTP sink sent.
type Stats struct {
	Requests int64         // HTTP attempts, retries included
	Retries  int64         // attempts that failed and were retried
	Batches  int64         // batches delivered (answered 2xx)
	Records  int64         // records in delivered batches
	ByStatus map[int]int64 // attempts by response status; 0 = no response
}

// HTTP POSTs batches of records as a JSON array. It is safe for concurrent
// use; one HTTP serves one connection.
type HTTP struct {
	connection string
	url        string
	shownURL   string
	headers    http.Header
	timeout    time.Duration
	client     *http.Client
	retry      retry.Policy
	log        *slog.Logger
	redactor   *strings.Replacer

	mu    sync.Mutex
	stats Stats
}

// NewHTTP validates cfg and returns a sink. Errors name the config field
// and never contain a header value or the URL's query string.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target.url: %s is not an absolute http or https URL", RedactURL(cfg.URL))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("target: timeout %v is negative", cfg.Timeout)
	}
	s := &HTTP{
		connection: cfg.Connection,
		url:        cfg.URL,
		shownURL:   RedactURL(cfg.URL),
		headers:    make(http.Header, len(cfg.Headers)),
		timeout:    cfg.Timeout,
		client:     cfg.Client,
		retry:      cfg.Retry.WithDefaults(),
		log:        cfg.Logger,
		stats:      Stats{ByStatus: map[int]int64{}},
	}
	for name, value := range cfg.Headers {
		// Checked here because the transport would only fail at Send time,
		// where it would look like a network fault and be retried.
		if !validHeaderName(name) {
			return nil, fmt.Errorf("target.headers: %q is not a valid header name", name)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("target.headers: the value of %q contains a line break or NUL", name)
		}
		s.headers.Set(name, value)
	}
	s.redactor = newRedactor(cfg.Headers, u)
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.client == nil {
		s.client = &http.Client{
			Transport:     sharedTransport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// newRedactor blanks out what the target may echo back in an error body,
// which goes into errors and logs: header values (and the credential after
// "Bearer "/"Basic "), the query and its values, and the password.
func newRedactor(headers map[string]string, u *url.URL) *strings.Replacer {
	var secrets []string
	for _, value := range headers {
		secrets = append(secrets, value)
		if i := strings.LastIndexByte(value, ' '); i >= 0 {
			secrets = append(secrets, value[i+1:])
		}
	}
	secrets = append(secrets, u.RawQuery)
	for _, vs := range u.Query() {
		secrets = append(secrets, vs...)
	}
	if pw, ok := u.User.Password(); ok {
		secrets = append(secrets, pw)
	}
	// Longest first, so a whole header value wins over the token inside it.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, v := range secrets {
		if len(v) >= minSecretLen {
			pairs = append(pairs, v, "[redacted]")
		}
	}
	return strings.NewReplacer(pairs...)
}

// sharedTransport is one pool for every default target sink, separate from
// the Mailchimp client's. Connections to one target host are reused across
// batches and across connections that share the host.
var sharedTransport = sync.OnceValue(func() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   32, // above any sensible number of concurrent senders per target
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
})

// Stats returns a snapshot of the counters.
func (s *HTTP) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = make(map[int]int64, len(s.stats.ByStatus))
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	return st
}

func (s *HTTP) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// Send POSTs records as one JSON array and returns nil once the target
// answered 2xx. An empty batch sends nothing. Failures the target may get
// over (429, 5xx, 408, timeouts, transport errors) are retried by the
// policy, honouring Retry-After; when it gives up, or on any other status,
// the result is an *Error. When ctx ends, the result matches ctx.Err().
//
// Every attempt carries the same Idempotency-Key, so a target that
// deduplicates on it applies a retried batch once; the body is encoded once
// and replayed from the same buffer.
func (s *HTTP) Send(ctx context.Context, records []json.RawMessage) error {
	if len(records) == 0 {
		return nil
	}
	b, err := encodeBatch(records)
	if err != nil {
		return fmt.Errorf("target connection %q: %w", s.connection, err)
	}
	defer b.release()
	key := newIdempotencyKey()

	policy := s.retry
	userHook := policy.OnRetry
	policy.OnRetry = func(attempt int, err error, wait time.Duration) {
		s.count(func(st *Stats) { st.Retries++ })
		attrs := []slog.Attr{
			slog.String("connection", s.connection),
			slog.String("url", s.shownURL),
			slog.Int("records", len(records)),
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
	err = policy.Do(ctx, func(ctx context.Context, attempt int) error {
		attempts = attempt
		return s.attempt(ctx, b, key)
	})
	if err == nil {
		s.count(func(st *Stats) { st.Batches++; st.Records += int64(len(records)) })
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		e.Attempts = attempts
	}
	if ctx.Err() != nil || e == nil {
		// Stopped by the caller: keep ctx.Err() matchable, name the request.
		return fmt.Errorf("target connection %q: POST %s: %w", s.connection, s.shownURL, err)
	}
	// The typed error itself, not retry's wrapper: its message already
	// says how many attempts were made and what to do.
	return e
}

// attempt sends the batch once and classifies the outcome.
func (s *HTTP) attempt(ctx context.Context, b *batch, key string) error {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, s.url, nil)
	if err != nil {
		return fmt.Errorf("target connection %q: building the request: %w", s.connection, err)
	}
	req.Body, req.ContentLength = b.reader(), int64(b.size)
	// Lets the transport replay the body itself: net/http retries a request
	// carrying an Idempotency-Key on a stale keep-alive connection.
	req.GetBody = func() (io.ReadCloser, error) { return b.reader(), nil }
	req.Header = s.headers.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)

	s.count(func(st *Stats) { st.Requests++ })
	resp, err := s.client.Do(req)
	if err != nil {
		s.count(func(st *Stats) { st.ByStatus[0]++ })
		return s.transportError(ctx, actx, err)
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
		_ = resp.Body.Close()
	}()
	s.count(func(st *Stats) { st.ByStatus[resp.StatusCode]++ })
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	// The status decides what happens next; a body cut short only loses
	// detail, so its read error is ignored.
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
	e := &Error{Connection: s.connection, URL: s.shownURL, Status: resp.StatusCode, Body: excerpt(raw, s.redactor.Replace)}
	if e.Retryable() {
		e.retryAfter = parseRetryAfter(resp.Header, s.retry.Clock.Now())
	}
	return e
}

// transportError classifies a request that got no response.
func (s *HTTP) transportError(ctx, actx context.Context, err error) error {
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
	return &Error{Connection: s.connection, URL: s.shownURL, Err: err}
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
