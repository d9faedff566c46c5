package mailchimp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/retry"
)

const (
	// UserAgent is sent with every request.
	UserAgent = "chimport"
	// AttemptTimeout bounds one HTTP attempt, body included, in the default
	// HTTP client. Mailchimp gives up on a call after 120 s; waiting a
	// little longer lets its own error arrive instead of ours.
	AttemptTimeout = 130 * time.Second
	// basicUser is the Basic auth user name; Mailchimp ignores it.
	basicUser = "chimport"
)

// Config configures a Client. Exactly one of APIKey and AccessToken is
// required.
type Config struct {
	// APIKey is "<key>-<dc>". It is sent only as the Basic auth password
	// and never logged or put in an error.
	APIKey string
	// AccessToken is an OAuth access token, the alternative to APIKey for
	// an app that connects other people's accounts. It is sent only as
	// "Authorization: Bearer <token>" and is a secret like a key.
	AccessToken string
	// DC is the data center of AccessToken's account ("us6"). Empty means
	// it is looked up at MetadataURL on the first request. With an API key
	// it may only repeat the key's own suffix.
	DC string
	// MetadataURL is Mailchimp's OAuth metadata endpoint; empty means
	// DefaultMetadataURL. Tests point it at the simulator.
	MetadataURL string
	// Datacenters caches the lookups at MetadataURL across Clients: build
	// one per process. Nil means a private cache, which only spares this
	// Client a second lookup.
	Datacenters *Datacenters
	// BaseURL overrides https://<dc>.api.mailchimp.com/3.0 (the simulator,
	// tests, a proxy), whatever the key's suffix, DC or MetadataURL say.
	// When set, the key needs no dc suffix and no lookup is made.
	BaseURL string
	// Connection names the connection in errors and logs.
	Connection string
	// HTTPClient sends the requests. Nil means a client dedicated to
	// Mailchimp (its own connection pool, separate from the target's) with
	// an AttemptTimeout per attempt.
	HTTPClient *http.Client
	// Limiter is shared by every Client in the process; nil means a
	// private NewLimiter(DefaultPerKey), which only protects this Client.
	// Its slots are per key and per token alike.
	Limiter *Limiter
	// Retry is the backoff policy; zero fields take retry's defaults.
	// Its OnRetry, if set, is called after the client's own logging.
	Retry retry.Policy
	// Logger receives a debug line per retry. Nil discards.
	Logger *slog.Logger
}

// Client calls the Mailchimp Marketing API. It is safe for concurrent use.
type Client struct {
	cred        credential
	metadataURL string
	datacenters *Datacenters
	connection  string
	http        *http.Client
	limiter     *Limiter
	retry       retry.Policy
	log         *slog.Logger
	redactor    *strings.Replacer

	mu    sync.Mutex
	base  string // "" until a token's data center is looked up
	stats Stats
}

// New validates cfg and returns a Client. It does no I/O: a token's data
// center, when neither DC nor BaseURL gives it, is looked up on the first
// request.
func New(cfg Config) (*Client, error) {
	cred, err := newCredential(cfg.APIKey, cfg.AccessToken)
	if err != nil {
		return nil, err
	}
	base, err := initialBase(cfg, cred)
	if err != nil {
		return nil, err
	}
	metadataURL := cfg.MetadataURL
	if metadataURL == "" {
		metadataURL = DefaultMetadataURL
	}
	if !isPlainURL(metadataURL) {
		return nil, errors.New("mailchimp: metadata URL must be an absolute http(s) URL without credentials or query")
	}
	c := &Client{
		cred:        cred,
		metadataURL: metadataURL,
		datacenters: cfg.Datacenters,
		base:        base,
		connection:  cfg.Connection,
		http:        cfg.HTTPClient,
		limiter:     cfg.Limiter,
		retry:       cfg.Retry.WithDefaults(),
		log:         cfg.Logger,
		redactor:    cred.redactor(),
		stats:       Stats{ByStatus: map[int]int64{}},
	}
	if c.datacenters == nil {
		c.datacenters = NewDatacenters()
	}
	if c.limiter == nil {
		c.limiter = NewLimiter(DefaultPerKey)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: sharedTransport(), Timeout: AttemptTimeout}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// sharedTransport is one pool for every default Client: clients for many
// connections of the same key then reuse each other's idle connections,
// while the target sink keeps its own pool so paging and delivery overlap.
var sharedTransport = sync.OnceValue(func() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512, // many keys share one data center host, 10 requests each at most
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
})

// Stats counts what a Client sent. The lookups of a token's data center
// are not Marketing API calls: they are counted in MetadataRequests alone,
// and in none of the other fields.
type Stats struct {
	Requests int64         // HTTP attempts sent to the Marketing API, retries included
	Retries  int64         // of those, attempts that were retried
	ByStatus map[int]int64 // those attempts by response status; 0 = no response (transport error)
	// MetadataRequests counts the attempts at the OAuth metadata endpoint,
	// retries included; a cached data center costs none.
	MetadataRequests int64
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.ByStatus = make(map[int]int64, len(c.stats.ByStatus))
	for k, v := range c.stats.ByStatus {
		s.ByStatus[k] = v
	}
	return s
}

func (c *Client) count(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

// countAttempt counts an attempt as it is sent (status -1) and then its
// outcome (0 for no response): a metadata lookup only in MetadataRequests.
func (c *Client) countAttempt(metadata bool, status int) {
	c.count(func(s *Stats) {
		switch {
		case metadata && status < 0:
			s.MetadataRequests++
		case metadata:
		case status < 0:
			s.Requests++
		default:
			s.ByStatus[status]++
		}
	})
}

// callError names the call in an error that is not an *Error (a caller's
// cancellation), keeping it matchable.
func callError(connection, method, endpoint string, err error) error {
	return fmt.Errorf("%s%w", callPrefix(connection, method, endpoint), err)
}

// redact removes the API key or access token and the Authorization value
// from text that came from the server, in case something on the way echoed
// the request.
func (c *Client) redact(s string) string { return c.redactor.Replace(s) }

// request is one logical call to Mailchimp.
type request struct {
	method, endpoint string
	query            url.Values
	// body, when set, is sent as JSON (POST).
	body []byte
	// scrub, when set, removes what the body must not leak (a webhook's
	// token) from anything the server sends back, before it reaches an
	// error or a log line; the API key is always removed.
	scrub *strings.Replacer
	// beforeRetry, when set, runs before every attempt after the first
	// with the error that attempt retries. done means the call succeeded
	// after all (a POST whose answer was lost) and no attempt is made; an
	// error is that attempt's outcome. It is how a call that is not
	// idempotent is retried without doing its work twice.
	beforeRetry func(ctx context.Context, last error) (done bool, err error)

	// url, when set, is the absolute URL to call instead of the base URL
	// plus endpoint, and auth the Authorization value instead of the
	// credential's: the OAuth metadata lookup (metadata set), which is
	// counted apart from the Marketing API's calls.
	url, auth string
	metadata  bool
}

// call makes one logical request without a body: see send.
func (c *Client) call(ctx context.Context, method, endpoint string, query url.Values, decode func(*http.Response) error) error {
	return c.send(ctx, request{method: method, endpoint: endpoint, query: query}, decode)
}

// send makes one logical request: the only path to Mailchimp. The retry
// policy wraps attempts; each attempt holds a limiter slot until its body
// is consumed; decode runs inside the attempt so a truncated body is
// retried like any other transient fault.
func (c *Client) send(ctx context.Context, r request, decode func(*http.Response) error) error {
	method, endpoint := r.method, r.endpoint
	if r.url == "" {
		// Before the attempts, not in them: the lookup has retries of its
		// own, and takes the slot an attempt would hold.
		if _, err := c.baseURL(ctx); err != nil {
			return err
		}
	}
	policy := c.retry
	userHook := policy.OnRetry
	policy.OnRetry = func(attempt int, err error, wait time.Duration) {
		if !r.metadata {
			c.count(func(s *Stats) { s.Retries++ })
		}
		attrs := []slog.Attr{
			slog.String("connection", c.connection),
			slog.String("method", method),
			slog.String("endpoint", endpoint),
			slog.Int("attempt", attempt),
			slog.Duration("wait", wait),
		}
		var e *Error
		if errors.As(err, &e) {
			attrs = append(attrs, slog.Int("status", e.Status), slog.String("kind", e.Kind.String()),
				slog.String("error", e.summary()))
		} else {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		c.log.LogAttrs(ctx, slog.LevelDebug, "mailchimp request failed, retrying", attrs...)
		if userHook != nil {
			userHook(attempt, err, wait)
		}
	}

	attempts := 0
	var last error
	err := policy.Do(ctx, func(ctx context.Context, attempt int) error {
		attempts = attempt
		if attempt > 1 && r.beforeRetry != nil {
			if done, err := r.beforeRetry(ctx, last); done || err != nil {
				last = err
				return err
			}
		}
		last = c.attempt(ctx, r, decode)
		return last
	})
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		e.Attempts = attempts
	}
	if ctx.Err() != nil || e == nil {
		// Stopped by the caller: keep ctx.Err() matchable, name the call.
		return callError(c.connection, method, endpoint, err)
	}
	// Return the typed error itself (not retry's wrapper): its message
	// already says how many attempts were made and what to do.
	return e
}

// attempt sends one HTTP request and classifies the outcome.
func (c *Client) attempt(ctx context.Context, r request, decode func(*http.Response) error) error {
	method, endpoint := r.method, r.endpoint
	release, err := c.limiter.acquire(ctx, c.cred.id)
	if err != nil {
		return err // only a done ctx fails an acquire
	}
	defer release()

	target := r.url
	if target == "" {
		c.mu.Lock()
		target = c.base + endpoint // known: send looked it up first
		c.mu.Unlock()
	}
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return c.newError(KindInvalid, method, endpoint, 0, err)
	}
	auth := c.cred.header
	if r.auth != "" {
		auth = r.auth
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "application/json")
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	c.countAttempt(r.metadata, -1)
	resp, err := c.http.Do(req)
	if err != nil {
		c.countAttempt(r.metadata, 0)
		return c.transportError(ctx, method, endpoint, 0, err)
	}
	// Runs before release: the slot is freed only once the connection is
	// back in the pool or closed.
	defer drainAndClose(resp.Body)
	c.countAttempt(r.metadata, resp.StatusCode)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The status decides the kind; a body cut short only loses detail.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		redact := c.redact
		if r.scrub != nil {
			redact = func(s string) string { return c.redact(r.scrub.Replace(s)) }
		}
		e := statusError(resp, body, c.retry.Clock.Now(), redact)
		e.Connection, e.Method, e.Endpoint, e.token = c.connection, method, endpoint, c.cred.token
		return e
	}
	if err := decode(resp); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return err
		}
		if isBadJSON(err) {
			return c.newError(KindBadBody, method, endpoint, resp.StatusCode, err)
		}
		return c.transportError(ctx, method, endpoint, resp.StatusCode, err)
	}
	return nil
}

func (c *Client) newError(k Kind, method, endpoint string, status int, err error) *Error {
	e := &Error{Kind: k, Connection: c.connection, Method: method, Endpoint: endpoint, Status: status, Err: err, token: c.cred.token}
	if k == KindBadBody {
		e.Title = "unreadable response body"
	}
	return e
}
