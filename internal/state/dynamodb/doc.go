// Package dynamodb is the state.Store for AWS deployments with several
// workers. It registers the URL scheme dynamodb:
//
//	dynamodb://                          default tables, the SDK's region
//	dynamodb://?region=eu-west-1&history_table=T&failures_table=U&runs_table=V
//
// Every parameter is optional. Endpoint, credentials and region come from
// the AWS SDK's standard environment; region= in the URL wins. Open never
// creates tables (Init does, for `chimport init`): a worker needs no
// rights to create them, and a mistyped table name fails instead of
// starting over from an empty state. Three tables, each with hash key
// ListId (S) = the connection name:
//
//   - mailchimp-list-import-history (the original Python importer's): one
//     item per connection. Watermark (N, unix nanoseconds, exact) and
//     LastImportTime (S, the same instant in ISO 8601, as the original
//     importer kept it), FirstAttempt, LastAttempt, LastSuccess (N),
//     LastError (S), LastRead, LastDelivered, TotalDelivered (N),
//     Checkpoint (S, JSON, in state.EncodeCheckpoint's encoding),
//     RunsRecorded and FailuresRecorded (N, append counters for
//     retention), LeaseOwner (S), LeaseToken (N, only ever grows),
//     LeaseExpires (N, unix nanoseconds; a released lease has neither
//     owner nor expiry), Alerts (M, open alert kind -> N, the unix
//     nanoseconds it opened).
//   - mailchimp-failed-imports (the original's): range key offset (N).
//     The page offset is no longer unique once failures have a view and a
//     window, so it moves to PageOffset and the range key is the failure's
//     time in unix nanoseconds, made unique by a conditional put that
//     steps past a taken value. Also View, Error (S), WindowStart,
//     WindowEnd, FailedAt (N).
//   - chimport-run-history: range key RunId (S), the zero-padded time the
//     run was recorded, so a descending query lists runs newest first.
//     Started, Finished, WindowStart, WindowEnd, Read, Delivered, Requests
//     (N), Full (BOOL), Result, Error (S).
//
// Times are unix nanoseconds, UTC, in N attributes; the zero time and the
// empty string are absent attributes. Every read is strongly consistent,
// so no reader sees the watermark step back. The watermark moves by an
// UpdateItem with the condition "attribute_not_exists(Watermark) OR
// Watermark < :new", which DynamoDB evaluates atomically; when it fails
// because another worker went further, CompleteRun records the rest
// (LastSuccess, counts, the run) without it. Every write to a history item
// goes through one helper, which carries a fenced write's lease check in
// the same ConditionExpression. Leases and alerts use the same conditional
// UpdateItem: a claim sets owner and expiry and adds 1 to LeaseToken on
// condition that the lease is free, expired or the claimer's; SetAlert
// reads the alert and then writes on condition that it is still as read.
// Without transactions (dynalite, the test emulator, lacks them)
// a method that writes several items is not atomic: the history item is
// written first, in one conditional write, then the logs, so a crash
// part-way leaves a missing run entry or a covered failure still pending
// (the next completed run resolves it), never a wrong watermark.
//
// An item of the original importer, with LastImportTime (an ISO 8601
// string or epoch seconds) but no Watermark, reads as that watermark: an
// operator who names a connection after its Mailchimp list id picks up
// where the old importer stopped. Its first completed run then writes
// Watermark, and mirrors it to LastImportTime. The original importer's
// failures (no window) show as pending until the next completed run.
//
// Retention: a failure is deleted once a completed run resolves it, and
// each log is trimmed to the newest state.KeepRuns runs and
// state.KeepFailures failures per connection at every 100th append (one
// key-only query each time rather than one per append), so a log may hold
// up to 1099 items.
package dynamodb
