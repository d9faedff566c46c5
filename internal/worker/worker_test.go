package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

// A permanent error pages once per incident, whatever number of runs fail
// with it, and a completed run closes the incident; each run is counted by
// its Summary.Result, and the gauges follow the store.
func TestAfterRunAlertsOncePerIncident(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "shop")

	eng.script("shop", keyRejected)
	for range 3 {
		clk.Advance(time.Hour)
		// The worker logged the failure: the scheduler gets nil, so it
		// does not log it again.
		must(t, w.runConnection(ctx, "shop", fakeLease()))
	}
	eng.script("shop", nil)
	clk.Advance(time.Hour)
	must(t, w.runConnection(ctx, "shop", fakeLease()))

	if diff := cmp.Diff([]string{"permanent_error shop", "recovered permanent_error shop"}, rec.kinds()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.Status != 401 || a.Action == "" || !a.At.Equal(start.Add(time.Hour)) {
		t.Errorf("permanent alert = %+v, want status 401, an action, and the worker clock's time", a)
	}
	if f, o := counter(t, w.Metrics(), "shop", state.ResultFailed), counter(t, w.Metrics(), "shop", state.ResultOK); f != 3 || o != 1 {
		t.Errorf("runs_total failed, ok = %v, %v; want 3, 1", f, o)
	}
	// The completed run's window ended a minute before it started.
	if lag, ok := gauge(t, w.Metrics(), "chimport_connection_lag_seconds", "shop"); !ok || lag != 60 {
		t.Errorf("lag gauge = %v, %v; want 60 s", lag, ok)
	}
	if ts, ok := gauge(t, w.Metrics(), "chimport_last_success_timestamp_seconds", "shop"); !ok || ts != float64(clk.Now().Unix()) {
		t.Errorf("last success gauge = %v, %v; want %d", ts, ok, clk.Now().Unix())
	}
}

// Each run adds the members that left the target to the tombstone
// counter, a failed run's too (the target acknowledged them); the gauge of
// the members in the target follows a completed run's Summary and then the
// store, so a failed run that removed members moves it as well.
func TestAfterRunCountsTombstonesAndMembers(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "shop")
	type reading struct {
		Tombstoned, Members float64
	}
	var got []reading
	run := func(c state.RosterChange, runErr error) {
		t.Helper()
		eng.script("shop", runErr)
		eng.scriptRoster("shop", c)
		clk.Advance(time.Hour)
		must(t, w.runConnection(ctx, "shop", fakeLease()))
		tomb, ok := gauge(t, w.Metrics(), "chimport_members_tombstoned_total", "shop")
		if !ok {
			t.Fatal("no chimport_members_tombstoned_total series for shop")
		}
		members, ok := gauge(t, w.Metrics(), "chimport_roster_members", "shop")
		if !ok {
			t.Fatal("no chimport_roster_members series for shop")
		}
		got = append(got, reading{tomb, members})
	}
	ids := memberIDs(0, 6)
	run(state.RosterChange{Add: ids[:5], Reconciled: start}, nil) // builds: 5 members, none left
	run(state.RosterChange{Add: ids[5:], Remove: ids[:2]}, nil)   // 1 joins, 2 leave: 4
	run(state.RosterChange{Remove: ids[2:3]}, keyRejected)        // 1 leaves, then the run fails: 3
	run(state.RosterChange{}, nil)                                // nothing changes
	want := []reading{{0, 5}, {2, 4}, {3, 3}, {3, 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tombstoned counter and members gauge after each run (-want +got):\n%s", diff)
	}
}

// When the state cannot be read back after a completed run, the gauge of
// the members in the target still follows the run's own count.
func TestRosterGaugeFollowsTheSummaryWhenTheReadBackFails(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
	w.cfg.Store = unreadable{store}
	sum := summaryOf("shop", state.ResultOK)
	sum.Completed, sum.Members = true, 42
	w.afterRun(ctx, "shop", sum, nil)
	if v, ok := gauge(t, w.Metrics(), "chimport_roster_members", "shop"); !ok || v != 42 {
		t.Errorf("roster gauge = %v, %v; want 42", v, ok)
	}
	// A run that did not complete says nothing about the roster's size.
	w2 := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
	w2.cfg.Store = unreadable{store}
	sum.Completed = false
	w2.afterRun(ctx, "shop", sum, keyRejected)
	if _, ok := gauge(t, w2.Metrics(), "chimport_roster_members", "shop"); ok {
		t.Error("an incomplete run set the roster gauge from its summary")
	}
}

// unreadable is a store whose reads of one connection fail.
type unreadable struct{ *memory.Store }

func (unreadable) Connection(context.Context, string) (state.ConnectionState, error) {
	return state.ConnectionState{}, errors.New("database is locked")
}

// A run that lost its lease was refused by the store; the worker that
// claimed the connection speaks for it. So the fenced run sets no gauge,
// opens no incident and sends nothing, even with an error that needs a
// person.
func TestFencedRunRecordsNothingAndSendsNothing(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "shop")
	must(t, store.StartRun(ctx, "shop", start.Add(-5*time.Hour))) // lagging: an alert would fire

	must(t, store.UpdateRoster(ctx, "shop", state.RosterChange{Add: memberIDs(0, 3)}))

	fenced := errors.Join(keyRejected, fmt.Errorf("recording the failure: %w", state.ErrFenced))
	sum := summaryOf("shop", state.ResultFailed)
	sum.Tombstoned = 2 // the target did acknowledge them
	w.afterRun(ctx, "shop", sum, fenced)

	if got := rec.kinds(); len(got) != 0 {
		t.Errorf("a fenced run sent %v", got)
	}
	st, err := store.Connection(ctx, "shop")
	must(t, err)
	if len(st.Alerts) != 0 {
		t.Errorf("a fenced run opened incidents: %v", st.Alerts)
	}
	if _, ok := gauge(t, w.Metrics(), "chimport_connection_lag_seconds", "shop"); ok {
		t.Error("a fenced run set the lag gauge")
	}
	if _, ok := gauge(t, w.Metrics(), "chimport_roster_members", "shop"); ok {
		t.Error("a fenced run set the roster gauge")
	}
	// The counters say what this process did, fenced or not.
	if n, _ := gauge(t, w.Metrics(), "chimport_members_tombstoned_total", "shop"); n != 2 {
		t.Errorf("tombstoned counter = %v, want 2", n)
	}
}

// At start-up a worker sets the gauges of every configured connection from
// the store, before its first run or lag check (the lag check runs beside
// the scheduler and may come later): the first run finds the gauges already
// there, for the connection it runs and for those it does not.
func TestServeSetsEveryGaugeBeforeTheFirstRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	// synced completed a run 2 h ago and is not due for another 30 min;
	// stuck was first attempted 5 h ago and never completed; fresh was
	// never attempted. Only stuck and fresh are due.
	must(t, store.StartRun(ctx, "synced", start.Add(-30*time.Minute)))
	must(t, store.CompleteRun(ctx, state.Run{Connection: "synced", Started: start.Add(-30 * time.Minute), Finished: start.Add(-10 * time.Minute), WindowEnd: start.Add(-2 * time.Hour), Result: state.ResultOK}))
	must(t, store.UpdateRoster(ctx, "synced", state.RosterChange{Add: memberIDs(0, 4), Reconciled: start}))
	must(t, store.StartRun(ctx, "stuck", start.Add(-5*time.Hour)))

	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "synced", "stuck", "fresh")
	type reading struct {
		Value float64
		OK    bool
	}
	atFirstRun := make(chan map[string]reading, 1)
	eng.onRun = func(string) {
		got := map[string]reading{}
		for _, name := range []string{"synced", "stuck", "fresh"} {
			v, ok := gauge(t, w.Metrics(), "chimport_connection_lag_seconds", name)
			got[name] = reading{v, ok}
			v, ok = gauge(t, w.Metrics(), "chimport_roster_members", name)
			got[name+" members"] = reading{v, ok}
		}
		select {
		case atFirstRun <- got:
		default:
		}
	}
	served := make(chan error, 1)
	go func() { served <- w.Serve(ctx) }()

	var got map[string]reading
	select {
	case got = <-atFirstRun:
	case err := <-served:
		t.Fatalf("Serve returned before any run: %v", err)
	case <-time.After(10 * time.Second): // a hang guard, not a timing
		t.Fatal("no run started")
	}
	// Only synced keeps a roster; the others have no members series
	// rather than a 0 that reads as an empty target.
	want := map[string]reading{
		"synced": {7200, true}, "stuck": {5 * 3600, true}, "fresh": {0, false},
		"synced members": {4, true}, "stuck members": {0, false}, "fresh members": {0, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lag and roster gauges at the first run (-want +got):\n%s", diff)
	}
	if ts, ok := gauge(t, w.Metrics(), "chimport_last_success_timestamp_seconds", "synced"); !ok || ts != float64(start.Add(-10*time.Minute).Unix()) {
		t.Errorf("last success gauge of synced = %v, %v; want %d", ts, ok, start.Add(-10*time.Minute).Unix())
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after its context ended", err)
	}
	if diff := cmp.Diff([]string{"fresh", "stuck"}, sorted(eng.runs())); diff != "" {
		t.Errorf("runs (-want +got):\n%s", diff)
	}
}

func TestStatusRows(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "synced", "never", "failing", "rejected", "elsewhere")
	must(t, store.StartRun(ctx, "synced", start.Add(-5*time.Hour)))
	must(t, store.CompleteRun(ctx, state.Run{Connection: "synced", Started: start.Add(-5 * time.Hour), Finished: start.Add(-4 * time.Hour), WindowEnd: start.Add(-4 * time.Hour), Result: state.ResultOK}))
	reconciled := start.Add(-4*time.Hour - 10*time.Minute)
	must(t, store.UpdateRoster(ctx, "synced", state.RosterChange{Add: memberIDs(0, 3), Reconciled: reconciled}))
	rows, err := w.StatusRows(ctx)
	must(t, err)
	lag, success := 4*time.Hour, start.Add(-4*time.Hour)
	if len(rows) != 5 || rows[0].Name != "synced" || !rows[0].Lagging || *rows[0].Lag != lag || !rows[0].LastSuccess.Equal(success) ||
		rows[0].Members == nil || *rows[0].Members != 3 || rows[0].LastReconcile == nil || !rows[0].LastReconcile.Equal(reconciled) ||
		rows[1].Name != "never" || rows[1].Lagging || rows[1].Lag != nil || rows[1].LastSuccess != nil || rows[1].Members != nil || rows[1].LastReconcile != nil {
		t.Errorf("rows = %+v", rows)
	}
	// Failing rows carry their error and, when this worker saw the run
	// fail, what to do about it.
	eng.script("failing", targetDown)
	must(t, w.runConnection(ctx, "failing", fakeLease()))
	eng.script("rejected", keyRejected)
	must(t, w.runConnection(ctx, "rejected", fakeLease()))
	must(t, store.StartRun(ctx, "elsewhere", start)) // another worker's failed run
	must(t, store.FailRun(ctx, state.Run{Connection: "elsewhere", Started: start, Finished: start, Result: state.ResultFailed, Error: "some error"}))
	rows, err = w.StatusRows(ctx)
	must(t, err)
	type failing struct{ Name, LastError, Hint string }
	var got []failing
	for _, r := range rows[2:] {
		got = append(got, failing{r.Name, r.LastError, r.Hint})
	}
	want := []failing{
		{"failing", targetDown.Error(), "The next run retries; a lag alert is sent if the lag passes 3h."},
		{"rejected", keyRejected.Error(), "Mailchimp rejected the API key. Check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed."},
		{"elsewhere", "some error", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failing rows (-want +got):\n%s", diff)
	}
}

// targetDown is what a run ends with while the target is unreachable.
var targetDown = errors.New(`target "crm": POST http://127.0.0.1:9/contacts: no response: dial tcp 127.0.0.1:9: connect: connection refused (after 3 attempts); the target is unavailable; the next run will retry`)

// A failed run is logged once, at error, naming the connection, the error
// and what to do: neither the scheduler nor anything else logs it again.
// The run goes through Serve, so the scheduler's own logging is included.
func TestFailedRunIsLoggedOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	eng.script("shop", keyRejected)
	logs := &logCapture{}
	w, err := New(Config{
		Connections: []Connection{{Connection: schedule.Connection{Name: "shop", Every: time.Hour}}},
		Store:       store, Run: eng.run, Notifier: rec, Clock: clk, LagEvery: time.Minute, Owner: "worker-a",
		Jitter: func(string, time.Duration) time.Duration { return 0 },
		Logger: slog.New(logs),
	})
	must(t, err)
	started := make(chan struct{}, 1)
	eng.onRun = func(string) { started <- struct{}{} }
	served := make(chan error, 1)
	go func() { served <- w.Serve(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second): // a hang guard, not a timing
		t.Fatal("no run started")
	}
	// The run in flight finishes within the grace period; Serve returns
	// once it has, and its lease is released: every line is logged.
	cancel()
	must(t, <-served)

	var failures []string
	for _, r := range logs.all() {
		if r.Level >= slog.LevelWarn && strings.Contains(r.attrs["error"], "API Key Invalid") {
			failures = append(failures, fmt.Sprintf("%s %s connection=%s action=%s", r.Level, r.Message, r.attrs["connection"], r.attrs["action"]))
		}
	}
	want := []string{"ERROR run failed connection=shop action=Mailchimp rejected the API key. Check mailchimp.api_key for this connection: the key may be mistyped, revoked, or from another Mailchimp account. Create a new key in Mailchimp (Profile > Extras > API keys) if needed."}
	if diff := cmp.Diff(want, failures); diff != "" {
		t.Errorf("records of the failed run (-want +got):\n%s", diff)
	}
}

// A run the scheduler stopped (its lease lost, or the grace period over)
// goes back to the scheduler, which logs why; the worker adds nothing.
func TestStoppedRunIsLeftToTheScheduler(t *testing.T) {
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	logs := &logCapture{}
	w, err := New(Config{
		Connections: []Connection{{Connection: schedule.Connection{Name: "shop", Every: time.Hour}}},
		Store:       store, Run: eng.run, Notifier: rec, Clock: clk, Logger: slog.New(logs),
	})
	must(t, err)
	eng.script("shop", context.Canceled)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.runConnection(ctx, "shop", fakeLease()); !errors.Is(err, context.Canceled) {
		t.Errorf("runConnection = %v, want the run's error for the scheduler", err)
	}
	for _, r := range logs.all() {
		if r.Message == "run failed" {
			t.Errorf("the worker logged a stopped run: %s %v", r.Message, r.attrs)
		}
	}
}

func summaryOf(name, result string) engine.Summary {
	return engine.Summary{Connection: name, Result: result}
}

// fakeLease is a lease without a fencing token: the store does not fence
// the fake engine's writes.
func fakeLease() schedule.Lease { return schedule.Lease{Owner: "test"} }

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
