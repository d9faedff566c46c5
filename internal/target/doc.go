// Package target delivers mapped records to the customer's HTTP API.
//
// The customer's API takes a JSON array of records in a POST and is
// idempotent by record id. The sink takes operations (Op): upserts of
// records, and deletes of record ids, which a target cannot receive yet, so
// a batch holding one is refused whole before anything is sent. This
// package also probes a target for `chimport check`, through the sink's own
// client, without sending it any data.
package target
