// Package target delivers mapped records to the customer's HTTP API.
//
// The customer's API takes a JSON array of records in a POST and is
// idempotent by record id. The sink takes operations (Op): upserts of
// records and deletes of record ids. Upserts go as one POSTed batch; a
// delete goes as the connection's DeleteMode says: a tombstone record in the
// same batch, a DELETE request of its own, or nowhere at all. Every request
// is retried the same way (429 with Retry-After, 5xx, timeouts), and every
// failure is an *Error that says what to do and never shows a header value
// or a URL's query. This package also probes a target for `chimport check`,
// through the sink's own client, without sending it any data.
package target
