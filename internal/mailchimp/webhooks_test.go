package mailchimp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
)

const hookToken = "5f1e0c9a7b3d4e2f8a6c1b0d9e7f3a2c5b4d6e8f0a1c3e5b7d9f2a4c6e8b0d1f"

var hookURL = "https://chimport.example.com/webhooks/mailchimp/acme-main/" + hookToken

// allEvents is what chimport registers: every member event, no campaigns.
var hookSpec = mailchimp.WebhookSpec{
	URL:     hookURL,
	Events:  mailchimp.WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true},
	Sources: mailchimp.WebhookSources{User: true, Admin: true, API: true},
}

// hookServer keeps a list's webhooks as Mailchimp does. fault, when set,
// may answer a request instead (return true), after seeing whether the
// request was carried out (done: a POST that created its webhook).
type hookServer struct {
	mu     sync.Mutex
	hooks  []mailchimp.Webhook
	next   int
	log    []string // "METHOD path"
	bodies []string // bodies of the POSTs
	fault  func(w http.ResponseWriter, r *http.Request, n int) bool
	// afterCreate, when set, answers a POST that did create its webhook.
	afterCreate func(w http.ResponseWriter, r *http.Request, n int) bool
}

func (s *hookServer) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.log = append(s.log, r.Method+" "+r.URL.Path)
		n := len(s.log)
		if _, key, _ := r.BasicAuth(); key != testKey {
			writeProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")
			return
		}
		if s.fault != nil && s.fault(w, r, n) {
			return
		}
		base := "/3.0/lists/" + testList + "/webhooks"
		switch {
		case r.Method == http.MethodGet && r.URL.Path == base:
			writeJSON(w, map[string]any{"webhooks": s.hooks, "list_id": testList, "total_items": len(s.hooks)})
		case r.Method == http.MethodPost && r.URL.Path == base:
			body, _ := io.ReadAll(r.Body)
			s.bodies = append(s.bodies, string(body))
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("POST Content-Type = %q", ct)
			}
			var spec mailchimp.WebhookSpec
			if err := json.Unmarshal(body, &spec); err != nil {
				writeProblem(w, http.StatusBadRequest, "Invalid Resource", err.Error())
				return
			}
			s.next++
			h := mailchimp.Webhook{ID: fmt.Sprintf("wh%d", s.next), URL: spec.URL, Events: spec.Events, Sources: spec.Sources, ListID: testList}
			s.hooks = append(s.hooks, h)
			if s.afterCreate != nil && s.afterCreate(w, r, n) {
				return
			}
			writeJSON(w, h)
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, base+"/"):
			id := strings.TrimPrefix(r.URL.Path, base+"/")
			for i, h := range s.hooks {
				if h.ID == id {
					s.hooks = append(s.hooks[:i], s.hooks[i+1:]...)
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
			writeProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		default:
			writeProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
		}
	}
}

func (s *hookServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func newHookClient(t *testing.T, s *hookServer) *mailchimp.Client {
	t.Helper()
	srv := newServer(t, s.handler(t))
	cfg, _ := testConfig(srv.URL)
	return newClient(t, cfg)
}

const (
	postHooks = "POST /3.0/lists/" + testList + "/webhooks"
	getHooks  = "GET /3.0/lists/" + testList + "/webhooks"
)

func TestWebhooksCreateListDelete(t *testing.T) {
	s := &hookServer{}
	c := newHookClient(t, s)
	ctx := context.Background()

	hooks, err := c.ListWebhooks(ctx, testList)
	if err != nil || hooks == nil || len(hooks) != 0 {
		t.Fatalf("ListWebhooks of none = %#v, %v; want an empty slice", hooks, err)
	}
	created, err := c.CreateWebhook(ctx, testList, hookSpec)
	if err != nil {
		t.Fatal(err)
	}
	want := mailchimp.Webhook{ID: "wh1", URL: hookURL, Events: hookSpec.Events, Sources: hookSpec.Sources, ListID: testList}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("CreateWebhook (-want +got):\n%s", diff)
	}
	// Every event and source is sent, the false ones too.
	wantBody := `{"url":"` + hookURL + `","events":{"subscribe":true,"unsubscribe":true,"profile":true,"cleaned":true,"upemail":true,"campaign":false},"sources":{"user":true,"admin":true,"api":true}}`
	if diff := cmp.Diff([]string{wantBody}, s.bodies); diff != "" {
		t.Errorf("POST body (-want +got):\n%s", diff)
	}
	hooks, err = c.ListWebhooks(ctx, testList)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]mailchimp.Webhook{want}, hooks); diff != "" {
		t.Errorf("ListWebhooks (-want +got):\n%s", diff)
	}
	if err := c.DeleteWebhook(ctx, testList, "wh1"); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	err = c.DeleteWebhook(ctx, testList, "wh1")
	if !errors.Is(err, mailchimp.ErrWebhookNotFound) {
		t.Errorf("DeleteWebhook of a deleted webhook = %v, want ErrWebhookNotFound", err)
	}
	wantLog := []string{getHooks, postHooks, getHooks, "DELETE /3.0/lists/" + testList + "/webhooks/wh1", "DELETE /3.0/lists/" + testList + "/webhooks/wh1"}
	if diff := cmp.Diff(wantLog, s.requests()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

// A POST is retried without creating a second webhook: after an answer
// that may have followed the creation, the list is read first.
func TestCreateWebhookRetries(t *testing.T) {
	tests := []struct {
		name        string
		fault       func(w http.ResponseWriter, r *http.Request, n int) bool
		afterCreate func(w http.ResponseWriter, r *http.Request, n int) bool
		wantLog     []string
	}{
		{
			name: "503 before creating: looked up, not there, posted again",
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					serverError(w, r)
					return true
				}
				return false
			},
			wantLog: []string{postHooks, getHooks, postHooks},
		},
		{
			name: "connection dropped after creating: found, not posted again",
			afterCreate: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					dropConnection(w, r)
					return true
				}
				return false
			},
			wantLog: []string{postHooks, getHooks},
		},
		{
			name: "truncated answer after creating: found, not posted again",
			afterCreate: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"id":"wh`)
					return true
				}
				return false
			},
			wantLog: []string{postHooks, getHooks},
		},
		{
			name: "502, then the lookup rate limited, then still unsure: looked up again",
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				switch n {
				case 1:
					htmlBadGateway(w, r)
					return true
				case 2:
					tooMany(w, r)
					return true
				}
				return false
			},
			wantLog: []string{postHooks, getHooks, getHooks, postHooks},
		},
		{
			name: "429: Mailchimp did nothing, posted again at once",
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if n == 1 {
					tooMany(w, r)
					return true
				}
				return false
			},
			wantLog: []string{postHooks, postHooks},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &hookServer{fault: tt.fault, afterCreate: tt.afterCreate}
			c := newHookClient(t, s)
			got, err := c.CreateWebhook(context.Background(), testList, hookSpec)
			if err != nil {
				t.Fatal(err)
			}
			if got.URL != hookURL || got.ID == "" {
				t.Errorf("CreateWebhook = %+v", got)
			}
			if diff := cmp.Diff(tt.wantLog, s.requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if len(s.hooks) != 1 {
				t.Errorf("the list has %d webhooks, want 1", len(s.hooks))
			}
		})
	}
}

// Mailchimp refuses a webhook whose URL check fails with a 400 that
// quotes the URL. The error says what to check, is not retried, and
// shows the token nowhere, nor do the retry log lines of a 503 that
// quotes it.
func TestCreateWebhookRefusedSaysWhyWithoutTheToken(t *testing.T) {
	echo := func(status int) func(w http.ResponseWriter, r *http.Request, n int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			if r.Method != http.MethodPost {
				return false
			}
			var spec mailchimp.WebhookSpec
			_ = json.NewDecoder(r.Body).Decode(&spec)
			writeProblem(w, status, "Invalid Resource", "The resource submitted could not be validated: "+spec.URL+" did not return 200 ("+hookToken+")",
				mailchimp.FieldError{Field: "url", Message: "We couldn't verify the URL " + spec.URL + " is working. Please try again."})
			return true
		}
	}
	s := &hookServer{fault: echo(http.StatusBadRequest)}
	c := newHookClient(t, s)
	_, err := c.CreateWebhook(context.Background(), testList, hookSpec)
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Kind != mailchimp.KindInvalid {
		t.Fatalf("CreateWebhook = %v, want a KindInvalid *Error", err)
	}
	a, ok := e.Advice()
	if !ok || !strings.Contains(a.Problem, "could not reach the URL") ||
		!strings.Contains(a.Action, "webhooks.public_url") || !strings.Contains(a.Action, "chimport serve --webhook-listen") {
		t.Errorf("Advice = %+v, %v; want it to say Mailchimp could not reach the URL, naming public_url and --webhook-listen", a, ok)
	}
	msg := err.Error()
	for _, w := range []string{"400", "could not reach the URL", "webhooks.public_url", "https://chimport.example.com/webhooks/mailchimp/acme-main/****"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error lacks %q: %s", w, msg)
		}
	}
	if got := s.requests(); len(got) != 1 {
		t.Errorf("requests = %q, want the one POST (a 400 is not retried)", got)
	}

	srv := newServer(t, (&hookServer{fault: echo(http.StatusServiceUnavailable)}).handler(t))
	cfg, _ := testConfig(srv.URL)
	logger, logs := testLogger()
	cfg.Logger = logger
	_, err503 := newClient(t, cfg).CreateWebhook(context.Background(), testList, hookSpec)
	if err503 == nil || !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("503s: err %v, logs %q; want a failure after logged retries", err503, logs.String())
	}
	for _, out := range []string{msg, fmt.Sprintf("%+v", e), err503.Error(), logs.String()} {
		if strings.Contains(out, hookToken) || strings.Contains(out, hookToken[:16]) {
			t.Errorf("the token leaked:\n%s", out)
		}
	}
}

func TestWebhookCallErrors(t *testing.T) {
	ctx := context.Background()
	// A wrong list id: the advice is the list's.
	c := newHookClient(t, &hookServer{})
	_, err := c.ListWebhooks(ctx, "nosuchlist")
	var e *mailchimp.Error
	if !errors.As(err, &e) || e.Kind != mailchimp.KindNotFound {
		t.Fatalf("ListWebhooks(nosuchlist) = %v, want KindNotFound", err)
	}
	if a, _ := e.Advice(); !strings.Contains(a.Action, "mailchimp.list_id") {
		t.Errorf("advice %q does not name mailchimp.list_id", a.Action)
	}
	// A rejected key on each call.
	srv := newServer(t, (&hookServer{}).handler(t))
	cfg, _ := testConfig(srv.URL)
	cfg.APIKey = otherKey
	bad := newClient(t, cfg)
	_, errList := bad.ListWebhooks(ctx, testList)
	_, errCreate := bad.CreateWebhook(ctx, testList, hookSpec)
	errDelete := bad.DeleteWebhook(ctx, testList, "wh1")
	for name, err := range map[string]error{"list": errList, "create": errCreate, "delete": errDelete} {
		if !mailchimp.IsKind(err, mailchimp.KindAuth) || !strings.Contains(err.Error(), "mailchimp.api_key") {
			t.Errorf("%s with a rejected key = %v, want KindAuth naming mailchimp.api_key", name, err)
		}
	}
	// Arguments a caller must give.
	for name, err := range map[string]error{
		"list without a list id":      func() error { _, err := c.ListWebhooks(ctx, ""); return err }(),
		"create without a URL":        func() error { _, err := c.CreateWebhook(ctx, testList, mailchimp.WebhookSpec{}); return err }(),
		"delete without a webhook id": c.DeleteWebhook(ctx, testList, ""),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
