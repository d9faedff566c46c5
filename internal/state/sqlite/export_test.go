package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
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

// Commits is how many write transactions s has committed.
func Commits(s *Store) int64 {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return s.group.commits
}

// Queued is how many writes wait for a transaction of s.
func Queued(s *Store) int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}

// HoldWriter starts a write to connection name that does not finish
// until release is called, and returns once it runs: the writes queued
// meanwhile wait, and then go in one transaction. release returns the
// held write's outcome.
func HoldWriter(s *Store, name string) (release func() error) {
	running, resume, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), "hold", name, func(*writeTx) error {
			close(running)
			<-resume
			return nil
		})
	}()
	<-running
	return func() error {
		close(resume)
		return <-done
	}
}

// FailCommits makes every COMMIT of s fail with err until the returned
// function is called.
func FailCommits(s *Store, err error) (stop func()) {
	var mu sync.Mutex
	failing := true
	s.beforeCommit = func() error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return err
		}
		return nil
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		failing = false
	}
}

// WriteThenFail runs a write to connection name that records msg as its
// last error and then fails with err, so tests can see that a failed
// write of a group is rolled back alone.
func WriteThenFail(ctx context.Context, s *Store, name, msg string, err error) error {
	return s.write(ctx, "write then fail", name, func(w *writeTx) error {
		if _, err := w.exec(`UPDATE connections SET last_error = ? WHERE name = ?`, msg, name); err != nil {
			return err
		}
		return err
	})
}
