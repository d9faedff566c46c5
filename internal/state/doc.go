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
// # Retention
//
// So the file does not grow forever, each write that appends to a log trims
// that log per connection: the newest 1000 runs and the newest 1000 failures
// (pending or resolved) are kept. Dropping an old pending failure loses only
// a diagnostic: repairing the gap is the watermark's job, not the log's.
//
// # Testing
//
// Package storetest holds the one test suite every Store implementation
// must pass.
package state
