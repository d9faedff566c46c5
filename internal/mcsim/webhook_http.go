package mcsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
)

// maxWebhookBody bounds a webhook request's JSON body.
const maxWebhookBody = 64 << 10

// serveWebhooks answers the list webhooks endpoints:
//
//	GET    /3.0/lists/{id}/webhooks        the list's webhooks
//	POST   /3.0/lists/{id}/webhooks        create one (its URL checked first)
//	GET    /3.0/lists/{id}/webhooks/{wid}  one webhook
//	DELETE /3.0/lists/{id}/webhooks/{wid}  delete it: 204
//
// rest is empty for the collection, the webhook id otherwise.
func (s *Mailchimp) serveWebhooks(w http.ResponseWriter, r *http.Request, listID string, rest []string) {
	allow := http.MethodGet + ", " + http.MethodPost
	if len(rest) > 0 {
		allow = http.MethodGet + ", " + http.MethodDelete
	}
	if _, err := s.list(listID); err != nil {
		s.writeNotFound(w)
		return
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		s.serveWebhookList(w, listID)
	case len(rest) == 0 && r.Method == http.MethodPost:
		s.createWebhook(w, r, listID)
	case len(rest) > 0 && r.Method == http.MethodGet:
		wh, ok := s.hooks.get(listID, rest[0])
		if !ok {
			s.writeNotFound(w)
			return
		}
		writeJSON(w, http.StatusOK, webhookDoc{Webhook: wh, Links: []any{}})
	case len(rest) > 0 && r.Method == http.MethodDelete:
		if err := s.hooks.remove(listID, rest[0]); err != nil {
			s.writeNotFound(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", allow)
		s.writeProblem(w, http.StatusMethodNotAllowed, "Method Not Allowed",
			"The requested method and resource are not compatible. See the Allow header for this resource's available methods.", nil)
	}
}

// webhookDoc is a webhook as the API writes it.
type webhookDoc struct {
	Webhook
	Links []any `json:"_links"`
}

func (s *Mailchimp) serveWebhookList(w http.ResponseWriter, listID string) {
	docs := []webhookDoc{}
	for _, wh := range s.Webhooks(listID) {
		docs = append(docs, webhookDoc{Webhook: wh, Links: []any{}})
	}
	writeJSON(w, http.StatusOK, struct {
		Webhooks   []webhookDoc `json:"webhooks"`
		ListID     string       `json:"list_id"`
		TotalItems int          `json:"total_items"`
		Links      []any        `json:"_links"`
	}{docs, listID, len(docs), []any{}})
}

// webhookRequest is the body of a POST. Omitted events and sources take
// the simulator's defaults: every member event (not campaign), every
// source.
type webhookRequest struct {
	URL    string `json:"url"`
	Events *struct {
		Subscribe, Unsubscribe, Profile, Cleaned, Upemail, Campaign *bool
	} `json:"events"`
	Sources *struct {
		User, Admin *bool
		API         *bool `json:"api"`
	} `json:"sources"`
}

func (req *webhookRequest) webhook(listID string) Webhook {
	or := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	wh := Webhook{
		URL:     req.URL,
		ListID:  listID,
		Events:  WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true},
		Sources: WebhookSources{User: true, Admin: true, API: true},
	}
	if e := req.Events; e != nil {
		wh.Events = WebhookEvents{
			Subscribe: or(e.Subscribe, true), Unsubscribe: or(e.Unsubscribe, true), Profile: or(e.Profile, true),
			Cleaned: or(e.Cleaned, true), Upemail: or(e.Upemail, true), Campaign: or(e.Campaign, false),
		}
	}
	if src := req.Sources; src != nil {
		wh.Sources = WebhookSources{User: or(src.User, true), Admin: or(src.Admin, true), API: or(src.API, true)}
	}
	return wh
}

// createWebhook validates the request, checks the URL with a GET as
// Mailchimp does (refused with a 400 unless it answers 200), and stores the
// webhook. The same URL may be registered more than once, as Mailchimp
// allows.
func (s *Mailchimp) createWebhook(w http.ResponseWriter, r *http.Request, listID string) {
	invalid := func(errs ...fieldError) {
		s.writeProblem(w, http.StatusBadRequest, "Invalid Resource",
			"The resource submitted could not be validated. For field-specific details, see the 'errors' array.", errs)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.writeProblem(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large",
			"The request body is larger than the API accepts.", nil)
		return
	case err != nil:
		return // the client went away
	}
	var req webhookRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.writeProblem(w, http.StatusBadRequest, "JSON Schema Error",
			"We encountered an unspecified JSON parsing error.", nil)
		return
	}
	if req.URL == "" {
		invalid(fieldError{Field: "url", Message: "This value should not be blank."})
		return
	}
	if u, err := url.Parse(req.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		invalid(fieldError{Field: "url", Message: "This value should be a valid URL."})
		return
	}
	if err := s.hooks.check(r.Context(), req.URL); err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		invalid(fieldError{Field: "url", Message: "We couldn't verify the URL is working. Please double check and try again."})
		return
	}
	writeJSON(w, http.StatusOK, webhookDoc{Webhook: s.hooks.register(req.webhook(listID)), Links: []any{}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
