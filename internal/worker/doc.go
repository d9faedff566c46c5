// Package worker is what chimport serve does around the runs: it runs the
// scheduler, and after every run and on a steady lag beat it keeps the books.
//
// After a run (runConnection) it counts the run in the metrics from the
// engine's Summary (its Result is decided by the engine, once; its
// Tombstoned are the members that left the target), reads the connection's
// state back from the shared store, sets the lag, last-success, roster and
// rejected-records gauges, and applies the alert policy: a permanent error
// pages at once, lag past the threshold pages once per incident, and so
// does a rejected log that goes from empty to holding records (with a
// recovery notice when it is empty again). A run that was fenced
// (another worker claimed the connection meanwhile) touches no gauge and no
// alert: the store refused its writes, and the worker that owns the
// connection now speaks for it.
//
// The lag beat (checkLag) does the same bookkeeping for every configured
// connection whether this worker ran it or not, so a connection whose runs
// all fail, or that no worker runs, is still measured and alerted on. Its
// first check comes at start-up, not a period later. Before the scheduler
// starts, every connection's gauges are set from the store, so a fresh
// worker reports every connection at once.
//
// Everything that reads the time or waits goes through the injected
// clock.Clock: the tests drive a worker with clock.Manual and the in-memory
// store, and nothing waits on the wall clock. The commands wire it up
// (flags, listeners, signals) in cmd/chimport.
package worker
