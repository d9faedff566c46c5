package mailchimp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
