package mailchimp

import (
	"context"
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

func (q MembersQuery) values() url.Values {
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
	err := c.call(ctx, http.MethodGet, "/lists/"+url.PathEscape(listID)+"/members", q.values(),
		func(resp *http.Response) error {
			var body struct {
				Members    []Member `json:"members"`
				ListID     string   `json:"list_id"`
				TotalItems int      `json:"total_items"`
			}
			if err := decodeJSON(resp, &body); err != nil {
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
