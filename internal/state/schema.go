package state

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrSchemaTooNew is returned when a SQLite file has a schema version newer
// than this build knows: a newer chimport wrote it, and reading it could
// misinterpret state, so it is refused rather than guessed at.
var ErrSchemaTooNew = errors.New("database schema is newer than this chimport")

// migrations[i] takes the schema from version i to i+1. Append only: a
// released migration never changes, since files in the field already ran it.
var migrations = []string{
	// 1: everything. Times are unix nanoseconds in UTC, NULL for the zero
	// time (see sqlTime). STRICT makes SQLite reject a value of the wrong
	// type instead of storing it silently.
	`
CREATE TABLE connections (
	name            TEXT PRIMARY KEY,
	watermark       INTEGER,
	first_attempt   INTEGER,
	last_attempt    INTEGER,
	last_success    INTEGER,
	last_error      TEXT NOT NULL DEFAULT '',
	last_read       INTEGER NOT NULL DEFAULT 0,
	last_delivered  INTEGER NOT NULL DEFAULT 0,
	total_delivered INTEGER NOT NULL DEFAULT 0,
	checkpoint      TEXT -- JSON of checkpointRecord; NULL when no run is part-way
) STRICT;

CREATE TABLE runs (
	id              INTEGER PRIMARY KEY, -- record order: newest has the largest id
	connection      TEXT NOT NULL REFERENCES connections(name),
	started         INTEGER,
	finished        INTEGER,
	window_start    INTEGER,
	window_end      INTEGER,
	full_sync       INTEGER NOT NULL,
	result          TEXT NOT NULL,
	read_count      INTEGER NOT NULL,
	delivered_count INTEGER NOT NULL,
	request_count   INTEGER NOT NULL,
	error           TEXT NOT NULL
) STRICT;
CREATE INDEX runs_by_connection ON runs (connection, id);

CREATE TABLE failures (
	id           INTEGER PRIMARY KEY,
	connection   TEXT NOT NULL REFERENCES connections(name),
	window_start INTEGER,
	window_end   INTEGER,
	view_name    TEXT NOT NULL,
	page_offset  INTEGER NOT NULL,
	error        TEXT NOT NULL,
	failed_at    INTEGER,
	resolved_at  INTEGER -- finish time of the run that covered it; NULL while pending
) STRICT;
CREATE INDEX failures_by_connection ON failures (connection, id);
`,
	// 2: leases and alert state, for several `chimport serve` workers.
	// lease_token only ever grows (a claim adds 1, nothing resets it), so a
	// token is never handed out twice; a released lease has no owner and
	// no expiry, but keeps its token.
	`
ALTER TABLE connections ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE connections ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN lease_expires INTEGER;

CREATE TABLE alerts (
	connection TEXT NOT NULL REFERENCES connections(name),
	kind       TEXT NOT NULL,
	opened_at  INTEGER NOT NULL,
	PRIMARY KEY (connection, kind)
) STRICT, WITHOUT ROWID;
`,
}

// migrate brings the file up to len(migrations), one migration per
// transaction. The transaction is IMMEDIATE (see the DSN), so reading the
// version and applying the next step is atomic: several processes opening
// a new file at once apply each migration exactly once.
func migrate(ctx context.Context, db *sql.DB) error {
	for {
		done, err := migrateStep(ctx, db)
		if err != nil || done {
			return err
		}
	}
}

func migrateStep(ctx context.Context, db *sql.DB) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	switch {
	case version > len(migrations):
		return false, fmt.Errorf("%w: file has version %d, this build knows up to %d", ErrSchemaTooNew, version, len(migrations))
	case version == len(migrations):
		return true, nil
	}
	if _, err := tx.ExecContext(ctx, migrations[version]); err != nil {
		return false, fmt.Errorf("migrate schema to version %d: %w", version+1, err)
	}
	// user_version lives in the file header and is part of the transaction,
	// so a crash leaves either both the migration and its number or neither.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version+1)); err != nil {
		return false, fmt.Errorf("set schema version %d: %w", version+1, err)
	}
	return false, tx.Commit()
}

// The range of times unix nanoseconds in an int64 can hold.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// nanos encodes t as unix nanoseconds, nil for the zero time. It refuses
// times an int64 cannot hold rather than store a wrapped-around value.
func nanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("time %s is outside the storable range %s to %s",
			t.UTC().Format(time.RFC3339Nano), minTime.UTC().Format(time.RFC3339), maxTime.UTC().Format(time.RFC3339))
	}
	n := t.UnixNano()
	return &n, nil
}

// fromNanos decodes what nanos encoded, in UTC.
func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// sqlTime is a time.Time as a SQL value: an INTEGER of unix nanoseconds,
// NULL for the zero time. Passing sqlTime(t) as an argument and scanning
// into (*sqlTime)(&t) keeps the encoding in one place.
type sqlTime time.Time

func (t sqlTime) Value() (driver.Value, error) {
	n, err := nanos(time.Time(t))
	if n == nil || err != nil {
		return nil, err
	}
	return *n, nil
}

func (t *sqlTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*t = sqlTime{}
	case int64:
		*t = sqlTime(fromNanos(&v))
	default:
		return fmt.Errorf("time column holds %T, want INTEGER", src)
	}
	return nil
}

// checkpointRecord is a Checkpoint as stored in connections.checkpoint, with
// times encoded as everywhere else in the file.
type checkpointRecord struct {
	WindowStart *int64            `json:"window_start,omitempty"`
	WindowEnd   *int64            `json:"window_end,omitempty"`
	Views       map[string]*int64 `json:"views,omitempty"`
	UpdatedAt   *int64            `json:"updated_at,omitempty"`
}

func encodeCheckpoint(cp Checkpoint) (string, error) {
	var r checkpointRecord
	var err error
	if r.WindowStart, err = nanos(cp.WindowStart); err != nil {
		return "", fmt.Errorf("checkpoint window start: %w", err)
	}
	if r.WindowEnd, err = nanos(cp.WindowEnd); err != nil {
		return "", fmt.Errorf("checkpoint window end: %w", err)
	}
	if r.UpdatedAt, err = nanos(cp.UpdatedAt); err != nil {
		return "", fmt.Errorf("checkpoint updated at: %w", err)
	}
	if len(cp.Views) > 0 {
		r.Views = make(map[string]*int64, len(cp.Views))
		for view, t := range cp.Views {
			if r.Views[view], err = nanos(t); err != nil {
				return "", fmt.Errorf("checkpoint view %q: %w", view, err)
			}
		}
	}
	b, err := json.Marshal(r)
	return string(b), err
}

func decodeCheckpoint(s string) (*Checkpoint, error) {
	var r checkpointRecord
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	cp := &Checkpoint{
		WindowStart: fromNanos(r.WindowStart),
		WindowEnd:   fromNanos(r.WindowEnd),
		Views:       make(map[string]time.Time, len(r.Views)),
		UpdatedAt:   fromNanos(r.UpdatedAt),
	}
	for view, n := range r.Views {
		cp.Views[view] = fromNanos(n)
	}
	return cp, nil
}
