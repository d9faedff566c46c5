package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
	_ "github.com/chimport/chimport/internal/state/sqlite"
	"github.com/chimport/chimport/internal/target"
	"github.com/chimport/chimport/internal/webhook"
)

// BenchmarkWebhookLatency measures the design's webhook yardstick: an
// event reaches the target in under 1 s at p99. 1,000 profile edits of
// existing members, some of them repeats of a member edited a moment
// before, are posted at 50 a second (a ticker paces the sender, in real
// time: about 20 s) to a webhook.Receiver on 127.0.0.1, form-encoded as
// Mailchimp posts them. Its Queue refreshes through a Refresher built
// like serve's: it claims the connection's lease on a SQLite store, calls
// engine.Refresh under the lease's token with a mailchimp.Client against
// the simulator over HTTP (100 ms a request) and a target.HTTP sink
// against the target simulator over HTTP, and gives the lease back.
//
// It prints the p50 and p99 of arrival-to-ack (Hooks.Delivered: from the
// first pending event naming a member to the target's answer for it) and
// the Mailchimp requests against the events. The goals (p99 under 1 s, no
// more requests than events) are reported, not asserted; what it does
// check is that every edited member's record in the target ends with the
// member's last value. Run it with `make bench`, or alone with
// `go test -run '^$' -bench WebhookLatency -benchtime 1x ./internal/webhook`
// (the loop runs once).
func BenchmarkWebhookLatency(b *testing.B) {
	const (
		events  = 1000
		perSec  = 50
		latency = 100 * time.Millisecond
		members = 2000
		// repeatShare of the events edit again one of the last few members
		// edited: some land in the queue's coalescing wait, some while
		// the member's refresh is under way.
		repeatShare = 0.3
		recent      = 10
		key         = "0123456789abcdef0123456789abcdef-us6"
		list        = "a1b2c3d4e5"
		conn        = "bench"
		secret      = "0123456789abcdef-bench-secret"
	)
	ctx := b.Context()
	sim := mcsim.New(mcsim.Options{APIKey: key, ListID: list, Members: members, Seed: 12, Latency: latency})
	simSrv := httptest.NewServer(sim)
	b.Cleanup(simSrv.Close)
	tgt := mcsim.NewTarget(mcsim.TargetOptions{Seed: 12})
	tgtSrv := httptest.NewServer(tgt)
	b.Cleanup(tgtSrv.Close)
	store, err := state.Open(ctx, "sqlite://"+filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	mp, err := mapping.New(mapping.DefaultFields())
	if err != nil {
		b.Fatal(err)
	}
	limiter := mailchimp.NewLimiter(mailchimp.DefaultPerKey)
	// newJob builds a job with fresh clients, as serve does for each
	// refresh.
	newJob := func() (engine.Job, error) {
		mc, err := mailchimp.New(mailchimp.Config{APIKey: key, BaseURL: simSrv.URL + "/3.0", Connection: conn, Limiter: limiter})
		if err != nil {
			return engine.Job{}, err
		}
		sink, err := target.NewHTTP(target.HTTPConfig{Connection: conn, URL: tgtSrv.URL + "/records",
			Deletes: target.DeletesTombstone, IDKey: "id", Tombstone: map[string]any{"status": "deleted"}})
		if err != nil {
			return engine.Job{}, err
		}
		return engine.Job{Connection: conn, ListID: list, Mapping: mp, BatchSize: 500, Mailchimp: mc, Sink: sink}, nil
	}
	eng := &engine.Engine{Store: store}

	// The connection's first sync: the target holds every member before
	// the edits.
	job, err := newJob()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := eng.Run(ctx, job); err != nil {
		b.Fatal(err)
	}
	if n := tgt.Len(); n != members {
		b.Fatalf("after the first sync the target holds %d records, want %d", n, members)
	}
	var subscribed []mcsim.Member
	for _, m := range sim.Members(list) {
		if m.Status == mcsim.StatusSubscribed {
			subscribed = append(subscribed, m)
		}
	}
	sim.ResetStats()

	refresher := &leasedRefresher{store: store, eng: eng, newJob: newJob}
	lat := &latencies{}
	var outcomesMu sync.Mutex
	outcomes := map[string]int{}
	hooks := webhook.Hooks{
		Event: func(_, _, outcome string) {
			outcomesMu.Lock()
			defer outcomesMu.Unlock()
			outcomes[outcome]++
		},
		Delivered: func(_ string, d time.Duration) { lat.add(d) },
	}
	q := webhook.NewQueue(webhook.QueueConfig{Refresher: refresher, Hooks: hooks})
	qctx, stopQueue := context.WithCancel(ctx)
	queueDone := make(chan struct{})
	go func() { q.Run(qctx); close(queueDone) }()
	defer func() { stopQueue(); <-queueDone }()
	recv := webhook.NewReceiver(secret, map[string]string{conn: list}, q, hooks, nil)
	recvSrv := httptest.NewServer(recv)
	b.Cleanup(recvSrv.Close)
	hookURL := webhook.URL(recvSrv.URL, secret, conn)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}

	b.ResetTimer()
	rng := rand.New(rand.NewPCG(12, 0))
	last := map[string]string{} // member id -> the value of its last edit
	var edited []int            // indexes into subscribed, in edit order
	next := 0
	repeats := 0
	tick := time.NewTicker(time.Second / perSec)
	defer tick.Stop()
	sendStart := time.Now()
	for i := range events {
		<-tick.C
		var m mcsim.Member
		if len(edited) > 0 && rng.Float64() < repeatShare {
			m = subscribed[edited[max(0, len(edited)-recent)+rng.IntN(min(recent, len(edited)))]]
			repeats++
		} else {
			edited = append(edited, next)
			m = subscribed[next]
			next++
		}
		value := fmt.Sprintf("Edit%04d", i)
		if err := sim.Change(list, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = value }); err != nil {
			b.Fatal(err)
		}
		last[m.ID] = value
		if err := postProfile(ctx, client, hookURL, list, m, value); err != nil {
			b.Fatalf("event %d: %v", i, err)
		}
	}
	sendTime := time.Since(sendStart)

	// Every event has an outcome once its member's refresh is done, and
	// the queue reports a member's latency right after its events'
	// outcomes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		outcomesMu.Lock()
		settled := 0
		for _, n := range outcomes {
			settled += n
		}
		outcomesMu.Unlock()
		if settled == events && lat.len() == refresher.membersDone() {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("60 s after the last event, %d of %d events have an outcome (%d members refreshed, %d latencies)",
				settled, events, refresher.membersDone(), lat.len())
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	stopQueue()
	<-queueDone

	records := tgt.Records()
	stale := 0
	for id, value := range last {
		if got := records[id]["firstname"]; got != value {
			if stale == 0 {
				b.Errorf("member %s: the target holds firstname %v, want its last edit %q", id, got, value)
			}
			stale++
		}
	}
	if stale > 0 {
		b.Fatalf("%d of %d edited members are stale in the target", stale, len(last))
	}
	if outcomes[engine.RefreshDelivered] != events {
		b.Fatalf("event outcomes %v, want all %d delivered", outcomes, events)
	}

	st := sim.Stats()
	p50, p99, worst := lat.percentile(0.50), lat.percentile(0.99), lat.percentile(1)
	refreshes, busy := refresher.counts()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(worst), "max-ms")
	b.ReportMetric(float64(st.Requests), "mailchimp-requests")
	b.ReportMetric(float64(st.Requests)/events, "requests/event")
	b.ReportMetric(float64(refreshes), "refreshes")
	fmt.Printf("%d profile events (%d repeats, %d members) at %d/s in %s, Mailchimp answering in %s: arrival-to-ack p50 %s, p99 %s, max %s over %d member fetches in %d refreshes (%d busy); %d Mailchimp requests for %d events (%.2f an event); goal p99 < 1s and requests <= events\n",
		events, repeats, len(last), perSec, sendTime.Round(time.Millisecond), latency,
		p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond),
		lat.len(), refreshes, busy, st.Requests, events, float64(st.Requests)/events)
}

// leasedRefresher is serve's webhook refresh, inline: claim the
// connection's lease (owner "webhooks"), refresh under its token, give it
// back; a lease held by a run makes the queue try again.
type leasedRefresher struct {
	store  state.Store
	eng    *engine.Engine
	newJob func() (engine.Job, error)

	mu        sync.Mutex
	refreshes int // that succeeded
	busy      int // found the lease held
	members   int // refreshed by those that succeeded
}

func (r *leasedRefresher) Refresh(ctx context.Context, connection string, members []string) (map[string]string, error) {
	lease, err := r.store.ClaimLease(ctx, connection, "webhooks", time.Now(), 15*time.Second)
	if errors.Is(err, state.ErrLeaseHeld) {
		r.mu.Lock()
		r.busy++
		r.mu.Unlock()
		return nil, webhook.ErrBusy
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = r.store.ReleaseLease(rctx, lease)
	}()
	job, err := r.newJob()
	if err != nil {
		return nil, err
	}
	job.LeaseToken = lease.Token
	sum, err := r.eng.Refresh(ctx, job, members)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.refreshes++
	r.members += len(members)
	r.mu.Unlock()
	return sum.Outcome, nil
}

func (r *leasedRefresher) membersDone() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members
}

func (r *leasedRefresher) counts() (refreshes, busy int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refreshes, r.busy
}

// postProfile posts a profile event for m, as Mailchimp sends one.
func postProfile(ctx context.Context, client *http.Client, hookURL, list string, m mcsim.Member, firstName string) error {
	lastName, _ := m.MergeFields["LNAME"].(string)
	form := url.Values{
		"type":                    {webhook.TypeProfile},
		"fired_at":                {time.Now().UTC().Format(time.DateTime)},
		"data[id]":                {m.ID},
		"data[email]":             {m.EmailAddress},
		"data[email_type]":        {m.EmailType},
		"data[ip_opt]":            {m.IPOpt},
		"data[web_id]":            {strconv.FormatInt(m.WebID, 10)},
		"data[merges][EMAIL]":     {m.EmailAddress},
		"data[merges][FNAME]":     {firstName},
		"data[merges][LNAME]":     {lastName},
		"data[merges][INTERESTS]": {""},
		"data[list_id]":           {list},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hookURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "MailChimp")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the receiver answered %s", resp.Status)
	}
	return nil
}

// latencies collects the arrival-to-ack times the queue reports.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

func (l *latencies) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// percentile is the nearest-rank percentile p (0 < p <= 1).
func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(l.d))
	i := int(math.Ceil(float64(len(s))*p)) - 1
	return s[min(max(i, 0), len(s)-1)]
}
