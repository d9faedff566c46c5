// Package alert decides when a connection needs a person, and what to tell
// them.
//
// Three things page someone:
//
//   - An error that retrying cannot fix: Mailchimp rejects the API key, the
//     audience is gone, the target refuses the credentials or the records.
//     Such an error says so itself: its Advice method (the Mailchimp
//     client's and the target sink's errors have one) returns what failed
//     and what to do. NeedsPerson walks a run's error chain for it and
//     returns an Alert to send at once. This package knows no error type.
//   - A connection whose lag passes a threshold, once per incident, and a
//     recovery notice when it catches up. Transient errors (429, 5xx,
//     timeouts) only ever page through lag: each run retries them, and most
//     clear on their own. LagPolicy builds Alerts of KindLag and
//     KindRecovered.
//   - A connection whose target refused records: they wait in its rejected
//     log while the rest keeps syncing, so no run fails and nothing else
//     would say so. CheckRejected pages once when the log goes from empty
//     to holding records (KindRejected: the count, one member id and the
//     target's answer), and sends a recovery notice when it is empty again.
//
// Lag is measured from the watermark, the window end of the last completed
// run (Freshness). Several workers watch the same connections, so whether an
// incident is open lives in the shared state store (AlertStore): every
// worker evaluates the policy, and only the one whose compare-and-set flips
// the state sends the notice. LagPolicy.Check runs the lag step,
// LagPolicy.AfterRun also opens and closes permanent-error incidents, so a
// connection with a revoked key pages once, not on every run.
//
// An Alert is plain data; a Notifier delivers it. The notifiers themselves
// (log, SNS, webhook) are in internal/alert/notify, so the policy links no
// AWS SDK. Alerts carry only text that is already free of secrets: the
// typed Mailchimp and target errors are redacted where they are made, and
// nothing here adds a configured value other than the connection name. A
// target's answer quoted from the rejected log has the configured header
// values blanked out by the engine, and Printable puts it on one line.
package alert
