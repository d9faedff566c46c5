// Package state remembers, per connection, how far the sync has got: the
// watermark, attempt and success times, the last error, counts, and the
// checkpoint of a part-way run; plus a failures log, a run history, the
// lease of the worker running it, and which alerts are open.
//
// # The watermark
//
// Watermark W means every member whose last_changed < W has been delivered.
// Only CompleteRun writes it, and it never moves backwards: every Store
// implementation folds the new value in with max() inside a single
// conditional write, so two runs (two goroutines, two processes, two
// workers) completing in either order leave the larger window end. A failed
// run never touches it, which is what lets the next run repair the gap.
//
// # Time
//
// Store methods take every time they record as an argument (StartRun's at,
// Run.Finished, Failure.At, ...) instead of reading a clock, so callers
// decide what "now" is and tests never depend on the wall clock. Times come
// back in UTC, exact to the nanosecond. Leases too: ClaimLease and
// RenewLease take now, and the store compares expiries with it, never with
// its own clock.
//
// # Leases and fencing
//
// Several `chimport serve` workers share one store. A worker claims a
// connection (ClaimLease) before running it, renews the lease while the
// run is alive, and releases it at the end; a dead worker's lease expires,
// and another worker claims the connection then. Each claim gets a token
// larger than every earlier one of that connection (a counter stored with
// the connection, never reset), and a worker passes its token with every
// checkpoint and run it records (Checkpoint.Token, Run.Token). The store
// applies such a write only while the token is still the connection's
// current one, checked inside the write itself (SQLite: in the UPDATE's
// WHERE clause, in the write's transaction; DynamoDB: in the
// ConditionExpression of the history item's UpdateItem, together with the
// watermark's condition). So a worker that was paused past its lease's
// expiry cannot write once another has claimed the connection: its writes
// fail with ErrFenced and change nothing, not even the run history. Its
// worst case is the one clock-based leases cannot rule out: the two runs
// read Mailchimp and deliver to the target at the same time for a while,
// which the target's idempotence absorbs.
//
// Token 0 is an unleased writer (`chimport run` by hand) and is not
// fenced, as before leases. StartRun (attempt times) and AddFailure (a
// report of a page that failed, resolved by any later completed window)
// are not fenced either: neither can move the watermark or lose progress.
//
// # Alerts
//
// SetAlert opens or closes one alert kind per connection as a
// compare-and-set, so of several workers that see the same lag only the
// one whose call flipped the state sends the alert, and likewise the
// recovery notice. Runs never touch alert state.
//
// # SQLite
//
// SQLite is the embedded default ("sqlite://chimport.db"). One file holds
// four tables: connections (one row per connection; the checkpoint is a
// JSON column; the lease is lease_owner, lease_token and lease_expires),
// runs, failures and alerts (connection, kind, opened_at: a row per open
// alert). Times are stored as unix nanoseconds,
// UTC, so they cover the years 1678 to 2262; the zero time is stored as
// NULL. The file is in WAL mode with a busy timeout, so several processes
// can share it. Every write method is one IMMEDIATE transaction (it takes
// the write lock up front, so it waits rather than fails when another
// process is writing); every read is one statement, one snapshot. The schema
// version lives in PRAGMA user_version and migrations run in order when the
// file is opened; a file written by a newer chimport is refused
// (ErrSchemaTooNew) rather than misread. Version 2 added the lease columns
// and the alerts table; a version 1 file is upgraded in place when opened.
//
// # DynamoDB
//
// DynamoDB ("dynamodb://?region=R&history_table=T&failures_table=U&runs_table=V",
// every parameter optional) serves several workers. Endpoint, credentials
// and region come from the AWS SDK's standard environment; region= in the
// URL wins. Open never creates tables (Init does, for `chimport init`): a
// worker needs no rights to create them, and a mistyped table name fails
// instead of starting over from an empty state. Three tables, each with
// hash key ListId (S) = the connection name:
//
//   - mailchimp-list-import-history (the original Python importer's): one
//     item per connection. Watermark (N, unix nanoseconds, exact) and
//     LastImportTime (S, the same instant in ISO 8601, as the original
//     importer kept it), FirstAttempt, LastAttempt, LastSuccess (N),
//     LastError (S), LastRead, LastDelivered, TotalDelivered (N),
//     Checkpoint (S, JSON), RunsRecorded and FailuresRecorded (N, append
//     counters for retention), LeaseOwner (S), LeaseToken (N, only ever
//     grows), LeaseExpires (N, unix nanoseconds; a released lease has
//     neither owner nor expiry), Alerts (M, open alert kind -> N, the unix
//     nanoseconds it opened).
//   - mailchimp-failed-imports (the original's): range key offset (N).
//     The page offset is no longer unique once failures have a view and a
//     window, so it moves to PageOffset and the range key is the failure's
//     time in unix nanoseconds, made unique by a conditional put that
//     steps past a taken value. Also View, Error (S), WindowStart,
//     WindowEnd, FailedAt (N).
//   - chimport-run-history: range key RunId (S), the zero-padded time the
//     run was recorded, so a descending query lists runs newest first.
//     Started, Finished, WindowStart, WindowEnd, Read, Delivered, Requests
//     (N), Full (BOOL), Result, Error (S).
//
// Times are unix nanoseconds, UTC, in N attributes; the zero time and the
// empty string are absent attributes. Every read is strongly consistent,
// so no reader sees the watermark step back. The watermark moves by an
// UpdateItem with the condition "attribute_not_exists(Watermark) OR
// Watermark < :new", which DynamoDB evaluates atomically; when it fails
// because another worker went further, CompleteRun records the rest
// (LastSuccess, counts, the run) without it. Every write to a history item
// goes through one helper, which carries a fenced write's lease check in
// the same condition. Leases and alerts use the same conditional
// UpdateItem: a claim sets owner and expiry and adds 1 to LeaseToken on
// condition that the lease is free, expired or the claimer's; SetAlert
// reads the alert and then writes on condition that it is still as read.
// Without transactions (dynalite, the test emulator, lacks them)
// a method that writes several items is not atomic: the history item is
// written first, in one conditional write, then the logs, so a crash
// part-way leaves a missing run entry or a covered failure still pending
// (the next completed run resolves it), never a wrong watermark.
//
// An item of the original importer, with LastImportTime (an ISO 8601
// string or epoch seconds) but no Watermark, reads as that watermark: an
// operator who names a connection after its Mailchimp list id picks up
// where the old importer stopped. Its first completed run then writes
// Watermark, and mirrors it to LastImportTime. The original importer's
// failures (no window) show as pending until the next completed run.
//
// # Retention
//
// So state does not grow forever, each write that appends to a log trims
// that log per connection: the newest 1000 runs and the newest 1000 failures
// are kept. SQLite trims on every append and keeps resolved failures (until
// trimmed); DynamoDB deletes a failure once resolved, and trims every 100th
// append, so a log there may hold up to 1099 items. Dropping an old pending
// failure loses only a diagnostic: repairing the gap is the watermark's
// job, not the log's.
//
// # Testing
//
// Package storetest holds the one test suite every Store implementation
// must pass; the DynamoDB tests run it against dynalite.
package state
