package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlitelib "modernc.org/sqlite/lib"

	"github.com/chimport/chimport/internal/state"
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
	// 3: rosters, the member ids that may be in each connection's target.
	// kept is 0 for every connection a release without rosters wrote, so
	// its next run builds one; members is kept equal to the number of ids
	// in the connection's buckets by every write.
	//
	// roster_log is where adds wait to be folded: a rowid table with no
	// index, where every insert appends. A fold scans it whole (it holds
	// only what no fold has taken yet; an index by connection would cost
	// every append, and every fold's delete, more than that scan), and
	// empties it in one go when the log is all its connection's (see
	// clearLog), which a foreign key would forbid: connection names a
	// row that write made sure of in the same transaction.
	//
	// roster_bucket holds the folded roster packed: a row per bucket, the
	// sorted, distinct 16-byte ids whose leading rosterBucketBits bits are
	// the bucket number, concatenated. Ids are MD5s, so a row per id would
	// put every insert on a random page of a B-tree; a bucket of a roster of
	// a million is about 4 KB, rewritten whole (in place: an upsert), and
	// a fold writes each bucket it touches once. Buckets are prefixes, so
	// reading them in bucket order reads the roster in id order. It is a
	// rowid table, its key a small index beside it: a 4 KB row overflows
	// the 1 KB that a WITHOUT ROWID table keeps in a cell, and SQLite then
	// reads a row's whole chain of pages at every key comparison of a
	// lookup, which made a change of 100 adds and 100 removes on a roster
	// of a million (200 buckets) take twice as long.
	`
ALTER TABLE connections ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN members INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN last_reconcile INTEGER;
ALTER TABLE connections ADD COLUMN left_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN default_view INTEGER NOT NULL DEFAULT 0; -- a state.DefaultView

CREATE TABLE roster_log (
	seq        INTEGER PRIMARY KEY, -- append order
	connection TEXT NOT NULL, -- a connections(name); no foreign key, see above
	id         BLOB NOT NULL CHECK (length(id) = 16) -- a state.MemberID
) STRICT;

CREATE TABLE roster_bucket (
	connection TEXT NOT NULL REFERENCES connections(name),
	bucket     INTEGER NOT NULL, -- the ids' leading 12 bits
	ids        BLOB NOT NULL,    -- sorted, distinct state.MemberIDs, 16 bytes each
	PRIMARY KEY (connection, bucket)
) STRICT;
`,
	// 4: the rejected log, a row per (connection, member) the target
	// refused, and the time of the last error, which NoteError records
	// while a run retries. The primary key lists a connection's log in
	// member order; rejected_latest holds its latest refusal first, so
	// Connections finds each connection's count and sample with a seek
	// into it rather than a sort of each log.
	`
ALTER TABLE connections ADD COLUMN last_error_at INTEGER;

CREATE TABLE rejected (
	connection   TEXT NOT NULL REFERENCES connections(name),
	member       BLOB NOT NULL CHECK (length(member) = 16), -- a state.MemberID
	record_key   TEXT NOT NULL, -- state.Rejection.Key
	status       INTEGER NOT NULL,
	reason       TEXT NOT NULL,
	first_seen   INTEGER NOT NULL,
	last_attempt INTEGER NOT NULL,
	attempts     INTEGER NOT NULL,
	PRIMARY KEY (connection, member)
) STRICT, WITHOUT ROWID;
CREATE INDEX rejected_latest ON rejected (connection, last_attempt DESC, member);
`,
}

// migrate brings the file up to len(migrations), one migration per
// transaction. The transaction is IMMEDIATE (see the DSN), so reading the
// version and applying the next step is atomic: several processes opening
// a new file at once apply each migration exactly once.
//
// A file still in rollback-journal mode (a new one, or one another tool
// made) is switched to WAL by each new connection (see the DSN), which needs
// the file to itself. While several processes open it at once, SQLite may
// answer SQLITE_BUSY at once instead of waiting out the busy timeout (it
// does so when waiting could deadlock), so a busy step is tried again,
// with backoff, until busyTimeout has passed since the first try: the step
// is one transaction, and trying it again is safe. The bound is on the
// time elapsed, not on the backoff alone, because a step can itself wait
// the whole busy timeout before it answers SQLITE_BUSY (another process
// holding the write lock): Open then fails after about busyTimeout, as it
// did before the retry existed, instead of trying again for minutes.
func migrate(ctx context.Context, db *sql.DB) error {
	retrying, cancel := context.WithTimeout(ctx, busyTimeout)
	defer cancel()
	delay := 5 * time.Millisecond
	for {
		done, err := migrateStep(ctx, db)
		switch {
		case done:
			return nil
		case err == nil:
			continue // on to the next migration
		case !isBusy(err) || retrying.Err() != nil:
			return err
		}
		select {
		case <-time.After(delay):
		case <-retrying.Done():
			return err
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var e *sqlitedriver.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlitelib.SQLITE_BUSY // the low byte is the primary code
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

// sqlTime is a time.Time as a SQL value: an INTEGER of unix nanoseconds,
// NULL for the zero time. Passing sqlTime(t) as an argument and scanning
// into (*sqlTime)(&t) keeps the encoding in one place.
type sqlTime time.Time

func (t sqlTime) Value() (driver.Value, error) {
	n, err := state.Nanos(time.Time(t))
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
		*t = sqlTime(state.FromNanos(&v))
	default:
		return fmt.Errorf("time column holds %T, want INTEGER", src)
	}
	return nil
}
