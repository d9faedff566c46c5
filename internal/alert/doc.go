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
//     clear on their own. The lag policy builds Alerts of KindLag and
//     KindRecovered.
//
// An Alert is plain data; a Notifier delivers it. Log (the default) writes it
// to the log, SNS publishes it to an Amazon SNS topic, and Multi sends to
// several. Alerts carry only text that is already free of secrets: the typed
// Mailchimp and target errors are redacted where they are made, and nothing
// here adds a configured value other than the connection name.
package alert
