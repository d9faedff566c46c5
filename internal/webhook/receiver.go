package webhook

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// MaxBody is the largest webhook payload accepted; Mailchimp's are a few
// hundred bytes.
const MaxBody = 64 << 10

// Receiver serves the webhook routes, and only those: POST (an event) and
// GET (Mailchimp's check when a webhook is created) on
// /webhooks/mailchimp/{connection}/{token}. It answers as soon as an
// event is queued, never after the fetch: Mailchimp gives up on a call
// after 10 s and disables a webhook that keeps failing.
type Receiver struct {
	secret string
	lists  map[string]string // connection -> its list id, for the connections that take webhooks
	queue  *Queue
	hooks  Hooks
	log    *slog.Logger
}

// NewReceiver returns a receiver for the connections in lists (name to
// list id) that queues their events in q. Hooks.Event hears of the events
// answered at once (bad_token, ignored, malformed).
func NewReceiver(secret string, lists map[string]string, q *Queue, hooks Hooks, logger *slog.Logger) *Receiver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Receiver{secret: secret, lists: lists, queue: q, hooks: hooks, log: logger}
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, ok := rc.route(r.URL.EscapedPath())
	if !ok {
		// A wrong token, an unknown connection and a path that is no
		// route look the same from outside, and cause no work.
		rc.event("", "unknown", "bad_token")
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		w.WriteHeader(http.StatusOK) // Mailchimp's check of the URL
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	payload, err := readForm(w, r)
	if err != nil {
		rc.event(conn, "unknown", "malformed")
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	}
	e, err := Parse(payload)
	switch {
	case err != nil:
		rc.log.Debug("a webhook payload was malformed", "connection", conn, "error", err)
		rc.event(conn, typeLabel(e.Type), "malformed")
		http.Error(w, "malformed payload", http.StatusBadRequest)
		return
	case len(e.Members) == 0, e.ListID != "" && e.ListID != rc.lists[conn]:
		// A campaign event, or one about another audience: nothing of
		// this connection's.
		rc.event(conn, e.Type, "ignored")
		w.WriteHeader(http.StatusOK)
		return
	}
	rc.queue.Add(conn, e.Type, e.Members)
	w.WriteHeader(http.StatusOK)
}

// readForm returns a POST's form-encoded payload, reading at most MaxBody
// of the body. The whole body goes through the limit before ParseForm sees
// it, because ParseForm reads a body only when it is form-encoded: a large
// body of any other type (or of none) would be refused as malformed, not
// as too large. A body that is not form-encoded still yields no values.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.PostForm, nil
}

// route returns the connection a path is for, when its token is right.
// The token is checked in constant time, and computed for an unknown
// connection too, so that timing says nothing of which names exist.
func (rc *Receiver) route(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return "", false
	}
	escaped, token, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(token, "/") {
		return "", false
	}
	conn, err := url.PathUnescape(escaped)
	if err != nil {
		return "", false
	}
	_, known := rc.lists[conn]
	good := validToken(rc.secret, conn, token)
	return conn, known && good
}

func (rc *Receiver) event(connection, eventType, outcome string) {
	if rc.hooks.Event != nil {
		rc.hooks.Event(connection, eventType, outcome)
	}
}

// typeLabel keeps a metric label to the known types.
func typeLabel(t string) string {
	switch t {
	case TypeSubscribe, TypeUnsubscribe, TypeProfile, TypeUpemail, TypeCleaned, TypeCampaign:
		return t
	}
	return "unknown"
}
