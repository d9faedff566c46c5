// Package mcsim simulates the two services chimport sits between: the
// Mailchimp Marketing API (members, one member, list and ping endpoints) and
// a customer's HTTP API that accepts batches of records.
//
// Tests, `chimport demo` and `chimport sim` use it instead of the real
// services, so it reproduces the behaviour the sync engine has to survive,
// not just the happy path:
//
//   - offset paging computed per request from current data, so a window that
//     shrinks while it is paged skips members exactly as the real API does;
//   - since_last_changed / before_last_changed with one-second resolution,
//     exclusive by default and inclusive on request (the real API does not
//     document which it is, so the engine must work with both);
//   - archived members hidden unless status=archived is asked for, and still
//     returned by the one-member endpoint (404 once deleted for good);
//   - optionally, ties among equal sort keys served in a new order on every
//     request (SetUnstableTieOrder), as a database may serve them;
//   - fields / exclude_fields dot paths, count capped silently at 1000;
//   - at most MaxConnsPerKey simultaneous requests per API key (429 beyond);
//   - injected faults: 5xx with an HTML body, 429, 403 without a body,
//     dropped connections and truncated bodies;
//   - churn: mutations stamped with an injected clock, optionally applied
//     before every members page ("churn while paging").
//
// Mailchimp is the API simulator (an http.Handler serving paths under /3.0/);
// Target is the record sink. Both also have an in-process door for the sync
// engine's unit tests: Mailchimp.Source answers the client's member calls
// and Target.Apply takes batches of operations, from the same data, churn
// and faults, without HTTP (and without the retries a client would add).
// Both are safe for concurrent use, including mutations from other
// goroutines while requests are in flight.
//
// Stored members are immutable: a mutation replaces the stored *Member with an
// edited copy. Requests can therefore take a consistent page under a read
// lock and encode it after releasing the lock, so slow clients never hold up
// mutations.
package mcsim
