package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/webhook"
)

const (
	whSecret   = "whsec-0f9e8d7c6b5a4f3e2d1c" // webhooks.secret, from ${CHIMPORT_WEBHOOK_SECRET}
	whOldToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	whKey      = "0123456789abcdef0123456789abcdef-us6"
	whList     = "a1b2c3d4e5"
	// A webhook of someone else's whose path and query hold their secret.
	whForeign = "https://hooks.example.net/catch/884422/zx91-private?key=their-own-secret"
)

// whFake is the Mailchimp webhooks API as DESIGN.md describes it: a
// POST's URL is checked with a GET that must answer 200. The end-to-end
// tests run against the simulator (webhooks_sim_test.go); this fake lets
// the table tests stage what the simulator's check would refuse (webhooks
// under a base URL nothing answers) and gives ids that name their
// connection, so whole tables can be compared.
type whFake struct {
	mu    sync.Mutex
	hooks []mailchimp.Webhook
	next  int
	seq   map[string]int // webhooks created per connection
	posts int
}

func newWHFake() *whFake { return &whFake{seq: map[string]int{}} }

func (f *whFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, key, _ := r.BasicAuth(); key != whKey {
		whProblem(w, http.StatusUnauthorized, "API Key Invalid", "Your API key may be invalid.")
		return
	}
	base := "/3.0/lists/" + whList + "/webhooks"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == base:
		f.mu.Lock()
		doc := map[string]any{"webhooks": append([]mailchimp.Webhook{}, f.hooks...), "list_id": whList, "total_items": len(f.hooks)}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	case r.Method == http.MethodPost && r.URL.Path == base:
		var spec mailchimp.WebhookSpec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			whProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated.")
			return
		}
		// Mailchimp's check of the URL; its answer quotes the URL.
		resp, err := http.Get(spec.URL)
		if err == nil {
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			whProblem(w, http.StatusBadRequest, "Invalid Resource", "The resource submitted could not be validated. We couldn't verify the URL "+spec.URL+" is working.")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.add(spec))
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, base+"/"):
		f.mu.Lock()
		defer f.mu.Unlock()
		id := strings.TrimPrefix(r.URL.Path, base+"/")
		for i, h := range f.hooks {
			if h.ID == id {
				f.hooks = append(f.hooks[:i], f.hooks[i+1:]...)
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		whProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
	default:
		whProblem(w, http.StatusNotFound, "Resource Not Found", "The requested resource could not be found.")
	}
}

// add registers a webhook as a POST would, without the check. Its id
// names the connection of a chimport URL, so that ids and the order of the
// list, by id, do not depend on which connection's install ran first.
func (f *whFake) add(spec mailchimp.WebhookSpec) mailchimp.Webhook {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.posts++
	id := fmt.Sprintf("%010d", f.next)
	if _, rest, ok := strings.Cut(spec.URL, webhook.PathPrefix); ok {
		name, _, _ := strings.Cut(rest, "/")
		f.seq[name]++
		id = fmt.Sprintf("%s-%d", name, f.seq[name])
	}
	h := mailchimp.Webhook{ID: id, URL: spec.URL, Events: spec.Events, Sources: spec.Sources, ListID: whList}
	f.hooks = append(f.hooks, h)
	slices.SortFunc(f.hooks, func(a, b mailchimp.Webhook) int { return strings.Compare(a.ID, b.ID) })
	return h
}

func (f *whFake) urls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for _, h := range f.hooks {
		out = append(out, h.URL)
	}
	return out
}

func whProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": "x"})
}

// whReceiver stands for chimport serve --webhook-listen: it answers 200
// to the GET with which Mailchimp checks a webhook's URL, and counts them.
func whReceiver(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var mu sync.Mutex
	checks := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, webhook.PathPrefix) {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		checks++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, &checks
}

// whSetup is a Mailchimp (the fake, or the simulator), a receiver, and a
// config of three connections on one list: newsletter and shop with
// webhooks on, crm with webhooks: false.
type whSetup struct {
	publicURL string
	cfg       string
	vars      map[string]string
}

func newWHSetup(t *testing.T, mailchimpURL, publicURL string) whSetup {
	t.Helper()
	cfg := fmt.Sprintf(`webhooks:
  secret: ${CHIMPORT_WEBHOOK_SECRET}
  public_url: %s
defaults:
  mailchimp: {api_key: "${MAILCHIMP_API_KEY}", base_url: %q, list_id: %s}
  target: {url: "http://127.0.0.1:1/records"}
connections:
  - name: newsletter
  - name: shop
  - name: crm
    webhooks: false
`, publicURL, mailchimpURL+"/3.0", whList)
	return whSetup{
		publicURL: publicURL,
		cfg:       writeFile(t, "chimport.yaml", cfg),
		vars:      map[string]string{"MAILCHIMP_API_KEY": whKey, "CHIMPORT_WEBHOOK_SECRET": whSecret},
	}
}

func (s whSetup) run(t *testing.T, args ...string) result {
	t.Helper()
	all := append([]string{"--log-level", "debug", "--log-format", "json", "webhooks"}, args...)
	all = append(all, "--config", s.cfg)
	r := runCLI(t, context.Background(), s.vars, all...)
	whNoSecrets(t, r, args)
	return r
}

// whNoSecrets fails the test if the output holds the secret, any
// connection's token (or a part of one), or the secret in someone else's
// webhook URL.
func whNoSecrets(t *testing.T, r result, args []string) {
	t.Helper()
	secrets := []string{whSecret, whOldToken, whOldToken[:12], "their-own-secret", "zx91-private", "884422"}
	for _, name := range []string{"newsletter", "shop", "crm", "other"} {
		tok := webhook.Token(whSecret, name)
		secrets = append(secrets, tok, tok[:12], tok[len(tok)-12:])
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("webhooks %s: the output holds the secret %q:\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), s, r.stdout, r.stderr)
		}
	}
}

func whURL(base, connection string) string { return webhook.URL(base, whSecret, connection) }

func whMasked(base, connection string) string {
	return strings.TrimRight(base, "/") + webhook.PathPrefix + connection + "/****"
}

var whOurSpec = mailchimp.WebhookSpec{
	Events:  mailchimp.WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true},
	Sources: mailchimp.WebhookSources{User: true, Admin: true, API: true},
}

func TestWebhooksInstallListRemove(t *testing.T) {
	fake := newWHFake()
	fake.add(mailchimp.WebhookSpec{URL: whForeign, Events: mailchimp.WebhookEvents{Campaign: true}, Sources: mailchimp.WebhookSources{Admin: true}})
	mc := httptest.NewServer(fake)
	t.Cleanup(mc.Close)
	recv, checks := whReceiver(t)
	s := newWHSetup(t, mc.URL, recv.URL)

	r := s.run(t, "install")
	if r.code != exitOK {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	recvHost := strings.TrimPrefix(recv.URL, "http://")
	table := func(s string) string { return strings.ReplaceAll(s, "RECV", recvHost) }
	want := table(`CONNECTION  LIST        ACTION   WEBHOOK       URL
newsletter  a1b2c3d4e5  created  newsletter-1  http://RECV/webhooks/mailchimp/newsletter/****
shop        a1b2c3d4e5  created  shop-1        http://RECV/webhooks/mailchimp/shop/****
crm         a1b2c3d4e5  skipped  -             -

  crm: webhooks: false in the config

2 installed, 0 kept, 1 skipped, 0 failed.
`)
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("install output (-want +got):\n%s", diff)
	}
	if *checks != 2 {
		t.Errorf("Mailchimp checked %d URLs, want 2", *checks)
	}

	// Installing twice leaves one webhook per connection.
	r = s.run(t, "install", "--connection", "newsletter", "--connection", "shop")
	want = table(`CONNECTION  LIST        ACTION  WEBHOOK       URL
newsletter  a1b2c3d4e5  kept    newsletter-1  http://RECV/webhooks/mailchimp/newsletter/****
shop        a1b2c3d4e5  kept    shop-1        http://RECV/webhooks/mailchimp/shop/****

0 installed, 2 kept, 0 skipped, 0 failed.
`)
	if diff := cmp.Diff(want, r.stdout); r.code != exitOK || diff != "" {
		t.Errorf("second install: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}
	wantURLs := []string{whForeign, whURL(recv.URL, "newsletter"), whURL(recv.URL, "shop")}
	if diff := cmp.Diff(wantURLs, fake.urls()); diff != "" {
		t.Errorf("webhooks after installing twice (-want +got):\n%s", diff)
	}

	r = s.run(t, "list", "--connection", "newsletter")
	want = table(`CONNECTION  LIST        WEBHOOK       OURS       EVENTS                                         SOURCES         URL
newsletter  a1b2c3d4e5  0000000001    no         campaign                                       admin           https://hooks.example.net/****
newsletter  a1b2c3d4e5  newsletter-1  yes        subscribe,unsubscribe,profile,cleaned,upemail  user,admin,api  http://RECV/webhooks/mailchimp/newsletter/****
newsletter  a1b2c3d4e5  shop-1        no (shop)  subscribe,unsubscribe,profile,cleaned,upemail  user,admin,api  http://RECV/webhooks/mailchimp/shop/****

URLs are masked: chimport's tokens, and other webhooks' paths and queries, show as ****.
`)
	if diff := cmp.Diff(want, r.stdout); r.code != exitOK || diff != "" {
		t.Errorf("list: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}

	r = s.run(t, "remove")
	want = table(`CONNECTION  LIST        ACTION   WEBHOOK       URL
newsletter  a1b2c3d4e5  deleted  newsletter-1  http://RECV/webhooks/mailchimp/newsletter/****
shop        a1b2c3d4e5  deleted  shop-1        http://RECV/webhooks/mailchimp/shop/****
crm         a1b2c3d4e5  none     -             -

  crm: webhooks: false in the config; the receiver takes no events for it

2 with webhooks removed, 1 with none, 0 failed. 1 webhook not chimport's left alone.
`)
	if diff := cmp.Diff(want, r.stdout); r.code != exitOK || diff != "" {
		t.Errorf("remove: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}
	if diff := cmp.Diff([]string{whForeign}, fake.urls()); diff != "" {
		t.Errorf("webhooks after remove (-want +got):\n%s", diff)
	}
}

// chimport's webhook with an earlier secret's token is replaced, a second
// copy at the URL is deleted, and chimport's route under another base URL
// is left alone until remove --public-url names that base.
func TestWebhooksInstallReplacesOldTokensAndDuplicates(t *testing.T) {
	fake := newWHFake()
	mc := httptest.NewServer(fake)
	t.Cleanup(mc.Close)
	recv, _ := whReceiver(t)
	s := newWHSetup(t, mc.URL, recv.URL+"/")
	const oldBase = "https://old.example.com"
	fake.add(mailchimp.WebhookSpec{URL: oldBase + webhook.PathPrefix + "newsletter/" + whOldToken, Events: whOurSpec.Events, Sources: whOurSpec.Sources})
	fake.add(mailchimp.WebhookSpec{URL: recv.URL + webhook.PathPrefix + "newsletter/" + whOldToken, Events: whOurSpec.Events, Sources: whOurSpec.Sources})
	fake.add(mailchimp.WebhookSpec{URL: whURL(recv.URL, "shop"), Events: whOurSpec.Events, Sources: mailchimp.WebhookSources{User: true}})
	fake.add(mailchimp.WebhookSpec{URL: whURL(recv.URL, "shop"), Events: whOurSpec.Events, Sources: whOurSpec.Sources})

	r := s.run(t, "install", "--connection", "newsletter", "--connection", "shop")
	table := func(s string) string { return strings.ReplaceAll(s, "RECV", strings.TrimPrefix(recv.URL, "http://")) }
	want := table(`CONNECTION  LIST        ACTION   WEBHOOK       URL
newsletter  a1b2c3d4e5  created  newsletter-3  http://RECV/webhooks/mailchimp/newsletter/****
newsletter  a1b2c3d4e5  deleted  newsletter-2  http://RECV/webhooks/mailchimp/newsletter/****
shop        a1b2c3d4e5  kept     shop-1        http://RECV/webhooks/mailchimp/shop/****
shop        a1b2c3d4e5  deleted  shop-2        http://RECV/webhooks/mailchimp/shop/****

  newsletter: webhook newsletter-1 is at chimport's route for this connection under another base URL (https://old.example.com/webhooks/mailchimp/newsletter/****): left alone; if it is an earlier public_url of this deployment, chimport webhooks remove --public-url <that URL> removes it
  newsletter: webhook newsletter-2 was chimport's with another token (an earlier webhooks.secret): deleted once the new one was in place
  shop: webhook shop-1 has other events or sources than chimport registers (events subscribe,unsubscribe,profile,cleaned,upemail; sources user); remove and install again to reset them
  shop: webhook shop-2 was a second copy at the same URL: deleted

1 installed, 1 kept, 0 skipped, 0 failed.
`)
	if diff := cmp.Diff(want, r.stdout); r.code != exitOK || diff != "" {
		t.Errorf("install: exit %d (-want +got):\n%s%s", r.code, diff, r.stderr)
	}
	wantURLs := []string{oldBase + webhook.PathPrefix + "newsletter/" + whOldToken, whURL(recv.URL, "newsletter"), whURL(recv.URL, "shop")}
	if diff := cmp.Diff(wantURLs, fake.urls()); diff != "" {
		t.Errorf("webhooks after install (-want +got):\n%s", diff)
	}

	r = s.run(t, "remove", "--connection", "newsletter", "--public-url", oldBase, "--json")
	var got []hooksReport
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != exitOK || err != nil {
		t.Fatalf("remove --public-url --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	events := []string{"subscribe", "unsubscribe", "profile", "cleaned", "upemail"}
	wantReport := []hooksReport{{
		Connection: "newsletter", ListID: whList, WebhooksOn: true, Result: "removed",
		Webhooks: []hookView{
			{ID: "newsletter-1", URL: oldBase + "/webhooks/mailchimp/newsletter/****", Kind: "old_token", Ours: true, Events: events, Sources: []string{"user", "admin", "api"}, Action: "deleted"},
			// The current one, under another base than --public-url: left.
			{ID: "newsletter-3", URL: whMasked(recv.URL, "newsletter"), Kind: "other_base", Events: events, Sources: []string{"user", "admin", "api"}, Action: "left"},
			// Under another base, shop's is no one's chimport knows: shown
			// by scheme and host only.
			{ID: "shop-1", URL: recv.URL + "/****", Kind: "other", Events: events, Sources: []string{"user"}, Action: "left"},
		},
	}}
	if diff := cmp.Diff(wantReport, got, cmpopts.IgnoreUnexported(hookView{})); diff != "" {
		t.Errorf("remove --public-url --json (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantURLs[1:], fake.urls()); diff != "" {
		t.Errorf("webhooks after remove --public-url (-want +got):\n%s", diff)
	}
}

// Mailchimp refuses a webhook whose URL does not answer its GET: install
// fails (exit 1) saying so, what to check, and never the token, though
// Mailchimp's answer quotes the URL.
func TestWebhooksInstallWhenMailchimpCannotReachTheURL(t *testing.T) {
	fake := newWHFake()
	mc := httptest.NewServer(fake)
	t.Cleanup(mc.Close)
	down := httptest.NewServer(http.NotFoundHandler()) // not chimport serve
	t.Cleanup(down.Close)
	s := newWHSetup(t, mc.URL, down.URL)

	r := s.run(t, "install", "--connection", "newsletter")
	if r.code != exitFailed {
		t.Fatalf("install: exit %d, want %d\n%s%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"newsletter  a1b2c3d4e5  failed  -        -",
		`FAIL  newsletter: mailchimp connection "newsletter": POST /lists/a1b2c3d4e5/webhooks: 400 Invalid Resource: ` +
			"The resource submitted could not be validated. We couldn't verify the URL " + whMasked(down.URL, "newsletter") + " is working.",
		"most likely it could not reach the URL",
		"check webhooks.public_url",
		"`chimport serve --webhook-listen`",
		"0 installed, 0 kept, 0 skipped, 1 failed.",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("install output lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := len(fake.urls()); n != 0 {
		t.Errorf("%d webhooks registered, want none", n)
	}
}

func TestWebhooksUsageAndSetupErrors(t *testing.T) {
	fake := newWHFake()
	mc := httptest.NewServer(fake)
	t.Cleanup(mc.Close)
	s := newWHSetup(t, mc.URL, "https://chimport.example.com")
	unconfigured := writeFile(t, "chimport.yaml", fmt.Sprintf(`connections:
  - name: newsletter
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", base_url: %q, list_id: %s}
    target: {url: "http://127.0.0.1:1/records"}
`, mc.URL+"/3.0", whList))

	tests := []struct {
		name  string
		args  []string
		code  int
		want  []string
		usage bool // the usage hint follows the error
	}{
		{"no webhooks block", []string{"webhooks", "install", "--config", unconfigured}, exitUsage,
			[]string{"webhooks are not configured: set webhooks.secret", "webhooks.public_url"}, false},
		{"list without a webhooks block", []string{"webhooks", "list", "--config", unconfigured}, exitUsage,
			[]string{"webhooks.secret"}, false},
		{"no subcommand", []string{"webhooks", "--config", s.cfg}, exitUsage, []string{"install, list or remove"}, true},
		{"unknown subcommand", []string{"webhooks", "purge", "--config", s.cfg}, exitUsage, []string{`unknown webhooks command "purge"`}, true},
		{"unknown connection", []string{"webhooks", "remove", "--connection", "nope", "--config", s.cfg}, exitUsage, []string{`unknown connection "nope"`}, true},
		{"bad --public-url", []string{"webhooks", "remove", "--public-url", "https://x.example.com/?k=v", "--config", s.cfg}, exitUsage,
			[]string{"--public-url must be an absolute http or https URL without query"}, true},
		{"--public-url is remove's", []string{"webhooks", "install", "--public-url", "https://x.example.com", "--config", s.cfg}, exitUsage,
			[]string{"unknown flag: --public-url"}, true},
		{"a stray argument", []string{"webhooks", "list", "newsletter", "--config", s.cfg}, exitUsage, []string{"takes no arguments"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), s.vars, tt.args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q: %s", w, r.stderr)
				}
			}
			if got := strings.Contains(r.stderr, "Run 'chimport --help' for usage."); got != tt.usage {
				t.Errorf("usage hint shown: %v, want %v: %s", got, tt.usage, r.stderr)
			}
			whNoSecrets(t, r, tt.args)
		})
	}
	if fake.posts != 0 {
		t.Errorf("%d webhooks created by commands that should have stopped first", fake.posts)
	}
}

// A rejected API key fails each connection with the key's advice; list
// --json says so per connection.
func TestWebhooksListFailsPerConnection(t *testing.T) {
	fake := newWHFake()
	mc := httptest.NewServer(fake)
	t.Cleanup(mc.Close)
	s := newWHSetup(t, mc.URL, "https://chimport.example.com")
	s.vars["MAILCHIMP_API_KEY"] = "ffffffffffffffffffffffffffffffff-us6"
	r := s.run(t, "list", "--connection", "shop", "--json")
	if r.code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	var got []hooksReport
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Result != "failed" || !strings.Contains(got[0].Error, "mailchimp.api_key") || got[0].Webhooks == nil {
		t.Errorf("list --json = %+v, want shop failed with the key's advice and an empty webhooks array", got)
	}
	if strings.Contains(r.stdout+r.stderr, "ffffffffffffffff") {
		t.Errorf("the API key leaked:\n%s%s", r.stdout, r.stderr)
	}
}
