package target

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/advice"
)

// How a delete reaches the target. The engine only says which members left
// (deleted for good, changed address, left the status filter); a customer's
// API says how it wants to hear it.

// DeleteMode says how the sink sends an OpDelete. Its values are the ones
// of the config's target.deletes.
type DeleteMode string

const (
	// DeletesTombstone writes a tombstone record in the same POST as the
	// batch's upserts, in op order: {"<IDKey>": "<id>", ...Tombstone}, the
	// id first and then the tombstone's keys in sorted order. It goes with
	// the same retries and Idempotency-Key as every record, and a target
	// needs nothing but its POST endpoint; it decides itself what a record
	// with (say) "status": "deleted" means.
	DeletesTombstone DeleteMode = "tombstone"
	// DeletesRequest sends DELETE DeleteURL, {id} replaced by the escaped
	// id, for every deleted id, after the batch's upserts were POSTed.
	// 2xx, 404 and 410 all mean the record is gone.
	DeletesRequest DeleteMode = "request"
	// DeletesOff drops deletes without a request: the target keeps the
	// records of members who left, and the engine still counts them.
	DeletesOff DeleteMode = "off"
)

// DeleteConcurrency is the most DELETE requests one Apply has in flight.
// The engine applies a few batches at once per connection, so a target
// sees at most a few times this many.
const DeleteConcurrency = 4

// deletes is a sink's delete settings, checked and encoded once.
type deletes struct {
	mode DeleteMode

	// DeletesTombstone: a tombstone is head + the id as a JSON string + tail.
	head, tail []byte

	// DeletesRequest: a DELETE goes to prefix + escaped id + suffix.
	prefix, suffix string
	inQuery        bool     // {id} is in the query: escaped as a query value
	template       *url.URL // the parsed template, for the redactor; nil otherwise
}

// newDeletes checks the delete settings of cfg. Its errors name the config
// field and never quote a URL's query or password.
func newDeletes(cfg HTTPConfig) (deletes, error) {
	d := deletes{mode: cfg.Deletes}
	if cfg.DeleteURL != "" && cfg.Deletes != DeletesRequest {
		return d, fmt.Errorf("target.delete_url: only used with deletes %q, and deletes is %q", DeletesRequest, cfg.Deletes)
	}
	switch cfg.Deletes {
	case "", DeletesOff:
		return d, nil
	case DeletesTombstone:
		return d, d.encodeTombstone(cfg.IDKey, cfg.Tombstone)
	case DeletesRequest:
		return d, d.parseTemplate(cfg.DeleteURL)
	}
	return d, fmt.Errorf("target.deletes: %q is not %s, %s or %s", cfg.Deletes, DeletesTombstone, DeletesRequest, DeletesOff)
}

// encodeTombstone splits the tombstone record around its id. json.Marshal
// writes a map's keys sorted, so every tombstone of a sink has the same
// bytes but for its id.
func (d *deletes) encodeTombstone(idKey string, fields map[string]any) error {
	switch _, clash := fields[idKey]; {
	case idKey == "":
		return fmt.Errorf("target.deletes: %s needs the record's id key (the mapping's key whose path is id)", DeletesTombstone)
	case len(fields) == 0:
		return errors.New(`target.tombstone: empty; a tombstone needs a field besides the id, such as {"status": "deleted"}, or the target cannot tell it from a record`)
	case clash:
		return fmt.Errorf("target.tombstone: sets %q, the record's id key; a tombstone's id is the deleted member's", idKey)
	}
	key, _ := json.Marshal(idKey)
	rest, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("target.tombstone: %w", err)
	}
	d.head = append(append([]byte{'{'}, key...), ':')
	d.tail = append([]byte{','}, rest[1:]...) // `,"status":"deleted"}`
	return nil
}

// tombstone returns the tombstone record for id.
func (d *deletes) tombstone(id string) json.RawMessage {
	quoted, _ := json.Marshal(id) // a string always encodes
	rec := make([]byte, 0, len(d.head)+len(quoted)+len(d.tail))
	rec = append(append(append(rec, d.head...), quoted...), d.tail...)
	return rec
}

// placeholder stands for the id while a template is parsed, so that url.Parse
// says where {id} is; it has no character that parsing would change.
const placeholder = "chimport0id0placeholder"

func (d *deletes) parseTemplate(t string) error {
	if t == "" {
		return fmt.Errorf("target.delete_url: required with deletes %q", DeletesRequest)
	}
	if n := strings.Count(t, "{id}"); n != 1 {
		return fmt.Errorf("target.delete_url: must hold {id} exactly once, e.g. https://api.example.com/records/{id}; it holds it %d times", n)
	}
	u, err := url.Parse(strings.Replace(t, "{id}", placeholder, 1))
	if err != nil {
		return errors.New("target.delete_url: not an absolute http or https URL")
	}
	shown := strings.Replace(RedactURL(u.String()), placeholder, "{id}", 1)
	switch {
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("target.delete_url: %s is not an absolute http or https URL", shown)
	case !strings.Contains(u.Path, placeholder) && !strings.Contains(u.RawQuery, placeholder):
		return fmt.Errorf("target.delete_url: {id} must be in the path or the query of %s", shown)
	}
	d.prefix, d.suffix, _ = strings.Cut(t, "{id}")
	d.inQuery = strings.Contains(u.RawQuery, placeholder)
	d.template = u
	return nil
}

// url returns the DELETE URL for id, escaped so that an id holding / ? % #
// or & names one record and nothing else.
func (d *deletes) url(id string) string {
	if d.inQuery {
		return d.prefix + url.QueryEscape(id) + d.suffix
	}
	return d.prefix + url.PathEscape(id) + d.suffix
}

// deleteDone reports whether a DELETE answered with code needs no retry
// because the record is gone: already, or never there.
func deleteDone(code int) bool {
	return code >= 200 && code <= 299 || code == http.StatusNotFound || code == http.StatusGone
}

// deleteAll sends a DELETE for each id, up to DeleteConcurrency at once,
// each retried like a POST. It returns nil once every id is gone; otherwise
// the first error, after which the DELETEs still in flight are cancelled
// and no more are started (those already done stay done: a DELETE is
// idempotent, and the next attempt of the batch gets 404 for them).
func (s *HTTP) deleteAll(ctx context.Context, ids []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(DeleteConcurrency)
	for _, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return s.delete(gctx, id) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		// The loop stopped before a DELETE could fail: the caller's doing.
		return fmt.Errorf("target connection %q: deletes: %w", s.connection, err)
	}
	return nil
}

func (s *HTTP) delete(ctx context.Context, id string) error {
	u := s.deletes.url(id)
	err := s.exchange(ctx, &exchange{method: http.MethodDelete, url: u, shownURL: RedactURL(u), key: newIdempotencyKey()})
	if err == nil {
		s.count(func(st *Stats) { st.Deleted++ })
	}
	return err
}

// DeletesNotConfiguredError refuses a batch that holds deletes when the
// sink was built without a DeleteMode. Sending the batch's upserts without
// its deletes would report a mirror that is not one, so nothing of the
// batch is sent. chimport's config always names a mode (tombstone unless
// target.deletes says otherwise), so from the program this is a bug in
// wiring the config to the sink.
type DeletesNotConfiguredError struct {
	Connection string
	Deletes    int // the deletes in the refused batch
}

func (e *DeletesNotConfiguredError) Error() string {
	return fmt.Sprintf("target connection %q: a batch holds %d deletes, and this target sink was built without a delete mode; nothing of the batch was sent (%s)",
		e.Connection, e.Deletes, e.advice())
}

// Advice marks the error as one that retrying cannot fix: the alert policy
// walks the error chain for it.
func (e *DeletesNotConfiguredError) Advice() (advice.Advice, bool) { return e.advice(), true }

func (e *DeletesNotConfiguredError) advice() advice.Advice {
	return advice.Advice{
		Problem: "the run had deletes for a target sink built without a delete mode",
		Action:  "Report a chimport bug: target.deletes (tombstone, request or off) did not reach the target sink.",
	}
}
