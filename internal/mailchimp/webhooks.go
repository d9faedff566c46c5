package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/chimport/chimport/internal/advice"
)

// Webhook is a list webhook as Mailchimp holds it. Its URL may hold a
// credential (chimport's own carry their token in the last path segment):
// callers print it masked.
type Webhook struct {
	ID      string         `json:"id"`
	URL     string         `json:"url"`
	Events  WebhookEvents  `json:"events"`
	Sources WebhookSources `json:"sources"`
	ListID  string         `json:"list_id"`
}

// WebhookEvents says which events Mailchimp sends.
type WebhookEvents struct {
	Subscribe   bool `json:"subscribe"`
	Unsubscribe bool `json:"unsubscribe"`
	Profile     bool `json:"profile"`
	Cleaned     bool `json:"cleaned"`
	Upemail     bool `json:"upemail"`
	Campaign    bool `json:"campaign"`
}

// WebhookSources says whose changes fire events: the member's own (user),
// the account's people in Mailchimp (admin), and API calls (api).
type WebhookSources struct {
	User  bool `json:"user"`
	Admin bool `json:"admin"`
	API   bool `json:"api"`
}

// WebhookSpec is a webhook to create. Every event and source is sent,
// false ones too, so none is left to Mailchimp's defaults.
type WebhookSpec struct {
	URL     string         `json:"url"`
	Events  WebhookEvents  `json:"events"`
	Sources WebhookSources `json:"sources"`
}

// ErrWebhookNotFound matches the error of DeleteWebhook for a webhook that
// is not there (deleted already, by someone else or by a retried DELETE
// whose first answer was lost). Mailchimp answers an unknown list id with
// the same 404, so only a caller that has just listed the list's webhooks
// may take this to mean the webhook is gone.
var ErrWebhookNotFound = errors.New("mailchimp: no such webhook")

func webhooksEndpoint(listID string) string {
	return "/lists/" + url.PathEscape(listID) + "/webhooks"
}

// ListWebhooks returns every webhook of the list (GET
// /lists/{list_id}/webhooks), in Mailchimp's order; a wrong list id is a
// KindNotFound *Error.
func (c *Client) ListWebhooks(ctx context.Context, listID string) ([]Webhook, error) {
	if listID == "" {
		return nil, errors.New("mailchimp: list id is empty")
	}
	var hooks []Webhook
	err := c.call(ctx, http.MethodGet, webhooksEndpoint(listID), nil, func(resp *http.Response) error {
		var err error
		hooks, err = decodeWebhooks(resp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return hooks, nil
}

func decodeWebhooks(resp *http.Response) ([]Webhook, error) {
	var body struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	if err := decodeJSON(resp, &body); err != nil {
		return nil, err
	}
	if body.Webhooks == nil {
		return []Webhook{}, nil
	}
	return body.Webhooks, nil
}

// CreateWebhook registers a webhook on the list (POST
// /lists/{list_id}/webhooks) and returns it with its id. Mailchimp first
// checks the URL with a GET and refuses the webhook (400, a KindInvalid
// *Error whose advice says so) unless that answers 200.
//
// A POST is not idempotent, so it is retried with care: before a retry
// that follows an answer which may have come after Mailchimp created the
// webhook (a 5xx, a dropped connection, an unreadable body), the list's
// webhooks are read, and a webhook already at spec.URL is returned
// instead of creating a second one. A 429 is retried as it is: Mailchimp
// did nothing.
//
// spec.URL never appears in the error, even when Mailchimp quotes it: it
// is shown with its last path segment (chimport's token) masked, and the
// segment itself is removed wherever else it appears.
func (c *Client) CreateWebhook(ctx context.Context, listID string, spec WebhookSpec) (Webhook, error) {
	switch {
	case listID == "":
		return Webhook{}, errors.New("mailchimp: list id is empty")
	case spec.URL == "":
		return Webhook{}, errors.New("mailchimp: webhook URL is empty")
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return Webhook{}, fmt.Errorf("mailchimp: encoding the webhook: %w", err)
	}
	endpoint := webhooksEndpoint(listID)
	scrub := webhookScrubber(spec.URL)
	var created Webhook
	unsure := false // whether an earlier POST may have created it
	err = c.send(ctx, request{
		method:   http.MethodPost,
		endpoint: endpoint,
		body:     body,
		scrub:    scrub,
		beforeRetry: func(ctx context.Context, last error) (bool, error) {
			if !unsure && !mayHaveCreated(last) {
				return false, nil
			}
			unsure = true
			var hooks []Webhook
			lookup := request{method: http.MethodGet, endpoint: endpoint, scrub: scrub}
			if err := c.attempt(ctx, lookup, func(resp *http.Response) error {
				var err error
				hooks, err = decodeWebhooks(resp)
				return err
			}); err != nil {
				return false, err // still unsure: the next retry looks again
			}
			unsure = false
			for _, h := range hooks {
				if h.URL == spec.URL {
					created = h
					return true, nil
				}
			}
			return false, nil
		},
	}, func(resp *http.Response) error {
		var w Webhook
		if err := decodeJSON(resp, &w); err != nil {
			return err
		}
		if w.ID == "" {
			return c.newError(KindBadBody, http.MethodPost, endpoint, resp.StatusCode, errors.New("the created webhook has no id"))
		}
		created = w
		return nil
	})
	if err != nil {
		return Webhook{}, err
	}
	return created, nil
}

// mayHaveCreated reports whether a failed POST may still have done its
// work: the answer, not the request, went wrong.
func mayHaveCreated(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Kind {
	case KindServer, KindTransport, KindBadBody:
		return true
	}
	return false
}

// DeleteWebhook deletes one webhook of the list (DELETE
// /lists/{list_id}/webhooks/{webhook_id}, 204). A webhook that is not
// there is an error matching ErrWebhookNotFound.
func (c *Client) DeleteWebhook(ctx context.Context, listID, webhookID string) error {
	switch {
	case listID == "":
		return errors.New("mailchimp: list id is empty")
	case webhookID == "":
		return errors.New("mailchimp: webhook id is empty")
	}
	endpoint := webhooksEndpoint(listID) + "/" + url.PathEscape(webhookID)
	err := c.call(ctx, http.MethodDelete, endpoint, nil, func(*http.Response) error { return nil })
	if IsKind(err, KindNotFound) {
		return fmt.Errorf("%s404: %w", callPrefix(c.connection, http.MethodDelete, endpoint), ErrWebhookNotFound)
	}
	return err
}

// webhookScrubber removes a webhook URL's credential from server text:
// the URL itself becomes the URL with its last path segment masked, and
// that segment (when long enough to be a token rather than a word) is
// masked wherever else it appears.
func webhookScrubber(u string) *strings.Replacer {
	const mask = "****"
	pairs := []string{}
	if i := strings.LastIndexByte(u, '/'); i >= 0 && i < len(u)-1 {
		seg := u[i+1:]
		pairs = append(pairs, u, u[:i+1]+mask)
		if len(seg) >= 8 {
			pairs = append(pairs, seg, mask)
		}
	} else {
		pairs = append(pairs, u, "[webhook url]")
	}
	return strings.NewReplacer(pairs...)
}

// webhookAdvice is the advice of a webhook call that retrying cannot fix
// when it differs from the other calls': Mailchimp answers 400 when its
// GET check of a new webhook's URL fails, which is a matter of
// webhooks.public_url and the way in to the receiver, not of the mapping.
func (e *Error) webhookAdvice() (advice.Advice, bool) {
	if e.Kind != KindInvalid || e.Method != http.MethodPost || !strings.HasSuffix(e.Endpoint, "/webhooks") {
		return advice.Advice{}, false
	}
	return advice.Advice{
		Status:  e.Status,
		Problem: "Mailchimp refused the webhook; most likely it could not reach the URL, which must answer its GET with 200",
		Action: "Check webhooks.public_url, and that DNS and the ingress or proxy in front of it reach " +
			"`chimport serve --webhook-listen`, which must be running; then run chimport webhooks install again.",
	}, true
}
