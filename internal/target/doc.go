// Package target delivers mapped records to the customer's HTTP API.
//
// The customer's API takes a JSON array of records in a POST and is
// idempotent by record id. This package also probes a target for
// `chimport check` without sending it any data.
package target
