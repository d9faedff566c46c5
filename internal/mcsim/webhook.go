package mcsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of WebhookOptions.
const (
	DefaultWebhookDelay        = 50 * time.Millisecond
	DefaultWebhookTimeout      = 10 * time.Second // Mailchimp's, per call
	DefaultWebhookRetries      = 3
	DefaultWebhookRetryBackoff = 100 * time.Millisecond
	DefaultWebhookHoldBack     = 200 * time.Millisecond
)

// WebhookOptions tunes how the simulator calls the webhooks registered with
// it. The zero value is Mailchimp-like: events go out DefaultWebhookDelay
// after a change, each call times out after 10 s, a failed one is retried
// a few times.
//
// Every wait here (the delay, the retries' backoff, the timeout) is on the
// wall clock, whatever Options.Clock is: a test with a fake clock sees its
// events arrive without moving the clock, and sending never moves it (a
// fake clock's Sleep would). Only fired_at is read from Options.Clock.
type WebhookOptions struct {
	// Delay is how long after a change its events are first sent. Zero
	// means DefaultWebhookDelay; a negative delay sends at once.
	// SetWebhookDelay changes it on a running simulator.
	Delay time.Duration
	// Timeout bounds each call: the URL check when a webhook is created
	// and every delivery attempt. Zero means DefaultWebhookTimeout.
	Timeout time.Duration
	// Retries is how many times a failed delivery (an error or an answer
	// other than 2xx) is tried again before it counts as failed. Zero
	// means DefaultWebhookRetries; negative means none.
	Retries int
	// RetryBackoff is the wait before the first retry; it doubles for each
	// one after. Zero means DefaultWebhookRetryBackoff. Other events to the
	// same webhook go on meanwhile, so a retried event arrives late.
	RetryBackoff time.Duration
	// Faults are injected from the start; see SetWebhookFaults.
	Faults WebhookFaults
	// Client makes the calls. Nil means a client of the simulator's own.
	// Close closes its idle connections either way.
	Client *http.Client
}

// WebhookFaults are the ways Mailchimp's deliveries are imperfect, which a
// receiver must survive: no exactly-once and no ordering promise. Each
// webhook draws for each event on its own, from the simulator's seeded
// randomness: the same Seed and the same changes give the same faults.
type WebhookFaults struct {
	// Duplicate is the probability that an event is delivered twice.
	Duplicate float64
	// Drop is the probability that an event is never delivered (counted
	// in WebhookStats.Dropped, never sent).
	Drop float64
	// Reorder holds every delivery back for a random extra time up to
	// HoldBack, so events that fire close together arrive out of order.
	Reorder bool
	// HoldBack bounds Reorder's extra delay. Zero means
	// DefaultWebhookHoldBack.
	HoldBack time.Duration
}

// Webhook is a list webhook as the webhooks endpoints show it.
type Webhook struct {
	ID      string         `json:"id"`
	URL     string         `json:"url"`
	Events  WebhookEvents  `json:"events"`
	Sources WebhookSources `json:"sources"`
	ListID  string         `json:"list_id"`
}

// WebhookEvents are the event types a webhook is sent.
type WebhookEvents struct {
	Subscribe   bool `json:"subscribe"`
	Unsubscribe bool `json:"unsubscribe"`
	Profile     bool `json:"profile"`
	Cleaned     bool `json:"cleaned"`
	Upemail     bool `json:"upemail"`
	Campaign    bool `json:"campaign"`
}

func (ev WebhookEvents) has(typ string) bool {
	switch typ {
	case EventSubscribe:
		return ev.Subscribe
	case EventUnsubscribe:
		return ev.Unsubscribe
	case EventProfile:
		return ev.Profile
	case EventCleaned:
		return ev.Cleaned
	case EventUpemail:
		return ev.Upemail
	case EventCampaign:
		return ev.Campaign
	}
	return false
}

// WebhookSources are whose changes a webhook hears of: subscribers' own
// (user), the account's admins' (admin) and API calls' (api). The
// mutation methods count as api; Churn as user and admin (see
// eventSource).
type WebhookSources struct {
	User  bool `json:"user"`
	Admin bool `json:"admin"`
	API   bool `json:"api"`
}

func (src WebhookSources) has(s eventSource) bool {
	switch s {
	case sourceUser:
		return src.User
	case sourceAdmin:
		return src.Admin
	}
	return src.API
}

// WebhookStats counts webhook deliveries since New. Every event a webhook
// is owed ends one way, so Events + Duplicated - Dropped = Sent + Failed +
// Discarded + Pending.
type WebhookStats struct {
	Events     int            // events owed to webhooks: one per event per webhook that wants it
	ByType     map[string]int // Events by type
	Sent       int            // deliveries answered 2xx, duplicates included
	Failed     int            // deliveries given up after every retry
	Retried    int            // failed attempts that were tried again
	Duplicated int            // events delivered twice on purpose (WebhookFaults.Duplicate)
	Dropped    int            // events lost on purpose (WebhookFaults.Drop)
	Discarded  int            // deliveries still pending when their webhook was deleted or Close was called
	Pending    int            // deliveries not yet sent nor given up
}

// ErrWebhookNotFound is returned for a webhook id a list does not have.
var ErrWebhookNotFound = errors.New("mcsim: webhook not found")

// webhookHub keeps the registered webhooks and delivers their events: one
// queue per webhook, drained by a goroutine that exists only while the
// queue has work, so an idle simulator runs none. Its lock is a leaf: the
// lists publish into it under their own lock, and it never calls out
// (neither into a list nor over the network) while held.
type webhookHub struct {
	timeout time.Duration
	retries int
	backoff time.Duration
	client  *http.Client
	ctx     context.Context // cancelled by Close: aborts waits and calls
	cancel  context.CancelFunc
	wg      sync.WaitGroup // one per running sender

	mu      sync.Mutex // guards the fields below
	byList  map[string][]*hook
	delay   time.Duration
	faults  WebhookFaults
	rng     *rand.Rand // ids and faults
	stats   WebhookStats
	pending int
	idle    chan struct{} // closed whenever pending is 0
	closed  bool
}

// hook is a registered webhook and its queue.
type hook struct {
	Webhook
	queue   []delivery
	running bool          // a sender goroutine owns the queue
	removed bool          // deleted: its sender discards what is left
	wake    chan struct{} // tells a waiting sender the queue changed
}

// delivery is one call owed to a webhook.
type delivery struct {
	body    string // form-encoded payload
	due     time.Time
	attempt int // failed attempts so far
}

func newWebhookHub(o WebhookOptions, seed int64) *webhookHub {
	h := &webhookHub{
		timeout: o.Timeout,
		retries: o.Retries,
		backoff: o.RetryBackoff,
		client:  o.Client,
		byList:  make(map[string][]*hook),
		delay:   o.Delay,
		faults:  o.Faults,
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x7765_6268_6f6f_6b)),
		stats:   WebhookStats{ByType: make(map[string]int)},
		idle:    make(chan struct{}),
	}
	close(h.idle)
	if h.timeout <= 0 {
		h.timeout = DefaultWebhookTimeout
	}
	switch {
	case h.retries == 0:
		h.retries = DefaultWebhookRetries
	case h.retries < 0:
		h.retries = 0
	}
	if h.backoff <= 0 {
		h.backoff = DefaultWebhookRetryBackoff
	}
	switch {
	case h.delay == 0:
		h.delay = DefaultWebhookDelay
	case h.delay < 0:
		h.delay = 0
	}
	if h.client == nil {
		h.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Webhooks returns the webhooks registered for a list, oldest first. Two
// may share a URL: Mailchimp allows it, so it is up to a client not to
// register one twice.
func (s *Mailchimp) Webhooks(listID string) []Webhook {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Webhook
	for _, k := range h.byList[listID] {
		out = append(out, k.Webhook)
	}
	return out
}

// SetWebhookDelay sets how long after a change its events are first sent,
// for changes from now on: Options.Webhooks.Delay, except that zero (or
// less) here means at once.
func (s *Mailchimp) SetWebhookDelay(d time.Duration) {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delay = max(d, 0)
}

// SetWebhookFaults sets the delivery faults for events from now on; the
// zero WebhookFaults turns them off.
func (s *Mailchimp) SetWebhookFaults(f WebhookFaults) {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = f
}

// WebhookStats returns a copy of the webhook counters. ResetStats leaves
// them alone.
func (s *Mailchimp) WebhookStats() WebhookStats {
	h := s.hooks
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.ByType = maps.Clone(h.stats.ByType)
	st.Pending = h.pending
	return st
}

// FlushWebhooks waits until no delivery is pending: every event of the
// changes made so far has been sent, given up after its retries, dropped
// on purpose or discarded. It returns ctx's error if ctx ends first.
func (s *Mailchimp) FlushWebhooks(ctx context.Context) error {
	h := s.hooks
	for {
		h.mu.Lock()
		idle, done := h.idle, h.pending == 0
		h.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return fmt.Errorf("mcsim: waiting for webhook deliveries: %w", ctx.Err())
		}
	}
}

// Close stops the webhook deliveries: pending ones are discarded, calls in
// flight are cancelled, and Close returns once every sender goroutine has
// ended and the client's idle connections are closed. Later changes fire
// nothing. The API itself keeps answering: the HTTP server around the
// simulator is the caller's to close. Close may be called more than once.
func (s *Mailchimp) Close() error {
	h := s.hooks
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for _, hooks := range h.byList {
			for _, k := range hooks {
				h.discardLocked(k)
			}
		}
		h.cancel()
	}
	h.mu.Unlock()
	h.wg.Wait()
	h.client.CloseIdleConnections()
	return nil
}

// register stores a webhook (already checked) and returns it with its id.
func (h *webhookHub) register(w Webhook) Webhook {
	h.mu.Lock()
	defer h.mu.Unlock()
	const digits = "0123456789abcdef"
	var id strings.Builder
	for range 10 {
		id.WriteByte(digits[h.rng.IntN(16)])
	}
	w.ID = id.String()
	h.byList[w.ListID] = append(h.byList[w.ListID], &hook{Webhook: w, wake: make(chan struct{}, 1)})
	return w
}

func (h *webhookHub) get(listID, id string) (Webhook, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range h.byList[listID] {
		if k.ID == id {
			return k.Webhook, true
		}
	}
	return Webhook{}, false
}

// remove deletes a webhook; what it still had to send is discarded.
func (h *webhookHub) remove(listID, id string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hooks := h.byList[listID]
	i := slices.IndexFunc(hooks, func(k *hook) bool { return k.ID == id })
	if i < 0 {
		return fmt.Errorf("%w: %s in list %s", ErrWebhookNotFound, id, listID)
	}
	k := hooks[i]
	h.byList[listID] = slices.Delete(hooks, i, i+1)
	k.removed = true
	h.discardLocked(k)
	return nil
}

// discardLocked drops a webhook's queue and wakes its sender, which then
// ends. h.mu must be held.
func (h *webhookHub) discardLocked(k *hook) {
	h.stats.Discarded += len(k.queue)
	h.donePendingLocked(len(k.queue))
	k.queue = nil
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// publish queues an event for every webhook of its list that wants it. It
// is called by a list under the list's lock, in the order of the changes,
// and only queues: the sending happens in each webhook's goroutine.
func (h *webhookHub) publish(ev memberEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	body := ""
	now := time.Now()
	for _, k := range h.byList[ev.listID] {
		if !k.Events.has(ev.typ) || !k.Sources.has(ev.source) {
			continue
		}
		if body == "" {
			body = ev.form().Encode()
		}
		h.stats.Events++
		h.stats.ByType[ev.typ]++
		f := h.faults
		if f.Drop > 0 && h.rng.Float64() < f.Drop {
			h.stats.Dropped++
			continue
		}
		copies := 1
		if f.Duplicate > 0 && h.rng.Float64() < f.Duplicate {
			h.stats.Duplicated++
			copies = 2
		}
		for range copies {
			due := now.Add(h.delay)
			if f.Reorder {
				holdBack := f.HoldBack
				if holdBack <= 0 {
					holdBack = DefaultWebhookHoldBack
				}
				due = due.Add(time.Duration(h.rng.Int64N(int64(holdBack))))
			}
			h.enqueueLocked(k, delivery{body: body, due: due})
		}
	}
}

// enqueueLocked adds a delivery to a webhook's queue and makes sure a
// sender is on it. h.mu must be held.
func (h *webhookHub) enqueueLocked(k *hook, d delivery) {
	if h.pending == 0 {
		h.idle = make(chan struct{})
	}
	h.pending++
	k.queue = append(k.queue, d)
	if k.running {
		select {
		case k.wake <- struct{}{}:
		default:
		}
		return
	}
	k.running = true
	h.wg.Add(1)
	go h.send(k)
}

// donePendingLocked notes that n deliveries ended. h.mu must be held.
func (h *webhookHub) donePendingLocked(n int) {
	if n == 0 {
		return
	}
	h.pending -= n
	if h.pending == 0 {
		close(h.idle)
	}
}

// send drains a webhook's queue, earliest due first (in queue order among
// equals), and ends when the queue is empty.
func (h *webhookHub) send(k *hook) {
	defer h.wg.Done()
	for {
		d, wait, ok := h.next(k)
		if !ok {
			return
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-k.wake:
			case <-h.ctx.Done():
			}
			t.Stop()
			continue
		}
		h.done(k, d, h.post(k.URL, d.body))
	}
}

// next takes the delivery due first off the queue, or says how long to wait
// for it; ok is false when the sender should end.
func (h *webhookHub) next(k *hook) (d delivery, wait time.Duration, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(k.queue) == 0 || k.removed || h.closed {
		k.running = false
		return delivery{}, 0, false
	}
	first := 0
	for i := range k.queue {
		if k.queue[i].due.Before(k.queue[first].due) {
			first = i
		}
	}
	if wait := time.Until(k.queue[first].due); wait > 0 {
		return delivery{}, wait, true
	}
	d = k.queue[first]
	k.queue = slices.Delete(k.queue, first, first+1)
	return d, 0, true
}

// done records how a delivery attempt went: sent, queued again for a
// retry, or failed for good.
func (h *webhookHub) done(k *hook, d delivery, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.stats.Sent++
	case h.closed || k.removed:
		h.stats.Discarded++
	case d.attempt < h.retries:
		h.stats.Retried++
		d.due = time.Now().Add(h.backoff << d.attempt)
		d.attempt++
		k.queue = append(k.queue, d)
		return
	default:
		h.stats.Failed++
	}
	h.donePendingLocked(1)
}

// post makes one delivery attempt, as Mailchimp does: a form-encoded POST
// that must be answered 2xx within the timeout.
func (h *webhookHub) post(url, body string) error {
	ctx, cancel := context.WithTimeout(h.ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "MailChimp")
	return h.do(req, func(status int) bool { return status/100 == 2 })
}

// check is Mailchimp's test of a new webhook's URL: a GET that must be
// answered 200.
func (h *webhookHub) check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "MailChimp")
	return h.do(req, func(status int) bool { return status == http.StatusOK })
}

func (h *webhookHub) do(req *http.Request, good func(status int) bool) error {
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if !good(resp.StatusCode) {
		// Not the URL: it carries the receiver's secret.
		return fmt.Errorf("webhook %s: status %d", req.Method, resp.StatusCode)
	}
	return nil
}
