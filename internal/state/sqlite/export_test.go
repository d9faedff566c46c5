package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// SmallRoster is the size up to which a roster's adds are folded at once.
const SmallRoster = smallRoster

// SchemaVersion is the schema version this build writes.
var SchemaVersion = len(migrations)

// SetRetention shrinks how many runs and failures s keeps per connection, so
// tests can see trimming without writing a thousand rows.
func SetRetention(s *Store, runs, failures int) {
	s.keepRuns, s.keepFailures = runs, failures
}

// CreateVersion creates a SQLite file at path with the schema as it
// was at version (the first version migrations), the way an older chimport
// left it, so tests can watch this build upgrade it.
func CreateVersion(ctx context.Context, path string, version int) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	for v := range version {
		if _, err := db.ExecContext(ctx, migrations[v]); err != nil {
			return err
		}
	}
	_, err = db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version))
	return err
}

// SetBusyTimeout shortens how long a statement waits for another
// process's write lock, for the duration of one test.
func SetBusyTimeout(t interface{ Cleanup(func()) }, d time.Duration) {
	old := busyTimeout
	busyTimeout = d
	t.Cleanup(func() { busyTimeout = old })
}
