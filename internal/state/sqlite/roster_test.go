package sqlite_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/chimport/chimport/internal/state"
)

func randomIDs(r *rand.Rand, n int) []state.MemberID {
	out := make([]state.MemberID, n)
	for i := range out {
		binary.BigEndian.PutUint64(out[i][:8], r.Uint64())
		binary.BigEndian.PutUint64(out[i][8:], r.Uint64())
	}
	return out
}

// BenchmarkUpdateRoster is one page of a sync: 1,000 new ids added to a
// roster of a given size. Each iteration's ids are taken out again, off
// the clock, so the size stays put whatever b.N is: the cost grows with
// it, since random ids touch pages all over the table.
func BenchmarkUpdateRoster(b *testing.B) {
	for _, size := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("roster=%d", size), func(b *testing.B) {
			ctx := context.Background()
			s := openSQLite(b, filepath.Join(b.TempDir(), "state.db"))
			r := rand.New(rand.NewPCG(1, 2))
			for range size / 1000 {
				if err := s.UpdateRoster(ctx, "news", state.RosterChange{Add: randomIDs(r, 1000)}); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				b.StopTimer()
				add := randomIDs(r, 1000)
				b.StartTimer()
				if err := s.UpdateRoster(ctx, "news", state.RosterChange{Add: add}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := s.UpdateRoster(ctx, "news", state.RosterChange{Remove: add}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/id")
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
	for range size / 1000 {
		if err := s.UpdateRoster(ctx, "news", state.RosterChange{Add: randomIDs(r, 1000)}); err != nil {
			b.Fatal(err)
		}
	}
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

// TestSQLiteRosterMembersExact: the members column is the roster's row
// count after every write, with no RosterSize to fold anything: adds of
// ids that are there, removes of ids that are not, and duplicates within
// one change (across chunk boundaries too) leave it exact.
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
