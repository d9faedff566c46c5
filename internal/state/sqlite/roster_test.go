package sqlite_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
)

func randomIDs(r *rand.Rand, n int) []state.MemberID {
	out := make([]state.MemberID, n)
	for i := range out {
		binary.BigEndian.PutUint64(out[i][:8], r.Uint64())
		binary.BigEndian.PutUint64(out[i][8:], r.Uint64())
	}
	return out
}

// logIDs writes ids to the connection's roster log a change of 1,000 at
// a time, the way a sync does, and returns them.
func logIDs(b *testing.B, s *sqlite.Store, name string, r *rand.Rand, n int) []state.MemberID {
	b.Helper()
	ids := randomIDs(r, n)
	for part := range slices.Chunk(ids, 1000) {
		if err := s.UpdateRoster(context.Background(), name, state.RosterChange{Add: part}); err != nil {
			b.Fatal(err)
		}
	}
	return ids
}

// fillRoster gives the connection a roster of size ids: logged, then
// folded at once, as one big log.
func fillRoster(b *testing.B, s *sqlite.Store, name string, r *rand.Rand, size int) {
	b.Helper()
	logIDs(b, s, name, r, size)
	if n, err := s.RosterSize(context.Background(), name); err != nil || n != int64(size) {
		b.Fatalf("RosterSize = %d, %v; want %d", n, err, size)
	}
}

// BenchmarkUpdateRoster is one page of a sync: 1,000 new ids added to a
// roster of a given size. The adds are appended to the log and leave the
// roster as it is, so the size stays put whatever b.N is, and the log
// grows, as it does through a sync; the cost per id is meant not to grow
// with the roster.
func BenchmarkUpdateRoster(b *testing.B) {
	for _, size := range []int{0, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("roster=%d", size), func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"))
			r := rand.New(rand.NewPCG(1, 2))
			fillRoster(b, s, "news", r, size)
			for b.Loop() {
				b.StopTimer()
				add := randomIDs(r, 1000)
				b.StartTimer()
				if err := s.UpdateRoster(ctx, "news", state.RosterChange{Add: add}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/id")
		})
	}
}

// BenchmarkRosterFold is the RosterSize that ends a sync: a first sync's
// log of 1,000,000 ids folded into an empty roster, and 200,000 new ids
// folded into a roster of 1,000,000. The ids are logged off the clock;
// the first case folds into a new connection each time, the second takes
// its ids out again, off the clock, so the roster stays at its size.
func BenchmarkRosterFold(b *testing.B) {
	for _, bench := range []struct{ logged, size int }{{1_000_000, 0}, {200_000, 1_000_000}} {
		b.Run(fmt.Sprintf("log=%d/roster=%d", bench.logged, bench.size), func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"))
			r := rand.New(rand.NewPCG(1, 2))
			fillRoster(b, s, "news", r, bench.size)
			i := 0
			for b.Loop() {
				b.StopTimer()
				name := "news"
				if bench.size == 0 {
					name = fmt.Sprint("news", i)
					i++
				}
				ids := logIDs(b, s, name, r, bench.logged)
				b.StartTimer()
				n, err := s.RosterSize(ctx, name)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n != int64(bench.size+bench.logged) {
					b.Fatalf("RosterSize = %d, want %d", n, bench.size+bench.logged)
				}
				if bench.size > 0 {
					slices.SortFunc(ids, func(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) })
					for part := range slices.Chunk(ids, 1000) {
						if err := s.UpdateRoster(ctx, name, state.RosterChange{Remove: part}); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(bench.logged), "ns/id")
		})
	}
}

// BenchmarkRoster reads a roster of 200,000 ids, what a reconcile of a
// large audience starts from.
func BenchmarkRoster(b *testing.B) {
	ctx := context.Background()
	s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"))
	r := rand.New(rand.NewPCG(1, 2))
	const size = 200_000
	fillRoster(b, s, "news", r, size) // folded: the loop reads, and folds nothing
	for b.Loop() {
		ids, err := s.Roster(ctx, "news")
		if err != nil {
			b.Fatal(err)
		}
		if len(ids) != size {
			b.Fatalf("read %d ids, want %d", len(ids), size)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/size, "ns/id")
}

// TestSQLiteRosterMembersExact: the members column is the roster table's
// row count after every write, with no RosterSize to fold anything (the
// log holds what is not folded yet): adds of ids that are there, removes
// of ids that are not, and duplicates within one change (across chunk
// boundaries too) leave it exact.
func TestSQLiteRosterMembersExact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	r := rand.New(rand.NewPCG(5, 6))
	pool := randomIDs(r, 3000)
	pick := func(n int) []state.MemberID {
		out := make([]state.MemberID, n)
		for i := range out {
			out[i] = pool[r.IntN(len(pool))]
		}
		return out
	}
	for i := range 12 {
		c := state.RosterChange{Add: pick(1500)} // two statements, with duplicates
		if i%3 == 2 {
			c = state.RosterChange{Add: pick(200), Remove: pick(1200)}
		}
		if err := s.UpdateRoster(ctx, "news", c); err != nil {
			t.Fatal(err)
		}
		got, err := s.Connection(ctx, "news")
		if err != nil {
			t.Fatal(err)
		}
		var rows int64
		rawQuery(t, path, `SELECT count(*) FROM roster WHERE connection = 'news'`, &rows)
		if got.Roster.Members != rows {
			t.Fatalf("after change %d: members = %d, the table holds %d", i, got.Roster.Members, rows)
		}
	}
}

// TestSQLiteRosterLog: adds wait in the log, untouched by Connection,
// until RosterSize folds them all and empties it; an id logged and then
// removed stays removed, whether it was in the roster before or not, and
// whether the add and the remove are one change or two.
func TestSQLiteRosterLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	r := rand.New(rand.NewPCG(7, 8))
	ids := randomIDs(r, 2500)
	count := func(table string) (n int64) {
		t.Helper()
		rawQuery(t, path, `SELECT count(*) FROM `+table+` WHERE connection = 'news'`, &n)
		return n
	}
	size := func(want int64) {
		t.Helper()
		n, err := s.RosterSize(ctx, "news")
		if err != nil || n != want {
			t.Fatalf("RosterSize = %d, %v; want %d", n, err, want)
		}
		if logged := count("roster_log"); logged != 0 {
			t.Errorf("after RosterSize the log holds %d ids, want none", logged)
		}
		if rows := count("roster"); rows != want {
			t.Errorf("after RosterSize the roster holds %d ids, want %d", rows, want)
		}
	}

	update := func(c state.RosterChange) {
		t.Helper()
		if err := s.UpdateRoster(ctx, "news", c); err != nil {
			t.Fatal(err)
		}
	}
	update(state.RosterChange{Add: ids[:2000]})
	update(state.RosterChange{Add: ids[1000:2500]}) // 1,000 of them logged twice
	if logged, rows := count("roster_log"), count("roster"); logged != 3500 || rows != 0 {
		t.Errorf("after adds: log %d, roster %d; want 3500 and 0", logged, rows)
	}
	size(2500)
	size(2500) // nothing to fold

	fresh, folded := randomIDs(r, 1)[0], ids[0]
	update(state.RosterChange{Add: []state.MemberID{fresh, folded}})
	update(state.RosterChange{Remove: []state.MemberID{fresh, folded}})
	both := randomIDs(r, 1)[0]
	update(state.RosterChange{Add: []state.MemberID{both}, Remove: []state.MemberID{both}})
	size(2499)
	got, err := s.Roster(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range got {
		if id == fresh || id == folded || id == both {
			t.Errorf("%s was logged and then removed, and is in the roster", id)
		}
	}
	if len(got) != 2499 {
		t.Errorf("roster has %d ids, want 2499", len(got))
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if want := (state.RosterState{Kept: true, Members: 2499, Left: 3}); c.Roster != want {
		t.Errorf("RosterState = %+v, want %+v", c.Roster, want)
	}
}
