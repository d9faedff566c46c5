// Package notify delivers alerts: Log (every deployment has it) writes them
// to the log, SNS publishes them to an Amazon SNS topic, Webhook posts JSON
// with a Slack-compatible text to a URL, and Multi sends to several.
//
// They live apart from the alert policy so that deciding when to page
// someone links no AWS SDK and no HTTP client: the policy only needs the
// alert.Notifier interface, which it declares. Alerts arrive already free
// of secrets; the webhook also scrubs what a receiver echoes of its URL,
// which holds a token.
package notify
