package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chimport/chimport/internal/state"
)

// ErrSchemaTooNew is returned when the schema's version is newer than this
// build knows: a newer chimport wrote it, and reading it could misinterpret
// state, so it is refused rather than guessed at.
var ErrSchemaTooNew = errors.New("database schema is newer than this chimport")

// ErrNotInitialised is returned by Open when the schema lacks chimport's
// tables, or has an older version of them: `chimport init` makes or
// upgrades them.
var ErrNotInitialised = errors.New("not initialised")

// migrations[i] takes the schema from version i to i+1. Append only: a
// released migration never changes, since databases in the field already
// ran it. They are a list in the binary, applied by Init in one
// transaction each with their version number (PostgreSQL's DDL is
// transactional), rather than a migration library's: the SQLite store
// keeps its migrations the same way, a library would add its own table
// and locking for what is one statement list, and Open only has to read
// one number.
//
// Times are unix nanoseconds in UTC, NULL for the zero time, as in every
// store (timestamptz keeps only microseconds). Names use the "C"
// collation, so ORDER BY name is byte order, Go's string order. Member
// ids are their 16 bytes; bytea compares as memcmp, so ORDER BY member is
// the roster's ascending byte order.
var migrations = []string{
	// 1: everything.
	`
CREATE TABLE connections (
	name            text COLLATE "C" PRIMARY KEY,
	watermark       bigint,
	first_attempt   bigint,
	last_attempt    bigint,
	last_success    bigint,
	last_error      text NOT NULL DEFAULT '',
	last_error_at   bigint,
	last_read       bigint NOT NULL DEFAULT 0,
	last_delivered  bigint NOT NULL DEFAULT 0,
	total_delivered bigint NOT NULL DEFAULT 0,
	checkpoint      text, -- state.EncodeCheckpoint's JSON; NULL when no run is part-way
	-- the lease: lease_token only grows (a claim adds 1), so no token is
	-- handed out twice; a released lease has no owner and no expiry
	lease_owner     text NOT NULL DEFAULT '',
	lease_token     bigint NOT NULL DEFAULT 0,
	lease_expires   bigint,
	-- the state.RosterState
	kept            boolean NOT NULL DEFAULT false,
	members         bigint NOT NULL DEFAULT 0,
	last_reconcile  bigint,
	left_count      bigint NOT NULL DEFAULT 0,
	default_view    smallint NOT NULL DEFAULT 0
);

CREATE TABLE runs (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- record order
	connection      text COLLATE "C" NOT NULL REFERENCES connections (name),
	started         bigint,
	finished        bigint,
	window_start    bigint,
	window_end      bigint,
	full_sync       boolean NOT NULL,
	result          text NOT NULL,
	read_count      bigint NOT NULL,
	delivered_count bigint NOT NULL,
	request_count   bigint NOT NULL,
	error           text NOT NULL
);
CREATE INDEX runs_by_connection ON runs (connection, id);

CREATE TABLE failures (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	connection   text COLLATE "C" NOT NULL REFERENCES connections (name),
	window_start bigint,
	window_end   bigint,
	view_name    text NOT NULL,
	page_offset  bigint NOT NULL,
	error        text NOT NULL,
	failed_at    bigint,
	resolved_at  bigint -- finish time of the run that covered it; NULL while pending
);
CREATE INDEX failures_by_connection ON failures (connection, id);

CREATE TABLE alerts (
	connection text COLLATE "C" NOT NULL REFERENCES connections (name),
	kind       text NOT NULL,
	opened_at  bigint NOT NULL,
	PRIMARY KEY (connection, kind)
);

CREATE TABLE roster (
	connection text COLLATE "C" NOT NULL REFERENCES connections (name),
	member     bytea NOT NULL CHECK (length(member) = 16),
	PRIMARY KEY (connection, member)
);

CREATE TABLE rejected (
	connection   text COLLATE "C" NOT NULL REFERENCES connections (name),
	member       bytea NOT NULL CHECK (length(member) = 16),
	record_key   text NOT NULL,
	status       integer NOT NULL,
	reason       text NOT NULL,
	first_seen   bigint NOT NULL,
	last_attempt bigint NOT NULL,
	attempts     bigint NOT NULL,
	PRIMARY KEY (connection, member)
);
CREATE INDEX rejected_latest ON rejected (connection, last_attempt DESC, member);
`,
}

// initLockWait bounds how long a migration waits for a table's lock.
const initLockWait = 10 * time.Second

// Version is the schema version this build writes and reads.
var Version = len(migrations)

// readVersion reads the schema's version: 0 when it has no version table
// (no chimport tables at all). It asks whether the table exists first:
// a failed SELECT would abort Init's transaction.
func readVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}

// checkVersion is Open's check: the schema is at exactly Version.
func checkVersion(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	v, err := readVersion(ctx, pool)
	switch {
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	case v == 0:
		return fmt.Errorf("%w: schema %q has no chimport tables; run `chimport init` to create them", ErrNotInitialised, schema)
	case v < Version:
		return fmt.Errorf("%w: schema %q has version %d, this chimport needs %d; run `chimport init` to upgrade it", ErrNotInitialised, schema, v, Version)
	case v > Version:
		return fmt.Errorf("%w: schema %q has version %d, this build knows up to %d", ErrSchemaTooNew, schema, v, Version)
	}
	return nil
}

// Init creates the schema and its tables, or upgrades them, and reports
// what it did. It is idempotent. Several processes may run it at once: a
// transaction-scoped advisory lock per schema lets one at a time read the
// version and apply what is missing.
func Init(ctx context.Context, cfg Config) (state.InitReport, error) {
	pool, err := connect(ctx, cfg)
	if err != nil {
		return state.InitReport{}, err
	}
	defer pool.Close()
	where := fmt.Sprintf("PostgreSQL schema %s in %s", cfg.Schema, describe(cfg))
	var from int
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// A migration of a large table may take longer than a statement
		// may; waiting for the lock behind another init may too.
		if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('chimport schema ' || $1, 0))`, cfg.Schema); err != nil {
			return err
		}
		// But a migration waiting for a table's lock holds up every worker
		// queued behind it: it gives up after initLockWait instead, and
		// init can be run again.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, initLockWait.Milliseconds())); err != nil {
			return err
		}
		// Checked first rather than CREATE SCHEMA IF NOT EXISTS, which
		// needs the CREATE privilege on the database even when a DBA has
		// made the schema already.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, cfg.Schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{cfg.Schema}.Sanitize()); err != nil {
				return fmt.Errorf("create schema: %w", err)
			}
		}
		if from, err = readVersion(ctx, tx); err != nil {
			return err
		}
		if from == Version {
			// Nothing to do, and no DDL: a worker whose user may only read
			// and write the tables runs init at start-up too.
			return nil
		}
		if from == 0 {
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
				return fmt.Errorf("create the version table: %w", err)
			}
		}
		if from > Version {
			return fmt.Errorf("%w: schema %q has version %d, this build knows up to %d", ErrSchemaTooNew, cfg.Schema, from, Version)
		}
		for v := from; v < Version; v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, Version)
		return err
	})
	if err != nil {
		return state.InitReport{}, fmt.Errorf("state: init postgres %s: %w", where, explain(err))
	}
	var report state.InitReport
	switch {
	case from == Version:
		report.Existing = []string{fmt.Sprintf("%s (schema version %d)", where, Version)}
	case from == 0:
		report.Created = []string{fmt.Sprintf("%s (schema version %d)", where, Version)}
	default:
		report.Created = []string{fmt.Sprintf("%s, upgraded from schema version %d to %d", where, from, Version)}
	}
	return report, nil
}

// describe names the database and server of cfg for people, without the
// password: "database chimport on db.internal:5432 as user chimport".
func describe(cfg Config) string {
	c := cfg.Pool.ConnConfig
	return fmt.Sprintf("database %s on %s as user %s", c.Database, net.JoinHostPort(c.Host, strconv.Itoa(int(c.Port))), c.User)
}

// connect opens a pool and makes sure the server takes the credentials:
// pgxpool connects lazily, and a wrong password should fail Open, not the
// first run's first write.
func connect(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg.Pool)
	if err != nil {
		return nil, fmt.Errorf("state: open postgres %s: %w", describe(cfg), explain(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("state: open postgres %s: %w", describe(cfg), explain(err))
	}
	return pool, nil
}

// explain adds what to do to the server errors a person must fix.
func explain(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "28P01", "28000": // invalid_password, invalid_authorization_specification
		return fmt.Errorf("%w (check the user and password in the state URL, PGPASSWORD or ~/.pgpass)", err)
	case "3D000": // invalid_catalog_name
		return fmt.Errorf("%w (create the database, or fix its name in the state URL)", err)
	case "42501": // insufficient_privilege
		return fmt.Errorf("%w (grant the user the privileges chimport needs: CREATE on the database for `chimport init`, or USAGE on the schema and read and write on its tables)", err)
	}
	return err
}
