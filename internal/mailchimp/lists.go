package mailchimp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// healthy is what GET /ping says when the API is up.
const healthy = "Everything's Chimpy!"

// Ping checks that the API is reachable and the key is accepted.
func (c *Client) Ping(ctx context.Context) error {
	const endpoint = "/ping"
	return c.call(ctx, http.MethodGet, endpoint, nil, func(resp *http.Response) error {
		var body struct {
			HealthStatus string `json:"health_status"`
		}
		if err := decodeJSON(resp, &body); err != nil {
			return err
		}
		if body.HealthStatus != healthy {
			e := c.newError(KindServer, http.MethodGet, endpoint, resp.StatusCode, nil)
			e.Title = "unhealthy"
			e.Detail = clip(c.redact(fmt.Sprintf("health_status %q", body.HealthStatus)))
			return e
		}
		return nil
	})
}

// List is an audience, as far as chimport needs it.
type List struct {
	ID          string    `json:"id"`
	WebID       int64     `json:"web_id"` // a number in the API
	Name        string    `json:"name"`
	DateCreated string    `json:"date_created"`
	Stats       ListStats `json:"stats"`
}

// ListStats are Mailchimp's (cached, approximate) audience counters.
type ListStats struct {
	MemberCount          int    `json:"member_count"`
	UnsubscribeCount     int    `json:"unsubscribe_count"`
	CleanedCount         int    `json:"cleaned_count"`
	MemberCountSinceSend int    `json:"member_count_since_send"`
	TotalContacts        int    `json:"total_contacts"`
	LastSubDate          string `json:"last_sub_date"`   // "" when never
	LastUnsubDate        string `json:"last_unsub_date"` // "" when never
}

// listFields trims GET /lists/{id}, which otherwise returns kilobytes of
// campaign defaults and contact details chimport never reads.
const listFields = "id,web_id,name,date_created,stats"

// List fetches one audience; a wrong id is a KindNotFound *Error.
func (c *Client) List(ctx context.Context, listID string) (*List, error) {
	if listID == "" {
		return nil, errors.New("mailchimp: list id is empty")
	}
	var list *List
	err := c.call(ctx, http.MethodGet, "/lists/"+url.PathEscape(listID), url.Values{"fields": {listFields}},
		func(resp *http.Response) error {
			var l List
			if err := decodeJSON(resp, &l); err != nil {
				return err
			}
			list = &l
			return nil
		})
	if err != nil {
		return nil, err
	}
	return list, nil
}

// ListSummary is an audience of the account, as Lists finds it.
type ListSummary struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// listsFields trims GET /lists to what Lists reads.
const listsFields = "lists.id,lists.name,total_items"

// Lists returns every audience of the account, sorted by id, paging GET
// /lists a thousand at a time. Paging stops at an empty page or once the
// offset reaches the latest total_items; an audience created or deleted
// meanwhile may shift a page boundary, so ids are de-duplicated, and a page
// that brings no new id ends the walk, so a server that misbehaves cannot
// keep it going forever. An audience missed that way is found by the next
// call.
func (c *Client) Lists(ctx context.Context) ([]ListSummary, error) {
	const endpoint = "/lists"
	seen := map[string]ListSummary{}
	for offset := 0; ; {
		query := url.Values{
			"count":  {strconv.Itoa(MaxPageSize)},
			"offset": {strconv.Itoa(offset)},
			"fields": {listsFields},
		}
		var page struct {
			Lists      []ListSummary `json:"lists"`
			TotalItems int           `json:"total_items"`
		}
		err := c.call(ctx, http.MethodGet, endpoint, query, func(resp *http.Response) error {
			page.Lists, page.TotalItems = nil, 0 // a retried attempt starts afresh
			return decodeJSON(resp, &page)
		})
		if err != nil {
			return nil, err
		}
		fresh := 0
		for _, l := range page.Lists {
			if _, dup := seen[l.ID]; !dup && l.ID != "" {
				seen[l.ID] = l
				fresh++
			}
		}
		offset += len(page.Lists)
		if fresh == 0 || offset >= page.TotalItems {
			break
		}
	}
	out := make([]ListSummary, 0, len(seen))
	for _, l := range seen {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b ListSummary) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
