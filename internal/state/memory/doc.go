// Package memory is an in-process state.Store for unit tests: every
// connection's state, leases, alerts, logs and roster (a set of member ids
// per connection, sorted only when read) live in maps behind one mutex,
// and are gone when the Store is.
//
//	store := memory.New()
//
// It keeps every promise of the state.Store interface and passes the same
// suite as the SQLite and DynamoDB stores (storetest): the watermark never
// moves backwards, checkpoints, fencing tokens, leases, the alerts'
// compare-and-set, the run history, the failures log and the rosters
// (whose Members count is always exact). Retention is the documented one:
// the newest state.KeepRuns runs and the newest state.KeepFailures pending
// failures per connection; a failure is dropped once a completed run
// resolves it, as DynamoDB does.
//
// It refuses what the other stores refuse (an empty connection name, a
// time outside the years 1678 to 2262 that unix nanoseconds hold, a lease
// or alert without its owner, kind or time), and hands back times as they
// do, in UTC and without a monotonic reading, so a test that passes on it
// does not lean on a leniency the real stores lack. Values go in and come
// out as copies: a caller that changes a Checkpoint's Views map after
// saving it, or one it read, changes nothing in the store.
//
// One Store may be shared by any number of goroutines, which then stand in
// for workers sharing one database: each method is one critical section,
// so it is atomic, and of two racing claims or alert flips exactly one
// wins.
//
// The package registers no URL scheme. State that vanishes with the
// process would be a trap in a config file (every run a first full sync),
// and a test that needs a store has one from New.
package memory
