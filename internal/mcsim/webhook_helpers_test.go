package mcsim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook URL for the simulator to call: it answers
// Mailchimp's GET check and records every POST.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	posts     []received
	gets      int
	getStatus int              // the GET check's answer; 0 means 200
	answer    func(n int) int  // the status of the n-th POST (from 0); nil means 200
	hold      chan struct{}    // when set, POSTs wait until it is closed (or their client hangs up)
	arrived   chan struct{}    // one token per POST that reached the handler
	release   func()           // closes hold, once
	onPost    func(url.Values) // runs for each POST, before it is answered
}

// received is one POST as the receiver saw it.
type received struct {
	form        url.Values
	contentType string
	at          time.Time
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{t: t, arrived: make(chan struct{}, 1000)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	// Registered after the server's Close, so it runs first: a held POST
	// must be let go before the server waits for its handlers.
	t.Cleanup(func() { rc.letGo() })
	return rc
}

// holdPosts makes every POST wait until letGo.
func (rc *receiver) holdPosts() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	hold := make(chan struct{})
	var once sync.Once
	rc.hold, rc.release = hold, func() { once.Do(func() { close(hold) }) }
}

func (rc *receiver) letGo() {
	rc.mu.Lock()
	release := rc.release
	rc.mu.Unlock()
	if release != nil {
		release()
	}
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	if r.Method == http.MethodGet {
		rc.gets++
		status := rc.getStatus
		rc.mu.Unlock()
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		return
	}
	hold, answer, n := rc.hold, rc.answer, len(rc.posts)
	rc.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		rc.t.Errorf("webhook POST: %v", err)
	}
	select {
	case rc.arrived <- struct{}{}:
	default: // nobody counts this many
	}
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	status := http.StatusOK
	if answer != nil {
		status = answer(n)
	}
	rc.mu.Lock()
	if rc.onPost != nil {
		rc.onPost(r.PostForm)
	}
	rc.posts = append(rc.posts, received{form: r.PostForm, contentType: r.Header.Get("Content-Type"), at: time.Now()})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// url is the receiver's webhook URL, with a secret in it as chimport's are.
func (rc *receiver) url() string { return rc.srv.URL + "/webhooks/mailchimp/conn/s3cr3t" }

// take returns the POSTs received so far and forgets them.
func (rc *receiver) take() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.posts
	rc.posts = nil
	return out
}

// forms returns the payloads of the POSTs received so far and forgets them.
func (rc *receiver) forms() []url.Values {
	var out []url.Values
	for _, p := range rc.take() {
		out = append(out, p.form)
	}
	return out
}

func (rc *receiver) getCount() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.gets
}

// waitArrived waits until n POSTs reached the handler.
func (rc *receiver) waitArrived(n int) {
	rc.t.Helper()
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case <-rc.arrived:
		case <-deadline:
			rc.t.Fatalf("fewer than %d webhook POSTs arrived", n)
		}
	}
}

// newHookSim is a simulator behind a server, with webhook sending stopped
// when the test ends.
func newHookSim(t *testing.T, opts Options) *simServer {
	t.Helper()
	s := newSimServer(t, opts)
	t.Cleanup(func() { _ = s.sim.Close() })
	return s
}

// do sends a request with the simulator's key and a JSON body.
func (s *simServer) do(method, path, body string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.SetBasicAuth("anystring", s.sim.APIKey())
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// allEvents is the events object chimport's install asks for.
const allEvents = `{"subscribe":true,"unsubscribe":true,"profile":true,"cleaned":true,"upemail":true,"campaign":false}`

// addHook registers a webhook for every member event from every source
// over HTTP and fails unless it is created.
func (s *simServer) addHook(listID, hookURL string) Webhook {
	s.t.Helper()
	return s.addHookWith(listID, hookURL, allEvents, `{"user":true,"admin":true,"api":true}`)
}

func (s *simServer) addHookWith(listID, hookURL, events, sources string) Webhook {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"url": hookURL, "events": json.RawMessage(events), "sources": json.RawMessage(sources)})
	r := s.do(http.MethodPost, "/3.0/lists/"+listID+"/webhooks", string(body))
	if r.status != http.StatusOK {
		s.t.Fatalf("creating a webhook: status %d: %s", r.status, r.body)
	}
	var w Webhook
	decodeJSON(s.t, r.body, &w)
	return w
}

// flush waits for every pending delivery, for at most 10 s.
func (s *simServer) flush() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.sim.FlushWebhooks(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// checkBalance checks that every event owed is accounted for.
func checkBalance(t *testing.T, st WebhookStats) {
	t.Helper()
	if in, out := st.Events+st.Duplicated-st.Dropped, st.Sent+st.Failed+st.Discarded+st.Pending; in != out {
		t.Errorf("stats do not add up: events %d + duplicated %d - dropped %d = %d, but sent %d + failed %d + discarded %d + pending %d = %d",
			st.Events, st.Duplicated, st.Dropped, in, st.Sent, st.Failed, st.Discarded, st.Pending, out)
	}
}

// waitFor waits until cond holds, for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		<-tick.C
	}
}

// waitGoroutinesGone waits until no goroutine's stack mentions any of
// frames, for at most 5 s.
func waitGoroutinesGone(t *testing.T, frames ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 1<<20)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, f := range frames {
				if strings.Contains(g, f) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines still running:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		<-tick.C
	}
}

// waitSendersEnded waits, for at most 5 s, until no sender goroutine runs.
func waitSendersEnded(t *testing.T, sim *Mailchimp) {
	t.Helper()
	done := make(chan struct{})
	go func() { sim.hooks.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("webhook senders still running")
	}
}
