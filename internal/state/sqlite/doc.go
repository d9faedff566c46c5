// Package sqlite is the embedded state.Store, and chimport's default: one
// SQLite file (pure Go, no cgo), which several processes on one machine
// may share. It registers the URL scheme sqlite:
//
//	sqlite://chimport.db                 chimport.db in the current directory
//	sqlite://data/chimport.db            a relative path
//	sqlite:///var/lib/chimport/state.db  an absolute path
//
// Everything after "sqlite://" is the file path, taken literally (no
// percent-decoding, no query parameters). Open creates the file when it
// is missing, but never its directory: a typo in the path fails instead
// of starting over from an empty state somewhere new.
//
// The file holds seven tables: connections (one row per connection; the
// checkpoint is a JSON column, in state.EncodeCheckpoint's encoding; the
// lease is lease_owner, lease_token and lease_expires; the RosterState is
// kept, members, last_reconcile, left_count and default_view;
// last_error_at dates last_error), runs, failures, alerts (connection,
// kind, opened_at: a row per open alert), roster_bucket (connection,
// bucket, ids: the roster packed, a row per bucket of 4,096, each the
// sorted ids whose leading 12 bits are its number, 16 bytes an id),
// roster_log (seq, connection, id: ids added but not yet folded into the
// buckets, in a plain rowid table, so adding appends) and rejected
// (connection, member, record_key, status, reason, first_seen,
// last_attempt, attempts: the rejected log, a row per refused member,
// the member its 16 bytes). Times are stored as unix nanoseconds, UTC, so
// they cover the years 1678 to 2262; the zero time is stored as NULL.
//
// The rejected log is a table like any other: RecordRejections upserts a
// row per member and ClearRejections deletes them, each in one write
// transaction, and RejectedLog reads the rows in member (memcmp) order.
// Its summary in ConnectionState (the count, and the latest refusal) is
// not stored but read with the connection, by two subqueries in the same
// statement that seek into an index by (connection, last_attempt DESC,
// member): so it is exact at every read, and Connections over 10,000
// connections stays one statement.
//
// The file is in WAL mode with a busy timeout, so several processes can
// share it. Every write method is atomic: one savepoint inside an
// IMMEDIATE transaction (which takes the write lock up front, so it waits
// rather than fails when another process is writing), which it may share
// with other writes of the same handle queued at the same time (group
// commit, group.go): each write that fails rolls back to its own
// savepoint alone, and a write returns only once the COMMIT holding it
// has succeeded. Every read is one statement, one snapshot (RosterSize
// and Roster may first fold the roster log, a write: see below), on a
// pool of connections beside the writer's. Statements are prepared once
// per handle. The watermark moves by max() in a single UPDATE; a fenced
// write carries its lease check in that UPDATE's WHERE clause, and a
// write it refuses rolls back entirely.
//
// Rosters are written as a log and folded. Member ids are random, so a
// table with a row per id takes every insert on a random page of its
// B-tree: 1,000 of them cost tens of milliseconds once it holds a
// million, and even sorted, folding a first sync's million took seconds.
// UpdateRoster appends its adds to roster_log instead, a statement per
// 1,000, which costs the same at any roster size (a roster of at most
// 4,096 ids, whose buckets hold about one id each, takes its adds into
// the buckets at once, for the same cost, so that its RosterSize is a
// read). A fold reads the
// connection's log in one value, groups the ids by bucket and sorts them
// in Go, reads only the buckets they touch (all of them in one scan when
// most are), merges, writes back the buckets that changed, and empties
// the log, all in one write transaction, so two handles (or processes)
// folding and adding at once each see the log either before the fold or
// after it. RosterSize and Roster fold first, and so does an UpdateRoster
// with removes, which takes its removes out of their buckets in the same
// pass, after the adds (so an id logged before its remove cannot come
// back after it), and deletes a bucket it empties. members moves by
// exactly the ids the fold found new and the removes found there, so it
// is the buckets' total at every commit, and the roster's size once
// RosterSize has folded. Connection and Connections report it as of the
// last fold, as state.RosterState allows. Roster reads the buckets in
// bucket order and concatenates them: each is sorted, and its number is
// its ids' prefix.
//
// The schema version lives in PRAGMA user_version and migrations run in
// order when the file is opened; a file written by a newer chimport is
// refused (ErrSchemaTooNew) rather than misread. Version 2 added the lease
// columns and the alerts table, version 3 the roster columns, buckets and
// log, version 4 the rejected table and last_error_at; an older file is
// upgraded in place when opened, and its connections start with no
// roster (Kept false), an empty rejected log, and their last error
// undated (LastErrorAt zero).
//
// Retention: every append trims its log to the newest state.KeepRuns runs
// and state.KeepFailures failures per connection. Resolved failures stay
// in the table (marked resolved_at) until trimmed.
package sqlite
