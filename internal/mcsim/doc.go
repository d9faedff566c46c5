// Package mcsim simulates the two services chimport sits between: the
// Mailchimp Marketing API (members, one member, list, lists, webhooks and
// ping endpoints, and the OAuth metadata endpoint) and a customer's HTTP
// API that accepts batches of records and deletes.
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
//   - archived members hidden unless status=archived is asked for (or, as
//     Mailchimp does not document which, in the default view too with
//     Options.DefaultViewIncludesArchived), and still returned by the
//     one-member endpoint, which answers 404 once a member is deleted for
//     good (Delete) or has moved to another address;
//   - identity as Mailchimp keeps it: the id is the MD5 of the lower-cased
//     address, so an address change (ChangeAddress) gives the member a new
//     id, while contact_id, unique_email_id and web_id stay;
//   - optionally, ties among equal sort keys served in a new order on every
//     request (SetUnstableTieOrder), as a database may serve them;
//   - fields / exclude_fields dot paths, count capped silently at 1000;
//   - at most MaxConnsPerKey simultaneous requests per API key or OAuth
//     access token (429 beyond); tokens (AddAccessToken) go as Bearer
//     headers, can be revoked (RevokeAccessToken: 401), and are answered at
//     /oauth2/metadata with the simulator's own address as api_endpoint;
//   - accounts: lists granted to a credential (Grant, AddAccountList) are
//     all it sees, in GET /lists and on the lists' routes; RemoveList makes
//     an audience disappear;
//   - injected faults: 5xx with an HTML body, 429, 403 without a body,
//     dropped connections and truncated bodies;
//   - churn: edits, unsubscribes, archives, signups, address changes and
//     permanent deletes, stamped with an injected clock, deterministic per
//     seed, optionally applied before every members page ("churn while
//     paging");
//   - list webhooks: created over the API once their URL answers a GET with
//     200 (the same URL may be registered twice, as Mailchimp allows), then
//     told of each change a little later (WebhookOptions.Delay, on the wall
//     clock) with a form-encoded POST: subscribe, unsubscribe, profile,
//     upemail or cleaned, with Mailchimp's payload fields; archiving fires
//     nothing. Each webhook has its own queue and goroutine, never run under
//     a lock, with a 10 s timeout and retries per call, and optional
//     duplicates, out-of-order delivery and lost events (SetWebhookFaults).
//     FlushWebhooks waits for every pending event; Close stops sending.
//
// Stats counts requests by kind (members pages, one-member requests, the
// rest), so tests can hold a run to its request budget.
//
// Mailchimp is the API simulator (an http.Handler serving paths under /3.0/);
// Target is the record sink: batches of records POSTed as a JSON array,
// upserted by id (or by a tuple of fields, TargetOptions.Key, such as id and
// list_id), and DELETE .../{id} of one record. Like a customer's API
// it can refuse records (RefuseIDs, SetRefuseRule: the whole batch refused
// with a 422 or 400 that names the first bad record) and batches too large
// (SetMaxBatch: 413), after any injected failure. Both also have an
// in-process door for the sync engine's unit tests: Mailchimp.Source
// answers the client's member calls and Target.Apply takes batches of
// operations, from the same data, churn and faults, without HTTP (and
// without the retries a client would add). Both are safe for concurrent
// use, including mutations from other goroutines while requests are in
// flight.
//
// Agreement checks that every member's record is in the target; Mirror
// checks strictly that the target holds a connection's live members and
// nothing else but tombstones: no record of a member deleted for good,
// moved to another address or filtered out.
//
// Stored members are immutable: a mutation replaces the stored *Member with an
// edited copy. Requests can therefore take a consistent page under a read
// lock and encode it after releasing the lock, so slow clients never hold up
// mutations.
package mcsim
