// Package webhook receives Mailchimp's list webhooks and turns them into
// fetches of the truth.
//
// Mailchimp's webhooks are unsigned, unordered, sometimes duplicated and
// sometimes lost, so an event is a hint and never data: the receiver
// takes from it only which members to look at, a connection's queue
// coalesces the members its events name, and a Refresher (the worker,
// with the engine) fetches each member's current state and delivers that,
// serialized with the connection's runs. Polling stays the guarantee: a
// lost event is caught by the next run, a duplicate costs nothing more
// than the first, and a forged one with the right token can only cause a
// fetch of what Mailchimp really holds.
//
// The route is POST /webhooks/mailchimp/{connection}/{token}, where the
// token is derived from a secret and the connection name (Token), so the
// URL itself is the credential Mailchimp cannot sign with.
package webhook
