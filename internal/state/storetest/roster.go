package storetest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// member is the id Mailchimp gives the member with this address: the MD5
// of the address in lower case.
func member(email string) state.MemberID { return md5.Sum([]byte(email)) }

func mustID(hex string) state.MemberID {
	id, err := state.ParseMemberID(hex)
	if err != nil {
		panic(err)
	}
	return id
}

// Ids at the edges of byte order. A store that compares bytes as signed
// puts id80 before id7f; one that keeps ids as base64 text puts idFF
// before idZero; one that keeps them as C strings loses idNUL's tail.
var (
	idZero = mustID("00000000000000000000000000000000")
	idOne  = mustID("00000000000000000000000000000001")
	id7f   = mustID("7fffffffffffffffffffffffffffffff")
	id80   = mustID("80000000000000000000000000000000")
	idFF   = mustID("ffffffffffffffffffffffffffffffff")
	idNUL  = mustID("61006200630064006500660067006800")
)

func compareIDs(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) }

// randomIDs draws n distinct ids from r; a seeded r makes a failure
// reproduce.
func randomIDs(r *rand.Rand, n int) []state.MemberID {
	seen := make(map[state.MemberID]bool, n)
	out := make([]state.MemberID, 0, n)
	for len(out) < n {
		var id state.MemberID
		binary.BigEndian.PutUint64(id[:8], r.Uint64())
		binary.BigEndian.PutUint64(id[8:], r.Uint64())
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// sorted returns the ids of set in ascending byte order.
func sorted(set map[state.MemberID]bool) []state.MemberID {
	out := make([]state.MemberID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.SortFunc(out, compareIDs)
	return out
}

func hexIDs(ids []state.MemberID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// checkRoster reads the connection's roster and checks it is want (sorted
// ascending), each id once, and that RosterSize agrees.
func checkRoster(t *testing.T, s state.Store, name string, want []state.MemberID) {
	t.Helper()
	ctx := context.Background()
	got, err := s.Roster(ctx, name)
	ok(t, err)
	for i := 1; i < len(got); i++ {
		if compareIDs(got[i-1], got[i]) >= 0 {
			t.Errorf("roster of %s: %s at %d comes after %s: not ascending, or not each once",
				name, got[i], i, got[i-1])
			break
		}
	}
	switch {
	case len(want) <= 50:
		diff(t, "roster of "+name, hexIDs(want), hexIDs(got))
	case len(got) != len(want):
		t.Errorf("roster of %s has %d ids, want %d", name, len(got), len(want))
	default: // a diff of thousands of ids says less than the first that differs
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("roster of %s: id %d is %s, want %s", name, i, got[i], want[i])
				break
			}
		}
	}
	n, err := s.RosterSize(ctx, name)
	ok(t, err)
	if n != int64(len(want)) {
		t.Errorf("RosterSize(%s) = %d, want %d", name, n, len(want))
	}
}

func update(t *testing.T, s state.Store, name string, c state.RosterChange) {
	t.Helper()
	ok(t, s.UpdateRoster(context.Background(), name, c))
}

func testRosterUnknownConnection(t *testing.T, s state.Store) {
	diff(t, "RosterState", state.RosterState{}, connection(t, s, "never").Roster)
	checkRoster(t, s, "never", nil)
	// Asking for a roster, or its size, does not make a connection known.
	diff(t, "Connection after RosterSize", state.ConnectionState{Connection: "never"}, connection(t, s, "never"))
	all, err := s.Connections(context.Background())
	ok(t, err)
	diff(t, "Connections", []state.ConnectionState(nil), all)
}

func testRosterEmptyChangeMarksKept(t *testing.T, s state.Store) {
	ctx := context.Background()
	// A connection that is new to the store...
	update(t, s, "fresh", state.RosterChange{})
	diff(t, "new connection", state.ConnectionState{Connection: "fresh", Roster: state.RosterState{Kept: true}},
		connection(t, s, "fresh"))
	checkRoster(t, s, "fresh", nil)

	// ...and one the store knows, from a release without rosters or a run
	// that did not keep one: the rest of its state stays.
	ok(t, s.StartRun(ctx, "news", at(0)))
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(time.Hour), Read: 3, Delivered: 2}))
	before := connection(t, s, "news")
	diff(t, "roster before the first write", state.RosterState{}, before.Roster)
	update(t, s, "news", state.RosterChange{})
	want := before
	want.Roster = state.RosterState{Kept: true}
	diff(t, "after an empty change", want, connection(t, s, "news"))
	update(t, s, "news", state.RosterChange{})
	diff(t, "after a second empty change", want, connection(t, s, "news"))
	checkRoster(t, s, "news", nil)
}

// testRosterAddRemove: adding an id that is there and removing one that is
// not change nothing, so a change applied twice (a retry) ends the same;
// RosterSize counts distinct ids; Left grows by len(Remove) all the same,
// as RosterChange says.
func testRosterAddRemove(t *testing.T, s state.Store) {
	a, b, c, d := member("ann@example.com"), member("bob@example.com"), member("cy@example.com"), member("dee@example.com")
	ids := func(ids ...state.MemberID) []state.MemberID {
		slices.SortFunc(ids, compareIDs)
		return ids
	}
	steps := []struct {
		name   string
		change state.RosterChange
		want   []state.MemberID
		left   int64
	}{
		{"first adds", state.RosterChange{Add: []state.MemberID{a, b, c}}, ids(a, b, c), 0},
		{"the same adds again", state.RosterChange{Add: []state.MemberID{c, b, a}}, ids(a, b, c), 0},
		{"an id twice in one change", state.RosterChange{Add: []state.MemberID{d, b, d}}, ids(a, b, c, d), 0},
		{"remove one", state.RosterChange{Remove: []state.MemberID{b}}, ids(a, c, d), 1},
		{"remove it again", state.RosterChange{Remove: []state.MemberID{b}}, ids(a, c, d), 2},
		{"remove one never added", state.RosterChange{Remove: []state.MemberID{member("zed@example.com")}}, ids(a, c, d), 3},
		{"re-add a removed one", state.RosterChange{Add: []state.MemberID{b}}, ids(a, b, c, d), 3},
		{"adds and removes of different ids", state.RosterChange{Add: []state.MemberID{idOne},
			Remove: []state.MemberID{a, c}}, ids(b, d, idOne), 5},
		{"remove the rest", state.RosterChange{Remove: []state.MemberID{b, d, idOne}}, nil, 8},
		{"add after emptying", state.RosterChange{Add: []state.MemberID{c}}, ids(c), 8},
	}
	for _, step := range steps {
		update(t, s, "news", step.change)
		checkRoster(t, s, "news", step.want)
		got := connection(t, s, "news").Roster
		diff(t, step.name+": RosterState", state.RosterState{Kept: true, Members: int64(len(step.want)), Left: step.left}, got)
		if t.Failed() {
			t.Fatalf("failed at step %q", step.name)
		}
	}
}

func testRosterSortedByBytes(t *testing.T, s state.Store) {
	// Added in descending order, over three changes.
	want := []state.MemberID{idZero, idOne, idNUL, id7f, id80, idFF}
	desc := slices.Clone(want)
	slices.Reverse(desc)
	update(t, s, "news", state.RosterChange{Add: desc[:2]})
	update(t, s, "news", state.RosterChange{Add: desc[2:4]})
	update(t, s, "news", state.RosterChange{Add: desc[4:]})
	checkRoster(t, s, "news", want)

	// Real ids, in the order the members were delivered.
	set := map[state.MemberID]bool{}
	var change state.RosterChange
	for _, email := range []string{"ann@example.com", "bob@example.com", "cy@example.com", "dee@example.com",
		"eve@example.com", "fay@example.com", "gus@example.com", "hal@example.com"} {
		set[member(email)] = true
		change.Add = append(change.Add, member(email))
	}
	update(t, s, "other", change)
	checkRoster(t, s, "other", sorted(set))
}

func testRosterReconciledAndDefaultView(t *testing.T, s state.Store) {
	zone := time.FixedZone("UTC-7", -7*60*60)
	x := member("ann@example.com")
	steps := []struct {
		name      string
		change    state.RosterChange
		reconcile time.Time
		view      state.DefaultView
	}{
		{"a first change, no reconcile", state.RosterChange{Add: []state.MemberID{x}}, time.Time{}, state.DefaultViewUnknown},
		{"a reconcile, in local time", state.RosterChange{Reconciled: at(time.Hour + 1).In(zone)},
			at(time.Hour + 1), state.DefaultViewUnknown},
		{"a change without a reconcile keeps it", state.RosterChange{Remove: []state.MemberID{x}},
			at(time.Hour + 1), state.DefaultViewUnknown},
		{"the default view learned", state.RosterChange{DefaultView: state.DefaultViewWithoutArchived},
			at(time.Hour + 1), state.DefaultViewWithoutArchived},
		{"unknown keeps what was learned", state.RosterChange{Reconciled: at(2*time.Hour + time.Nanosecond)},
			at(2*time.Hour + time.Nanosecond), state.DefaultViewWithoutArchived},
		{"both at once", state.RosterChange{Reconciled: at(3 * time.Hour), DefaultView: state.DefaultViewWithArchived},
			at(3 * time.Hour), state.DefaultViewWithArchived},
		{"the view learned again", state.RosterChange{DefaultView: state.DefaultViewWithoutArchived},
			at(3 * time.Hour), state.DefaultViewWithoutArchived},
	}
	for _, step := range steps {
		update(t, s, "news", step.change)
		got := connection(t, s, "news").Roster
		if !got.Kept {
			t.Errorf("%s: Kept is false", step.name)
		}
		if !got.LastReconcile.Equal(step.reconcile) {
			t.Errorf("%s: LastReconcile = %s, want %s", step.name,
				got.LastReconcile.Format(time.RFC3339Nano), step.reconcile.Format(time.RFC3339Nano))
		}
		if !got.LastReconcile.IsZero() && got.LastReconcile.Location() != time.UTC {
			t.Errorf("%s: LastReconcile is in %s, want UTC", step.name, got.LastReconcile.Location())
		}
		if got.DefaultView != step.view {
			t.Errorf("%s: DefaultView = %s, want %s", step.name, got.DefaultView, step.view)
		}
	}
	diff(t, "another connection's RosterState", state.RosterState{}, connection(t, s, "other").Roster)
}

// testRosterInConnectionState: Connection and Connections carry the
// RosterState, and runs leave it alone.
func testRosterInConnectionState(t *testing.T, s state.Store) {
	ctx := context.Background()
	a, b, c := member("ann@example.com"), member("bob@example.com"), member("cy@example.com")
	ok(t, s.StartRun(ctx, "news", at(0)))
	update(t, s, "news", state.RosterChange{Add: []state.MemberID{a, b, c}})
	update(t, s, "news", state.RosterChange{Remove: []state.MemberID{b},
		Reconciled: at(time.Minute), DefaultView: state.DefaultViewWithoutArchived})
	ok(t, s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
		WindowEnd: at(time.Hour), Finished: at(2 * time.Minute), Read: 3, Delivered: 3}))
	ok(t, s.FailRun(ctx, state.Run{Connection: "news", Result: state.ResultFailed,
		WindowEnd: at(2 * time.Hour), Finished: at(3 * time.Minute), Error: "target: 503"}))
	ok(t, s.StartRun(ctx, "other", at(0)))

	n, err := s.RosterSize(ctx, "news")
	ok(t, err)
	diff(t, "RosterSize", int64(2), n)
	want := state.RosterState{Kept: true, Members: 2, LastReconcile: at(time.Minute), Left: 1,
		DefaultView: state.DefaultViewWithoutArchived}
	got := connection(t, s, "news")
	diff(t, "Connection's RosterState", want, got.Roster)
	diff(t, "Connection's progress", progress{at(time.Hour), at(2 * time.Minute), "target: 503", 3, 3, 3}, progressOf(got))

	all, err := s.Connections(ctx)
	ok(t, err)
	rosters := map[string]state.RosterState{}
	for _, c := range all {
		rosters[c.Connection] = c.Roster
	}
	diff(t, "Connections' RosterState", map[string]state.RosterState{"news": want, "other": {}}, rosters)
}

// testRosterPerConnection: names that are prefixes of each other keep
// rosters of their own.
func testRosterPerConnection(t *testing.T, s state.Store) {
	ctx := context.Background()
	a, b, c, d := member("ann@example.com"), member("bob@example.com"), member("cy@example.com"), member("dee@example.com")
	ids := func(ids ...state.MemberID) []state.MemberID {
		slices.SortFunc(ids, compareIDs)
		return ids
	}
	update(t, s, "news", state.RosterChange{Add: []state.MemberID{a, b, c}})
	update(t, s, "news2", state.RosterChange{Add: []state.MemberID{c, d}})
	ok(t, s.StartRun(ctx, "new", at(0)))
	update(t, s, "news", state.RosterChange{Remove: []state.MemberID{c, d}, Reconciled: at(time.Hour)})

	checkRoster(t, s, "news", ids(a, b))
	checkRoster(t, s, "news2", ids(c, d))
	checkRoster(t, s, "new", nil)
	checkRoster(t, s, "ne", nil)
	diff(t, "news", state.RosterState{Kept: true, Members: 2, Left: 2, LastReconcile: at(time.Hour)},
		connection(t, s, "news").Roster)
	diff(t, "news2", state.RosterState{Kept: true, Members: 2}, connection(t, s, "news2").Roster)
	diff(t, "new", state.RosterState{}, connection(t, s, "new").Roster)
}

// bigRoster is the size of testRosterLarge's roster: 50 changes of 1,000
// ids, 800 KB of ids, twice what one DynamoDB item holds. It is half the
// 100,000 a large audience has, because SQLite under the race detector
// takes 35 s for that and 12 s for this.
const bigRoster = 50_000

// testRosterLarge writes a large roster in changes of 1,000 ids, the way
// a first sync does, then removes and re-adds some, and reads it back.
func testRosterLarge(t *testing.T, s state.Store) {
	const chunk = 1000
	r := rand.New(rand.NewPCG(1, 2))
	all := randomIDs(r, bigRoster)
	want := make(map[state.MemberID]bool, len(all))
	var left int64
	apply := func(c state.RosterChange) {
		t.Helper()
		update(t, s, "news", c)
		for _, id := range c.Add {
			want[id] = true
		}
		for _, id := range c.Remove {
			delete(want, id)
		}
		left += int64(len(c.Remove))
	}
	chunks := func(ids []state.MemberID, fn func([]state.MemberID)) {
		for part := range slices.Chunk(ids, chunk) {
			fn(part)
		}
	}

	chunks(all, func(part []state.MemberID) { apply(state.RosterChange{Add: part}) })
	// Every tenth leaves, and every fourth of those comes back, along
	// with ids that never left.
	var removed, back []state.MemberID
	for i, id := range all {
		if i%10 == 3 {
			removed = append(removed, id)
		}
	}
	chunks(removed, func(part []state.MemberID) { apply(state.RosterChange{Remove: part}) })
	for i, id := range removed {
		if i%4 == 0 {
			back = append(back, id, all[i*10]) // all[i*10] never left
		}
	}
	chunks(back, func(part []state.MemberID) { apply(state.RosterChange{Add: part}) })
	// A change that adds new ids and removes others.
	fresh := randomIDs(r, chunk)
	apply(state.RosterChange{Add: fresh, Remove: all[:chunk]})

	checkRoster(t, s, "news", sorted(want))
	diff(t, "RosterState", state.RosterState{Kept: true, Members: int64(len(want)), Left: left},
		connection(t, s, "news").Roster)
	checkRoster(t, s, "other", nil)
}

func testRosterRejectsBadInput(t *testing.T, s state.Store) {
	ctx := context.Background()
	x := []state.MemberID{member("ann@example.com")}
	tests := []struct {
		name   string
		conn   string
		change state.RosterChange
	}{
		{"no connection", "", state.RosterChange{Add: x}},
		{"a reconcile past 2262", "news", state.RosterChange{Add: x,
			Reconciled: time.Date(2262, 4, 12, 0, 0, 0, 0, time.UTC)}},
		{"a default view no release knows", "news", state.RosterChange{Add: x, DefaultView: state.DefaultViewWithArchived + 1}},
	}
	for _, tt := range tests {
		if err := s.UpdateRoster(ctx, tt.conn, tt.change); err == nil {
			t.Errorf("UpdateRoster with %s: no error", tt.name)
		}
	}
	checkRoster(t, s, "news", nil)
	all, err := s.Connections(ctx)
	ok(t, err)
	diff(t, "Connections after refused writes", []state.ConnectionState(nil), all)
}

func testRosterCancelledContext(t *testing.T, s state.Store) {
	a, b := member("ann@example.com"), member("bob@example.com")
	update(t, s, "news", state.RosterChange{Add: []state.MemberID{a}})
	before := connection(t, s, "news")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"UpdateRoster": func() error {
			return s.UpdateRoster(ctx, "news", state.RosterChange{Add: []state.MemberID{b}, Remove: []state.MemberID{a},
				Reconciled: at(time.Hour), DefaultView: state.DefaultViewWithArchived})
		},
		"UpdateRoster of a new connection": func() error { return s.UpdateRoster(ctx, "fresh", state.RosterChange{}) },
		"Roster":                           func() error { _, err := s.Roster(ctx, "news"); return err },
		"RosterSize":                       func() error { _, err := s.RosterSize(ctx, "news"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", name, err)
		}
	}
	diff(t, "state after cancelled calls", before, connection(t, s, "news"))
	diff(t, "a connection a cancelled call named", state.ConnectionState{Connection: "fresh"}, connection(t, s, "fresh"))
	checkRoster(t, s, "news", []state.MemberID{a})
}

// testTwoHandlesRosterUnion: workers on two handles add to one roster at
// once, each its own ids plus some every one of them adds; the roster ends
// as the union, counted exactly, whichever handle reads it.
func testTwoHandlesRosterUnion(t *testing.T, a, b state.Store) {
	const writers, changes, per = 8, 5, 50
	r := rand.New(rand.NewPCG(3, 4))
	common := randomIDs(r, per)
	want := map[state.MemberID]bool{}
	for _, id := range common {
		want[id] = true
	}
	var wg sync.WaitGroup
	for w := range writers {
		s := []state.Store{a, b}[w%2]
		own := randomIDs(r, changes*per)
		for _, id := range own {
			want[id] = true
		}
		wg.Go(func() {
			for c := range changes {
				add := own[c*per : (c+1)*per]
				if c == w%changes {
					add = append(slices.Clone(add), common...)
				}
				if err := s.UpdateRoster(context.Background(), "news", state.RosterChange{Add: add}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	ids := sorted(want)
	checkRoster(t, a, "news", ids)
	checkRoster(t, b, "news", ids)
	for _, s := range []state.Store{a, b} {
		diff(t, "RosterState", state.RosterState{Kept: true, Members: int64(len(ids))}, connection(t, s, "news").Roster)
	}
}
