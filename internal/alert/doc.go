// Package alert tells a person when a connection needs one.
//
// Two things page someone (DESIGN.md, "Freshness and alerts"):
//
//   - An error that retrying cannot fix: Mailchimp rejects the API key, the
//     audience is gone, the target refuses the credentials or the records.
//     NeedsPerson recognises these in a run's error and returns an Alert to
//     send at once.
//   - A connection whose lag passes a threshold, once per incident, and a
//     recovery notice when it catches up. Transient errors (429, 5xx,
//     timeouts) only ever page through lag: each run retries them, and most
//     clear on their own. LagPolicy builds Alerts of KindLag and
//     KindRecovered.
//
// Lag is measured from the watermark, the window end of the last completed
// run (Freshness). Several workers watch the same connections, so whether an
// incident is open lives in the shared state store (AlertStore): every
// worker evaluates the policy, and only the one whose compare-and-set flips
// the state sends the notice. LagPolicy.Check runs the lag step,
// LagPolicy.AfterRun also opens and closes permanent-error incidents, so a
// connection with a revoked key pages once, not on every run.
//
// An Alert is plain data; a Notifier delivers it. Log (the default) writes it
// to the log, SNS publishes it to an Amazon SNS topic, Webhook posts JSON
// with a Slack-compatible text to a URL, and Multi sends to several. Alerts carry only text that is already free of secrets: the typed
// Mailchimp and target errors are redacted where they are made, and nothing
// here adds a configured value other than the connection name.
package alert
