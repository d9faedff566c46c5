package alert

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
)

func TestFreshnessOf(t *testing.T) {
	for _, tt := range []struct {
		name string
		st   state.ConnectionState
		want Freshness
	}{
		{"never ran", state.ConnectionState{}, Freshness{}},
		{"completed", state.ConnectionState{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour), LastAttempt: at.Add(-time.Hour)},
			Freshness{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour)}},
		// The error is dated by the store's LastErrorAt: a failed run's
		// end, or a retry a run under way noted.
		{"failing", state.ConnectionState{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour), LastAttempt: at.Add(-time.Minute),
			LastError: "target: 503", LastErrorAt: at.Add(-20 * time.Second)},
			Freshness{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour), LastError: "target: 503", LastErrorAt: at.Add(-20 * time.Second)}},
		// State a release before LastErrorAt wrote: dated by the attempt
		// that failed.
		{"failing, older state", state.ConnectionState{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour), LastAttempt: at.Add(-time.Minute), LastError: "target: 503"},
			Freshness{Watermark: at.Add(-time.Hour), FirstAttempt: at.Add(-48 * time.Hour), LastError: "target: 503", LastErrorAt: at.Add(-time.Minute)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, FreshnessOf(tt.st)); diff != "" {
				t.Errorf("FreshnessOf (-want +got):\n%s", diff)
			}
		})
	}
}

// stateStore is memStore with each connection's state, as state.Store
// keeps both.
type stateStore struct {
	memStore
	states map[string]state.ConnectionState
	reads  int
}

func (s *stateStore) Connection(_ context.Context, name string) (state.ConnectionState, error) {
	s.memStore.mu.Lock()
	defer s.memStore.mu.Unlock()
	s.reads++
	return s.states[name], nil
}

var _ Store = (*stateStore)(nil)

// ReadFreshness answers its first read from the state the caller holds,
// and reads the store for every later one.
func TestReadFreshness(t *testing.T) {
	held := state.ConnectionState{Watermark: at.Add(-5 * time.Hour)}
	store := &stateStore{states: map[string]state.ConnectionState{"shop": {Watermark: at.Add(-time.Minute)}}}
	read := ReadFreshness(store, "shop", held)
	first, _ := read(context.Background())
	again, _ := read(context.Background())
	if first.Watermark != held.Watermark || again.Watermark != at.Add(-time.Minute) || store.reads != 1 {
		t.Errorf("reads = %v, %v with %d store reads; want the held state, then the store's, in 1 read", first.Watermark, again.Watermark, store.reads)
	}
}

// CheckStore is the lag step of `chimport run`: it reads the connection's
// freshness from the store, alerts once past the threshold and sends one
// recovery, however often it is called, and by however many processes.
func TestCheckStoreOneAlertOneRecovery(t *testing.T) {
	p := LagPolicy{Threshold: 4 * time.Second}
	first := at
	store := &stateStore{states: map[string]state.ConnectionState{}}
	rec := &syncRecorder{}
	check := func(now time.Time) {
		t.Helper()
		// Two processes check at each step: a run and a serve beat.
		for range 2 {
			if err := p.CheckStore(context.Background(), store, rec, "shop", now); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 4 { // failing runs, 2 s apart
		now := first.Add(time.Duration(i) * 2 * time.Second)
		store.mu.Lock()
		store.states["shop"] = state.ConnectionState{FirstAttempt: first, LastAttempt: now, LastError: "target: 503"}
		store.mu.Unlock()
		check(now)
	}
	recovered := first.Add(8 * time.Second)
	store.mu.Lock()
	store.states["shop"] = state.ConnectionState{FirstAttempt: first, Watermark: recovered, LastAttempt: recovered}
	store.mu.Unlock()
	check(recovered)
	check(recovered.Add(time.Second))
	if diff := cmp.Diff([]string{"lag ", "recovered lag"}, rec.kinds()); diff != "" {
		t.Fatalf("alerts (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.Lag != 6*time.Second || !a.LagKnown || a.ErrorAt != first.Add(6*time.Second) || a.Error != "target: 503" {
		t.Errorf("lag alert = %+v, want lag 6s and the last error with its time", a)
	}
}

// A permanent-error alert quotes what the policy knows: the connection's
// lag, the threshold and when the error happened.
func TestPermanentAlertQuotesLag(t *testing.T) {
	p := LagPolicy{Threshold: 3 * time.Hour}
	keyRejected := fmt.Errorf("run: %w", mcErr(mailchimp.KindAuth, 401, "API Key Invalid"))
	f := Freshness{Watermark: at.Add(-2 * time.Hour), LastError: keyRejected.Error(), LastErrorAt: at.Add(-time.Minute)}

	a, ok := p.PermanentAlert("shop", keyRejected, &f, at)
	if !ok || a.Kind != KindPermanentError || a.Lag != 2*time.Hour || !a.LagKnown || a.Threshold != 3*time.Hour || !a.ErrorAt.Equal(at) {
		t.Errorf("PermanentAlert = %+v, %v; want lag 2h (known), threshold 3h, error at %s", a, ok, at)
	}
	if a, _ := p.PermanentAlert("shop", keyRejected, nil, at); a.LagKnown || a.Lag != 0 {
		t.Errorf("without freshness: lag %s known %v, want unknown", a.Lag, a.LagKnown)
	}
	if _, ok := p.PermanentAlert("shop", errors.New("timeout"), &f, at); ok {
		t.Error("a transient error needs a person")
	}

	// AfterRunConfirmed reads the freshness once for both steps.
	store, rec := &memStore{}, &syncRecorder{}
	reads := 0
	read := func(context.Context) (Freshness, error) { reads++; return f, nil }
	if err := p.AfterRunConfirmed(context.Background(), store, rec, "shop", keyRejected, read, at); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 1 || rec.got[0].Lag != 2*time.Hour || !rec.got[0].LagKnown || reads != 1 {
		t.Errorf("AfterRunConfirmed sent %+v after %d reads; want one permanent alert quoting the 2h lag, 1 read", rec.got, reads)
	}
	// The recovery that closes the incident quotes the lag too.
	f = Freshness{Watermark: at.Add(-time.Second)}
	if err := p.AfterRunConfirmed(context.Background(), store, rec, "shop", nil, read, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(rec.got) != 2 || rec.got[1].Resolves != KindPermanentError || rec.got[1].Lag != time.Minute+time.Second || !rec.got[1].LagKnown || rec.got[1].Threshold != 3*time.Hour {
		t.Errorf("recovery = %+v, want one quoting the 1m1s lag and the threshold", rec.got[len(rec.got)-1])
	}
}
