package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"
	"time"

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
// a time, the way a sync does, and returns them. The adds wait in the
// log, unfolded: the caller's RosterSize is what folds them.
func logIDs(b testing.TB, s *sqlite.Store, path, name string, r *rand.Rand, n int) []state.MemberID {
	b.Helper()
	ids := randomIDs(r, n)
	for part := range slices.Chunk(ids, 1000) {
		if err := s.UpdateRoster(context.Background(), name, state.RosterChange{Add: part}); err != nil {
			b.Fatal(err)
		}
	}
	var logged int
	rawQuery(b, path, fmt.Sprintf(`SELECT count(*) FROM roster_log WHERE connection = '%s'`, name), &logged)
	if logged < n {
		b.Fatalf("the log holds %d ids of %s after %d adds: something folded them", logged, name, n)
	}
	return ids
}

// fillRoster gives the connection a roster of size ids: logged, then
// folded at once, as one big log.
func fillRoster(b testing.TB, s *sqlite.Store, path, name string, r *rand.Rand, size int) {
	b.Helper()
	logIDs(b, s, path, name, r, size)
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
			path := filepath.Join(b.TempDir(), "state.db")
			s := openSQLite(b, path)
			r := rand.New(rand.NewPCG(1, 2))
			fillRoster(b, s, path, "news", r, size)
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
// folded into a roster of 1,000,000. The ids are logged off the clock,
// and logIDs checks that they wait in the log, so the RosterSize on the
// clock is what folds them; the first case folds into a new connection each time, the second takes
// its ids out again, off the clock, so the roster stays at its size.
func BenchmarkRosterFold(b *testing.B) {
	for _, bench := range []struct{ logged, size int }{{1_000_000, 0}, {200_000, 1_000_000}} {
		b.Run(fmt.Sprintf("log=%d/roster=%d", bench.logged, bench.size), func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "state.db")
			s := openSQLite(b, path)
			r := rand.New(rand.NewPCG(1, 2))
			fillRoster(b, s, path, "news", r, bench.size)
			i := 0
			for b.Loop() {
				b.StopTimer()
				name := "news"
				if bench.size == 0 {
					name = fmt.Sprint("news", i)
					i++
				}
				ids := logIDs(b, s, path, name, r, bench.logged)
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

// BenchmarkFirstSyncRoster is a first sync's roster of 1,000,000: 1,000
// pages of 1,000 new ids added as the sync goes (adds-s, all of them),
// the RosterSize that ends it and folds the whole log into an empty
// roster (fold-ms; goal under 1,000), and then a later run's change of
// 100 adds and 100 removes on that roster (change-ms, the mean of 10;
// goal a few). It also reports what the fold allocated a logged id
// (fold-B/id; goal at most 20) and the most its live heap grew
// (fold-peak-MiB; goal the 15.3 MiB log slice plus about 2). Each
// iteration is a new connection; run it with -benchtime=1x.
func BenchmarkFirstSyncRoster(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "state.db")
	s := openSQLite(b, path)
	r := rand.New(rand.NewPCG(3, 4))
	const pages, page, changes = 1000, 1000, 10
	var adds, fold, change time.Duration
	var foldAlloc, foldPeak uint64
	i := 0
	for b.Loop() {
		name := fmt.Sprint("news", i)
		i++
		b.StopTimer()
		all := randomIDs(r, pages*page)
		b.StartTimer()
		start := time.Now()
		for part := range slices.Chunk(all, page) {
			if err := s.UpdateRoster(ctx, name, state.RosterChange{Add: part}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		heap := watchHeap()
		b.StartTimer()
		folding := time.Now()
		adds += folding.Sub(start)
		n, err := s.RosterSize(ctx, name)
		if err != nil || n != pages*page {
			b.Fatalf("RosterSize = %d, %v; want %d", n, err, pages*page)
		}
		fold += time.Since(folding)
		b.StopTimer()
		allocated, peak := heap()
		foldAlloc += allocated
		foldPeak = max(foldPeak, peak)
		b.StartTimer()
		changing := time.Now()
		for c := range changes {
			remove := all[c*100 : (c+1)*100]
			if err := s.UpdateRoster(ctx, name, state.RosterChange{Add: randomIDs(r, 100), Remove: remove}); err != nil {
				b.Fatal(err)
			}
		}
		change += time.Since(changing)
		b.StopTimer()
		if n, err := s.RosterSize(ctx, name); err != nil || n != pages*page {
			b.Fatalf("RosterSize after the changes = %d, %v; want %d", n, err, pages*page)
		}
		b.StartTimer()
	}
	b.ReportMetric(adds.Seconds()/float64(b.N), "adds-s")
	b.ReportMetric(float64(fold.Milliseconds())/float64(b.N), "fold-ms")
	b.ReportMetric(float64(change.Microseconds())/1000/float64(b.N*changes), "change-ms")
	b.ReportMetric(float64(foldAlloc)/float64(b.N*pages*page), "fold-B/id")
	b.ReportMetric(float64(foldPeak)/(1<<20), "fold-peak-MiB")
}

// watchHeap starts watching the Go heap, after a collection, and returns
// a func that stops and reports what was allocated since, and the most
// the heap's live objects grew above where they started: sampled every
// 100µs, from runtime/metrics, which does not stop the world the way
// runtime.ReadMemStats does.
func watchHeap() func() (allocated, peak uint64) {
	runtime.GC()
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(samples)
	allocs0, live0 := samples[0].Value.Uint64(), samples[1].Value.Uint64()
	stop, done := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if live := s[0].Value.Uint64(); live > live0 {
				peak = max(peak, live-live0)
			}
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		peak := <-done
		metrics.Read(samples)
		return samples[0].Value.Uint64() - allocs0, peak
	}
}

// BenchmarkRoster reads a roster of 200,000 ids, what a reconcile of a
// large audience starts from.
func BenchmarkRoster(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "state.db")
	s := openSQLite(b, path)
	r := rand.New(rand.NewPCG(1, 2))
	const size = 200_000
	fillRoster(b, s, path, "news", r, size) // folded: the loop reads, and folds nothing
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

// bucketIDs counts the ids in the buckets of news, checking each bucket
// as it goes: non-empty, its ids sorted, distinct and led by the bucket's
// number.
func bucketIDs(t testing.TB, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT bucket, ids FROM roster_bucket WHERE connection = 'news'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		var bucket int
		var ids []byte
		if err := rows.Scan(&bucket, &ids); err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 || len(ids)%16 != 0 {
			t.Fatalf("bucket %d holds %d bytes", bucket, len(ids))
		}
		for i := 0; i < len(ids); i += 16 {
			if lead := int(binary.BigEndian.Uint16(ids[i:]) >> 4); lead != bucket {
				t.Fatalf("bucket %d holds %x", bucket, ids[i:i+16])
			}
			if i > 0 && bytes.Compare(ids[i-16:i], ids[i:i+16]) >= 0 {
				t.Fatalf("bucket %d: %x before %x", bucket, ids[i-16:i], ids[i:i+16])
			}
		}
		n += int64(len(ids) / 16)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSQLiteRosterMembersExact: the members column is the number of ids
// in the connection's buckets after every write, with no RosterSize to
// fold anything (the log holds what is not folded yet): adds of ids that
// are there, removes of ids that are not, and duplicates within one
// change (across chunk boundaries too) leave it exact. Half the ids share
// four buckets, so merges and removes meet in full buckets too, and the
// roster ends as a set would.
func TestSQLiteRosterMembersExact(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	r := rand.New(rand.NewPCG(5, 6))
	pool := randomIDs(r, 3000)
	for i := range pool[:1500] {
		pool[i][0], pool[i][1] = 0, pool[i][1]&0x3f // buckets 0 to 3
	}
	want := map[state.MemberID]bool{}
	var logged []state.MemberID
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
		logged = append(logged, c.Add...)
		if len(c.Remove) > 0 {
			for _, id := range logged {
				want[id] = true
			}
			for _, id := range c.Remove {
				delete(want, id)
			}
			logged = nil
		}
		got, err := s.Connection(ctx, "news")
		if err != nil {
			t.Fatal(err)
		}
		if rows := bucketIDs(t, path); got.Roster.Members != rows {
			t.Fatalf("after change %d: members = %d, the buckets hold %d", i, got.Roster.Members, rows)
		}
	}
	for _, id := range logged {
		want[id] = true
	}
	ids, err := s.Roster(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := slices.SortedFunc(maps.Keys(want), func(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("Roster holds %d ids, want %d (or not these)", len(ids), len(wantIDs))
	}
}

// TestSQLiteRosterLog: while the roster is small its adds are folded at
// once; past sqlite.SmallRoster they wait in the log, untouched by Connection,
// until RosterSize folds them all and empties it; an id logged and then
// removed stays removed, whether it was in the roster before or not, and
// whether the add and the remove are one change or two.
func TestSQLiteRosterLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := openSQLite(t, path)
	r := rand.New(rand.NewPCG(7, 8))
	base := randomIDs(r, sqlite.SmallRoster-1)
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
		if rows := bucketIDs(t, path); rows != want {
			t.Errorf("after RosterSize the roster holds %d ids, want %d", rows, want)
		}
	}

	update := func(c state.RosterChange) {
		t.Helper()
		if err := s.UpdateRoster(ctx, "news", c); err != nil {
			t.Fatal(err)
		}
	}
	update(state.RosterChange{Add: base[:10]})
	update(state.RosterChange{Add: base[10:]})
	if logged, rows := count("roster_log"), bucketIDs(t, path); logged != 0 || rows != sqlite.SmallRoster-1 {
		t.Errorf("after adds to a small roster: log %d, roster %d; want 0 and %d", logged, rows, sqlite.SmallRoster-1)
	}
	update(state.RosterChange{Add: ids[:2000]})
	update(state.RosterChange{Add: ids[1000:2500]}) // 1,000 of them logged twice
	if logged, rows := count("roster_log"), bucketIDs(t, path); logged != 3500 || rows != sqlite.SmallRoster-1 {
		t.Errorf("after adds: log %d, roster %d; want 3500 and %d", logged, rows, sqlite.SmallRoster-1)
	}
	const total = sqlite.SmallRoster - 1 + 2500
	size(total)
	size(total) // nothing to fold

	fresh, folded := randomIDs(r, 1)[0], ids[0]
	update(state.RosterChange{Add: []state.MemberID{fresh, folded}})
	update(state.RosterChange{Remove: []state.MemberID{fresh, folded}})
	both := randomIDs(r, 1)[0]
	update(state.RosterChange{Add: []state.MemberID{both}, Remove: []state.MemberID{both}})
	size(total - 1)
	got, err := s.Roster(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range got {
		if id == fresh || id == folded || id == both {
			t.Errorf("%s was logged and then removed, and is in the roster", id)
		}
	}
	if len(got) != total-1 {
		t.Errorf("roster has %d ids, want %d", len(got), total-1)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if want := (state.RosterState{Kept: true, Members: total - 1, Left: 3}); c.Roster != want {
		t.Errorf("RosterState = %+v, want %+v", c.Roster, want)
	}
}
