package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
	"github.com/chimport/chimport/internal/state/storetest"
	"github.com/google/go-cmp/cmp"
)

func TestSQLiteStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (state.Store, func() state.Store) {
		path := filepath.Join(t.TempDir(), "state.db")
		return openSQLite(t, path), func() state.Store { return openSQLite(t, path) }
	})
}

var t0 = time.Date(2024, 3, 10, 9, 30, 15, 123456789, time.UTC)

func openSQLite(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// rawQuery reads one value from the file through a connection of its own,
// the way the sqlite3 shell or another process would see it.
func rawQuery(t testing.TB, path, query string, dest any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(query).Scan(dest); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func complete(t *testing.T, s state.Store, name string, end time.Time) {
	t.Helper()
	err := s.CompleteRun(context.Background(), state.Run{Connection: name, Result: state.ResultOK,
		WindowEnd: end, Finished: end, Delivered: 1})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteFileSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openSQLite(t, path)
	var version int
	rawQuery(t, path, "PRAGMA user_version", &version)
	if version != sqlite.SchemaVersion || version < 1 {
		t.Errorf("user_version = %d, want %d", version, sqlite.SchemaVersion)
	}
	var mode string
	rawQuery(t, path, "PRAGMA journal_mode", &mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StartRun(ctx, "news", t0); err != nil {
		t.Fatal(err)
	}
	cp := state.Checkpoint{WindowEnd: t0.Add(time.Hour), Views: map[string]time.Time{"default": t0}}
	if err := s.SaveCheckpoint(ctx, "news", cp); err != nil {
		t.Fatal(err)
	}
	complete(t, s, "other", t0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSQLite(t, path)
	got, err := s.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []state.ConnectionState{
		{Connection: "news", FirstAttempt: t0, LastAttempt: t0, Checkpoint: &cp},
		{Connection: "other", Watermark: t0, LastSuccess: t0, LastDelivered: 1, TotalDelivered: 1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after reopening (-want +got):\n%s", d)
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	openSQLite(t, path)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", sqlite.SchemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = sqlite.Open(context.Background(), path)
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
	t.Log(err)
}

func TestSQLiteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "state.db")
	if _, err := sqlite.Open(context.Background(), path); err == nil {
		t.Fatal("opened a store in a directory that does not exist")
	} else {
		t.Log(err)
	}
}

// TestSQLiteOpenConcurrently is several workers starting at once on a new
// file: each migration must run once, and none may fail on the lock.
func TestSQLiteOpenConcurrently(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Error(err)
				return
			}
			complete(t, s, "news", t0)
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var version int
	rawQuery(t, path, "PRAGMA user_version", &version)
	if version != sqlite.SchemaVersion {
		t.Errorf("user_version = %d, want %d", version, sqlite.SchemaVersion)
	}
}

// TestSQLiteOpenGivesUpOnAHeldLock: while another process holds the write
// lock, Open fails after about the busy timeout, with SQLite's own error,
// rather than retrying until its context runs out. The busy timeout is
// shortened to 1 s for the test (so it must not run in parallel), and the
// context is 5 s: an Open that retried its 1 s wait as often as its backoff
// steps allow (ten times) would fail on the context instead, and the test
// says so.
func TestSQLiteOpenGivesUpOnAHeldLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	holder, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	conn, err := holder.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(context.Background(), "ROLLBACK")

	sqlite.SetBusyTimeout(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err = sqlite.Open(ctx, path)
	switch {
	case err == nil:
		s.Close()
		t.Fatal("Open succeeded while another connection held the write lock")
	case ctx.Err() != nil:
		t.Fatalf("Open kept retrying until its context ended: %v", err)
	}
	if !strings.Contains(err.Error(), "SQLITE_BUSY") {
		t.Errorf("Open: %v; want SQLite's busy error", err)
	}
}

func TestSQLiteRetention(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	sqlite.SetRetention(s, 3, 2)
	for i := range 5 {
		end := t0.Add(time.Duration(i) * time.Hour)
		complete(t, s, "news", end)
		complete(t, s, "other", end)
		// Pending failures beyond the window of every completed run.
		if err := s.AddFailure(ctx, state.Failure{Connection: "news", WindowEnd: t0.Add(100 * time.Hour),
			Offset: i, Error: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"news", "other"} {
		runs, err := s.Runs(ctx, name, 10)
		if err != nil {
			t.Fatal(err)
		}
		var ends []time.Time
		for _, r := range runs {
			ends = append(ends, r.WindowEnd)
		}
		want := []time.Time{t0.Add(4 * time.Hour), t0.Add(3 * time.Hour), t0.Add(2 * time.Hour)}
		if d := cmp.Diff(want, ends); d != "" {
			t.Errorf("%s: kept runs (-want +got):\n%s", name, d)
		}
	}
	failures, err := s.Failures(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for _, f := range failures {
		offsets = append(offsets, f.Offset)
	}
	if d := cmp.Diff([]int{3, 4}, offsets); d != "" {
		t.Errorf("kept failures (-want +got):\n%s", d)
	}
}

// TestSQLiteUpgradesVersion1File: a file an older chimport wrote (schema
// version 1, before leases and alerts) is migrated in place when opened,
// by several processes at once, and keeps everything it held.
func TestSQLiteUpgradesVersion1File(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := sqlite.CreateVersion(ctx, path, 1); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	n := t0.UnixNano()
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO connections (name, watermark, first_attempt, last_attempt, last_success, last_error,
			last_read, last_delivered, total_delivered, checkpoint)
			VALUES ('news', %d, %d, %d, %d, 'target: 503', 5, 4, 40, '{"window_start":%d,"views":{"default":%d}}')`, n, n, n, n, n, n),
		fmt.Sprintf(`INSERT INTO runs (connection, started, finished, window_start, window_end, full_sync, result,
			read_count, delivered_count, request_count, error) VALUES ('news', %d, %d, NULL, %d, 1, 'ok', 5, 4, 2, '')`, n, n, n),
		fmt.Sprintf(`INSERT INTO failures (connection, window_start, window_end, view_name, page_offset, error, failed_at)
			VALUES ('news', NULL, %d, 'default', 1000, 'boom', %d)`, n+1, n),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			s, err := sqlite.Open(ctx, path)
			if err != nil {
				t.Error(err)
				return
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var version int
	rawQuery(t, path, "PRAGMA user_version", &version)
	if version != sqlite.SchemaVersion || version < 2 {
		t.Errorf("user_version = %d, want %d", version, sqlite.SchemaVersion)
	}

	s := openSQLite(t, path)
	got, err := s.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []state.ConnectionState{{Connection: "news", Watermark: t0, FirstAttempt: t0, LastAttempt: t0,
		LastSuccess: t0, LastError: "target: 503", LastRead: 5, LastDelivered: 4, TotalDelivered: 40,
		Checkpoint: &state.Checkpoint{WindowStart: t0, Views: map[string]time.Time{"default": t0}}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("after the upgrade (-want +got):\n%s", d)
	}
	runs, err := s.Runs(ctx, "news", 10)
	if err != nil || len(runs) != 1 || !runs[0].Full || runs[0].Delivered != 4 {
		t.Errorf("runs after the upgrade: %+v, %v", runs, err)
	}
	failures, err := s.Failures(ctx, "news")
	if err != nil || len(failures) != 1 || failures[0].Offset != 1000 {
		t.Errorf("failures after the upgrade: %+v, %v", failures, err)
	}

	// The old rows take part in leases and alerts: the first claim gets
	// token 1 and fences from then on.
	l, err := s.ClaimLease(ctx, "news", "A", t0, time.Minute)
	if err != nil || l.Token != 1 {
		t.Fatalf("first claim on an upgraded row: %+v, %v", l, err)
	}
	if err := s.FailRun(ctx, state.Run{Connection: "news", Error: "x", Token: 2}); !errors.Is(err, state.ErrFenced) {
		t.Errorf("write with a token never issued: got %v, want ErrFenced", err)
	}
	if changed, err := s.SetAlert(ctx, "news", "lag", true, t0); err != nil || !changed {
		t.Errorf("SetAlert on an upgraded row: %v, %v", changed, err)
	}
}
