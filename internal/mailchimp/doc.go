// Package mailchimp is chimport's client for the Mailchimp Marketing API v3:
// the ping, list, lists (every audience of the account) and list-members
// endpoints, one member by subscriber hash
// (Member; ErrMemberNotFound once the member is deleted for good), a
// members pager, a list's webhooks (ListWebhooks, CreateWebhook, which
// never creates one twice when it retries, and DeleteWebhook), typed
// errors and a per-API-key concurrency limiter.
//
// A Client authenticates with an API key (Basic auth) or an OAuth access
// token (Bearer). A token's data center comes from Config.DC or else from
// Mailchimp's OAuth metadata endpoint, looked up on the first request and
// cached per process (Datacenters) so that the many connections of one
// token ask once; the lookup takes the same limiter slot, retries and
// typed errors as every other call.
//
// Every request goes through one place (Client.call) that applies, in
// order, the retry policy (internal/retry), the per-key Limiter (a slot is
// held for one HTTP attempt only, never during a backoff wait) and the
// classification of the outcome into an *Error whose Kind says whether to
// retry. That is rclone's pacer plus shouldRetry, kept in one file so the
// politeness rules (at most 10 simultaneous requests per key, Mailchimp's
// own limit, and jittered backoff on 429, 5xx and 403-without-body) hold
// for every caller. An *Error that retrying cannot fix says what to do
// about it (Error.Advice), in its message and for the alert policy.
//
// A members page is read into a pooled buffer and decoded by a parser that
// builds exactly what encoding/json builds (and hands anything unusual to
// encoding/json itself), because decoding is most of a sync's CPU and runs
// while the request holds its slot. Numbers in member documents stay
// json.Number, and the API key or token never appears in an error, a log
// line or a URL: it travels only in the Authorization header.
package mailchimp
