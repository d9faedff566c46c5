// Package schedule runs each connection on its schedule, in one worker of a
// pool that shares a state store (`chimport serve`).
//
// Every connection runs every Connection.Every (90 minutes by default) or
// on its cron expression (github.com/adhocore/gronx syntax, read in
// Config.Location, UTC by default, so workers in different zones agree).
//
// Planning reads the store, not this worker's memory: the next run is
// LastAttempt + Every + jitter, or the first cron tick after LastAttempt
// plus jitter, so every worker that reads the same LastAttempt plans the
// same instant, and a worker that restarts keeps the rhythm. A connection
// that never ran is due at once (plus jitter); with cron, at its next tick.
// The jitter is a fixed offset per connection, hashed from its name, under
// min(every/10, 5m): thousands of connections do not start in the same
// second, yet each keeps a steady period (Every plus its own offset), which
// also stops them from drifting back into step.
//
// The store is read when a connection falls due and after each attempt,
// not on a timer: a plan only moves later as attempts are recorded, so a
// stale plan is early, never late, and the read at the due time corrects
// it (thousands of connections cost two reads per period each). Waits are
// capped at a minute so a jump of the wall clock is noticed.
//
// When a connection is due, the worker claims its lease, checks that no
// other worker started a run since it read the store (else it gives the
// lease back), and calls Config.Run with the lease. While the run is alive
// the lease is renewed every LeaseTTL/3; when renewal reports the lease
// fenced (another worker claimed it), or cannot renew it before it
// expires, the run's context is cancelled: the engine's fenced writes
// would fail anyway, and stopping early saves the work. Releasing the
// lease at the end lets another worker take over without waiting for the
// expiry. A worker that dies simply stops renewing; once its lease expires
// another worker claims the connection. A worker that finds the lease held
// waits for the holder's expiry before claiming again, instead of polling.
//
// A run of one connection never overlaps another: across workers the lease
// ensures it, and in this worker each connection has one goroutine that
// plans, claims and runs it in turn. (The store lets an owner re-claim its
// own lease, so two Schedulers must never share an Owner; DefaultOwner adds
// a random part so a restarted container with the same host name and PID 1
// does not inherit its predecessor's leases.) At most Config.MaxParallel
// runs are in flight in one worker.
//
// Shutdown: when Run's context ends, no new run starts. Runs in flight keep
// their own context for Config.Grace, so they can finish or reach a
// checkpoint; after that their context is cancelled (the engine saves its
// checkpoint and returns). Run returns once every run has returned and
// released its lease.
//
// Time comes only from Config.Clock, and every wait is a Clock.Sleep, so
// tests drive the scheduler with clock.Manual and never sleep.
package schedule
