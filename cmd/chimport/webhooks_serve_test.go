package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/webhook"
)

// The end-to-end tests of issue 12: real `chimport serve --webhook-listen`
// processes fed by the simulator's webhooks, registered with real
// `chimport webhooks` processes. They wait on conditions with deadlines:
// what they test is real processes answering real calls.

const (
	liveList   = "a1b2c3d4e5"
	liveConn   = "newsletter"
	liveSecret = "live-webhook-secret-4c1e9b7a2d" // webhooks.secret, from ${CHIMPORT_WEBHOOK_SECRET}
)

// liveSetup is a simulator and a target, a config whose one connection
// runs every hour and takes webhooks, and the environment the processes
// read it with.
type liveSetup struct {
	f   *fixture
	cfg string
	env []string
}

// newLiveSetup makes the setup and, with firstSync, syncs the audience
// once with a `chimport run` process: serve, started after it, plans its
// next run an hour later, so whatever reaches the target while a test
// watches came through a webhook (and a delete for good leaves the
// target, since the roster holds the member).
func newLiveSetup(t *testing.T, members int, firstSync bool) *liveSetup {
	t.Helper()
	f := newFixture(t, members)
	t.Cleanup(func() { f.sim.Close() }) // before the servers close: no delivery in flight
	// public_url is where Mailchimp reaches serve --webhook-listen; serve
	// itself never reads it, and its port is known only once serve
	// listens, so the webhooks command gets it in its environment.
	cfg := writeFile(t, "chimport.yaml", fmt.Sprintf(`state: sqlite://%s
webhooks:
  secret: ${CHIMPORT_WEBHOOK_SECRET}
  public_url: ${WEBHOOK_PUBLIC_URL}
connections:
  - name: %s
    every: 1h
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: %s, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
`, filepath.Join(t.TempDir(), "state.db"), liveConn, liveList, f.baseURL, f.targetURL))
	s := &liveSetup{f: f, cfg: cfg, env: append(os.Environ(),
		"MAILCHIMP_API_KEY="+f.sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_WEBHOOK_SECRET="+liveSecret,
		"WEBHOOK_PUBLIC_URL=http://public-url.invalid", "CHIMPORT_TEST_RUN_MAIN=1",
		// A binary built with -race sleeps 1 s on exit, in case another
		// goroutine is about to report a race.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))}
	if firstSync {
		if code, out := runProcess(t, s.env, cfg); code != exitOK {
			t.Fatalf("first sync: exit %d\n%.4000s", code, out)
		}
		if rep := mirrorReport(t, f); !rep.OK() {
			t.Fatalf("after the first sync: %s", rep)
		}
	}
	return s
}

// token is the connection's webhook token: what must never be printed.
func (s *liveSetup) token() string { return webhook.Token(liveSecret, liveConn) }

// hookServe is a `chimport serve --webhook-listen` process.
type hookServe struct {
	cmd            *exec.Cmd
	admin, hooks   string // host:port of --listen and --webhook-listen
	stdout, stderr *syncBuffer
	exited         chan error
}

// startHookServe runs `chimport serve` with both listeners on free ports
// (port 0, the addresses read from what it prints), logging at debug level
// so that the secret scan sees every line it can write.
func startHookServe(t *testing.T, s *liveSetup) *hookServe {
	t.Helper()
	p := &hookServe{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(os.Args[0], "serve", "--config", s.cfg, "--listen", "127.0.0.1:0", "--webhook-listen", "127.0.0.1:0",
		"--worker-id", "live-a", "--lag-check", "500ms", "--log-format", "json", "--log-level", "debug")
	p.cmd.Env = s.env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	must(t, p.cmd.Start())
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
	})
	hooksRe := regexp.MustCompile(`webhooks for 1 connections on http://(127\.0\.0\.1:\d+)` + regexp.QuoteMeta(webhook.PathPrefix))
	adminRe := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/ \(status\)`)
	waitUntil(t, "serve to listen on both addresses", 30*time.Second, func() bool {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("serve exited before listening: %v\nstdout: %s\nstderr: %.4000s", err, p.stdout, p.stderr)
		default:
		}
		out := p.stdout.String()
		h, a := hooksRe.FindStringSubmatch(out), adminRe.FindStringSubmatch(out)
		if h == nil || a == nil {
			return false
		}
		p.hooks, p.admin = h[1], a[1]
		return true
	})
	return p
}

// publicURL is the base URL the webhooks command registers: serve's
// webhook listener, as an ingress would forward to it.
func (p *hookServe) publicURL() string { return "http://" + p.hooks }

// metrics is serve's /metrics.
func (p *hookServe) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(body)
}

// events sums chimport_webhook_events_total over the series whose labels
// include every one of want ("outcome", "delivered", ...).
func (p *hookServe) events(t *testing.T, want ...string) int {
	t.Helper()
	return sumSeries(p.metrics(t), "chimport_webhook_events_total", want...)
}

var seriesRe = regexp.MustCompile(`(?m)^(\w+)\{([^}]*)\} (\S+)$`)

// sumSeries sums the samples of a metric whose labels hold want, given as
// name, value pairs.
func sumSeries(body, name string, want ...string) int {
	total := 0
	for _, m := range seriesRe.FindAllStringSubmatch(body, -1) {
		if m[1] != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			ok = ok && strings.Contains(","+m[2]+",", fmt.Sprintf(",%s=%q,", want[i], want[i+1]))
		}
		if v, err := strconv.ParseFloat(m[3], 64); ok && err == nil {
			total += int(v)
		}
	}
	return total
}

// post sends a form-encoded event to serve's webhook listener, as
// Mailchimp (or a forger) does, and returns the status.
func (p *hookServe) post(t *testing.T, path string, form url.Values) int {
	t.Helper()
	resp, err := http.PostForm("http://"+p.hooks+path, form)
	if err != nil {
		t.Fatalf("POST %s: %v", webhook.Masked(path), err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stop ends serve with SIGTERM, as a deployment does, so that every line
// it would write is written.
func (p *hookServe) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM, want 0\nstderr: %.4000s", err, p.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of SIGTERM")
	}
}

// webhooksCmd runs `chimport webhooks ACTION` as a real process, with
// public_url at serve's webhook listener.
func (s *liveSetup) webhooksCmd(t *testing.T, p *hookServe, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"webhooks"}, append(args, "--config", s.cfg, "--log-format", "json")...)...)
	cmd.Env = append(slices.Clone(s.env), "WEBHOOK_PUBLIC_URL="+p.publicURL()) // the later one wins
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("webhooks %s did not finish within 60s", strings.Join(args, " "))
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("webhooks %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// noSecrets fails the test if any of outputs holds the webhooks secret, the
// connection's token, the API key or the target's credential.
func (s *liveSetup) noSecrets(t *testing.T, outputs map[string]string) {
	t.Helper()
	secrets := map[string]string{
		"the webhooks secret": liveSecret, "the webhook token": s.token(),
		"the API key": s.f.sim.APIKey(), "the target's Authorization": targetAuth,
	}
	for what, out := range outputs {
		if out == "" {
			continue
		}
		for name, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Errorf("%s holds %s:\n%.3000s", what, name, out)
			}
		}
	}
}

// install runs `webhooks install` and checks it registered the
// connection's URL, printed with the token masked.
func (s *liveSetup) install(t *testing.T, p *hookServe, wantAction string) result {
	t.Helper()
	r := s.webhooksCmd(t, p, "install")
	masked := p.publicURL() + webhook.PathPrefix + liveConn + "/****"
	if r.code != exitOK || !regexp.MustCompile(`(?m)^`+liveConn+` +`+liveList+` +`+wantAction+` +\S+ +`+regexp.QuoteMeta(masked)+`$`).MatchString(r.stdout) {
		t.Fatalf("webhooks install: exit %d, want 0 and a %s row for %s\nstdout: %s\nstderr: %s", r.code, wantAction, masked, r.stdout, r.stderr)
	}
	return r
}

// TestWebhookLiveChangesReachTheTarget is issue 12's acceptance: serve
// runs the connection every hour, webhooks are installed with `chimport
// webhooks install`, and 19 changes (edits, sign-ups, unsubscribes,
// address changes, deletes for good), a fifth of their events sent twice
// and all of them held back at random so that they arrive out of order,
// are all in the target within 5 s, which is then an exact mirror of the
// audience. No polling run happens meanwhile: only the one-member GETs the
// events asked for, and the audience checks before deletes. Nothing either
// process writes holds a secret.
func TestWebhookLiveChangesReachTheTarget(t *testing.T) {
	s := newLiveSetup(t, 300, true)
	f := s.f
	p := startHookServe(t, s)
	installed := s.install(t, p, "created")
	hooks := f.sim.Webhooks(liveList)
	if want := webhook.URL(p.publicURL(), liveSecret, liveConn); len(hooks) != 1 || hooks[0].URL != want {
		t.Fatalf("the simulator holds %d webhooks (%v), want one at the connection's URL", len(hooks), hooks)
	}

	// A fifth of the events twice, and every delivery held back up to
	// 200 ms at random, so that events arrive out of order too.
	f.sim.SetWebhookFaults(mcsim.WebhookFaults{Duplicate: 0.2, Reorder: true})
	mcBefore, hooksBefore := f.sim.Stats(), f.sim.WebhookStats()
	var live []mcsim.Member
	for _, m := range f.sim.Members(liveList) {
		if m.Status == mcsim.StatusSubscribed {
			live = append(live, m)
		}
	}
	began := time.Now()
	for i, m := range live[:6] {
		must(t, f.sim.Change(liveList, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = fmt.Sprintf("Live edit %d", i) }))
	}
	for i := range 4 {
		_, err := f.sim.Add(liveList, mcsim.Member{EmailAddress: fmt.Sprintf("live.signup.%d@example.com", i), Status: mcsim.StatusSubscribed,
			MergeFields: map[string]any{"FNAME": "Live", "LNAME": fmt.Sprintf("Signup %d", i)}})
		must(t, err)
	}
	for _, m := range live[6:9] {
		must(t, f.sim.Unsubscribe(liveList, m.ID))
	}
	for i, m := range live[9:12] {
		_, err := f.sim.ChangeAddress(liveList, m.ID, fmt.Sprintf("live.moved.%d@example.org", i))
		must(t, err)
	}
	for _, m := range live[12:15] {
		must(t, f.sim.Delete(liveList, m.ID))
	}
	const changes = 6 + 4 + 3 + 3 + 3

	var rep mcsim.MirrorReport
	waitUntil(t, "the 19 changes to reach the target", 30*time.Second, func() bool {
		rep = mirrorReport(t, f)
		return rep.OK()
	})
	took := time.Since(began)
	t.Logf("the %d changes were all in the target %s after the first was made", changes, took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("the %d changes took %s to reach the target, want within 5 s", changes, took)
	}

	// Every delivery the simulator owed, duplicates included, was answered
	// and handled: the target is still an exact mirror after the last.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	must(t, f.sim.FlushWebhooks(ctx))
	hs := f.sim.WebhookStats()
	sent := hs.Sent - hooksBefore.Sent
	waitUntil(t, "serve to handle every delivery", 20*time.Second, func() bool {
		body := p.metrics(t)
		return sumSeries(body, "chimport_webhook_events_total") == sent &&
			sumSeries(body, "chimport_webhook_queue_members", "connection", liveConn) == 0
	})
	events, dups := hs.Events-hooksBefore.Events, hs.Duplicated-hooksBefore.Duplicated
	if events != changes || dups == 0 || sent != events+dups || hs.Failed != 0 || hs.Dropped != 0 {
		t.Errorf("webhook deliveries: %d events, %d duplicated, %d sent, %d failed, %d dropped; want %d events, some duplicated, each sent",
			events, dups, sent, hs.Failed, hs.Dropped, changes)
	}
	if rep = mirrorReport(t, f); !rep.OK() {
		t.Fatalf("after every delivery the target is no mirror: %s", rep)
	}
	if rep.Tombstones != 6 {
		t.Errorf("the target holds %d tombstones, want 6 (3 deleted for good, 3 old addresses)", rep.Tombstones)
	}

	// No polling run: every Mailchimp request was a one-member GET, or the
	// check that the audience still answers (a count=1 request for
	// total_items: one member at most in its page) that a refresh makes before it
	// deletes members that answered 404.
	body := p.metrics(t)
	mc := f.sim.Stats()
	requests, fetches, notFound := mc.Requests-mcBefore.Requests, mc.MemberRequests-mcBefore.MemberRequests, mc.MemberNotFound-mcBefore.MemberNotFound
	checks := mc.PageRequests - mcBefore.PageRequests
	t.Logf("%d events (%d sent twice, %d deliveries): %d Mailchimp requests, %d one-member GETs (%d answered 404) and %d audience checks; outcomes:\n%s",
		events, dups, sent, requests, fetches, notFound, checks, grepLines(body, "chimport_webhook_events_total{"))
	if served := mc.MembersServed - mcBefore.MembersServed; served > checks || fetches+checks != requests || strings.Contains(body, "chimport_runs_total{") {
		t.Errorf("serve ran a polling run: %d members served in pages, %d requests neither a one-member GET nor an audience check\n%s",
			served, requests-fetches-checks, grepLines(body, "chimport_runs_total"))
	}
	if checks > notFound {
		t.Errorf("%d audience checks for %d members that answered 404, want at most one each", checks, notFound)
	}
	if got := sumSeries(body, "chimport_webhook_fetches_total", "connection", liveConn); got != requests {
		t.Errorf("chimport_webhook_fetches_total = %d, the simulator served %d requests", got, requests)
	}
	for _, bad := range []string{"bad_token", "malformed", "overflow", "rejected", "ignored"} {
		if n := sumSeries(body, "chimport_webhook_events_total", "outcome", bad); n != 0 {
			t.Errorf("%d events had outcome %s", n, bad)
		}
	}
	// The members deleted for good and the old addresses left as "gone"
	// the first time (a duplicate after that finds neither Mailchimp nor
	// the roster holding them: "absent").
	if n := sumSeries(body, "chimport_webhook_events_total", "outcome", "gone"); n < 6 {
		t.Errorf("%d events had outcome gone, want at least 6", n)
	}

	p.stop(t)
	s.noSecrets(t, map[string]string{
		"serve's stdout": p.stdout.String(), "serve's stderr": p.stderr.String(),
		"install's stdout": installed.stdout, "install's stderr": installed.stderr,
	})
}

// TestWebhookForgeriesCauseOnlyFetchesOfTheTruth: the receiver is open to
// anyone who can reach it. A wrong token gets 404 and causes no Mailchimp
// request; the right token with made-up values delivers only what
// Mailchimp holds (a fake name, a fake delete, a fake address change); an
// event about a member who does not exist sends nothing to the target.
func TestWebhookForgeriesCauseOnlyFetchesOfTheTruth(t *testing.T) {
	s := newLiveSetup(t, 100, true)
	f := s.f
	p := startHookServe(t, s)
	route := webhook.PathPrefix + liveConn + "/" + s.token()
	members := f.sim.Members(liveList)
	profile := func(m mcsim.Member, fname string) url.Values {
		return url.Values{"type": {"profile"}, "fired_at": {"2009-03-26 21:35:57"}, "data[list_id]": {liveList},
			"data[id]": {m.UniqueEmailID}, "data[email]": {m.EmailAddress}, "data[email_type]": {"html"},
			"data[merges][EMAIL]": {m.EmailAddress}, "data[merges][FNAME]": {fname}, "data[merges][LNAME]": {"Forged"}}
	}
	record := func(id string) map[string]any { return f.target.Records()[id] }

	// Wrong tokens, an unknown connection with its own right token, a
	// token cut short: 404, and Mailchimp hears nothing.
	mc0, tg0 := f.sim.Stats(), f.target.Stats()
	wrong := []string{
		webhook.PathPrefix + liveConn + "/" + strings.Repeat("0", 64),
		webhook.PathPrefix + liveConn + "/" + webhook.Token(liveSecret, "another"),
		webhook.PathPrefix + liveConn + "/" + webhook.Token("a-different-secret-of-16+", liveConn),
		webhook.PathPrefix + "another/" + webhook.Token(liveSecret, "another"),
		route[:len(route)-1],
		route + "/extra",
	}
	for _, path := range wrong {
		if code := p.post(t, path, profile(members[0], "Forged")); code != http.StatusNotFound {
			t.Errorf("POST with a wrong token (%s): %d, want 404", webhook.Masked(path), code)
		}
	}
	if resp, err := http.Get("http://" + p.hooks + wrong[0]); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET with a wrong token: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	if got := p.events(t, "outcome", "bad_token"); got != len(wrong)+1 {
		t.Errorf("%d events counted bad_token, want %d", got, len(wrong)+1)
	}
	if mc, tg := f.sim.Stats(), f.target.Stats(); mc.Requests != mc0.Requests || tg.Requests != tg0.Requests {
		t.Errorf("wrong tokens caused %d Mailchimp and %d target requests, want none", mc.Requests-mc0.Requests, tg.Requests-tg0.Requests)
	}

	// The right token and a made-up name: the target gets the name
	// Mailchimp holds. The member was edited in Mailchimp without an event
	// (no webhook is registered), so the fetch shows in the target.
	edited := members[1]
	must(t, f.sim.Change(liveList, edited.ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "Real after the edit" }))
	if code := p.post(t, route, profile(edited, "Forged")); code != http.StatusOK {
		t.Fatalf("POST of a forged profile event with the right token: %d, want 200", code)
	}
	waitUntil(t, "the member's real name in the target", 10*time.Second, func() bool {
		return record(edited.ID)["firstname"] == "Real after the edit"
	})
	if mc := f.sim.Stats(); mc.Requests-mc0.Requests != 1 || mc.MemberRequests-mc0.MemberRequests != 1 {
		t.Errorf("the wrong tokens and one forged event made %d Mailchimp requests (%d one-member GETs), want 1 GET of the member",
			mc.Requests-mc0.Requests, mc.MemberRequests-mc0.MemberRequests)
	}

	// A fake delete for good of a live member, and a fake address change
	// away from another one's address to one nobody has: both are
	// fetched, found live, and stay as Mailchimp has them.
	deleted, moved := members[2], members[3]
	before := p.events(t, "outcome", "delivered")
	fakeDelete := profile(deleted, "Forged")
	fakeDelete.Set("type", "unsubscribe")
	fakeDelete.Set("data[action]", "delete")
	fakeDelete.Set("data[reason]", "manual")
	fakeMove := url.Values{"type": {"upemail"}, "fired_at": {"2009-03-26 22:15:09"}, "data[list_id]": {liveList},
		"data[new_id]": {"51aa6d2fc8"}, "data[new_email]": {"forged.new.address@example.com"}, "data[old_email]": {moved.EmailAddress}}
	for _, form := range []url.Values{fakeDelete, fakeMove} {
		if code := p.post(t, route, form); code != http.StatusOK {
			t.Fatalf("POST of a forged %s event: %d, want 200", form.Get("type"), code)
		}
	}
	waitUntil(t, "the two forged events to be refreshed", 10*time.Second, func() bool {
		return p.events(t, "outcome", "delivered") >= before+2
	})

	// An event about nobody: one fetch that answers 404, nothing sent.
	mc1, tg1 := f.sim.Stats(), f.target.Stats()
	nobody := url.Values{"type": {"subscribe"}, "fired_at": {"2009-03-26 22:20:00"}, "data[list_id]": {liveList},
		"data[email]": {"nobody.at.all@example.com"}, "data[merges][FNAME]": {"Forged"}}
	if code := p.post(t, route, nobody); code != http.StatusOK {
		t.Fatalf("POST of an event about nobody: %d, want 200", code)
	}
	waitUntil(t, "the event about nobody to be refreshed", 10*time.Second, func() bool {
		return p.events(t, "type", "subscribe", "outcome", "absent") == 1
	})
	if tg := f.target.Stats(); tg.Requests != tg1.Requests {
		t.Errorf("an event about nobody made %d target requests, want none", tg.Requests-tg1.Requests)
	}
	// The GET answers 404; before a delete the refresh checks that the
	// audience still answers (a count=1 request), then finds
	// that the roster never held the member.
	if mc := f.sim.Stats(); mc.MemberRequests-mc1.MemberRequests != 1 || mc.MemberNotFound-mc1.MemberNotFound != 1 ||
		mc.Requests-mc1.Requests > 2 || mc.MembersServed-mc1.MembersServed > 1 {
		t.Errorf("an event about nobody made %d Mailchimp requests (%d one-member GETs, %d answered 404, %d members served), "+
			"want one GET answered 404 and at most one audience check",
			mc.Requests-mc1.Requests, mc.MemberRequests-mc1.MemberRequests, mc.MemberNotFound-mc1.MemberNotFound, mc.MembersServed-mc1.MembersServed)
	}

	// Whatever was forged, the target is Mailchimp's exact mirror, with
	// no tombstone and no made-up value anywhere.
	if rep := mirrorReport(t, f); !rep.OK() || rep.Tombstones != 0 {
		t.Errorf("after the forgeries: %s", rep)
	}
	for id, rec := range f.target.Records() {
		for k, v := range rec {
			if fmt.Sprint(v) == "Forged" || strings.HasPrefix(fmt.Sprint(v), "forged.") {
				t.Errorf("the target's record %s holds the forged %s %q", id, k, v)
			}
		}
	}
	if got := record(moved.ID); got["email"] != moved.EmailAddress {
		t.Errorf("after a forged address change the record of %s is %v, want it kept", moved.EmailAddress, got)
	}
	if got := record(deleted.ID); got["status"] != deleted.Status {
		t.Errorf("after a forged delete the record of %s is %v, want it kept", deleted.EmailAddress, got)
	}

	p.stop(t)
	s.noSecrets(t, map[string]string{"serve's stdout": p.stdout.String(), "serve's stderr": p.stderr.String()})
}

// TestWebhookInstallAndRemoveWithServe: real `chimport webhooks install`
// processes against the simulator, which checks the URL with a GET to a
// real serve, twice: one webhook, kept the second time; `list` marks it
// chimport's; `remove` leaves none, and a change then calls nobody. No
// output holds a secret. (TestWebhooksInstallTwiceRemoveAgainstTheSimulator
// runs the commands in process, with several connections and someone
// else's webhook.)
func TestWebhookInstallAndRemoveWithServe(t *testing.T) {
	s := newLiveSetup(t, 20, false)
	f := s.f
	p := startHookServe(t, s)
	outputs := map[string]string{}
	keep := func(what string, r result) {
		outputs[what+"'s stdout"], outputs[what+"'s stderr"] = r.stdout, r.stderr
	}
	want := webhook.URL(p.publicURL(), liveSecret, liveConn)
	one := func(when string) {
		t.Helper()
		hooks := f.sim.Webhooks(liveList)
		if len(hooks) != 1 || hooks[0].URL != want {
			t.Fatalf("%s the simulator holds %d webhooks, want one at the connection's URL", when, len(hooks))
		}
		ev := hooks[0].Events
		if !ev.Subscribe || !ev.Unsubscribe || !ev.Profile || !ev.Cleaned || !ev.Upemail || ev.Campaign {
			t.Errorf("%s the webhook's events are %+v, want every member event and no campaign", when, ev)
		}
		if src := hooks[0].Sources; !src.User || !src.Admin || !src.API {
			t.Errorf("%s the webhook's sources are %+v, want user, admin and api", when, src)
		}
	}

	keep("the first install", s.install(t, p, "created"))
	one("after one install")
	id := f.sim.Webhooks(liveList)[0].ID
	keep("the second install", s.install(t, p, "kept"))
	one("after two installs")
	if got := f.sim.Webhooks(liveList)[0].ID; got != id {
		t.Errorf("the second install replaced webhook %s with %s, want it kept", id, got)
	}

	r := s.webhooksCmd(t, p, "list")
	keep("list", r)
	if r.code != exitOK || !regexp.MustCompile(`(?m)^`+liveConn+` +`+liveList+` +`+id+` +yes `).MatchString(r.stdout) {
		t.Errorf("webhooks list: exit %d, want 0 and webhook %s marked yes\nstdout: %s\nstderr: %s", r.code, id, r.stdout, r.stderr)
	}

	r = s.webhooksCmd(t, p, "remove")
	keep("remove", r)
	if r.code != exitOK || !regexp.MustCompile(`(?m)^`+liveConn+` +`+liveList+` +deleted +`+id+` `).MatchString(r.stdout) {
		t.Errorf("webhooks remove: exit %d, want 0 and webhook %s deleted\nstdout: %s\nstderr: %s", r.code, id, r.stdout, r.stderr)
	}
	if hooks := f.sim.Webhooks(liveList); len(hooks) != 0 {
		t.Errorf("after remove the simulator holds %d webhooks, want none", len(hooks))
	}
	r = s.webhooksCmd(t, p, "remove")
	keep("the second remove", r)
	if r.code != exitOK || !regexp.MustCompile(`(?m)^`+liveConn+` +`+liveList+` +none `).MatchString(r.stdout) {
		t.Errorf("a second webhooks remove: exit %d, want 0 and none\nstdout: %s", r.code, r.stdout)
	}
	before := f.sim.WebhookStats().Events
	must(t, f.sim.Change(liveList, f.sim.Members(liveList)[0].ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = "After remove" }))
	if got := f.sim.WebhookStats().Events; got != before {
		t.Errorf("a change after remove owed %d webhook events, want none", got-before)
	}

	p.stop(t)
	outputs["serve's stdout"], outputs["serve's stderr"] = p.stdout.String(), p.stderr.String()
	s.noSecrets(t, outputs)
}
