package target

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
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

	// Deletes says how an OpDelete reaches the target (see DeleteMode).
	// The zero value configures no way: Apply refuses a batch holding a
	// delete with a *DeletesNotConfiguredError rather than guess one.
	Deletes DeleteMode
	// IDKey is the record key that holds the member id: the mapping's
	// output key whose path is id (mapping.Mapping.IDKey). DeletesTombstone
	// needs it, since a tombstone carries the deleted id under it.
	IDKey string
	// Tombstone is what a tombstone record carries besides its id, e.g.
	// {"status": "deleted"}: JSON values, which NewHTTP encodes once.
	// DeletesTombstone needs at least one field (a record with only its id
	// would not tell the target it is gone), and none may be IDKey.
	Tombstone map[string]any
	// DeleteURL is where DeletesRequest sends a DELETE per deleted id: an
	// absolute http or https URL holding {id} exactly once, in its path or
	// query, e.g. https://api.example.com/records/{id}. Set only with
	// DeletesRequest. Like URL, it is shown without its query or password.
	DeleteURL string
}

// Stats counts what an HTTP sink sent.
type Stats struct {
	Requests int64         // HTTP attempts, retries included, DELETEs too
	Retries  int64         // attempts that failed and were retried
	Batches  int64         // POSTed batches delivered (answered 2xx)
	Records  int64         // records in delivered batches, tombstones included
	ByStatus map[int]int64 // attempts by response status; 0 = no response

	Tombstones     int64 // tombstone records in delivered batches
	DeleteRequests int64 // DELETE attempts, retries included (also in Requests)
	Deleted        int64 // DELETEs done: answered 2xx, 404 or 410
	DeletesDropped int64 // deletes of applied batches dropped by DeletesOff
}

// HTTP POSTs batches of records as a JSON array, and sends deletes as its
// DeleteMode says. It is safe for concurrent use; one HTTP serves one
// connection.
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
	deletes    deletes

	mu    sync.Mutex
	stats Stats
}

// NewHTTP validates cfg and returns a sink. Errors name the config field
// and never contain a header value or the query string of a URL.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target.url: %s is not an absolute http or https URL", RedactURL(cfg.URL))
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("target: timeout %v is negative", cfg.Timeout)
	}
	dels, err := newDeletes(cfg)
	if err != nil {
		return nil, err
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
		deletes:    dels,
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
	s.redactor = newRedactor(cfg.Headers, u, dels.template)
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
// "Bearer "/"Basic "), the URLs' queries and their values, and passwords,
// each also in the escaped forms a target may echo it in (echoedForms).
// A nil URL (no delete URL) is skipped.
func newRedactor(headers map[string]string, urls ...*url.URL) *strings.Replacer {
	var secrets []string
	for _, value := range headers {
		secrets = append(secrets, value)
		if i := strings.LastIndexByte(value, ' '); i >= 0 {
			secrets = append(secrets, value[i+1:])
		}
	}
	for _, u := range urls {
		if u == nil {
			continue
		}
		secrets = append(secrets, u.RawQuery)
		for _, vs := range u.Query() {
			secrets = append(secrets, vs...)
		}
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	var forms []string
	for _, v := range secrets {
		if len(v) >= minSecretLen {
			forms = append(forms, echoedForms(v)...)
		}
	}
	// Longest first, so a whole header value wins over the token inside it
	// (the Replacer tries its pairs in order); equal lengths by value, so
	// that a form two secrets share is kept once.
	slices.SortFunc(forms, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	forms = slices.Compact(forms)
	pairs := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		pairs = append(pairs, f, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

// echoedForms returns a secret as a target may echo it: as it is; inside a
// JSON string, where " and \ are escaped, PHP also writes / as \/ (common
// in base64 tokens) and Go writes <, > and & as \u003c and the like; and
// escaped in a URL's query or path.
func echoedForms(v string) []string {
	inJSON := jsonEscaped(v, false)
	return []string{
		v,
		inJSON,
		strings.ReplaceAll(inJSON, "/", `\/`),
		jsonEscaped(v, true),
		url.QueryEscape(v),
		url.PathEscape(v),
	}
}

// jsonEscaped returns v as it stands inside a JSON string, quotes left off.
func jsonEscaped(v string, escapeHTML bool) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(v) // a string always encodes
	quoted := strings.TrimSuffix(b.String(), "\n")
	return quoted[1 : len(quoted)-1]
}

// sharedTransport is one pool for every default target sink, separate from
// the Mailchimp client's. Connections to one target host are reused across
// batches and across connections that share the host.
var sharedTransport = sync.OnceValue(func() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256, // as many as runs send at once to one target host
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
	return s.post(ctx, records, 0)
}

// post is Send for a batch of which tombstones records are tombstones.
func (s *HTTP) post(ctx context.Context, records []json.RawMessage, tombstones int) error {
	if len(records) == 0 {
		return nil
	}
	b, err := encodeBatch(records)
	if err != nil {
		return fmt.Errorf("target connection %q: %w", s.connection, err)
	}
	defer b.release()
	err = s.exchange(ctx, &exchange{
		method: http.MethodPost, url: s.url, shownURL: s.shownURL, body: b, key: newIdempotencyKey(),
		logAttr: slog.Int("records", len(records)),
	})
	if err != nil {
		return err
	}
	s.count(func(st *Stats) {
		st.Batches++
		st.Records += int64(len(records))
		st.Tombstones += int64(tombstones)
	})
	return nil
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
