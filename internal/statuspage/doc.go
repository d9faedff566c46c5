// Package statuspage renders chimport serve's HTML status page: one row per
// connection with its lag, last success, members in the target (and when
// they were last reconciled with Mailchimp, and how many records the
// target refused), last error and next run, failing connections first
// (with what to do), then lagging ones, then those with rejected records,
// all marked and counted in the header.
//
// The page is for a person glancing at a browser tab, so it is a single
// self-contained document: html/template (every value escaped), inline CSS,
// no JavaScript, no external assets, and a meta refresh every 30 seconds.
// Its Content-Security-Policy allows nothing but that one stylesheet, so
// even a hostile error message quoted from a server cannot run script or
// load anything.
//
// The package knows nothing about the store or the scheduler: the caller
// passes a function returning the rows, already filled in (Lagging as the
// lag policy decides it), and the clock.
package statuspage
