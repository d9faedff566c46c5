// Package postgres is the PostgreSQL state.Store: for several workers on
// any machines that reach one database, off AWS as well as on it. It
// registers the URL schemes postgres and postgresql:
//
//	postgres://chimport:PASSWORD@db.internal:5432/chimport?sslmode=require
//	postgresql://chimport@db.internal/chimport?schema=sync_eu   (password from PGPASSWORD or ~/.pgpass)
//
// The URL is libpq's, read by pgx: its parameters (sslmode, sslrootcert,
// connect_timeout, ...) and the PG* environment variables (PGHOST,
// PGPASSWORD, PGSSLMODE, ...) apply as they would to psql. chimport adds
// schema=, the schema that holds its tables (chimport by default), and
// pgxpool's pool_max_conns (and pgx's default_query_exec_mode: behind
// PgBouncer in transaction mode, simple_protocol). Unless the URL's own
// parameters or the environment say otherwise (a -c in options= or
// PGOPTIONS does not: the server applies these after it), a process keeps
// a pool of 8 connections, each session has a
// 30 s statement_timeout and a 1 min idle_in_transaction_session_timeout
// (a worker frozen in a transaction lets go of its locks), connecting
// gives up after 10 s, and sessions are named chimport
// (application_name). The password appears in no error, log or report:
// errors name the database, server and user instead.
//
// # Schema and migrations
//
// `chimport init` (Init) creates the schema if it is missing and applies
// the migrations this build embeds, each in one transaction with its
// version number in schema_version, under an advisory lock per schema, so
// workers that all run init at start-up apply each migration once. Every
// other command (Open) only reads the version: a schema without tables,
// or at an older version, is refused with "run `chimport init`"; one a
// newer chimport wrote, with ErrSchemaTooNew. Open never creates anything,
// so a typo in the URL fails instead of starting over from an empty state.
//
// The schema holds seven tables: connections (a row per connection: the
// watermark and times, the checkpoint as state.EncodeCheckpoint's JSON,
// the lease as lease_owner, lease_token and lease_expires, and the
// state.RosterState), runs and failures (the logs, trimmed at every append
// to state.KeepRuns and state.KeepFailures per connection; resolved
// failures stay until trimmed), alerts (a row per open alert), roster (a
// row per connection and member id), rejected (a row per refused member)
// and schema_version. Times are unix nanoseconds, UTC, NULL for the zero
// time, as in every store (timestamptz keeps microseconds); member ids
// are their 16 bytes (bytea compares as memcmp, the roster's order);
// connection names use the "C" collation, so ORDER BY is Go's string
// order. Text columns cannot hold NUL bytes or invalid UTF-8, which a
// target's answer may contain: errors and refusal reasons are stored with
// U+FFFD in their place.
//
// # Concurrency
//
// Every write is one READ COMMITTED transaction that makes sure the
// connection's row exists and then runs its statements. Whatever must see
// the latest row is a single UPDATE, which locks the row and re-checks its
// WHERE clause against the newest version when another transaction
// changed it meanwhile: the watermark moves by greatest() against the
// stored value, a fenced write carries its lease check in the UPDATE that
// comes first (so a refused write rolls back entirely), and a lease is
// claimed by an UPDATE whose condition is that the lease is free, expired
// or the claimer's, incrementing lease_token. SetAlert's insert or delete
// waits for a concurrent one on the same row and then finds it there or
// gone, so only one caller flips it. The roster's count moves by the rows
// its insert (ON CONFLICT DO NOTHING) and delete statements report, so it
// is exact at every commit and RosterSize reads it rather than counting.
// Roster and rejected-log writes lock their rows in member order (inserts
// in sorted order, deletes through a SELECT ... ORDER BY member FOR
// UPDATE), so two writers of one connection queue rather than deadlock; a
// transaction the server still aborts as a deadlock is run again after a
// short random pause, up to three times. Init takes no statement timeout
// (a migration may be long) but waits at most 10 s for a table's lock,
// and does no DDL at all when the schema is up to date, so workers whose
// user may only read and write the tables can run it too.
package postgres
