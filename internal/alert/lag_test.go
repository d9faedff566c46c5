package alert

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
)

func TestFreshnessLag(t *testing.T) {
	tests := []struct {
		name      string
		f         Freshness
		wantLag   time.Duration
		wantKnown bool
	}{
		{"from the watermark", Freshness{Watermark: at.Add(-2 * time.Hour), FirstAttempt: at.Add(-50 * time.Hour)}, 2 * time.Hour, true},
		{"never completed: from the first attempt", Freshness{FirstAttempt: at.Add(-time.Hour)}, time.Hour, true},
		{"never attempted", Freshness{}, 0, false},
		{"watermark ahead of a skewed clock", Freshness{Watermark: at.Add(time.Minute)}, 0, true},
	}
	for _, tt := range tests {
		lag, known := tt.f.Lag(at)
		if lag != tt.wantLag || known != tt.wantKnown {
			t.Errorf("%s: Lag = %v, %v; want %v, %v", tt.name, lag, known, tt.wantLag, tt.wantKnown)
		}
	}
}

func TestEvaluate(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	behind := func(d time.Duration) Freshness {
		return Freshness{Watermark: at.Add(-d), FirstAttempt: at.Add(-100 * time.Hour)}
	}
	tests := []struct {
		name     string
		p        LagPolicy
		f        Freshness
		open     bool
		wantKind Kind // "" means no alert fires
		wantOpen bool
	}{
		{"under the threshold", p, behind(2 * time.Hour), false, "", false},
		{"at the threshold is not past it", p, behind(3 * time.Hour), false, "", false},
		{"crossing fires", p, behind(3*time.Hour + time.Second), false, KindLag, true},
		{"staying over fires nothing more", p, behind(30 * time.Hour), true, "", true},
		{"fresh again recovers", p, behind(10 * time.Minute), true, KindRecovered, false},
		{"staying fresh fires nothing", p, behind(10 * time.Minute), false, "", false},
		{"never completed, first attempt long ago", p, Freshness{FirstAttempt: at.Add(-4 * time.Hour)}, false, KindLag, true},
		{"never completed, first attempt recent", p, Freshness{FirstAttempt: at.Add(-time.Hour)}, false, "", false},
		{"never attempted", p, Freshness{}, false, "", false},
		{"threshold 0: no lag alerts", LagPolicy{}, behind(1000 * time.Hour), false, "", false},
		{"threshold 0 closes an open incident silently", LagPolicy{}, behind(1000 * time.Hour), true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, open, fire := tt.p.Evaluate("shop", tt.f, tt.open, at)
			if fire != (tt.wantKind != "") || a.Kind != tt.wantKind || open != tt.wantOpen {
				t.Errorf("Evaluate = kind %q, open %v, fire %v; want kind %q, open %v", a.Kind, open, fire, tt.wantKind, tt.wantOpen)
			}
		})
	}
}

func TestEvaluateAlerts(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	errAt := at.Add(-20 * time.Minute)
	lagging := Freshness{Watermark: at.Add(-3*time.Hour - 12*time.Minute), FirstAttempt: at.Add(-100 * time.Hour),
		LastError: "mailchimp: GET /lists/x/members: 503 Service Unavailable", LastErrorAt: errAt}
	a, _, _ := p.Evaluate("shop", lagging, false, at)
	want := Alert{
		Kind: KindLag, Connection: "shop",
		Subject:   "chimport: shop is 3h12m behind (threshold 3h)",
		Problem:   "Mailchimp changes since 2026-03-04 01:54 UTC have not reached the target.",
		Action:    "Runs keep failing, or the run under way keeps retrying, with the error below. Each run retries it; if it does not clear, check Mailchimp's and the target's status and the network between them.",
		Error:     lagging.LastError,
		ErrorAt:   errAt,
		Lag:       3*time.Hour + 12*time.Minute,
		LagKnown:  true,
		Threshold: 3 * time.Hour,
		At:        at,
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("lag alert (-want +got):\n%s", diff)
	}

	never := Freshness{FirstAttempt: at.Add(-4 * time.Hour)}
	a, _, _ = p.Evaluate("shop", never, false, at)
	if want := "No run has completed since the first attempt at 2026-03-04 01:06 UTC."; a.Problem != want {
		t.Errorf("never completed: Problem = %q, want %q", a.Problem, want)
	}
	if want := "No failed run is recorded (a run under way may still be retrying): check that chimport serve is running, or that the schedule of chimport run still fires, and that the connection runs more often than the threshold."; a.Action != want {
		t.Errorf("no error: Action = %q, want %q", a.Action, want)
	}

	a, _, _ = p.Evaluate("shop", Freshness{Watermark: at.Add(-4 * time.Minute)}, true, at)
	want = Alert{
		Kind: KindRecovered, Resolves: KindLag, Connection: "shop",
		Subject:   "chimport: shop is fresh again (lag 4m)",
		Problem:   "The connection caught up: its lag is 4m, within the 3h threshold.",
		Lag:       4 * time.Minute,
		LagKnown:  true,
		Threshold: 3 * time.Hour,
		At:        at,
	}
	if diff := cmp.Diff(want, a); diff != "" {
		t.Errorf("recovery (-want +got):\n%s", diff)
	}
}

// memStore is the alert state as the real stores keep it: a compare-and-set
// per (connection, kind).
type memStore struct {
	mu   sync.Mutex
	open map[string]bool
	err  error
}

func (m *memStore) SetAlert(_ context.Context, conn, kind string, open bool, _ time.Time) (bool, error) {
	runtime.Gosched() // let the other worker interleave
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return false, m.err
	}
	if m.open == nil {
		m.open = map[string]bool{}
	}
	key := conn + "\x00" + kind
	if m.open[key] == open {
		return false, nil
	}
	m.open[key] = open
	return true, nil
}

// syncRecorder is a Notifier that several workers share.
type syncRecorder struct {
	mu     sync.Mutex
	got    []Alert
	ctxErr []error
	err    error
}

func (r *syncRecorder) Notify(ctx context.Context, a Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	r.ctxErr = append(r.ctxErr, ctx.Err())
	return r.err
}

func (r *syncRecorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.got {
		out = append(out, fmt.Sprintf("%s %s", a.Kind, a.Resolves))
	}
	return out
}

// Two workers check the same connection at every step of an outage: it
// falls behind for five hours, then catches up. Only the worker whose
// SetAlert flips the state sends, so a person hears once of each.
func TestCheckTwoWorkersOneAlertOneRecovery(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	store, rec := &memStore{}, &syncRecorder{}
	start := at
	lastGood := start // the watermark stays here while Mailchimp is unreachable
	for step := 0; step <= 60; step++ {
		now := start.Add(time.Duration(step) * 10 * time.Minute)
		f := Freshness{Watermark: lastGood, FirstAttempt: start.Add(-time.Hour), LastError: "mailchimp: 503", LastErrorAt: now}
		if step >= 30 { // Mailchimp is back: every run completes
			f = Freshness{Watermark: now.Add(-5 * time.Minute), FirstAttempt: start.Add(-time.Hour)}
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for w := range 2 {
			wg.Go(func() { errs[w] = p.Check(context.Background(), store, rec, "shop", f, now) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
	}
	if diff := cmp.Diff([]string{"lag ", "recovered lag"}, rec.kinds()); diff != "" {
		t.Errorf("alerts sent (-want +got):\n%s", diff)
	}
	if got := rec.got[0].Lag; got <= 3*time.Hour || got > 3*time.Hour+10*time.Minute {
		t.Errorf("alert fired at lag %v, want the first check past 3h", got)
	}
}

func TestCheckNotifierFailureDoesNotResend(t *testing.T) {
	p := LagPolicy{Threshold: time.Hour}
	store, rec := &memStore{}, &syncRecorder{err: errors.New("webhook down")}
	f := Freshness{Watermark: at.Add(-2 * time.Hour)}
	if err := p.Check(context.Background(), store, rec, "shop", f, at); err == nil || !errors.Is(err, rec.err) {
		t.Fatalf("Check = %v, want the notifier's error", err)
	}
	if err := p.Check(context.Background(), store, rec, "shop", f, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.got); n != 1 {
		t.Errorf("notifier called %d times, want 1", n)
	}
}

func TestCheckStoreErrorSendsNothing(t *testing.T) {
	store, rec := &memStore{err: errors.New("store down")}, &syncRecorder{}
	err := LagPolicy{Threshold: time.Hour}.Check(context.Background(), store, rec, "shop", Freshness{Watermark: at.Add(-2 * time.Hour)}, at)
	if !errors.Is(err, store.err) {
		t.Errorf("Check = %v, want the store's error", err)
	}
	if len(rec.got) != 0 {
		t.Errorf("sent %d alerts without recording them", len(rec.got))
	}
}

// Shutdown cancels ctx just as the store records an incident (memStore
// ignores ctx, as a write that had already committed): it must still be
// sent.
func TestCheckNotifiesAfterCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	store, rec := &memStore{}, &syncRecorder{}
	if err := (LagPolicy{Threshold: time.Hour}).Check(ctx, store, rec, "shop", Freshness{Watermark: at.Add(-2 * time.Hour)}, at); err != nil {
		t.Fatal(err)
	}
	if len(rec.ctxErr) != 1 || rec.ctxErr[0] != nil {
		t.Errorf("notifier saw context errors %v, want one live context", rec.ctxErr)
	}
}

func TestAfterRunPermanentErrorOncePerIncident(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	store, rec := &memStore{}, &syncRecorder{}
	keyRejected := fmt.Errorf("run: %w", mcErr(mailchimp.KindAuth, 401, "API Key Invalid"))
	transient := mcErr(mailchimp.KindServer, 503, "Service Unavailable")
	fresh := Freshness{Watermark: at.Add(-30 * time.Minute)}
	steps := []error{keyRejected, keyRejected, transient, keyRejected, nil, nil, context.Canceled, keyRejected}
	for i, runErr := range steps {
		now := at.Add(time.Duration(i) * 90 * time.Minute)
		fresh.Watermark = now.Add(-30 * time.Minute) // keep the lag policy quiet
		if err := p.AfterRun(context.Background(), store, rec, "shop", runErr, fresh, now); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	want := []string{"permanent_error ", "recovered permanent_error", "permanent_error "}
	if diff := cmp.Diff(want, rec.kinds()); diff != "" {
		t.Errorf("alerts sent (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.ErrorAt.IsZero() || a.Status != 401 || a.Error == "" {
		t.Errorf("permanent alert = %+v, want the run's error, status and time", a)
	}
	if got, want := rec.got[1].Subject, "chimport: shop is working again"; got != want {
		t.Errorf("recovery subject = %q, want %q", got, want)
	}
}

func TestTextThresholdAndErrorAt(t *testing.T) {
	a := Alert{Kind: KindLag, Connection: "shop", Lag: 3*time.Hour + 12*time.Minute, Threshold: 3 * time.Hour,
		Error: "mailchimp: 503", ErrorAt: at.Add(-20 * time.Minute), At: at}
	want := "Connection:    shop\nLag:           3h12m0s (threshold 3h)\nError:         mailchimp: 503\nError at:      2026-03-04T04:46:07Z\nTime:          2026-03-04T05:06:07Z\n"
	if diff := cmp.Diff(want, a.Text()); diff != "" {
		t.Errorf("Text (-want +got):\n%s", diff)
	}
}

// A worker that read "lagging" just before another worker's run completed
// and closed the incident must not reopen it: with Check it sends a second
// lag alert (and later a second recovery); CheckConfirmed re-reads the
// freshness after its flip and flips back quietly.
func TestCheckConfirmedStaleReadSendsNothing(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	now := at.Add(10 * time.Hour)
	lagging := Freshness{Watermark: now.Add(-5 * time.Hour)}
	fresh := Freshness{Watermark: now.Add(-time.Minute)}
	for _, confirmed := range []bool{false, true} {
		store, rec := &memStore{}, &syncRecorder{}
		// The incident is open and was alerted.
		if _, err := store.SetAlert(context.Background(), "shop", string(KindLag), true, now); err != nil {
			t.Fatal(err)
		}
		current := lagging
		read := func(context.Context) (Freshness, error) { return current, nil }
		staleRead := func() Freshness { return lagging } // what worker A saw a moment ago

		// Worker B's run completes: the connection is fresh; B recovers it.
		current = fresh
		if err := p.CheckConfirmed(context.Background(), store, rec, "shop", read, now); err != nil {
			t.Fatal(err)
		}
		// Worker A acts on its stale read.
		var err error
		if confirmed {
			calls := 0
			aRead := func(ctx context.Context) (Freshness, error) {
				calls++
				if calls == 1 {
					return staleRead(), nil
				}
				return read(ctx)
			}
			err = p.CheckConfirmed(context.Background(), store, rec, "shop", aRead, now)
		} else {
			err = p.Check(context.Background(), store, rec, "shop", staleRead(), now)
		}
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"recovered lag"}
		if !confirmed {
			want = append(want, "lag ") // the duplicate CheckConfirmed prevents
		}
		if diff := cmp.Diff(want, rec.kinds()); diff != "" {
			t.Errorf("confirmed=%v: alerts sent (-want +got):\n%s", confirmed, diff)
		}
	}
}

// interleavingStore is a memStore that runs between once, right after the
// first flip it makes: another worker's check landing in that gap.
type interleavingStore struct {
	memStore
	between func()
}

func (s *interleavingStore) SetAlert(ctx context.Context, conn, kind string, open bool, at time.Time) (bool, error) {
	changed, err := s.memStore.SetAlert(ctx, conn, kind, open, at)
	if changed && s.between != nil {
		f := s.between
		s.between = nil
		f()
	}
	return changed, err
}

// A beat acting on a read of every connection taken before another
// worker's run closed the incident must not reopen it even for a moment: a
// third check landing between that reopening and its confirming read would
// close the incident again and send a second recovery notice.
func TestCheckConfirmedStaleBeatReopensNothing(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	now := at.Add(10 * time.Hour)
	lagging := Freshness{Watermark: now.Add(-5 * time.Hour)}
	fresh := Freshness{Watermark: now.Add(-time.Minute)}
	ctx := context.Background()
	store, rec := &interleavingStore{}, &syncRecorder{}
	if _, err := store.SetAlert(ctx, "shop", string(KindLag), true, now); err != nil {
		t.Fatal(err)
	}
	read := func(context.Context) (Freshness, error) { return fresh, nil }
	// Worker B's run has completed: B recovers the connection.
	if err := p.CheckConfirmed(ctx, store, rec, "shop", read, now); err != nil {
		t.Fatal(err)
	}
	// Worker C checks whenever a flip happens next.
	store.between = func() {
		if err := p.CheckConfirmed(ctx, store, rec, "shop", read, now); err != nil {
			t.Error(err)
		}
	}
	// Worker A's beat read every connection before B's run completed.
	stale := state.ConnectionState{Connection: "shop", Watermark: lagging.Watermark}
	if err := p.CheckConfirmed(ctx, store, rec, "shop", ReadFreshness(freshReader{fresh}, "shop", stale), now); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"recovered lag"}, rec.kinds()); diff != "" {
		t.Errorf("alerts sent (-want +got):\n%s", diff)
	}
}

// freshReader is a StateReader whose every read finds f's watermark.
type freshReader struct{ f Freshness }

func (r freshReader) Connection(_ context.Context, name string) (state.ConnectionState, error) {
	return state.ConnectionState{Connection: name, Watermark: r.f.Watermark}, nil
}
