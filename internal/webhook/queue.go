package webhook

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// Defaults of Queue's knobs.
const (
	// DefaultCapacity is the most members a connection's queue holds.
	DefaultCapacity = 10000
	// DefaultCoalesce is how long a queue waits after the first hint
	// before it fetches: the events for one member within it become one
	// fetch, and the members of several events one refresh.
	DefaultCoalesce = 100 * time.Millisecond
	// DefaultMaxRefresh is the most members one refresh fetches: at
	// Mailchimp's 10 requests at a time, about a second's worth, well
	// inside the lease a refresh holds.
	DefaultMaxRefresh = 100
	// maxFailures is how many failed refreshes in a row a batch gets
	// before it is given up to polling (outcome "failed", and a run asked
	// for at once).
	maxFailures = 5
	// busyRetry is the wait after a refresh the connection's run held up.
	busyRetry = 500 * time.Millisecond
	// maxBackoff caps the wait after failed refreshes.
	maxBackoff = 30 * time.Second
	// maxStreak is the longest a backlog is refreshed back to back, the
	// lease taken again as soon as it was given back. Then the queue
	// waits its coalescing window, with the lease free for a run of
	// another worker (which tries again every quarter of a second): a
	// steady stream of events must not keep polling out for good.
	maxStreak = time.Second
)

// ErrBusy is what a Refresher returns when it cannot refresh now because
// the connection's run holds it (its lease): the queue keeps the members
// and tries again shortly, without counting a failure.
var ErrBusy = errors.New("webhook: the connection is busy with a run")

// Refresher fetches the members of a connection and delivers their
// current state, serialized with the connection's runs; the worker, with
// the engine, is one. It returns what happened to each member (the
// engine's Refresh outcomes: delivered, gone, rejected, absent).
type Refresher interface {
	Refresh(ctx context.Context, connection string, members []string) (map[string]string, error)
}

// Hooks receive what the queue does, for metrics, logs and the status
// page. Each may be nil; each must be quick and safe for concurrent use.
type Hooks struct {
	// Event is called once for every event, when its outcome is known:
	// bad_token, ignored, malformed or overflow as it arrives, or, once
	// its members are refreshed, the outcome of its first member.
	Event func(connection, eventType, outcome string)
	// Delivered is called for each refreshed member with the time from
	// the arrival of its first pending event to the target's answer.
	Delivered func(connection string, sinceArrival time.Duration)
	// Depth is called with a connection's queue depth after it changes.
	Depth func(connection string, members int)
	// Overflow is called when a connection's queue is full, or a batch
	// was given up after failing again and again: the caller starts a
	// polling run of it at once, which covers what the queue could not
	// take. It is called for every event the queue cannot take, so one
	// dropped while the run asked for is already under way asks for one
	// more after it (a scheduler folds the asks before a run starts into
	// that run).
	Overflow func(connection string)
}

// Queue holds the members each connection's events name until they are
// refreshed: one pending entry per member (so repeats coalesce), bounded
// per connection, with one refresher loop per connection that takes the
// pending members in one refresh after a short coalescing wait.
type Queue struct {
	refresher Refresher
	clock     clock.Clock
	hooks     Hooks
	log       *slog.Logger
	capacity  int
	coalesce  time.Duration
	maxBatch  int

	mu    sync.Mutex
	conns map[string]*pending
	ctx   context.Context // of Run; nil until it starts
	loops sync.WaitGroup
}

// QueueConfig configures a Queue; zero fields take the defaults.
type QueueConfig struct {
	Refresher Refresher // required
	Clock     clock.Clock
	Hooks     Hooks
	Logger    *slog.Logger
	Capacity  int           // per connection; DefaultCapacity
	Coalesce  time.Duration // DefaultCoalesce
	MaxBatch  int           // DefaultMaxRefresh
}

// NewQueue returns a queue; Run starts it.
func NewQueue(cfg QueueConfig) *Queue {
	q := &Queue{refresher: cfg.Refresher, clock: cfg.Clock, hooks: cfg.Hooks, log: cfg.Logger,
		capacity: cfg.Capacity, coalesce: cfg.Coalesce, maxBatch: cfg.MaxBatch, conns: map[string]*pending{}}
	if q.clock == nil {
		q.clock = clock.Real{}
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.capacity <= 0 {
		q.capacity = DefaultCapacity
	}
	if q.coalesce <= 0 {
		q.coalesce = DefaultCoalesce
	}
	if q.maxBatch <= 0 {
		q.maxBatch = DefaultMaxRefresh
	}
	return q
}

// pending is one connection's queue.
type pending struct {
	members map[string]*hint
	order   []string      // arrival order of the keys of members
	wake    chan struct{} // holds one wake-up for the loop
	full    bool          // overflowed, and not drained to half since: the episode is logged once
}

// hint is one pending member: when its first event came, and the types of
// the events that named it, for their outcomes.
type hint struct {
	arrived time.Time
	events  []string
}

// Run starts the refresher loops and blocks until ctx ends and they have
// stopped. Members still pending then are left to the polling runs.
func (q *Queue) Run(ctx context.Context) {
	q.mu.Lock()
	q.ctx = ctx
	for name, p := range q.conns {
		q.startLocked(name, p)
	}
	q.mu.Unlock()
	<-ctx.Done()
	q.loops.Wait()
}

// Add queues the members of one event of a connection. It never blocks.
func (q *Queue) Add(connection, eventType string, members []string) {
	now := q.clock.Now()
	q.mu.Lock()
	p := q.conns[connection]
	if p == nil {
		p = &pending{members: map[string]*hint{}, wake: make(chan struct{}, 1)}
		q.conns[connection] = p
		if q.ctx != nil && q.ctx.Err() == nil { // no new loop once Run is stopping
			q.startLocked(connection, p)
		}
	}
	firstDrop, dropped := false, false
	for i, id := range members {
		if h := p.members[id]; h != nil {
			if i == 0 {
				h.events = append(h.events, eventType)
			}
			continue
		}
		if len(p.members) >= q.capacity {
			dropped = true
			firstDrop = !p.full
			p.full = true
			break
		}
		h := &hint{arrived: now}
		if i == 0 {
			h.events = []string{eventType} // an event's outcome is its first member's
		}
		p.members[id] = h
		p.order = append(p.order, id)
	}
	depth := len(p.members)
	q.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	q.depth(connection, depth)
	if dropped {
		// Every event the queue cannot take is counted and asks for the
		// run that covers it; the episode is logged once.
		q.event(connection, eventType, "overflow")
		if firstDrop {
			q.log.Warn("a connection's webhook queue is full; starting a polling run of it now, which covers the events it could not take",
				"connection", connection, "capacity", q.capacity)
		}
		q.runNow(connection)
	}
}

// giveUp logs why and asks for a polling run of the connection at once.
func (q *Queue) giveUp(connection, why string) {
	q.log.Warn(why, "connection", connection, "capacity", q.capacity)
	q.runNow(connection)
}

func (q *Queue) runNow(connection string) {
	if q.hooks.Overflow != nil {
		q.hooks.Overflow(connection)
	}
}

func (q *Queue) startLocked(name string, p *pending) {
	q.loops.Go(func() { q.loop(q.ctx, name, p) })
}

// loop refreshes a connection's pending members until ctx ends.
func (q *Queue) loop(ctx context.Context, name string, p *pending) {
	failures := 0
	var streak time.Time // when the refreshes back to back began
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		// Let the events of a burst gather: one refresh, one fetch each.
		if q.clock.Sleep(ctx, q.coalesce) != nil {
			return
		}
		streak = q.clock.Now()
		for ctx.Err() == nil {
			ids, hints := q.take(name, p)
			if len(ids) == 0 {
				break
			}
			wait, ok := q.refresh(ctx, name, ids, hints, &failures)
			switch {
			case ok:
				if q.clock.Now().Sub(streak) >= maxStreak && q.backlog(p) {
					// A run of another worker gets its chance at the lease
					// (this worker's runs go first anyway: Refresher
					// returns ErrBusy while one waits).
					if q.clock.Sleep(ctx, q.coalesce) != nil {
						return
					}
					streak = q.clock.Now()
				}
			case failures >= maxFailures:
				// Given up to polling, rather than fetched again and again.
				failures = 0
				for _, h := range hints {
					for _, typ := range h.events {
						q.event(name, typ, "failed")
					}
				}
				q.giveUp(name, "refreshing members webhooks named keeps failing; leaving them to a polling run, started now")
			default:
				q.putBack(name, p, ids, hints)
				if q.clock.Sleep(ctx, wait) != nil {
					return
				}
			}
		}
	}
}

// refresh refreshes one batch. ok is false when the batch must wait wait
// and go again.
func (q *Queue) refresh(ctx context.Context, name string, ids []string, hints []*hint, failures *int) (wait time.Duration, ok bool) {
	outcomes, err := q.refresher.Refresh(ctx, name, ids)
	switch {
	case errors.Is(err, ErrBusy):
		return busyRetry, false
	case err != nil:
		if ctx.Err() != nil {
			return 0, false
		}
		*failures++
		wait = min(time.Duration(1<<min(*failures-1, 5))*time.Second, maxBackoff)
		q.log.Warn("refreshing members a webhook named failed; trying again", "connection", name,
			"members", len(ids), "wait", wait.String(), "error", err)
		return wait, false
	}
	*failures = 0
	now := q.clock.Now()
	for i, id := range ids {
		outcome := outcomes[id]
		for _, typ := range hints[i].events {
			q.event(name, typ, outcome)
		}
		if q.hooks.Delivered != nil {
			q.hooks.Delivered(name, now.Sub(hints[i].arrived))
		}
	}
	return 0, true
}

// backlog reports whether members are pending.
func (q *Queue) backlog(p *pending) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(p.members) > 0
}

// take removes up to maxBatch pending members, oldest first.
func (q *Queue) take(name string, p *pending) ([]string, []*hint) {
	q.mu.Lock()
	n := min(len(p.order), q.maxBatch)
	ids := slices.Clone(p.order[:n])
	p.order = slices.Delete(p.order, 0, n)
	hints := make([]*hint, n)
	for i, id := range ids {
		hints[i] = p.members[id]
		delete(p.members, id)
	}
	if len(p.members) <= q.capacity/2 {
		p.full = false // room again: the next overflow asks for another run
	}
	depth := len(p.members)
	q.mu.Unlock()
	if n > 0 {
		q.depth(name, depth)
	}
	return ids, hints
}

// putBack returns a batch that could not be refreshed, merging it with
// what came meanwhile: a member named again keeps its first arrival.
func (q *Queue) putBack(name string, p *pending, ids []string, hints []*hint) {
	q.mu.Lock()
	back := make([]string, 0, len(ids))
	var dropped []string
	for i, id := range ids {
		if h := p.members[id]; h != nil {
			h.arrived, h.events = hints[i].arrived, append(hints[i].events, h.events...)
			continue
		}
		if len(p.members) >= q.capacity {
			dropped = append(dropped, hints[i].events...)
			continue
		}
		p.members[id] = hints[i]
		back = append(back, id)
	}
	overflow := len(dropped) > 0 && !p.full
	if len(dropped) > 0 {
		p.full = true
	}
	// The batch's members left order when taken; those named again since
	// are back in it already.
	p.order = append(back, p.order...)
	depth := len(p.members)
	q.mu.Unlock()
	q.depth(name, depth)
	for _, typ := range dropped {
		q.event(name, typ, "overflow")
	}
	if overflow {
		q.giveUp(name, "a connection's webhook queue filled up while a refresh waited; starting a polling run of it now")
	}
}

// Depths returns every connection's queue depth.
func (q *Queue) Depths() map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[string]int, len(q.conns))
	for name, p := range maps.All(q.conns) {
		out[name] = len(p.members)
	}
	return out
}

func (q *Queue) depth(connection string, n int) {
	if q.hooks.Depth != nil {
		q.hooks.Depth(connection, n)
	}
}

func (q *Queue) event(connection, eventType, outcome string) {
	if q.hooks.Event != nil {
		q.hooks.Event(connection, eventType, outcome)
	}
}
