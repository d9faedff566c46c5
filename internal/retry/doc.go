// Package retry is chimport's one backoff loop: exponential backoff with
// jitter, a bounded number of attempts, and an injectable clock.
//
// Callers do not tell the loop which errors to retry; errors say so
// themselves by implementing
//
//	interface{ Retryable() bool }
//
// and, when the server named a wait, interface{ RetryAfter() time.Duration }.
// This keeps the classification (rclone's shouldRetry) next to the code that
// understands the protocol, and the waiting here, in one place that tests
// drive with clock.Fake instead of the wall clock.
//
// Cancellation always wins: Do never retries once its context is done, and
// never retries an error that is itself a context cancellation or deadline.
// A caller whose attempts have their own timeout (an http.Client.Timeout,
// whose errors match context.DeadlineExceeded) must report that timeout as a
// retryable error that does not wrap the context error; otherwise the loop
// would take it for the caller's own deadline and stop.
package retry
