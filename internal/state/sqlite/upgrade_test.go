package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
	"github.com/google/go-cmp/cmp"
)

// TestSQLiteUpgradesVersion3File: a file of the release before the
// rejected log (schema version 3, with rosters) is migrated when opened.
// Its rows keep everything, their errors stay undated (LastErrorAt zero)
// and their logs start empty; the roster, in its log and its buckets,
// reads as before.
func TestSQLiteUpgradesVersion3File(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := sqlite.CreateVersion(ctx, path, 3); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	n := t0.UnixNano()
	id := state.MemberID{0x62, 0xdb, 15: 0xa0}
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO connections (name, watermark, last_attempt, last_error, total_delivered,
			kept, members, last_reconcile, default_view)
			VALUES ('news', %d, %d, 'target: 503', 40, 1, 0, %d, 1)`, n, n, n),
		fmt.Sprintf(`INSERT INTO roster_log (connection, id) VALUES ('news', x'%x')`, id[:]),
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	s := openSQLite(t, path)
	var version int
	rawQuery(t, path, "PRAGMA user_version", &version)
	if version != sqlite.SchemaVersion || version < 4 {
		t.Errorf("user_version = %d, want %d", version, sqlite.SchemaVersion)
	}
	if size, err := s.RosterSize(ctx, "news"); err != nil || size != 1 {
		t.Errorf("RosterSize after the upgrade: %d, %v; want 1", size, err)
	}
	want := state.ConnectionState{Connection: "news", Watermark: t0, LastAttempt: t0, LastError: "target: 503",
		TotalDelivered: 40, Roster: state.RosterState{Kept: true, Members: 1, LastReconcile: t0,
			DefaultView: state.DefaultViewWithoutArchived}}
	got, err := s.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]state.ConnectionState{want}, got); d != "" {
		t.Errorf("after the upgrade (-want +got):\n%s", d)
	}

	// The upgraded row takes a refusal, and a run's failure dates its error.
	r := state.Rejection{Member: id, Status: 400, Reason: "x", LastAttempt: t0.Add(time.Hour)}
	if err := s.RecordRejections(ctx, "news", []state.Rejection{r}); err != nil {
		t.Fatal(err)
	}
	if err := s.FailRun(ctx, state.Run{Connection: "news", Finished: t0.Add(2 * time.Hour), Error: "target: 502"}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if c.Rejected.Count != 1 || c.Rejected.Sample == nil || c.Rejected.Sample.Member != id {
		t.Errorf("Rejected after a refusal: %+v", c.Rejected)
	}
	if !c.LastErrorAt.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("LastErrorAt after FailRun = %v, want %v", c.LastErrorAt, t0.Add(2*time.Hour))
	}
}
