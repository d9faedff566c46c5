package mcsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxCount is the largest page the members endpoint serves; larger counts
// are capped silently, as Mailchimp does. count=0 is allowed and returns an
// empty page with total_items, a cheap way to size a window.
const MaxCount = 1000

// bufPool recycles the buffers pages are encoded into.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// flushAt is how much of an encoded page is written at a time: large
// enough for few writes, small enough that the client reads (and decodes)
// a large page while the rest is still on its way.
const flushAt = 32 << 10

// serveMembers answers GET /3.0/lists/{id}/members and returns how many
// members it wrote (-1 when it did not serve a page).
func (s *Mailchimp) serveMembers(w http.ResponseWriter, r *http.Request, listID string, wait func() bool) int {
	l, err := s.list(listID)
	if err != nil {
		if !wait() {
			return -1
		}
		s.writeNotFound(w)
		return -1
	}
	params := r.URL.Query()
	q, errs := parseMembersQuery(params, s.opts.Inclusive)
	if len(errs) > 0 {
		if !wait() {
			return -1
		}
		s.writeProblem(w, http.StatusBadRequest, "Invalid Resource",
			"The resource submitted could not be validated. For field-specific details, see the 'errors' array.", errs)
		return -1
	}
	page, total := s.membersPage(l, q)
	sel := parseFieldSelection(params.Get("fields"), params.Get("exclude_fields"))
	// The page is encoded before the latency is waited out, so its cost
	// is part of the response time as a real server's work is, rather
	// than added to it (a large page is a few megabytes; the simulator
	// holds at most one per connection slot).
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, _ := appendMembersBody((*bp)[:0], l.id, page, total, sel, nil)
	*bp = b[:0]
	if !wait() {
		return -1
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for len(b) > 0 { // in pieces, as a server streams a large answer
		n := min(len(b), flushAt)
		if _, err := w.Write(b[:n]); err != nil {
			return -1 // the client went away
		}
		b = b[n:]
	}
	return len(page)
}

// membersPage is what a members query selects now: the churn set for every
// request first, then the page and the size of the whole filtered set.
func (s *Mailchimp) membersPage(l *list, q memberQuery) (page []*Member, total int) {
	l.mu.RLock()
	churn := l.churnPerRequest
	l.mu.RUnlock()
	if churn > 0 {
		l.churn(churn)
	}
	if q.sortField != "" {
		q.shuffleTies = s.tieShuffler()
	}
	s.mu.Lock()
	q.withArchived = s.defaultWithArchived
	s.mu.Unlock()
	return l.page(q)
}

// SetDefaultViewIncludesArchived sets, on a running simulator, whether the
// members endpoint's default view (no status) includes archived members:
// Options.DefaultViewIncludesArchived. It applies to the HTTP endpoint and
// to every Source alike, from the next request on.
func (s *Mailchimp) SetDefaultViewIncludesArchived(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultWithArchived = on
}

// appendMembersBody appends the members response document to b. When flush
// is set it is handed the document so far whenever that passes flushAt, so
// a large page streams instead of being built whole; what it returns is the
// rest, which the caller writes.
func appendMembersBody(b []byte, listID string, page []*Member, total int, sel *fieldSelection, flush func([]byte) error) ([]byte, error) {
	b = append(b, '{')
	sep := false
	comma := func() {
		if sep {
			b = append(b, ',')
		}
		sep = true
	}
	if msel, ok := sel.child("members", false); ok {
		comma()
		b = append(b, `"members":[`...)
		plan := allMemberFields
		if msel != nil {
			plan = newMemberPlan(msel)
		}
		for i, m := range page {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendMember(b, m, plan)
			if flush != nil && len(b) >= flushAt {
				if err := flush(b); err != nil {
					return b, err
				}
				b = b[:0]
			}
		}
		b = append(b, ']')
	}
	if _, ok := sel.child("list_id", true); ok {
		comma()
		b = append(b, `"list_id":`...)
		b = appendString(b, listID)
	}
	if _, ok := sel.child("total_items", true); ok {
		comma()
		b = append(b, `"total_items":`...)
		b = strconv.AppendInt(b, int64(total), 10)
	}
	if _, ok := sel.child("_links", false); ok {
		comma()
		b = append(b, `"_links":[]`...)
	}
	return append(b, '}'), nil
}

// serveMember answers GET /3.0/lists/{id}/members/{subscriber_hash}: the
// member whatever its status, archived included, or 404 once it is deleted
// for good (or never existed, or the list does not).
func (s *Mailchimp) serveMember(w http.ResponseWriter, r *http.Request, listID, hash string) {
	m, ok := s.member(listID, hash)
	if !ok {
		s.writeNotFound(w)
		return
	}
	sel := parseFieldSelection(r.URL.Query().Get("fields"), r.URL.Query().Get("exclude_fields"))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(appendMember(nil, m, newMemberPlan(sel)))
}

// member finds a stored member by subscriber hash. Mailchimp also accepts
// the address itself in place of the hash, so the simulator does too.
func (s *Mailchimp) member(listID, hash string) (*Member, bool) {
	l, err := s.list(listID)
	if err != nil {
		return nil, false
	}
	if strings.Contains(hash, "@") {
		hash = MemberID(hash)
	}
	return l.get(strings.ToLower(hash))
}

// fieldError is one entry of a 400 problem's errors array.
type fieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// parseMembersQuery validates the members endpoint's parameters, reporting
// every bad one at once.
func parseMembersQuery(v url.Values, inclusive bool) (memberQuery, []fieldError) {
	q := memberQuery{count: 10, inclusive: inclusive}
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	nonNegative := func(field string, into *int) {
		raw := v.Get(field)
		if raw == "" {
			return
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n < 0 {
			bad(field, "%s must be a non-negative integer, got %q.", field, raw)
			return
		}
		*into = n
	}
	nonNegative("count", &q.count)
	nonNegative("offset", &q.offset)
	q.count = min(q.count, MaxCount)

	if raw := v.Get("status"); raw != "" {
		q.status = parseStatus(raw)
		if q.status == codeInvalid {
			bad("status", "Invalid status %q. Valid values: subscribed, unsubscribed, cleaned, pending, transactional, archived.", raw)
		}
	}
	timestamp := func(field string, into *int64, has *bool) {
		raw := v.Get(field)
		if raw == "" {
			return
		}
		// A literal "+" in the query decodes to a space; that is the
		// client's bug, and reporting it beats guessing what was meant.
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			bad(field, "%s must be an ISO 8601 time such as 2015-10-21T15:41:36+00:00, got %q.", field, raw)
			return
		}
		*into, *has = t.UnixNano(), true
	}
	timestamp("since_last_changed", &q.since, &q.hasSince)
	timestamp("before_last_changed", &q.before, &q.hasBefore)

	if raw := v.Get("sort_field"); raw != "" {
		if _, ok := sortKeys[raw]; !ok {
			bad("sort_field", "Invalid sort_field %q. Valid values: timestamp_opt, timestamp_signup, last_changed.", raw)
		}
		q.sortField = raw
	}
	switch raw := v.Get("sort_dir"); raw {
	case "", "ASC":
	case "DESC":
		q.desc = true
	default:
		bad("sort_dir", "Invalid sort_dir %q. Valid values: ASC, DESC.", raw)
	}
	return q, errs
}

// serveList answers GET /3.0/lists/{id} with a realistic list resource.
func (s *Mailchimp) serveList(w http.ResponseWriter, r *http.Request, listID string) {
	l, err := s.list(listID)
	if err != nil {
		s.writeNotFound(w)
		return
	}
	sel := parseFieldSelection(r.URL.Query().Get("fields"), r.URL.Query().Get("exclude_fields"))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(appendObject(nil, listObject(l, true), sel))
}

// listObject is the list resource of GET /lists/{id} and of each item of
// GET /lists. Its stats cost a scan of the members, so a caller that will
// not write them leaves them out.
func listObject(l *list, withStats bool) object {
	var st listStats
	if withStats {
		st = l.stats()
	}
	info := l.info
	self := "https://us1.api.mailchimp.com/3.0/lists/" + l.id
	o := object{
		{"id", l.id},
		{"web_id", info.webID},
		{"name", info.name},
		{"contact", object{
			{"company", "Example Co"}, {"address1", "675 Ponce De Leon Ave NE"}, {"address2", "Suite 5000"},
			{"city", "Atlanta"}, {"state", "GA"}, {"zip", "30308"}, {"country", "US"}, {"phone", ""},
		}},
		{"permission_reminder", "You are receiving this email because you signed up on our website."},
		{"use_archive_bar", true},
		{"campaign_defaults", object{
			{"from_name", "Example Co"}, {"from_email", "news@example.com"}, {"subject", ""}, {"language", "en"},
		}},
		{"notify_on_subscribe", ""},
		{"notify_on_unsubscribe", ""},
		{"date_created", formatTime(info.dateCreated)},
		{"list_rating", 3},
		{"email_type_option", false},
		{"subscribe_url_short", "http://eepurl.com/sim" + l.id},
		{"subscribe_url_long", "https://example.us1.list-manage.com/subscribe?u=0&id=" + l.id},
		{"beamer_address", "us1-" + l.id + "@inbound.mailchimp.com"},
		{"visibility", "prv"},
		{"double_optin", false},
		{"has_welcome", false},
		{"marketing_permissions", false},
		{"modules", []object{}},
		{"stats", object{
			{"member_count", st.subscribed},
			{"total_contacts", st.total},
			{"unsubscribe_count", st.unsubscribed},
			{"cleaned_count", st.cleaned},
			{"member_count_since_send", st.subscribed},
			{"unsubscribe_count_since_send", st.unsubscribed},
			{"cleaned_count_since_send", st.cleaned},
			{"campaign_count", 0},
			{"campaign_last_sent", ""},
			{"merge_field_count", len(standardMergeTags)},
			{"avg_sub_rate", 0},
			{"avg_unsub_rate", 0},
			{"target_sub_rate", 0},
			{"open_rate", 0},
			{"click_rate", 0},
			{"last_sub_date", formatTime(st.lastSub)},
			{"last_unsub_date", formatTime(st.lastUnsub)},
		}},
		{"_links", []object{
			{{"rel", "self"}, {"href", self}, {"method", "GET"}},
			{{"rel", "members"}, {"href", self + "/members"}, {"method", "GET"}},
		}},
	}
	if !withStats {
		o = slices.DeleteFunc(o, func(f field) bool { return f.key == "stats" })
	}
	return o
}

// problem is Mailchimp's error document (RFC 7807 problem details).
type problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail"`
	Instance string       `json:"instance"`
	Errors   []fieldError `json:"errors,omitempty"`
}

// ProblemContentType is the Content-Type of every error the API explains.
const ProblemContentType = "application/problem+json; charset=utf-8"

func (s *Mailchimp) writeProblem(w http.ResponseWriter, status int, title, detail string, errs []fieldError) {
	body, _ := json.Marshal(problem{
		Type:     "https://mailchimp.com/developer/marketing/docs/errors/",
		Title:    title,
		Status:   status,
		Detail:   detail,
		Instance: s.instanceID(),
		Errors:   errs,
	})
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Mailchimp) writeNotFound(w http.ResponseWriter) {
	s.writeProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.", nil)
}

// writeTooManyRequests answers like Mailchimp over its connection limit:
// no Retry-After, so clients must back off on their own.
func (s *Mailchimp) writeTooManyRequests(w http.ResponseWriter) {
	s.writeProblem(w, http.StatusTooManyRequests, "Too Many Requests",
		fmt.Sprintf("You have exceeded the limit of %d simultaneous connections.", s.opts.MaxConnsPerKey), nil)
}

// instanceID returns a uuid-shaped id for a problem document.
func (s *Mailchimp) instanceID() string {
	s.mu.Lock()
	a, b, c := s.rng.Uint32(), s.rng.Uint64(), s.rng.Uint64()
	s.mu.Unlock()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a, b>>48, b&0xffff, c>>48, c&0xffffffffffff)
}
