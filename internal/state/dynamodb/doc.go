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
//     LastError (S), LastErrorAt (N), LastRead, LastDelivered,
//     TotalDelivered (N),
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
//     (N), Full (BOOL), Result, Error (S). The connection's roster lives
//     here too, under RunIds that start with "roster/" (see Rosters),
//     and its rejected log under "target/rejected/" (see The rejected
//     log).
//
// The history item also holds what status shows of the roster:
// RosterKept (BOOL), RosterMembers (N, the last exact count),
// RosterCounted (N, the roster version it counted), RosterLastReconcile
// (N), RosterLeft (N, added to by every removal) and RosterDefaultView
// (N); and of the rejected log: RejectedCount (N) and RejectedSample (M,
// the latest refusal: Member (S, hex), RecordKey, Reason (S), Status,
// FirstSeen, LastAttempt, Attempts (N)). Nothing larger: Connections
// scans every history item.
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
// # Rosters
//
// A roster can hold millions of 16-byte ids and an item at most 400 KB,
// so a roster is many items, and a write must cost what the change
// does, not what the roster does. Ids are packed 16 bytes each into B
// (binary) attributes. Under the connection's ListId in the runs table:
//
//   - roster/d/<group>/<part>: a delta, one UpdateRoster's Add and Remove
//     ids, split into parts of at most 18,000 ids (288 KB); Parts (N) is
//     how many parts the group has, and a group is applied only once all
//     are there, so a writer that fails part-way changes nothing. The
//     group is the writer's clock in nanoseconds and its handle's random
//     id, in hex, so groups sort by time; a handle never reuses or goes
//     back on a time, so its own changes sort in the order it made them.
//   - roster/b/<bucket>/<generation>: a bucket, the ids whose first Bits
//     bits are <bucket>, sorted, in Ids (B). Bits grows (never shrinks)
//     so that buckets hold at most 256 ids on average (4 KB; a 200,000
//     roster has 1,024 buckets), up to 16,384 buckets. The generation is
//     random per fold attempt, so no two folds ever write the same key.
//   - roster/meta: Version (N), Bits, Size (distinct ids in the
//     buckets), Generations (B, 8 bytes per bucket: the generation of its
//     item, 0 for an empty bucket, which has none) and Folded (B, 16
//     bytes per delta group: groups in the buckets whose items may not
//     be deleted yet).
//
// UpdateRoster puts the delta (BatchWriteItem, 25 parts a call), then
// updates the history item when that changes it: RosterKept, which a
// handle writes once per connection, ADD RosterLeft, the reconcile, the
// default view. A first sync's change of 1,000 new ids is one call.
//
// RosterSize folds; so does UpdateRoster once a handle has written 32 MB
// or 2,048 deltas to a connection since it last folded it, so the
// deltas a read applies stay bounded. A fold reads the meta item, then
// every delta (one query), takes the complete groups not in Folded in
// key order (adds, then removes, of each), reads the buckets they touch
// (BatchGetItem), merges, and writes the changed buckets under a new
// generation; when the roster outgrows its buckets it reads and rewrites
// them all at the new Bits. Then it puts the meta item with the new
// generations, Size, Version+1 and Folded = the groups it folded plus
// the listed ones still there, on condition that Version is still the
// one it read: two folders (two workers) race only there, and the loser
// deletes what it wrote and starts over after a random pause, unless
// the winner's meta already lists every group the loser found, which
// it then returns. Only after its commit does a fold delete the buckets
// it replaced and the deltas it folded (and leftover listed ones), as
// far as it gets: a leftover bucket is never read, and a leftover delta
// stays in Folded, ignored, until a later fold deletes it. RosterSize
// then records Size on the history item, on condition that no later
// fold's count is there (RosterCounted <= Version).
//
// Folded is what makes several writers safe without transactions. A
// fold cannot trust "every delta after the last folded key": a writer
// whose clock is behind, or whose put lands late, would write below that
// key and be skipped for good. Instead a group is applied exactly once,
// by the first commit whose query saw it complete; the meta read comes
// before the query and the commit is conditional, so a group seen and
// not listed was not folded into the buckets read. Groups therefore
// apply in the order they became visible, and a change that finished
// before another began is folded first or together with it; only changes
// of two processes folded together are ordered by their clocks, which
// matters only if two workers hold the same connection within the
// clocks' skew (see the lease). Roster reads the meta item, the deltas
// and every bucket, then the meta's Version again: unchanged, it all
// belongs to one roster (else it reads again). A listed bucket that is
// missing while Version stands still is reported as damage.
//
// Costs, measured on dynalite (roster_test.go): a first sync of 200,000
// ids in 200 changes is 201 calls and its RosterSize 56; a later run of
// 100 changes from a new process (two UpdateRoster and RosterSize) is 17
// calls and some 430 KB.
//
// Why the runs table rather than a table of its own: the roster needs
// nothing the runs table lacks (a string range key under the
// connection's ListId), and a new table would need a URL parameter,
// `chimport init` and a Terraform change before an upgraded worker could
// even open the store. Runs and the trimming of old runs query only
// RunIds below "roster/" (every run id starts with a digit), so they
// never see a roster item. A release before rosters does not know that:
// sharing the tables with one (a rolling upgrade, a downgrade), its trim
// of a connection with a large roster would delete roster items; the
// next fold or read then reports the damage rather than a short roster.
//
// # The rejected log
//
// Each entry is an item of the runs table under the connection's ListId,
// RunId "target/rejected/" and the member id in 32 lower-case hex digits
// (which sort as the id's bytes do): RecordKey, Reason (S, absent when
// empty), Status, FirstSeen, LastAttempt, Attempts (N). RejectedLog is one
// query of that prefix, in member order. RecordRejections writes each
// entry with one UpdateItem (Attempts added to, FirstSeen set only when
// absent), eight at a time, so an entry is exact whoever else writes it;
// ClearRejections deletes entries with BatchWriteItem, 25 a call. The
// prefix sorts above "roster/", and run ids (digits) below both, so the
// queries and trims of runs, which end below "roster/", never meet an
// entry, in this release or the one before it.
//
// The entries are the truth; the history item's RejectedCount and
// RejectedSample are a summary of them, so that Connection, read at the
// start of every run, stays one GetItem and Connections one scan. Every
// RecordRejections and ClearRejections refreshes it once its entries are
// written: a query of the entries, then an update of the history item
// (which makes the connection known, as every write does). Without
// transactions that is not atomic with the entries: a crash between the
// two, or two writers of one connection refreshing in the opposite order
// of their queries, leaves a summary that is behind until the next
// change of that log refreshes it. Meanwhile status shows the old count,
// and a run that reads a count of 0 may not read the log at all (the
// engine skips it then), so entries written just before a crash wait for
// that next change. One connection's writers are serialized by its lease
// (only the worker holding it runs the connection), so the second case
// needs a worker that lost its lease while it wrote: the log's writes
// are not fenced, as state.Rejections explains.
//
// NoteError is one UpdateItem of LastError and LastErrorAt, on condition
// that LastErrorAt is absent or not later than the note's; when it is
// later, the note is dropped. FailRun sets LastErrorAt to the run's end,
// CompleteRun removes both.
//
// Retention: a failure is deleted once a completed run resolves it, and
// each log is trimmed to the newest state.KeepRuns runs and
// state.KeepFailures failures per connection at every 100th append (one
// key-only query each time rather than one per append), so a log may hold
// up to 1099 items.
package dynamodb
