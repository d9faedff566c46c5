package mailchimp

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxPageSize is the largest count Mailchimp honours; larger values are
// capped silently by the server, so the client caps them visibly.
const MaxPageSize = 1000

// TimeFormat is how since/before filters are sent: ISO 8601 in UTC with an
// explicit offset, as Mailchimp documents them.
const TimeFormat = "2006-01-02T15:04:05+00:00"

// MembersQuery is the query of GET /lists/{id}/members. Zero fields are
// left out, so the API's defaults apply.
type MembersQuery struct {
	Count  int // page size; capped at MaxPageSize; 0 = API default (10)
	Offset int
	// Fields and ExcludeFields are dot paths such as
	// "members.merge_fields.FNAME". When Fields is set, "total_items" is
	// added (the pager needs it); "total_items" is never excluded.
	Fields, ExcludeFields []string
	// Status filters by member status; "" = every status except archived.
	Status string
	// Since and Before filter on last_changed; zero = unset. Mailchimp
	// does not document whether either bound is inclusive.
	Since, Before time.Time
	// SortField (timestamp_opt, timestamp_signup, last_changed) and
	// SortDir (ASC, DESC).
	SortField, SortDir string
}

// Values is the query string q is sent as. The simulator's in-process
// source reads it too, so it parses a query exactly as its HTTP endpoint
// would.
func (q MembersQuery) Values() url.Values {
	v := url.Values{}
	if q.Count > 0 {
		v.Set("count", strconv.Itoa(min(q.Count, MaxPageSize)))
	}
	if q.Offset > 0 {
		v.Set("offset", strconv.Itoa(q.Offset))
	}
	if len(q.Fields) > 0 {
		fields := q.Fields
		if !slices.Contains(fields, "total_items") {
			fields = append(slices.Clip(fields), "total_items")
		}
		v.Set("fields", strings.Join(fields, ","))
	}
	exclude := slices.DeleteFunc(slices.Clone(q.ExcludeFields), func(f string) bool { return f == "total_items" })
	if len(exclude) > 0 {
		v.Set("exclude_fields", strings.Join(exclude, ","))
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if !q.Since.IsZero() {
		v.Set("since_last_changed", q.Since.UTC().Format(TimeFormat))
	}
	if !q.Before.IsZero() {
		v.Set("before_last_changed", q.Before.UTC().Format(TimeFormat))
	}
	if q.SortField != "" {
		v.Set("sort_field", q.SortField)
	}
	if q.SortDir != "" {
		v.Set("sort_dir", q.SortDir)
	}
	return v
}

// Member is one member document as Mailchimp sent it, decoded with
// UseNumber so numbers (merge fields, ratings) keep their exact text.
// Nested objects are map[string]any, arrays []any.
//
// The strings of a member decoded from a page share the page's memory
// (see decode.go): keeping one (an id in a roster, say) past the page
// keeps the whole page alive, so whatever outlives the page takes a
// strings.Clone, or memory grows with the audience.
type Member map[string]any

// ID is the member id (MD5 of the lower-cased email), or "" if absent.
func (m Member) ID() string {
	s, _ := m["id"].(string)
	return s
}

// LastChanged parses last_changed; it fails when the field is missing
// (for example left out of Fields) or malformed.
func (m Member) LastChanged() (time.Time, error) {
	s, ok := m["last_changed"].(string)
	if !ok || s == "" {
		return time.Time{}, errors.New("mailchimp: member has no last_changed (is members.last_changed in fields?)")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("mailchimp: member %s: bad last_changed: %w", m.ID(), err)
	}
	return t.UTC(), nil
}

// Lookup follows a dot path ("merge_fields.FNAME", "tags.0.name") through
// objects and arrays. It reports false when any step is missing.
func (m Member) Lookup(path string) (any, bool) {
	var cur any = map[string]any(m)
	for part := range strings.SplitSeq(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[part]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// MembersPage is one page of GET /lists/{id}/members.
type MembersPage struct {
	ListID     string
	Offset     int // the offset this page was asked for
	TotalItems int // members matching the query now, across all pages
	Members    []Member
	ServerTime time.Time // from the Date header; zero if absent
}

// Members fetches one page.
func (c *Client) Members(ctx context.Context, listID string, q MembersQuery) (*MembersPage, error) {
	if listID == "" {
		return nil, errors.New("mailchimp: list id is empty")
	}
	var page *MembersPage
	err := c.call(ctx, http.MethodGet, "/lists/"+url.PathEscape(listID)+"/members", q.Values(),
		func(resp *http.Response) error {
			body, err := decodeMembersPage(resp)
			if err != nil {
				return err
			}
			page = &MembersPage{
				ListID:     body.ListID,
				Offset:     q.Offset,
				TotalItems: body.TotalItems,
				Members:    body.Members,
				ServerTime: serverTime(resp),
			}
			if page.ListID == "" { // left out by fields=
				page.ListID = listID
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// ErrMemberNotFound is matched (errors.Is) by the error of Member when
// Mailchimp has no member with the hash: the member was deleted for good,
// or never was in the audience. Mailchimp answers an unknown list id with
// the same 404, so only a caller that knows the list exists (it has just
// paged it) may take this to mean the member is gone.
var ErrMemberNotFound = errors.New("mailchimp: no such member")

// SubscriberHash is the hash Mailchimp knows a member by: the hex MD5 of
// the lower-cased email address. It is also the member's id, which
// therefore changes with the address.
func SubscriberHash(email string) string {
	sum := md5.Sum([]byte(strings.ToLower(email)))
	return hex.EncodeToString(sum[:])
}

// memberFields turns fields into the single-member endpoint's form: dot
// paths within the member. The members endpoint's form ("members.id",
// "total_items") is accepted too, so a mapping's Fields can be passed as
// they are.
func memberFields(fields []string) []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		switch f = strings.TrimPrefix(f, "members."); f {
		case "", "members", "total_items":
			continue
		}
		out = append(out, f)
	}
	return out
}

// Member fetches one member by subscriber hash (see SubscriberHash) with
// GET /lists/{list_id}/members/{subscriber_hash}. fields, when set, limit
// the document to those dot paths ("merge_fields.FNAME"). An archived
// member is returned, with status "archived"; a member deleted for good is
// an error matching ErrMemberNotFound (and no *Error: its advice would be
// about a missing audience).
func (c *Client) Member(ctx context.Context, listID, subscriberHash string, fields []string) (Member, error) {
	switch {
	case listID == "":
		return nil, errors.New("mailchimp: list id is empty")
	case subscriberHash == "":
		return nil, errors.New("mailchimp: subscriber hash is empty")
	}
	query := url.Values{}
	if f := memberFields(fields); len(f) > 0 {
		query.Set("fields", strings.Join(f, ","))
	}
	endpoint := "/lists/" + url.PathEscape(listID) + "/members/" + url.PathEscape(subscriberHash)
	var member Member
	err := c.call(ctx, http.MethodGet, endpoint, query, func(resp *http.Response) error {
		var m Member
		if err := decodeJSON(resp, &m); err != nil {
			return err
		}
		if m == nil {
			return c.newError(KindBadBody, http.MethodGet, endpoint, resp.StatusCode, errors.New("the member document is null"))
		}
		member = m
		return nil
	})
	if IsKind(err, KindNotFound) {
		return nil, fmt.Errorf("%s404: %w", callPrefix(c.connection, http.MethodGet, endpoint), ErrMemberNotFound)
	}
	if err != nil {
		return nil, err
	}
	return member, nil
}
