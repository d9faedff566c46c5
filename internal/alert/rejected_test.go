package alert

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

// countingStore counts the alert writes, to show that a check whose
// incident already agrees with the log writes nothing.
type countingStore struct {
	*memory.Store
	sets int
}

func (s *countingStore) SetAlert(ctx context.Context, name, kind string, open bool, at time.Time) (bool, error) {
	s.sets++
	return s.Store.SetAlert(ctx, name, kind, open, at)
}

func refusal(id byte, status int, reason string, at time.Time) state.Rejection {
	return state.Rejection{Member: state.MemberID{id}, Key: "k", Status: status, Reason: reason, LastAttempt: at}
}

// The log going from empty to holding records pages once, with the count
// and one record; more refusals, and checks after every run, stay quiet;
// the log emptied sends one recovery notice.
func TestCheckRejectedOnceAndRecovers(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{Store: memory.New()}
	rec := &syncRecorder{}
	now := at
	check := func() {
		t.Helper()
		st, err := store.Connection(ctx, "shop")
		must(t, err)
		must(t, CheckRejected(ctx, store, rec, "shop", st, now))
	}

	check() // never refused anything
	if len(rec.got) != 0 || store.sets != 0 {
		t.Fatalf("an empty log: %d alerts, %d alert writes; want none", len(rec.got), store.sets)
	}

	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{
		refusal(1, 422, `{"error":"email is invalid"}`, now),
		refusal(2, 400, "bad\nrecord", now.Add(time.Second)),
	}))
	now = now.Add(time.Minute)
	check()
	check()
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{refusal(3, 422, "x", now)}))
	now = now.Add(time.Hour)
	check()
	must(t, store.ClearRejections(ctx, "shop", []state.MemberID{{1}, {2}}))
	check() // one left
	must(t, store.ClearRejections(ctx, "shop", []state.MemberID{{3}}))
	now = now.Add(time.Hour)
	check()
	check()

	var kinds []string
	for _, a := range rec.got {
		kinds = append(kinds, strings.TrimSpace(string(a.Kind)+" "+string(a.Resolves)))
	}
	if diff := cmp.Diff([]string{"rejected", "recovered rejected"}, kinds); diff != "" {
		t.Fatalf("alerts (-want +got):\n%s", diff)
	}
	// Two flips, two writes: the checks in between wrote nothing.
	if store.sets != 2 {
		t.Errorf("%d alert writes, want 2 (one per flip)", store.sets)
	}
	// The sample is the most recently refused record.
	want := Alert{
		Kind: KindRejected, Connection: "shop",
		Subject: "chimport: shop needs attention: the target refused 2 records (HTTP 400)",
		Problem: "The target refused 2 records. They wait in the rejected log and every run retries them; the rest of the audience keeps syncing.",
		Status:  400,
		Action: "Find out why the target refuses them (chimport rejected --connection shop lists them, with the target's answers): " +
			"fix the members in Mailchimp, or the mapping or the target. The next run retries them; a notice follows when none is left.",
		Rejected: 2,
		Sample:   &RejectedRecord{MemberID: "02000000000000000000000000000000", Status: 400, Reason: `bad\nrecord`},
		At:       at.Add(time.Minute),
	}
	if diff := cmp.Diff(want, rec.got[0]); diff != "" {
		t.Errorf("rejected alert (-want +got):\n%s", diff)
	}
	if got := rec.got[1]; got.Subject != "chimport: shop has no rejected records left" || !got.At.Equal(at.Add(2*time.Hour+time.Minute)) {
		t.Errorf("recovery = %+v", got)
	}
	text := rec.got[0].Text()
	for _, want := range []string{"Connection:    shop", "Rejected:      2 records", "Member:        02000000000000000000000000000000",
		`Target said:   bad\nrecord`, "HTTP status:   400 Bad Request"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert text lacks %q:\n%s", want, text)
		}
	}
}

// A check on state read before another worker's run emptied the log opens
// the incident, reads the state again, sees the log empty and closes it
// without a word.
func TestCheckRejectedTakesBackAStaleFlip(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	rec := &syncRecorder{}
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{refusal(1, 422, "no", at)}))
	stale, err := store.Connection(ctx, "shop")
	must(t, err)
	must(t, store.ClearRejections(ctx, "shop", []state.MemberID{{1}}))

	must(t, CheckRejected(ctx, store, rec, "shop", stale, at))
	st, err := store.Connection(ctx, "shop")
	must(t, err)
	if _, open := st.Alerts[string(KindRejected)]; open || len(rec.got) != 0 {
		t.Errorf("after a stale check: incident open %v, %d alerts; want closed and none", open, len(rec.got))
	}
}

// Two workers checking the same state send one alert between them.
func TestCheckRejectedTwoWorkersOneAlert(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	rec := &syncRecorder{}
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{refusal(1, 422, "no", at)}))
	st, err := store.Connection(ctx, "shop")
	must(t, err)
	done := make(chan error, 2)
	for range 2 {
		go func() { done <- CheckRejected(ctx, store, rec, "shop", st, at) }()
	}
	must(t, <-done)
	must(t, <-done)
	if len(rec.got) != 1 {
		t.Errorf("%d alerts from two workers, want 1", len(rec.got))
	}
}

// While an error that needs a person is open, the records it left in the
// log wait: one cause pages once. The incident opens after the error.
func TestCheckRejectedWaitsWhileAPermanentErrorIsOpen(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	rec := &syncRecorder{}
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{refusal(1, 422, "bad", at)}))
	if _, err := store.SetAlert(ctx, "shop", string(KindPermanentError), true, at); err != nil {
		t.Fatal(err)
	}
	st, err := store.Connection(ctx, "shop")
	must(t, err)
	must(t, CheckRejected(ctx, store, rec, "shop", st, at))
	if len(rec.got) != 0 {
		t.Fatalf("with a permanent error open: %d alerts, want none", len(rec.got))
	}
	if _, err := store.SetAlert(ctx, "shop", string(KindPermanentError), false, at); err != nil {
		t.Fatal(err)
	}
	st, err = store.Connection(ctx, "shop")
	must(t, err)
	must(t, CheckRejected(ctx, store, rec, "shop", st, at))
	if len(rec.got) != 1 || rec.got[0].Kind != KindRejected {
		t.Fatalf("after the error: %+v, want one rejected alert", rec.got)
	}
}

func TestRecordOf(t *testing.T) {
	if RecordOf(nil) != nil {
		t.Error("RecordOf(nil) is not nil")
	}
	r := RecordOf(&state.Rejection{Member: state.MemberID{0xab}, Key: "a@example.com", Status: 422, Reason: "bad\r\nemail", LastAttempt: at})
	if got, want := r.String(), `member ab000000000000000000000000000000: HTTP 422: bad\r\nemail`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := (RejectedRecord{MemberID: "01", Status: 400}).String(), "member 01: HTTP 400"; got != want {
		t.Errorf("without a reason: %q, want %q", got, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
