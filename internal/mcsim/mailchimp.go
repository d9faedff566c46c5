package mcsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// Options configures a Mailchimp simulator. The zero value is usable: one
// empty list, a generated key, the real clock.
type Options struct {
	// APIKey is the accepted key (the Basic auth password; any user name).
	// Empty means one is generated with NewAPIKey from Seed.
	APIKey string
	// ListID is the id of the list created at start; empty means "a1b2c3d4e5".
	ListID string
	// Members is how many members are generated into that list.
	Members int
	// Seed seeds the member generator and the fault and churn randomness.
	Seed int64
	// Latency is a wall-clock delay added to every API request while it holds
	// one of its key's connection slots. It ends early when the client goes
	// away.
	Latency time.Duration
	// Inclusive makes since_last_changed / before_last_changed inclusive
	// (>=, <=). The default is exclusive (>, <). The real API does not say
	// which it is, so tests run both.
	Inclusive bool
	// DefaultViewIncludesArchived makes the members endpoint's default view
	// (no status parameter) include archived members, in its pages and in
	// total_items. The default leaves them out, as Mailchimp most likely
	// does; it does not document which, so the engine must work with both.
	// SetDefaultViewIncludesArchived flips it on a running simulator.
	DefaultViewIncludesArchived bool
	// MaxConnsPerKey is how many requests one key may have in flight; more
	// get 429. Zero or less means 10, Mailchimp's limit.
	MaxConnsPerKey int
	// Clock stamps last_changed on mutations, anchors generated timestamps
	// and sets the Date header. Nil means clock.Real{}.
	Clock clock.Clock
	// Webhooks tunes the calls to the webhooks registered with the
	// simulator (see WebhookOptions); the zero value is Mailchimp-like.
	Webhooks WebhookOptions
}

// DefaultListID is the id of the first list when Options.ListID is empty.
const DefaultListID = "a1b2c3d4e5"

// Mailchimp simulates the Mailchimp Marketing API v3 as an http.Handler
// serving paths under /3.0/. Create it with New.
type Mailchimp struct {
	opts      Options
	firstList string

	listsMu sync.RWMutex
	lists   map[string]*list

	// hooks keeps the registered webhooks and delivers the lists' events.
	hooks *webhookHub

	mu         sync.Mutex                 // guards the fields below
	keys       map[string]*keyState       // API keys
	tokens     map[string]*keyState       // OAuth access tokens
	owned      map[string]map[string]bool // credential -> its account's list ids (accounts.go)
	rng        *rand.Rand                 // faults and problem instance ids
	faultQueue []Fault
	faultRate  float64
	faultKinds []Fault
	stats      Stats
	// unstableTies serves ties in a new order on every sorted request;
	// tieRequests seeds each request's order.
	unstableTies bool
	tieRequests  uint64
	// defaultWithArchived is Options.DefaultViewIncludesArchived, as
	// SetDefaultViewIncludesArchived last set it.
	defaultWithArchived bool

	// testHookAcquired, when set, runs once a request holds a connection
	// slot, before the latency. Tests use it to hold requests in flight.
	testHookAcquired func(key string)
}

// keyState is one credential's connection slots.
type keyState struct {
	inFlight int
	revoked  bool // a revoked access token (RevokeAccessToken)
}

var _ http.Handler = (*Mailchimp)(nil)

// New returns a simulator with one list of opts.Members generated members.
func New(opts Options) *Mailchimp {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.ListID == "" {
		opts.ListID = DefaultListID
	}
	if opts.MaxConnsPerKey <= 0 {
		opts.MaxConnsPerKey = 10
	}
	s := &Mailchimp{
		firstList: opts.ListID,
		lists:     make(map[string]*list),
		keys:      make(map[string]*keyState),
		tokens:    make(map[string]*keyState),
		owned:     make(map[string]map[string]bool),
		rng:       newRand(opts.Seed),
		stats:     Stats{ByStatus: make(map[int]int)},
		hooks:     newWebhookHub(opts.Webhooks, opts.Seed),
	}
	if opts.APIKey == "" {
		opts.APIKey = NewAPIKey(s.rng)
	}
	s.opts = opts
	s.defaultWithArchived = opts.DefaultViewIncludesArchived
	s.keys[opts.APIKey] = &keyState{}
	s.AddList(opts.ListID, opts.Members, opts.Seed)
	return s
}

// APIKey returns the key given in Options (or generated).
func (s *Mailchimp) APIKey() string { return s.opts.APIKey }

// ListID returns the id of the list created by New.
func (s *Mailchimp) ListID() string { return s.firstList }

// AddAPIKey accepts one more key. Each key has its own connection limit, as
// each Mailchimp account does.
func (s *Mailchimp) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[key]; !ok {
		s.keys[key] = &keyState{}
	}
}

// AddList creates a list with members generated from seed, replacing any
// list with that id.
func (s *Mailchimp) AddList(listID string, members int, seed int64) {
	l := newList(listID, members, seed, s.opts.Clock)
	l.emit = s.hooks.publish
	s.listsMu.Lock()
	defer s.listsMu.Unlock()
	s.lists[listID] = l
}

func (s *Mailchimp) list(listID string) (*list, error) {
	s.listsMu.RLock()
	defer s.listsMu.RUnlock()
	l, ok := s.lists[listID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrListNotFound, listID)
	}
	return l, nil
}

// Change edits a member: fn gets a copy, which is stored with last_changed
// set to the clock's now (to the second). Changing the email address changes
// the id, as in Mailchimp (see ChangeAddress); contact_id, unique_email_id
// and web_id stay with the member whatever fn does, as the API offers no
// way to change them.
//
// The list's webhooks hear of it a little later: upemail for a new
// address; subscribe, unsubscribe or cleaned for a new status of that
// name; profile for any other edit (an edit that changes nothing
// included); nothing at all for an archive.
func (s *Mailchimp) Change(listID, id string, fn func(*Member)) error {
	l, err := s.list(listID)
	if err != nil {
		return err
	}
	return l.change(id, fn, sourceAPI)
}

// ChangeAddress changes a member's email address and returns its new id,
// the MD5 of the lower-cased new address. contact_id, unique_email_id and
// web_id stay; the old id is gone at once: the one-member endpoint answers
// 404 for it and no view lists it. A new address that differs only in case
// keeps the id. An address another member has fails with ErrMemberExists.
func (s *Mailchimp) ChangeAddress(listID, id, newEmail string) (newID string, err error) {
	if err := s.Change(listID, id, func(m *Member) { m.EmailAddress = newEmail }); err != nil {
		return "", err
	}
	return MemberID(newEmail), nil
}

// Add appends a member to the list and returns its id, the MD5 of the
// lower-cased email. Empty fields are filled in as Mailchimp would (list_id,
// unique_email_id, contact_id, web_id, status "subscribed", ...). A
// subscribed member fires subscribe to the list's webhooks; one added with
// another status fires nothing.
func (s *Mailchimp) Add(listID string, m Member) (string, error) {
	l, err := s.list(listID)
	if err != nil {
		return "", err
	}
	return l.add(m, sourceAPI)
}

// Unsubscribe sets a member's status to unsubscribed.
func (s *Mailchimp) Unsubscribe(listID, id string) error {
	return s.Change(listID, id, func(m *Member) { m.Status = StatusUnsubscribed })
}

// Archive sets a member's status to archived, which hides it from the members
// endpoint unless status=archived is asked for (or the default view includes
// archived members, see Options.DefaultViewIncludesArchived). The one-member
// endpoint still returns it, with status archived. It fires no webhook
// event: Mailchimp sends none one can count on.
func (s *Mailchimp) Archive(listID, id string) error {
	return s.Change(listID, id, func(m *Member) { m.Status = StatusArchived })
}

// Delete removes a member permanently (Mailchimp's delete-permanent): it
// disappears from every view and every total_items, the one-member endpoint
// answers 404 for it, and nothing in the API says it ever existed. The
// list's webhooks get unsubscribe with data[action]=delete.
func (s *Mailchimp) Delete(listID, id string) error {
	l, err := s.list(listID)
	if err != nil {
		return err
	}
	return l.remove(id, sourceAPI)
}

// Churn makes n random mutations to the list (mostly merge-field edits, some
// unsubscribes, archives and additions, a few address changes and
// deletions) and returns the ids touched, each once: an address change
// touches two, the old id and the new one, so there may be up to 2n. Ids
// that were deleted or moved away are among them. It is deterministic for a
// given Seed and call sequence. An unknown list is left alone and yields
// nil.
func (s *Mailchimp) Churn(listID string, n int) []string {
	l, err := s.list(listID)
	if err != nil {
		return nil
	}
	return l.churn(n)
}

// SetChurnPerRequest makes every members request for the list first call
// Churn(listID, n): churn while paging, in step with the requests rather than
// the wall clock. n <= 0 turns it off. Unknown lists are ignored.
func (s *Mailchimp) SetChurnPerRequest(listID string, n int) {
	l, err := s.list(listID)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.churnPerRequest = max(n, 0)
}

// Members returns a copy of every member not permanently deleted, archived
// included, in the list's natural order. Unknown lists yield nil.
func (s *Mailchimp) Members(listID string) []Member {
	l, err := s.list(listID)
	if err != nil {
		return nil
	}
	return l.snapshot()
}

// acquire takes one of the key's connection slots. A request over the limit
// is refused, but it still counts towards MaxInFlight: that figure exists to
// show whether a client ever tried to exceed the limit.
func (s *Mailchimp) acquire(ks *keyState) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ks.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, ks.inFlight)
	if ks.inFlight > s.opts.MaxConnsPerKey {
		ks.inFlight--
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			ks.inFlight--
		})
	}, true
}

// ServeHTTP serves the API: auth, the connection limit, latency, faults, then
// the endpoint.
func (s *Mailchimp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == MetadataPath {
		s.serveMetadata(w, r) // another server than the API: not in its counts
		return
	}
	rw := &countingWriter{ResponseWriter: w}
	kind := kindOther
	if rest, ok := strings.CutPrefix(r.URL.Path, "/3.0/"); ok {
		kind = kindOf(r.Method, rest)
	}
	out := outcome{kind: kind, members: -1}
	// Deferred first, so it runs last: after the connection slot is
	// released and the request counted, the held-back end of the response
	// goes out (or a dropped connection is closed). A client that has the
	// whole answer can thus never find this request still in flight, or
	// missing from Stats.
	defer func() {
		s.record(rw, &out)
		rw.finish()
	}()
	s.countRequest(kind)
	w.Header().Set("Date", s.opts.Clock.Now().UTC().Format(http.TimeFormat))

	if !strings.HasPrefix(r.URL.Path, "/3.0/") {
		s.writeNotFound(rw)
		return
	}
	key, ks, ok := s.authenticate(r)
	if !ok {
		// Never echo the key: it would end up in someone's logs.
		s.writeProblem(rw, http.StatusUnauthorized, "API Key Invalid",
			"Your API key may be invalid, or you've attempted to access the wrong datacenter.", nil)
		return
	}
	release, ok := s.acquire(ks)
	if !ok {
		out.limitRejected = true
		s.writeTooManyRequests(rw)
		return
	}
	// The limit counts connections: when the client hangs up (it cancelled
	// the request) the slot is free at once, although the handler may run
	// on for a moment before it notices.
	stopRelease := context.AfterFunc(r.Context(), release)
	defer func() {
		stopRelease()
		release()
	}()
	if s.testHookAcquired != nil {
		s.testHookAcquired(key)
	}
	// Latency is measured from here, like a real server's response time,
	// which includes its own work: the members endpoint computes its page
	// first and then waits out the rest (see waitLatency).
	deadline := time.Now().Add(s.opts.Latency)
	wait := func() bool {
		if !s.waitLatency(r, deadline) {
			out.clientGone = true
			return false
		}
		return true
	}
	if f := s.nextFault(); f != FaultNone {
		if !wait() {
			return
		}
		out.fault = true
		s.serveFault(rw, r, key, f)
		return
	}
	out.members = s.route(rw, r, key, wait)
}

// route dispatches to an endpoint for credential. It returns the number of
// members written when it served a members page, -1 otherwise.
func (s *Mailchimp) route(w http.ResponseWriter, r *http.Request, credential string, wait func() bool) int {
	path := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/3.0/"), "/")
	parts := strings.Split(path, "/")
	if len(parts) >= 2 && parts[0] == "lists" && !s.sees(credential, parts[1]) {
		if wait() {
			s.writeNotFound(w) // another account's audience
		}
		return -1
	}
	members := len(parts) == 3 && parts[0] == "lists" && parts[1] != "" && parts[2] == "members"
	member := len(parts) == 4 && parts[0] == "lists" && parts[1] != "" && parts[2] == "members" && parts[3] != ""
	if members && r.Method == http.MethodGet {
		// The members endpoint does its work first and then waits out
		// the latency, so its cost hides inside the response time.
		return s.serveMembers(w, r, parts[1], wait)
	}
	if !wait() {
		return -1
	}
	if len(parts) >= 3 && len(parts) <= 4 && parts[0] == "lists" && parts[1] != "" && parts[2] == "webhooks" {
		s.serveWebhooks(w, r, parts[1], parts[3:])
		return -1
	}
	var serve func() int
	switch {
	case path == "ping":
		serve = func() int { s.servePing(w); return -1 }
	case path == "lists":
		serve = func() int { s.serveLists(w, r, credential); return -1 }
	case len(parts) == 2 && parts[0] == "lists" && parts[1] != "":
		serve = func() int { s.serveList(w, r, parts[1]); return -1 }
	case member:
		serve = func() int { s.serveMember(w, r, parts[1], parts[3]); return -1 }
	case members:
		serve = func() int { return -1 } // only GET is allowed, below
	default:
		s.writeNotFound(w)
		return -1
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		s.writeProblem(w, http.StatusMethodNotAllowed, "Method Not Allowed",
			"The requested method and resource are not compatible. See the Allow header for this resource's available methods.", nil)
		return -1
	}
	return serve()
}

// waitLatency waits until deadline, or until the client hangs up (false).
func (s *Mailchimp) waitLatency(r *http.Request, deadline time.Time) bool {
	d := time.Until(deadline)
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Mailchimp) servePing(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write([]byte(`{"health_status":"Everything's Chimpy!"}`))
}
