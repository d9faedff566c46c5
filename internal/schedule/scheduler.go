package schedule

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxNap bounds every wait, so a wall clock that jumps (a suspended
	// VM, a corrected clock) is noticed within a minute.
	maxNap = time.Minute
	// retryDelay is the wait after the store failed to answer, so a broken
	// store is not hammered by every connection at once.
	retryDelay = time.Minute
	// webhookRetry is how soon a run tries again after finding the lease
	// held by a webhook refresh. A queue with a backlog leaves the lease
	// free for its coalescing window (100 ms) after each second of
	// refreshes: trying four times a second finds such a gap soon.
	webhookRetry = 250 * time.Millisecond
)

// WebhooksOwnerSuffix ends the lease owner of a webhook refresh (the
// worker's id, then this), which a run finding the lease held need not
// wait out.
const WebhooksOwnerSuffix = "/webhooks"

// Scheduler runs connections on their schedules. Make one with New.
type Scheduler struct {
	cfg   Config
	log   *slog.Logger
	conns []Connection
	// slots holds a token per run in flight (MaxParallel). reads bounds the
	// planning reads in the same way: at start every connection plans at
	// once, and thousands of simultaneous reads would swamp the store.
	slots, reads chan struct{}
	started      atomic.Bool

	mu   sync.Mutex
	next map[string]time.Time // planned next run; absent until planned
	// soon holds a wake-up per connection for RunSoon.
	soon map[string]chan struct{}
	// waiting is, per connection, until when a run that found the lease
	// held by this worker's webhook refresh is coming back for it
	// (RunWaiting).
	waiting map[string]time.Time
}

// New checks cfg and conns and returns a Scheduler. Every problem is
// reported at once; an invalid cron expression names its connection.
func New(cfg Config, conns []Connection) (*Scheduler, error) {
	cfg = cfg.WithDefaults()
	conns, err := cfg.validate(conns)
	if err != nil {
		return nil, err
	}
	s := &Scheduler{
		cfg:   cfg,
		log:   cfg.Logger.With("owner", cfg.Owner),
		conns: conns,
		slots: make(chan struct{}, cfg.MaxParallel),
		reads: make(chan struct{}, cfg.MaxParallel),
		next:  make(map[string]time.Time, len(conns)),
		soon:  make(map[string]chan struct{}, len(conns)),

		waiting: map[string]time.Time{},
	}
	for _, c := range conns {
		s.soon[c.Name] = make(chan struct{}, 1)
	}
	return s, nil
}

// RunSoon asks for a run of the connection now rather than at its next
// planned time (a webhook queue that overflowed asks it: the run covers
// what the queue could not hold). A run already under way, or a lease
// another worker holds, is not interrupted: the run comes after it. It
// reports false for an unknown connection.
func (s *Scheduler) RunSoon(name string) bool {
	wake, ok := s.soon[name]
	if !ok {
		return false
	}
	select {
	case wake <- struct{}{}:
	default: // asked already
	}
	return true
}

// RunWaiting reports whether a run of the connection found the lease held
// by a webhook refresh and is about to try again. A webhook queue with a
// backlog refreshes back to back, and a run that tries once a second would
// seldom find the lease free between two refreshes: so this worker's
// refreshes stand aside until the run has claimed it (or given up, a
// moment later).
func (s *Scheduler) RunWaiting(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.waiting[name]
	return ok && s.cfg.Clock.Now().Before(until)
}

func (s *Scheduler) setWaiting(name string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until.IsZero() {
		delete(s.waiting, name)
	} else {
		s.waiting[name] = until
	}
}

// Next returns the connection's next planned run, and false if the name is
// unknown or not planned yet. While a run is in flight it is the time that
// run was planned for.
func (s *Scheduler) Next(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.next[name]
	return t, ok
}

// Run schedules the connections until ctx ends. Then it starts no new run,
// gives the runs in flight Config.Grace to finish before cancelling their
// context, waits for them to return, and returns nil. It may be called once.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("schedule: Run called twice")
	}
	// Runs must outlive ctx by the grace period, so their context is not
	// derived from ctx's cancellation (only from its values).
	runBase, stopRuns := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopRuns(nil)

	var wg sync.WaitGroup
	for _, c := range s.conns {
		wg.Go(func() { s.serve(ctx, runBase, c) })
	}
	<-ctx.Done()

	allDone, markAllDone := context.WithCancel(context.Background())
	go func() {
		wg.Wait()
		markAllDone()
	}()
	// Sleep returns nil only if the grace period passed with runs in flight.
	if s.cfg.Clock.Sleep(allDone, s.cfg.Grace) == nil {
		s.log.Warn("shutdown grace period over, cancelling runs in flight", "grace", s.cfg.Grace)
		stopRuns(errors.New("schedule: shutdown grace period over"))
	}
	<-allDone.Done()
	return nil
}

// pause is a "do not claim before until" left by an attempt that found the
// lease held or the store failing. It stands only while the store still
// shows the same last attempt: a new attempt means someone ran the
// connection, and planning from it is enough.
type pause struct {
	until, last time.Time
}

// serve is one connection's loop: plan from the store, sleep until due,
// attempt. One goroutine per connection keeps its runs in this worker
// strictly one after another.
func (s *Scheduler) serve(ctx, runBase context.Context, c Connection) {
	var (
		// A connection that never ran is planned from when this loop
		// began, not from each re-plan's now, which would push it on.
		began = s.cfg.Clock.Now()
		ranAt time.Time // when this worker last started a run of c
		wait  pause
		// asked is when RunSoon asked for a run that has not started
		// yet. The ask stands until a run starts after it, here or on
		// another worker: a held lease delays it, but never sends it
		// back to the schedule.
		asked time.Time
	)
	for ctx.Err() == nil {
		now := s.cfg.Clock.Now()
		next, last, err := s.plan(ctx, c, ranAt, wait, began)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("cannot plan the next run", "connection", c.Name, "error", err)
			next = now.Add(retryDelay)
		}
		if !asked.IsZero() && last.After(asked) {
			asked = time.Time{} // run since the ask, by another worker
		}
		if !asked.IsZero() {
			next = now
			if wait.until.After(now) {
				next = wait.until
			}
		}
		s.publish(c.Name, next)
		if next.After(now) {
			woken, ok := s.sleepUntil(ctx, next, s.soon[c.Name])
			if !ok {
				return
			}
			if !woken {
				continue // due: plan again from the store, someone may have run it
			}
			s.log.Debug("run asked for now", "connection", c.Name)
			if asked.IsZero() {
				asked = s.cfg.Clock.Now()
			}
		}
		var ran time.Time
		ran, wait = s.attempt(ctx, runBase, c.Name, last)
		if !ran.IsZero() {
			ranAt, asked = ran, time.Time{}
		}
	}
}

// plan reads the last attempt and returns the next run and that attempt;
// began stands in for the last attempt of a connection that never ran.
func (s *Scheduler) plan(ctx context.Context, c Connection, ranAt time.Time, wait pause, began time.Time) (next, last time.Time, err error) {
	select {
	case s.reads <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, time.Time{}, ctx.Err()
	}
	last, err = s.cfg.Leases.LastAttempt(ctx, c.Name)
	<-s.reads
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	// This worker's own last start is a floor: a Run that failed before it
	// recorded its attempt must not be retried at once, in a loop.
	from := last
	if ranAt.After(from) {
		from = ranAt
	}
	next, err = nextRun(c, from, began, s.cfg.Jitter, s.cfg.Location)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if wait.until.After(next) && last.Equal(wait.last) {
		next = wait.until
	}
	return next, last, nil
}

// attempt claims name and runs it, unless another worker holds it or has
// started a run since last was read. It returns when this worker started
// the run (zero if it did not) and a pause for the next plan.
func (s *Scheduler) attempt(ctx, runBase context.Context, name string, last time.Time) (time.Time, pause) {
	// Take the slot before the lease: a claim should not sit waiting for
	// a slot while it keeps other workers away.
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return time.Time{}, pause{}
	}
	defer func() { <-s.slots }()

	log := s.log.With("connection", name)
	now := s.cfg.Clock.Now()
	ttl := s.cfg.LeaseTTL
	lease, err := s.cfg.Leases.Claim(ctx, name, s.cfg.Owner, now, ttl)
	switch {
	case errors.Is(err, ErrLeaseHeld):
		// The holder is running it, or about to. Come back when its lease
		// would expire if it died; if it records its attempt before then,
		// planning from that attempt takes over.
		until := now.Add(ttl)
		if lease.Expires.After(now) && lease.Expires.Before(until) {
			until = lease.Expires
		}
		if strings.HasSuffix(lease.Owner, WebhooksOwnerSuffix) {
			// A webhook refresh: it gives the lease back within a second
			// or two, and a run must not wait out its whole TTL.
			if soon := now.Add(webhookRetry); soon.Before(until) {
				until = soon
			}
			if lease.Owner == s.cfg.Owner+WebhooksOwnerSuffix {
				s.setWaiting(name, until.Add(webhookRetry))
			}
		}
		log.Debug("lease held by another worker", "holder", lease.Owner, "until", until)
		return time.Time{}, pause{until: until, last: last}
	case err != nil:
		if ctx.Err() == nil {
			log.Warn("cannot claim lease", "error", err)
		}
		return time.Time{}, pause{until: now.Add(retryDelay), last: last}
	}

	// Between our read and our claim another worker may have run the
	// connection and released it: then it is not due any more.
	again, err := s.cfg.Leases.LastAttempt(ctx, name)
	if err != nil || again.After(last) || ctx.Err() != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseCallTimeout)
		defer cancel()
		if rerr := s.cfg.Leases.Release(rctx, lease); rerr != nil {
			log.Warn("cannot release lease", "error", rerr)
		}
		switch {
		case ctx.Err() != nil: // shutting down: start nothing new
		case err != nil:
			log.Warn("cannot read the last attempt", "error", err)
			return time.Time{}, pause{until: now.Add(retryDelay), last: last}
		default:
			log.Debug("run by another worker meanwhile", "last_attempt", again)
		}
		return time.Time{}, pause{}
	}
	s.setWaiting(name, time.Time{})
	start := s.cfg.Clock.Now()
	s.runLeased(runBase, name, lease)
	return start, pause{}
}

// publish records the plan and tells OnSchedule when it changed.
func (s *Scheduler) publish(name string, next time.Time) {
	s.mu.Lock()
	old, ok := s.next[name]
	s.next[name] = next
	s.mu.Unlock()
	if ok && old.Equal(next) {
		return
	}
	s.log.Debug("next run planned", "connection", name, "next", next)
	if s.cfg.OnSchedule != nil {
		s.cfg.OnSchedule(name, next)
	}
}

// sleepUntil waits on the clock until t, in naps of at most maxNap. It
// returns false when ctx ended first.
//
// A wake-up on wake (RunSoon) ends the wait early: woken is then true.
func (s *Scheduler) sleepUntil(ctx context.Context, t time.Time, wake <-chan struct{}) (woken, ok bool) {
	for {
		d := t.Sub(s.cfg.Clock.Now())
		if d <= 0 {
			return false, ctx.Err() == nil
		}
		select {
		case <-wake:
			return true, ctx.Err() == nil
		default:
		}
		nap, cancel := context.WithCancel(ctx)
		var rung atomic.Bool
		stop, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(stopped)
			select {
			case <-wake:
				rung.Store(true)
				cancel()
			case <-stop:
			}
		}()
		err := s.cfg.Clock.Sleep(nap, min(d, maxNap))
		close(stop)
		<-stopped // so a wake-up taken just now is not lost
		cancel()
		if rung.Load() {
			return true, ctx.Err() == nil
		}
		if err != nil {
			return false, false
		}
	}
}
