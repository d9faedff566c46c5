package mcsim

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// Errors returned by the mutation methods.
var (
	ErrListNotFound   = errors.New("mcsim: list not found")
	ErrMemberNotFound = errors.New("mcsim: member not found")
	ErrMemberExists   = errors.New("mcsim: member already exists")
	ErrInvalidMember  = errors.New("mcsim: invalid member")
)

// entry is one stored member plus copies of the fields requests filter on,
// so a filter scan reads a dense slice rather than following every pointer.
type entry struct {
	seq         uint64 // insertion order; entries stay sorted by it
	lastChanged int64  // unix nanoseconds (always whole seconds)
	status      statusCode
	m           *Member // never mutated once stored
}

// list is one audience. Its slice holds the natural (insertion) order that
// paging without sort_field follows.
type list struct {
	id    string
	info  listInfo
	clock clock.Clock

	mu              sync.RWMutex
	entries         []entry
	index           map[string]uint64 // member id -> seq
	nextSeq         uint64
	gen             *generator // also the source of churn randomness
	churnPerRequest int
	version         uint64 // bumped by every mutation; invalidates sorted views
	// emit hears of every change, under l.mu and in order (the
	// simulator's webhooks); nil for none.
	emit func(memberEvent)

	sortMu sync.Mutex
	sorted map[sortOrder]*sortedView
}

type sortOrder struct {
	field string
	desc  bool
}

func newList(id string, members int, seed int64, clk clock.Clock) *list {
	gen := newGenerator(id, seed, clk.Now())
	l := &list{
		id:      id,
		info:    gen.listInfo(),
		clock:   clk,
		gen:     gen,
		entries: make([]entry, 0, members),
		index:   make(map[string]uint64, members),
		sorted:  make(map[sortOrder]*sortedView),
	}
	for range members {
		m := gen.member(time.Time{})
		if _, dup := l.index[m.ID]; dup {
			continue // cannot happen: emails carry a sequence number
		}
		l.append(&m)
	}
	return l
}

// now is the stamp for a mutation: the API keeps one-second resolution.
func (l *list) now() time.Time {
	return l.clock.Now().UTC().Truncate(time.Second)
}

func newEntry(seq uint64, m *Member) entry {
	return entry{seq: seq, lastChanged: m.LastChanged.UnixNano(), status: parseStatus(m.Status), m: m}
}

// append stores m at the end of the natural order. l.mu must be held for
// writing.
func (l *list) append(m *Member) {
	l.nextSeq++
	l.entries = append(l.entries, newEntry(l.nextSeq, m))
	l.index[m.ID] = l.nextSeq
	l.version++
}

// position finds a member's place in l.entries. l.mu must be held.
func (l *list) position(id string) (int, bool) {
	seq, ok := l.index[id]
	if !ok {
		return 0, false
	}
	i := sort.Search(len(l.entries), func(i int) bool { return l.entries[i].seq >= seq })
	return i, true
}

// change applies fn to a copy of the member and stores the copy, keeping the
// member's place in the natural order. The id follows the email address;
// the contact's own identifiers stay, whatever fn did to them. src is who
// made the change, for the webhooks.
func (l *list) change(id string, fn func(*Member), src eventSource) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.position(id)
	if !ok {
		return fmt.Errorf("%w: %s in list %s", ErrMemberNotFound, id, l.id)
	}
	return l.changeAtLocked(i, fn, src)
}

// changeAtLocked edits the member at position i. l.mu must be held for
// writing.
func (l *list) changeAtLocked(i int, fn func(*Member), src eventSource) error {
	old := l.entries[i].m
	c := old.clone()
	fn(&c)
	// The API offers no way to change these: they belong to the contact,
	// not to the address, and survive an address change (the one thing
	// that lets a sync tell a moved member from a new one).
	c.ContactID, c.UniqueEmailID, c.WebID = old.ContactID, old.UniqueEmailID, old.WebID
	normalize(&c)
	if err := validateMember(&c); err != nil {
		return err
	}
	newID := MemberID(c.EmailAddress)
	if newID != old.ID {
		if _, taken := l.index[newID]; taken {
			return fmt.Errorf("%w: %s in list %s", ErrMemberExists, c.EmailAddress, l.id)
		}
		delete(l.index, old.ID)
		l.index[newID] = l.entries[i].seq
	}
	c.ID = newID
	c.ListID = l.id
	c.LastChanged = l.now()
	l.entries[i] = newEntry(l.entries[i].seq, &c)
	l.version++
	for _, typ := range changeEvents(old, &c) {
		l.notify(typ, src, c.LastChanged, old, &c)
	}
	return nil
}

// notify tells emit of a change. l.mu must be held for writing.
func (l *list) notify(typ string, src eventSource, at time.Time, old, cur *Member) {
	if l.emit != nil {
		l.emit(memberEvent{typ: typ, source: src, at: at, listID: l.id, old: old, cur: cur})
	}
}

// normalize gives a member the empty (not nil) maps the API would show, so
// edits can always assign merge fields.
func normalize(m *Member) {
	if m.MergeFields == nil {
		m.MergeFields = map[string]any{}
	}
	if m.Interests == nil {
		m.Interests = map[string]bool{}
	}
}

func validateMember(m *Member) error {
	if !strings.Contains(m.EmailAddress, "@") {
		return fmt.Errorf("%w: email address %q", ErrInvalidMember, m.EmailAddress)
	}
	if parseStatus(m.Status) == codeInvalid {
		return fmt.Errorf("%w: status %q", ErrInvalidMember, m.Status)
	}
	return nil
}

// add stores a new member at the end of the natural order, filling in what
// Mailchimp would. A new subscribed member fires subscribe; one added with another status
// fires nothing (a pending member fires subscribe once it is subscribed).
func (l *list) add(m Member, src eventSource) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addLocked(m, src)
}

func (l *list) addLocked(m Member, src eventSource) (string, error) {
	if m.Status == "" {
		m.Status = StatusSubscribed
	}
	if err := validateMember(&m); err != nil {
		return "", err
	}
	m.ID = MemberID(m.EmailAddress)
	if _, taken := l.index[m.ID]; taken {
		return "", fmt.Errorf("%w: %s in list %s", ErrMemberExists, m.EmailAddress, l.id)
	}
	now := l.now()
	m.ListID = l.id
	m.LastChanged = now
	m.MergeFields = maps.Clone(m.MergeFields)
	m.Interests = maps.Clone(m.Interests)
	m.Tags = slices.Clone(m.Tags)
	if m.UniqueEmailID == "" {
		m.UniqueEmailID = l.gen.hex(10)
	}
	if m.ContactID == "" {
		m.ContactID = l.gen.hex(32)
	}
	if m.WebID == 0 {
		m.WebID = 100_000_000 + l.gen.rng.Int64N(900_000_000)
	}
	if m.EmailType == "" {
		m.EmailType = "html"
	}
	normalize(&m)
	if m.FullName == "" {
		m.FullName = fullName(&m)
	}
	if m.TimestampOpt.IsZero() && m.Status == StatusSubscribed {
		m.TimestampOpt = now
	}
	if m.TimestampSignup.IsZero() {
		m.TimestampSignup = now
	}
	l.append(&m)
	if m.Status == StatusSubscribed {
		l.notify(EventSubscribe, src, now, nil, &m)
	}
	return m.ID, nil
}

// remove deletes a member for good, which fires unsubscribe with action
// delete, whatever the member's status was.
func (l *list) remove(id string, src eventSource) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeLocked(id, src)
}

func (l *list) removeLocked(id string, src eventSource) error {
	i, ok := l.position(id)
	if !ok {
		return fmt.Errorf("%w: %s in list %s", ErrMemberNotFound, id, l.id)
	}
	old := l.entries[i].m
	l.entries = slices.Delete(l.entries, i, i+1)
	delete(l.index, id)
	l.version++
	l.notify(EventUnsubscribe, src, l.now(), old, nil)
	return nil
}

// snapshot deep-copies every stored member, archived included.
func (l *list) snapshot() []Member {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Member, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.m.clone()
	}
	return out
}

// memberQuery is a validated members request.
type memberQuery struct {
	count, offset int
	status        statusCode // codeInvalid: the default view (see withArchived)
	// withArchived makes the default view include archived members
	// (Options.DefaultViewIncludesArchived); without it the default view is
	// everything but archived.
	withArchived  bool
	since, before int64 // unix nanoseconds, valid when hasSince/hasBefore
	hasSince      bool
	hasBefore     bool
	inclusive     bool
	sortField     string // "" keeps the natural order
	desc          bool
	// shuffleTies, when set, serves every group of members with equal
	// sort keys in a new random order: what a database may do for ORDER BY
	// ... LIMIT ... OFFSET (see SetUnstableTieOrder).
	shuffleTies *rand.Rand
}

func (q *memberQuery) matches(e *entry) bool {
	if q.status == codeInvalid {
		if e.status == codeArchived && !q.withArchived {
			return false
		}
	} else if e.status != q.status {
		return false
	}
	if q.hasSince && (e.lastChanged < q.since || !q.inclusive && e.lastChanged == q.since) {
		return false
	}
	if q.hasBefore && (e.lastChanged > q.before || !q.inclusive && e.lastChanged == q.before) {
		return false
	}
	return true
}

// page returns the members q selects and the size of the whole filtered set.
// The set is computed from the data as it is now, which is what makes offset
// paging over a shrinking set skip members, as it does against Mailchimp.
func (l *list) page(q memberQuery) (page []*Member, total int) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if q.sortField == "" {
		return scanPage(l.entries, q)
	}
	view := l.sortedLocked(sortOrder{field: q.sortField, desc: q.desc})
	switch {
	case q.shuffleTies != nil:
		return shuffledPage(view.entries, q)
	case view.counts != nil:
		return view.windowPage(q)
	}
	return scanPage(view.entries, q)
}

// scanPage is page the plain way: every entry of src, in order, checked
// against the query.
func scanPage(src []entry, q memberQuery) (page []*Member, total int) {
	page = make([]*Member, 0, min(q.count, max(0, len(src)-q.offset)))
	for i := range src {
		e := &src[i]
		if !q.matches(e) {
			continue
		}
		if total >= q.offset && len(page) < q.count {
			page = append(page, e.m)
		}
		total++
	}
	return page, total
}

// get returns the stored member with id, archived included.
func (l *list) get(id string) (*Member, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, ok := l.position(id)
	if !ok {
		return nil, false
	}
	return l.entries[i].m, true
}

// listStats are the counts the list resource reports.
type listStats struct {
	subscribed, unsubscribed, cleaned, total int
	lastSub, lastUnsub                       time.Time
}

func (l *list) stats() listStats {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var s listStats
	for i := range l.entries {
		e := &l.entries[i]
		s.total++
		switch e.status {
		case codeSubscribed:
			s.subscribed++
			if e.m.TimestampOpt.After(s.lastSub) {
				s.lastSub = e.m.TimestampOpt
			}
		case codeUnsubscribed:
			s.unsubscribed++
			if e.m.LastChanged.After(s.lastUnsub) {
				s.lastUnsub = e.m.LastChanged
			}
		case codeCleaned:
			s.cleaned++
		}
	}
	return s
}
