package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
)

// The acceptance test of issue 12, against the Mailchimp simulator, which
// checks each URL with a GET as Mailchimp does: installing twice leaves one
// webhook per connection; remove leaves none of chimport's, and someone
// else's is still there.
func TestWebhooksInstallTwiceRemoveAgainstTheSimulator(t *testing.T) {
	sim := mcsim.New(mcsim.Options{APIKey: whKey, ListID: whList, Members: 10, Seed: 7})
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	recv, checks := whReceiver(t)
	s := newWHSetup(t, srv.URL, recv.URL)

	// Someone else's webhook, registered through the API like any other;
	// its URL holds its own secret.
	theirs := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(theirs.Close)
	foreign := theirs.URL + "/catch/884422/zx91-private?key=their-own-secret"
	mc, err := mailchimp.New(mailchimp.Config{APIKey: whKey, BaseURL: srv.URL + "/3.0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.CreateWebhook(context.Background(), whList, mailchimp.WebhookSpec{URL: foreign,
		Events: mailchimp.WebhookEvents{Campaign: true}, Sources: mailchimp.WebhookSources{Admin: true}}); err != nil {
		t.Fatal(err)
	}

	urls := func() []string {
		var out []string
		for _, h := range sim.Webhooks(whList) {
			out = append(out, h.URL)
		}
		slices.Sort(out)
		return out
	}
	want := []string{foreign, whURL(recv.URL, "newsletter"), whURL(recv.URL, "shop")}
	slices.Sort(want)
	for i := range 2 {
		if r := s.run(t, "install"); r.code != exitOK {
			t.Fatalf("install %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
		if diff := cmp.Diff(want, urls()); diff != "" {
			t.Fatalf("webhooks after install %d (-want +got):\n%s", i+1, diff)
		}
	}
	if *checks != 2 {
		t.Errorf("the simulator checked chimport's URLs %d times, want 2 (the second install creates nothing)", *checks)
	}
	ours := mcsim.WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true}
	for _, h := range sim.Webhooks(whList) {
		if h.URL != foreign && (h.Events != ours || h.Sources != (mcsim.WebhookSources{User: true, Admin: true, API: true})) {
			t.Errorf("webhook %s: events %+v, sources %+v; want the member events from every source", h.ID, h.Events, h.Sources)
		}
	}

	if r := s.run(t, "list"); r.code != exitOK {
		t.Fatalf("list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := s.run(t, "remove"); r.code != exitOK {
		t.Fatalf("remove: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if diff := cmp.Diff([]string{foreign}, urls()); diff != "" {
		t.Errorf("webhooks after remove (-want +got):\n%s", diff)
	}
}

// The simulator, like Mailchimp, registers one URL twice if asked; install
// leaves one. And a URL its GET check finds answering 404 is refused:
// install fails saying Mailchimp could not reach it.
func TestWebhooksAgainstTheSimulatorDuplicatesAndRefusals(t *testing.T) {
	sim := mcsim.New(mcsim.Options{APIKey: whKey, ListID: whList, Members: 10, Seed: 7})
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	recv, _ := whReceiver(t)
	s := newWHSetup(t, srv.URL, recv.URL)
	mc, err := mailchimp.New(mailchimp.Config{APIKey: whKey, BaseURL: srv.URL + "/3.0"})
	if err != nil {
		t.Fatal(err)
	}
	spec := whOurSpec
	spec.URL = whURL(recv.URL, "newsletter")
	for range 2 {
		if _, err := mc.CreateWebhook(context.Background(), whList, spec); err != nil {
			t.Fatal(err)
		}
	}
	if r := s.run(t, "install", "--connection", "newsletter"); r.code != exitOK || !strings.Contains(r.stdout, "was a second copy at the same URL: deleted") {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if hooks := sim.Webhooks(whList); len(hooks) != 1 || hooks[0].URL != spec.URL {
		t.Errorf("after install the simulator holds %d webhooks, want the one at the connection's URL", len(hooks))
	}

	down := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(down.Close)
	s = newWHSetup(t, srv.URL, down.URL)
	r := s.run(t, "install", "--connection", "shop")
	if r.code != exitFailed || !strings.Contains(r.stdout, "most likely it could not reach the URL") || !strings.Contains(r.stdout, "check webhooks.public_url") {
		t.Errorf("install at a URL answering 404: exit %d, want 1 saying Mailchimp could not reach it\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(sim.Webhooks(whList)); n != 1 {
		t.Errorf("the refused install left %d webhooks, want the 1 from before", n)
	}
}

// A "*" connection's audiences each get a webhook of their own, at their
// sub-connection's URL, and remove takes them all away again.
func TestWebhooksForEveryAudienceOfAnAccount(t *testing.T) {
	sim := mcsim.New(mcsim.Options{Members: 1, Seed: 7})
	t.Cleanup(func() { _ = sim.Close() })
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	sim.AddAccessToken(acmeToken)
	lists := []string{"w1", "w2", "w3"}
	for i, l := range lists {
		sim.AddAccountList(acmeToken, l, 3, int64(i))
	}
	recv, _ := whReceiver(t)
	cfg := writeFile(t, "chimport.yaml", fmt.Sprintf(`webhooks:
  secret: ${CHIMPORT_WEBHOOK_SECRET}
  public_url: %s
connections:
  - name: acme
    mailchimp: {access_token: "${ACME_TOKEN}", metadata_url: %q, list_id: "*"}
    target: {url: "http://127.0.0.1:1/records"}
`, recv.URL, srv.URL+mcsim.MetadataPath))
	vars := map[string]string{"ACME_TOKEN": acmeToken, "CHIMPORT_WEBHOOK_SECRET": whSecret}
	run := func(args ...string) {
		t.Helper()
		r := runCLI(t, context.Background(), vars, append([]string{"webhooks"}, append(args, "--config", cfg)...)...)
		if r.code != exitOK || strings.Contains(r.stdout+r.stderr, acmeToken) {
			t.Fatalf("webhooks %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		whNoSecrets(t, r, args)
	}
	run("install")
	for _, l := range lists {
		hooks := sim.Webhooks(l)
		if len(hooks) != 1 || hooks[0].URL != whURL(recv.URL, "acme."+l) {
			t.Errorf("list %s holds %v, want one webhook at acme.%s's URL", l, hooks, l)
		}
	}
	run("remove", "--connection", "acme.w2")
	if n := len(sim.Webhooks("w2")); n != 0 || len(sim.Webhooks("w1")) != 1 {
		t.Errorf("remove --connection acme.w2 left %d on w2 and %d on w1, want 0 and 1", n, len(sim.Webhooks("w1")))
	}
}
