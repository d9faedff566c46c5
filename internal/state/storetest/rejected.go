package storetest

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// refused is an entry as RecordRejections is given it: what a run knows
// of one refusal. FirstSeen and Attempts are left for the store to fill.
func refused(id state.MemberID, key string, status int, reason string, last time.Time) state.Rejection {
	return state.Rejection{Member: id, Key: key, Status: status, Reason: reason, LastAttempt: last}
}

// entry is what the log holds for a member: refusal r, first seen at
// first, after attempts refusals.
func entry(r state.Rejection, first time.Time, attempts int) state.Rejection {
	r.FirstSeen, r.Attempts = first, attempts
	return r
}

func record(t *testing.T, s state.Store, name string, rs ...state.Rejection) {
	t.Helper()
	ok(t, s.RecordRejections(context.Background(), name, rs))
}

func clearLog(t *testing.T, s state.Store, name string, ids ...state.MemberID) {
	t.Helper()
	ok(t, s.ClearRejections(context.Background(), name, ids))
}

func checkLog(t *testing.T, s state.Store, name string, want ...state.Rejection) {
	t.Helper()
	got, err := s.RejectedLog(context.Background(), name)
	ok(t, err)
	diff(t, "rejected log of "+name, want, got)
}

// summary is the RejectedState of a log holding entries, with sample the
// one refused last.
func summary(sample *state.Rejection, entries int) state.RejectedState {
	return state.RejectedState{Count: int64(entries), Sample: sample}
}

// testRejectedNewThenRepeat: a new member's entry is stored as given,
// except FirstSeen = LastAttempt and Attempts = 1 (whatever the caller
// put there); a repeat keeps FirstSeen, counts the attempt and replaces
// the rest, empty strings included.
func testRejectedNewThenRepeat(t *testing.T, s state.Store) {
	a := member("ann@example.com")
	first := refused(a, "ann@example.com", 422, `{"error":"bad phone"}`, at(time.Minute))
	given := first
	given.FirstSeen, given.Attempts = at(-time.Hour), 7
	record(t, s, "news", given)
	checkLog(t, s, "news", entry(first, at(time.Minute), 1))
	want := state.ConnectionState{Connection: "news",
		Rejected: summary(ptr(entry(first, at(time.Minute), 1)), 1)}
	diff(t, "a write makes the connection known", want, connection(t, s, "news"))

	again := refused(a, "A-1", 400, `{"error":"bad zip"}`, at(time.Hour))
	record(t, s, "news", again)
	checkLog(t, s, "news", entry(again, at(time.Minute), 2))

	blank := refused(a, "", 413, "", at(2*time.Hour))
	record(t, s, "news", blank)
	checkLog(t, s, "news", entry(blank, at(time.Minute), 3))
	diff(t, "Rejected after three refusals", summary(ptr(entry(blank, at(time.Minute), 3)), 1),
		connection(t, s, "news").Rejected)
}

func ptr[T any](v T) *T { return &v }

// testRejectedDuplicatesInOneCall: a member twice in one call counts once,
// with its last entry; other members of the call are kept.
func testRejectedDuplicatesInOneCall(t *testing.T, s state.Store) {
	a, b := member("ann@example.com"), member("bob@example.com")
	a1 := refused(a, "ann", 422, "first", at(0))
	b1 := refused(b, "bob", 422, "bob", at(0))
	a2 := refused(a, "ann", 400, "second", at(time.Second))
	record(t, s, "news", a1, b1, a2)
	checkLog(t, s, "news", sortedEntries(entry(a2, at(time.Second), 1), entry(b1, at(0), 1))...)

	a3 := refused(a, "ann", 422, "third", at(time.Minute))
	a4 := refused(a, "ann", 422, "fourth", at(time.Minute))
	record(t, s, "news", a3, a4)
	checkLog(t, s, "news", sortedEntries(entry(a4, at(time.Second), 2), entry(b1, at(0), 1))...)
	diff(t, "Count", int64(2), connection(t, s, "news").Rejected.Count)
}

func sortedEntries(rs ...state.Rejection) []state.Rejection {
	slices.SortFunc(rs, func(a, b state.Rejection) int { return compareIDs(a.Member, b.Member) })
	return rs
}

// testRejectedClear: cleared members leave the log; ids not in it, and
// connections without one, are ignored; an emptied log reads as none.
func testRejectedClear(t *testing.T, s state.Store) {
	a, b, c := member("ann@example.com"), member("bob@example.com"), member("cy@example.com")
	ra, rb, rc := refused(a, "a", 422, "x", at(0)), refused(b, "b", 422, "y", at(time.Second)), refused(c, "c", 400, "z", at(0))
	record(t, s, "news", ra, rb, rc)

	clearLog(t, s, "news", b, member("zed@example.com"))
	checkLog(t, s, "news", sortedEntries(entry(ra, at(0), 1), entry(rc, at(0), 1))...)
	clearLog(t, s, "news")
	clearLog(t, s, "news", b)
	checkLog(t, s, "news", sortedEntries(entry(ra, at(0), 1), entry(rc, at(0), 1))...)

	clearLog(t, s, "news", c, a)
	checkLog(t, s, "news")
	diff(t, "Rejected of an emptied log", state.RejectedState{}, connection(t, s, "news").Rejected)

	// A cleared member that is refused again starts over.
	again := refused(b, "b", 422, "again", at(time.Hour))
	record(t, s, "news", again)
	checkLog(t, s, "news", entry(again, at(time.Hour), 1))

	clearLog(t, s, "other", a)
	checkLog(t, s, "other")
	diff(t, "Rejected of a connection never refused", state.RejectedState{}, connection(t, s, "other").Rejected)
}

// testRejectedSortedByBytes: the log comes back in ascending byte order
// of the member ids, however it was written.
func testRejectedSortedByBytes(t *testing.T, s state.Store) {
	ids := []state.MemberID{idFF, id80, idNUL, id7f, idOne, idZero}
	var want []state.Rejection
	for i, id := range ids {
		r := refused(id, id.String(), 422, "x", at(time.Duration(i)*time.Second))
		record(t, s, "news", r)
		want = append(want, entry(r, r.LastAttempt, 1))
	}
	checkLog(t, s, "news", sortedEntries(want...)...)
}

// testRejectedPerConnection: each connection has a log of its own, even
// for the same member.
func testRejectedPerConnection(t *testing.T, s state.Store) {
	a, b := member("ann@example.com"), member("bob@example.com")
	news := refused(a, "news-key", 422, "news", at(0))
	other := refused(a, "other-key", 400, "other", at(time.Hour))
	otherB := refused(b, "b", 400, "other b", at(time.Minute))
	record(t, s, "news", news)
	record(t, s, "other", other, otherB)
	record(t, s, "news", news)
	checkLog(t, s, "news", entry(news, at(0), 2))
	checkLog(t, s, "other", sortedEntries(entry(other, at(time.Hour), 1), entry(otherB, at(time.Minute), 1))...)

	clearLog(t, s, "other", a)
	checkLog(t, s, "news", entry(news, at(0), 2))
	checkLog(t, s, "other", entry(otherB, at(time.Minute), 1))
	checkLog(t, s, "never")
	diff(t, "news", summary(ptr(entry(news, at(0), 2)), 1), connection(t, s, "news").Rejected)
	diff(t, "other", summary(ptr(entry(otherB, at(time.Minute), 1)), 1), connection(t, s, "other").Rejected)
}

// testRejectedInConnectionState: Connection and Connections both say how
// many entries the log holds, and show the one refused last (of those
// refused at the same instant, the smallest id), as it is in the log.
func testRejectedInConnectionState(t *testing.T, s state.Store) {
	ctx := context.Background()
	ok(t, s.StartRun(ctx, "news", at(0)))
	ra := refused(id80, "a", 422, "a", at(time.Minute))
	rb := refused(id7f, "b", 400, "b", at(2*time.Minute))
	rc := refused(idFF, "c", 422, "c", at(30*time.Second))
	record(t, s, "news", ra, rb, rc)
	record(t, s, "quiet")
	check := func(step string, want state.RejectedState) {
		t.Helper()
		diff(t, step+": Connection", want, connection(t, s, "news").Rejected)
		all, err := s.Connections(ctx)
		ok(t, err)
		got := map[string]state.RejectedState{}
		for _, c := range all {
			got[c.Connection] = c.Rejected
		}
		diff(t, step+": Connections", map[string]state.RejectedState{"news": want, "quiet": {}}, got)
	}
	check("latest refusal", summary(ptr(entry(rb, at(2*time.Minute), 1)), 3))

	// rb's member refused again, at an older instant: it is no longer
	// the latest refusal, and the log still counts it once.
	rb2 := refused(id7f, "b", 413, "b2", at(10*time.Second))
	record(t, s, "news", rb2)
	check("sample refused again earlier", summary(ptr(entry(ra, at(time.Minute), 1)), 3))

	// A tie at the latest instant goes to the smallest id: id7f < id80.
	rb3 := refused(id7f, "b", 422, "b3", at(time.Minute))
	record(t, s, "news", rb3)
	check("a tie", summary(ptr(entry(rb3, at(2*time.Minute), 3)), 3))

	clearLog(t, s, "news", id7f)
	check("sample cleared", summary(ptr(entry(ra, at(time.Minute), 1)), 2))
	clearLog(t, s, "news", id80, idFF)
	check("all cleared", state.RejectedState{})

	// The rest of the connection's state is untouched by the log.
	want := state.ConnectionState{Connection: "news", FirstAttempt: at(0), LastAttempt: at(0)}
	diff(t, "news after its log emptied", want, connection(t, s, "news"))
}

// testRejectedTimesRoundTrip: the log's times, given in any zone, come
// back as the same instants in UTC, in the log and in the sample.
func testRejectedTimesRoundTrip(t *testing.T, s state.Store) {
	zone := time.FixedZone("UTC+5:30", 5*60*60+30*60)
	apollo := time.Date(1969, 7, 20, 20, 17, 40, 987654321, zone)
	later := at(time.Nanosecond).In(zone)
	a := member("ann@example.com")
	record(t, s, "news", refused(a, "a", 422, "x", apollo))
	record(t, s, "news", refused(a, "a", 422, "x", later))
	check := func(what string, want, got time.Time) {
		t.Helper()
		if !got.Equal(want) {
			t.Errorf("%s = %s, want %s", what, got.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339Nano))
		}
		if got.Location() != time.UTC {
			t.Errorf("%s is in %s, want UTC", what, got.Location())
		}
	}
	log, err := s.RejectedLog(context.Background(), "news")
	ok(t, err)
	if len(log) != 1 {
		t.Fatalf("log has %d entries, want 1", len(log))
	}
	check("FirstSeen", apollo, log[0].FirstSeen)
	check("LastAttempt", later, log[0].LastAttempt)
	sample := connection(t, s, "news").Rejected.Sample
	if sample == nil {
		t.Fatal("no sample")
	}
	check("Sample.FirstSeen", apollo, sample.FirstSeen)
	check("Sample.LastAttempt", later, sample.LastAttempt)
}

// testRejectedRejectsBadInput: a call with one bad entry writes none of
// its entries, and makes no connection known.
func testRejectedRejectsBadInput(t *testing.T, s state.Store) {
	ctx := context.Background()
	a, b := member("ann@example.com"), member("bob@example.com")
	good := refused(a, "a", 422, strings.Repeat("é", state.MaxRejectionReason/2), at(0))
	record(t, s, "news", good)
	before := connection(t, s, "news")

	with := func(change func(r *state.Rejection)) []state.Rejection {
		bad := refused(b, "b", 400, "x", at(time.Hour))
		change(&bad)
		return []state.Rejection{refused(a, "a", 400, "new", at(time.Hour)), bad}
	}
	tests := []struct {
		name string
		conn string
		rs   []state.Rejection
	}{
		{"no connection", "", with(func(*state.Rejection) {})},
		{"status 0", "news", with(func(r *state.Rejection) { r.Status = 0 })},
		{"status 99", "news", with(func(r *state.Rejection) { r.Status = 99 })},
		{"status 600", "news", with(func(r *state.Rejection) { r.Status = 600 })},
		{"a reason past the limit", "news", with(func(r *state.Rejection) {
			r.Reason = strings.Repeat("x", state.MaxRejectionReason+1)
		})},
		{"a reason cut inside a rune", "news", with(func(r *state.Rejection) { r.Reason = "caf\xc3" })},
		{"a key that is not UTF-8", "news", with(func(r *state.Rejection) { r.Key = "\xff" })},
		{"no time", "news", with(func(r *state.Rejection) { r.LastAttempt = time.Time{} })},
		{"a time past 2262", "news", with(func(r *state.Rejection) { r.LastAttempt = time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"status 0 for a new connection", "fresh", with(func(r *state.Rejection) { r.Status = 0 })},
	}
	for _, tt := range tests {
		if err := s.RecordRejections(ctx, tt.conn, tt.rs); err == nil {
			t.Errorf("RecordRejections with %s: no error", tt.name)
		}
	}
	if err := s.ClearRejections(ctx, "", []state.MemberID{a}); err == nil {
		t.Error("ClearRejections with no connection: no error")
	}
	checkLog(t, s, "news", entry(good, at(0), 1))
	checkLog(t, s, "fresh")
	diff(t, "news after refused writes", before, connection(t, s, "news"))
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections after refused writes", []state.ConnectionState{before}, all)
}

func testRejectedCancelledContext(t *testing.T, s state.Store) {
	a, b := member("ann@example.com"), member("bob@example.com")
	record(t, s, "news", refused(a, "a", 422, "x", at(0)))
	before := connection(t, s, "news")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"RecordRejections": func() error {
			return s.RecordRejections(ctx, "news", []state.Rejection{refused(b, "b", 422, "y", at(time.Hour))})
		},
		"RecordRejections of a new connection": func() error {
			return s.RecordRejections(ctx, "fresh", []state.Rejection{refused(b, "b", 422, "y", at(time.Hour))})
		},
		"ClearRejections": func() error { return s.ClearRejections(ctx, "news", []state.MemberID{a}) },
		"RejectedLog":     func() error { _, err := s.RejectedLog(ctx, "news"); return err },
		"NoteError":       func() error { return s.NoteError(ctx, "news", "target: 503", at(time.Hour)) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", name, err)
		}
	}
	diff(t, "state after cancelled writes", before, connection(t, s, "news"))
	checkLog(t, s, "news", entry(refused(a, "a", 422, "x", at(0)), at(0), 1))
	checkLog(t, s, "fresh")
}

// testRejectedBesideRuns: the log is none of the run history, the
// failures log or the roster, whatever a store keeps it next to.
func testRejectedBesideRuns(t *testing.T, s state.Store) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(21, 22))
	var rs []state.Rejection
	for i, id := range randomIDs(r, 60) {
		rs = append(rs, refused(id, "k", 422, "x", at(time.Duration(i)*time.Second)))
	}
	record(t, s, "news", rs[:30]...)
	var ends []time.Time
	for i := range 3 {
		end := at(time.Duration(i+1) * time.Hour)
		ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK, WindowEnd: end, Finished: end}))
		ends = append([]time.Time{end}, ends...)
	}
	record(t, s, "news", rs[30:]...)
	runs, err := s.Runs(ctx, "news", 100)
	ok(t, err)
	var got []time.Time
	for _, run := range runs {
		got = append(got, run.WindowEnd)
	}
	diff(t, "window ends of the runs", ends, got)
	failures, err := s.Failures(ctx, "news")
	ok(t, err)
	diff(t, "failures", []state.Failure(nil), failures)
	checkRoster(t, s, "news", nil)
	diff(t, "RosterState", state.RosterState{}, connection(t, s, "news").Roster)
	log, err := s.RejectedLog(ctx, "news")
	ok(t, err)
	diff(t, "entries in the log", 60, len(log))
}
