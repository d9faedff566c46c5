package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

const secret = "0123456789abcdef-secret"

// fakeRefresher records what it is asked to refresh, answering with the
// outcomes it is given (delivered by default), or err.
type fakeRefresher struct {
	mu    sync.Mutex
	calls [][]string
	errs  []error // returned by the first calls, in order
	done  chan struct{}
	once  sync.Once
}

func (f *fakeRefresher) Refresh(_ context.Context, _ string, members []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, members)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	out := map[string]string{}
	for _, m := range members {
		out[m] = "delivered"
	}
	if f.done != nil {
		f.once.Do(func() { close(f.done) })
	}
	return out, nil
}

type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) hook(conn, typ, outcome string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, conn+"/"+typ+"/"+outcome)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func post(t *testing.T, h http.Handler, path, body string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

func TestReceiverRoutesAndRefuses(t *testing.T) {
	ev := &events{}
	q := NewQueue(QueueConfig{Refresher: &fakeRefresher{}, Clock: clock.NewFake(time.Now()), Hooks: Hooks{Event: ev.hook}})
	rc := NewReceiver(secret, map[string]string{"shop": "list1"}, q, Hooks{Event: ev.hook}, nil)
	good := PathPrefix + "shop/" + Token(secret, "shop")
	profile := form("type", "profile", "data[id]", "0123456789abcdef0123456789abcdef", "data[list_id]", "list1")

	if code := post(t, rc, PathPrefix+"shop/"+strings.Repeat("0", 64), profile); code != 404 {
		t.Errorf("a wrong token: %d, want 404", code)
	}
	if code := post(t, rc, PathPrefix+"other/"+Token(secret, "other"), profile); code != 404 {
		t.Errorf("an unknown connection: %d, want 404", code)
	}
	if len(q.Depths()) != 0 {
		t.Errorf("a refused event was queued: %v", q.Depths())
	}
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, good, nil))
	if rec.Code != 200 {
		t.Errorf("GET (Mailchimp's check): %d, want 200", rec.Code)
	}
	if code := post(t, rc, good, strings.Repeat("x", MaxBody+1)); code != 413 {
		t.Errorf("a body over 64 KiB: %d, want 413", code)
	}
	if code := post(t, rc, good, form("type", "campaign", "data[list_id]", "list1")); code != 200 {
		t.Errorf("a campaign event: %d, want 200", code)
	}
	if code := post(t, rc, good, form("type", "profile", "data[id]", "0123456789abcdef0123456789abcdef", "data[list_id]", "list2")); code != 200 {
		t.Errorf("another list's event: %d, want 200", code)
	}
	if code := post(t, rc, good, profile); code != 200 {
		t.Errorf("an event: %d, want 200", code)
	}
	if d := q.Depths()["shop"]; d != 1 {
		t.Errorf("queue depth %d, want the one member", d)
	}
	want := []string{"/unknown/bad_token", "/unknown/bad_token", "shop/unknown/malformed", "shop/campaign/ignored", "shop/profile/ignored"}
	if got := ev.list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestParse(t *testing.T) {
	old := "a@example.com"
	tests := []struct {
		name string
		form url.Values
		want []string
	}{
		{"subscribe by id", url.Values{"type": {"subscribe"}, "data[id]": {"0123456789ABCDEF0123456789abcdef"}}, []string{"0123456789abcdef0123456789abcdef"}},
		{"profile by address", url.Values{"type": {"profile"}, "data[email]": {"A@Example.com"}}, []string{md5hex(old)}},
		{"upemail: old and new", url.Values{"type": {"upemail"}, "data[old_email]": {old}, "data[new_email]": {"b@example.com"}}, []string{md5hex(old), md5hex("b@example.com")}},
		{"cleaned", url.Values{"type": {"cleaned"}, "data[email]": {old}}, []string{md5hex(old)}},
		{"campaign", url.Values{"type": {"campaign"}}, nil},
	}
	for _, tt := range tests {
		e, err := Parse(tt.form)
		if err != nil || strings.Join(e.Members, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: %v, %v; want %v", tt.name, e.Members, err, tt.want)
		}
	}
	for _, bad := range []url.Values{{}, {"type": {"nope"}}, {"type": {"profile"}}} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%v) accepted it", bad)
		}
	}
}

func md5hex(s string) string {
	ids := appendID(nil, "", s)
	return ids[0]
}

func TestQueueCoalescesRepeats(t *testing.T) {
	f := &fakeRefresher{done: make(chan struct{})}
	ev := &events{}
	q := NewQueue(QueueConfig{Refresher: f, Clock: clock.NewFake(time.Now()), Hooks: Hooks{Event: ev.hook}})
	a, b := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	q.Add("shop", "profile", []string{a})
	q.Add("shop", "profile", []string{a})
	q.Add("shop", "upemail", []string{b, a})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh within 10 s")
	}
	cancel()
	<-done
	if len(f.calls) != 1 || strings.Join(f.calls[0], ",") != a+","+b {
		t.Errorf("refreshes %v, want one of %s and %s", f.calls, a, b)
	}
	if got := ev.list(); len(got) != 3 {
		t.Errorf("event outcomes %v, want one per event", got)
	}
}

func TestQueueRetriesWhenBusyOrFailing(t *testing.T) {
	f := &fakeRefresher{errs: []error{ErrBusy, errors.New("mailchimp down")}, done: make(chan struct{})}
	q := NewQueue(QueueConfig{Refresher: f, Clock: clock.NewFake(time.Now())})
	q.Add("shop", "profile", []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the member was never refreshed")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) != 3 {
		t.Errorf("%d refreshes, want 3 (busy, failed, done)", len(f.calls))
	}
}

func TestQueueOverflowStartsARun(t *testing.T) {
	var overflows []string
	ev := &events{}
	q := NewQueue(QueueConfig{Refresher: &fakeRefresher{}, Capacity: 2, Hooks: Hooks{Event: ev.hook, Overflow: func(c string) { overflows = append(overflows, c) }}})
	for _, id := range []string{"a", "b", "c", "d"} {
		q.Add("shop", "profile", []string{id})
	}
	if len(overflows) != 2 || q.Depths()["shop"] != 2 {
		t.Errorf("overflows %v, depth %d; want a run asked for by each event the full queue of 2 could not take", overflows, q.Depths()["shop"])
	}
	if got := ev.list(); len(got) != 2 || got[0] != "shop/profile/overflow" || got[1] != got[0] {
		t.Errorf("events %v, want both events the queue could not take counted as overflow", got)
	}
}

func TestTokenURLAndMask(t *testing.T) {
	u := URL("https://chimport.example.com/", secret, "shop")
	tok := Token(secret, "shop")
	if u != "https://chimport.example.com/webhooks/mailchimp/shop/"+tok || len(tok) != 64 {
		t.Errorf("URL = %q", u)
	}
	if Token(secret, "other") == tok || Token(secret+"x", "shop") == tok {
		t.Error("tokens do not depend on the connection and the secret")
	}
	if m := Masked(u); strings.Contains(m, tok) || m != "https://chimport.example.com/webhooks/mailchimp/shop/****" {
		t.Errorf("Masked = %q", m)
	}
	if !Ours(u, "https://chimport.example.com", "shop") || Ours(u, "https://chimport.example.com", "sho") || Ours("https://x.example.com/hook", "https://chimport.example.com", "shop") {
		t.Error("Ours misjudges")
	}
}

// A batch that keeps failing is given up to polling, counted, and a run
// asked for, rather than fetched again and again.
func TestQueueGivesUpAfterRepeatedFailures(t *testing.T) {
	var errs []error
	for range maxFailures + 3 {
		errs = append(errs, errors.New("target down"))
	}
	f := &fakeRefresher{errs: errs}
	ev := &events{}
	overflow := make(chan string, 1)
	q := NewQueue(QueueConfig{Refresher: f, Clock: clock.NewFake(time.Now()),
		Hooks: Hooks{Event: ev.hook, Overflow: func(c string) { overflow <- c }}})
	q.Add("shop", "profile", []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go q.Run(ctx)
	select {
	case c := <-overflow:
		if c != "shop" {
			t.Errorf("run asked for %q", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the failing batch was never given up")
	}
	f.mu.Lock()
	calls := len(f.calls)
	f.mu.Unlock()
	if calls != maxFailures {
		t.Errorf("%d refreshes before giving up, want %d", calls, maxFailures)
	}
	if got := ev.list(); len(got) != 1 || got[0] != "shop/profile/failed" {
		t.Errorf("events %v, want the event counted as failed", got)
	}
}

// A backlog is refreshed back to back for a second at most; then the
// queue waits its coalescing window, during which the lease is free: a
// steady stream of events would otherwise keep another worker's run from
// ever claiming it.
func TestQueueBacklogLeavesTheLeaseFreeNowAndThen(t *testing.T) {
	clk := clock.NewFake(time.Now())
	f := &fakeRefresher{}
	refreshed := make(chan struct{}, 8)
	q := NewQueue(QueueConfig{Refresher: refresherFunc(func(ctx context.Context, c string, m []string) (map[string]string, error) {
		defer func() { refreshed <- struct{}{} }()
		clk.Advance(600 * time.Millisecond) // each refresh takes 0.6 s
		return f.Refresh(ctx, c, m)
	}), Clock: clk, MaxBatch: 1})
	for _, id := range []string{"a", "b", "c", "d"} {
		q.Add("shop", "profile", []string{id})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	for i := range 4 {
		select {
		case <-refreshed:
		case <-time.After(10 * time.Second):
			t.Fatalf("refresh %d never came", i+1)
		}
	}
	cancel()
	<-done
	// The first wait gathers the burst; after two refreshes (1.2 s) the
	// lease is left free once, and two more follow.
	want := []time.Duration{DefaultCoalesce, DefaultCoalesce}
	if got := clk.Slept(); !slices.Equal(got, want) {
		t.Errorf("the loop slept %v, want %v", got, want)
	}
}

type refresherFunc func(ctx context.Context, connection string, members []string) (map[string]string, error)

func (f refresherFunc) Refresh(ctx context.Context, connection string, members []string) (map[string]string, error) {
	return f(ctx, connection, members)
}
