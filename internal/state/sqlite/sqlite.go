package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver

	"github.com/chimport/chimport/internal/state"
)

// busyTimeout is how long a statement waits for another process's write
// lock before failing. Writes are a few rows each, so a long wait means
// something is wedged, not busy.
var busyTimeout = 10 * time.Second // a variable so tests can shorten it

// Store is the embedded state.Store: one SQLite file, which several
// processes may share.
type Store struct {
	db   *sql.DB
	path string
	// group queues this handle's writes and runs them a transaction of
	// many at a time (see group.go). SQLite serialises writers anyway;
	// queueing them here, where the wait honours ctx, spares them from
	// polling the file lock against each other. Other handles and
	// processes still meet at the lock and its busy timeout.
	group writeGroup
	stmts statements

	keepRuns, keepFailures int // changed only by tests
	// beforeCommit, when set (by tests), runs before each COMMIT, and an
	// error from it fails the transaction as a failed COMMIT would.
	beforeCommit func() error
}

var _ state.Store = (*Store)(nil)

// Open opens the SQLite store at path, creating the file if it is
// missing (its directory must exist) and migrating its schema. A relative
// path is taken from the current directory.
func Open(ctx context.Context, path string) (*Store, error) {
	fail := func(err error) (*Store, error) {
		return nil, fmt.Errorf("state: open sqlite %q: %w", path, err)
	}
	if path == "" {
		return fail(errors.New("empty path"))
	}
	// The driver reads everything after a '?' as its own parameters.
	if strings.ContainsRune(path, '?') {
		return fail(errors.New("path must not contain '?'"))
	}
	// An absolute path can never be mistaken for a "file:" URI.
	abs, err := filepath.Abs(path)
	if err != nil {
		return fail(err)
	}
	// Creating the file is fine; creating directories is not (checkDir).
	if err := checkDir(filepath.Dir(abs)); err != nil {
		return fail(err)
	}

	// Every pooled connection gets these. _txlock=immediate makes each
	// write transaction take the write lock at BEGIN: a deferred transaction
	// that read first and then tried to write could fail with SQLITE_BUSY at
	// once, without waiting out the busy timeout, when another process wrote
	// in between. synchronous(NORMAL) skips the fsync at every commit in
	// WAL mode: a commit survives any crash of chimport (kill -9 included)
	// and can only be lost with the machine's power, and losing the last
	// commits only makes the watermark or a checkpoint older, never newer,
	// so the next run re-reads a little more and loses nothing.
	dsn := abs + "?_pragma=busy_timeout(" + fmt.Sprint(busyTimeout.Milliseconds()) + ")" +
		"&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fail(err)
	}
	// A handful of readers is plenty; each connection holds its own page
	// cache and prepared statements, so idle ones are kept, not closed and
	// opened again under load.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := migrate(ctx, db); err != nil {
		_ = db.Close()
		return fail(err)
	}
	return &Store{
		db:           db,
		path:         abs,
		keepRuns:     state.KeepRuns,
		keepFailures: state.KeepFailures,
	}, nil
}

// Path returns the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close sqlite %q: %w", s.path, err)
	}
	return nil
}

// connectionColumns reads a connection with its open alerts and the
// summary of its rejected log (see rejectedColumns), in one statement and
// so from one snapshot.
const connectionColumns = `name, watermark, first_attempt, last_attempt, last_success,
	last_error, last_error_at, last_read, last_delivered, total_delivered, checkpoint,
	kept, members, last_reconcile, left_count, default_view,
	(SELECT json_group_object(kind, opened_at) FROM alerts WHERE alerts.connection = connections.name),
	` + rejectedColumns

func scanConnection(row interface{ Scan(...any) error }) (state.ConnectionState, error) {
	var c state.ConnectionState
	var cp, alerts, sample sql.NullString
	err := row.Scan(&c.Connection, (*sqlTime)(&c.Watermark), (*sqlTime)(&c.FirstAttempt),
		(*sqlTime)(&c.LastAttempt), (*sqlTime)(&c.LastSuccess), &c.LastError, (*sqlTime)(&c.LastErrorAt),
		&c.LastRead, &c.LastDelivered, &c.TotalDelivered, &cp,
		&c.Roster.Kept, &c.Roster.Members, (*sqlTime)(&c.Roster.LastReconcile), &c.Roster.Left, &c.Roster.DefaultView,
		&alerts, &c.Rejected.Count, &sample)
	if err != nil {
		return state.ConnectionState{}, err
	}
	if sample.Valid {
		if c.Rejected.Sample, err = decodeSample(sample.String); err != nil {
			return state.ConnectionState{}, err
		}
	}
	if cp.Valid {
		if c.Checkpoint, err = state.DecodeCheckpoint(cp.String); err != nil {
			return state.ConnectionState{}, err
		}
	}
	if alerts.Valid {
		if c.Alerts, err = decodeAlerts(alerts.String); err != nil {
			return state.ConnectionState{}, err
		}
	}
	return c, nil
}

// decodeAlerts reads json_group_object's {kind: opened_at}; nil for none.
func decodeAlerts(s string) (map[string]time.Time, error) {
	var opened map[string]int64
	if err := json.Unmarshal([]byte(s), &opened); err != nil {
		return nil, fmt.Errorf("decode alerts: %w", err)
	}
	if len(opened) == 0 {
		return nil, nil
	}
	out := make(map[string]time.Time, len(opened))
	for kind, n := range opened {
		out[kind] = state.FromNanos(&n)
	}
	return out, nil
}

// Connection implements state.Store.
func (s *Store) Connection(ctx context.Context, name string) (state.ConnectionState, error) {
	row := s.queryRow(ctx, `SELECT `+connectionColumns+` FROM connections WHERE name = ?`, name)
	c, err := scanConnection(row)
	if errors.Is(err, sql.ErrNoRows) {
		return state.ConnectionState{Connection: name}, nil
	}
	if err != nil {
		return state.ConnectionState{}, fmt.Errorf("state: read connection %q: %w", name, err)
	}
	return c, nil
}

// Connections implements state.Store.
func (s *Store) Connections(ctx context.Context) ([]state.ConnectionState, error) {
	// ORDER BY name uses BINARY collation: byte order, the same as Go's
	// string comparison.
	rows, err := s.db.QueryContext(ctx, `SELECT `+connectionColumns+` FROM connections ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("state: list connections: %w", err)
	}
	defer rows.Close()
	var out []state.ConnectionState
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("state: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: list connections: %w", err)
	}
	return out, nil
}

// Failures implements state.Store.
func (s *Store) Failures(ctx context.Context, name string) ([]state.Failure, error) {
	rows, err := s.query(ctx, `
		SELECT connection, window_start, window_end, view_name, page_offset, error, failed_at
		FROM failures WHERE connection = ? AND resolved_at IS NULL ORDER BY id`, name)
	if err != nil {
		return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
	}
	defer rows.Close()
	var out []state.Failure
	for rows.Next() {
		var f state.Failure
		if err := rows.Scan(&f.Connection, (*sqlTime)(&f.WindowStart), (*sqlTime)(&f.WindowEnd),
			&f.View, &f.Offset, &f.Error, (*sqlTime)(&f.At)); err != nil {
			return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read failures for %q: %w", name, err)
	}
	return out, nil
}

// Runs implements state.Store.
func (s *Store) Runs(ctx context.Context, name string, limit int) ([]state.Run, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `
		SELECT connection, started, finished, window_start, window_end, full_sync, result,
			read_count, delivered_count, request_count, error
		FROM runs WHERE connection = ? ORDER BY id DESC LIMIT ?`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
	}
	defer rows.Close()
	var out []state.Run
	for rows.Next() {
		var r state.Run
		if err := rows.Scan(&r.Connection, (*sqlTime)(&r.Started), (*sqlTime)(&r.Finished),
			(*sqlTime)(&r.WindowStart), (*sqlTime)(&r.WindowEnd), &r.Full, &r.Result,
			&r.Read, &r.Delivered, &r.Requests, &r.Error); err != nil {
			return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("state: read runs for %q: %w", name, err)
	}
	return out, nil
}
