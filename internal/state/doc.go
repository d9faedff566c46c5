// Package state remembers, per connection, how far the sync has got: the
// watermark, attempt and success times, the last error, counts, and the
// checkpoint of a part-way run; plus a failures log and a run history.
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
// back in UTC, exact to the nanosecond.
//
// # SQLite
//
// SQLite is the embedded default ("sqlite://chimport.db"). One file holds
// three tables: connections (one row per connection; the checkpoint is a
// JSON column), runs and failures. Times are stored as unix nanoseconds,
// UTC, so they cover the years 1678 to 2262; the zero time is stored as
// NULL. The file is in WAL mode with a busy timeout, so several processes
// can share it. Every write method is one IMMEDIATE transaction (it takes
// the write lock up front, so it waits rather than fails when another
// process is writing); every read is one statement, one snapshot. The schema
// version lives in PRAGMA user_version and migrations run in order when the
// file is opened; a file written by a newer chimport is refused
// (ErrSchemaTooNew) rather than misread.
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
//     counters for retention).
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
// goes through one helper, where the lease check of a later version
// belongs. Without transactions (dynalite, the test emulator, lacks them)
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
