// Package metrics exposes what chimport serve does in the Prometheus format,
// for /metrics.
//
// A Metrics owns its own registry rather than the global one: the process
// serves exactly these series (and the Go runtime's and the process's), tests
// build as many as they like side by side, and nothing a dependency
// registers globally leaks out.
//
// Two sorts of series live here. Counters and the run duration histogram
// count what this process did (ObserveRun); with several workers, sum them
// across instances. Lag, the last success time, the members in the target
// and the records in the rejected log are facts about a connection that
// every worker reads from the shared state store (SetLag, SetLastSuccess,
// SetRosterMembers, SetRejected), so every instance reports the same
// value: take max, not sum.
package metrics
