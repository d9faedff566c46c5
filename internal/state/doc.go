// Package state remembers, per connection, how far the sync has got: the
// watermark, attempt and success times, the last error, counts, and the
// checkpoint of a part-way run; plus a failures log, a run history, the
// lease of the worker running it, and which alerts are open.
//
// This package is the Store interface, its types and errors, the rules
// every store shares (the argument checks, the time and checkpoint
// encodings, the fencing error) and the registry of stores by URL scheme.
// It links no store: each lives in a package of its own, which registers
// its scheme when it is linked in, so the engine, which needs only the
// interface, links no database driver or cloud SDK.
//
//	internal/state/sqlite    sqlite://FILE, the embedded default
//	internal/state/dynamodb  dynamodb://?..., for AWS deployments with several workers
//	internal/state/postgres  postgres://..., for several workers anywhere
//	internal/state/memory    in-process, for unit tests (no URL scheme)
//
// # Stores and URLs
//
// Open, Init (for `chimport init`) and ValidateURL take a config `state:`
// URL and hand it to the driver registered for its scheme. A program
// chooses its stores by importing their packages: cmd/chimport does it in
// stores.go. Adding a store is a new package under internal/state that
// passes storetest and calls Register from an init function, plus one
// blank import there; nothing in this package changes.
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
// back in UTC, exact to the nanosecond; every store keeps them as unix
// nanoseconds (Nanos), so none holds a time before 1678 or after 2262.
// Leases too: ClaimLease and RenewLease take now, and the store compares
// expiries with it, never with its own clock.
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
// current one, checked inside the write itself (each store's package doc
// says how). So a worker that was paused past its lease's expiry cannot
// write once another has claimed the connection: its writes fail with
// ErrFenced and change nothing, not even the run history. Its worst case
// is the one clock-based leases cannot rule out: the two runs read
// Mailchimp and deliver to the target at the same time for a while, which
// the target's idempotence absorbs.
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
// # Retention
//
// So state does not grow forever, each write that appends to a log trims
// that log per connection: the newest KeepRuns (1000) runs and the newest
// KeepFailures (1000) failures are kept. Stores differ in when they trim
// and whether they keep resolved failures until then; each package doc
// says how. Dropping an old pending failure loses only a diagnostic:
// repairing the gap is the watermark's job, not the log's.
//
// # Testing
//
// Package storetest holds the one test suite every Store implementation
// must pass; each store's package runs it (DynamoDB's against dynalite,
// PostgreSQL's against a throwaway cluster: see internal/pgtest).
package state
