// Package engine is the sync engine: one run of one connection, from the
// stored watermark to a new one, with no member lost.
//
// A run (Engine.Run) reads the watermark W (every member whose last_changed
// < W has been delivered), picks a window end T a little in Mailchimp's
// past, pages every member of [W, T) and delivers it, and moves the
// watermark to T only once the target has acknowledged every record.
// Paging and delivery overlap; each has its own connection pool and
// concurrency. A run makes one attempt at its window, or two when
// Mailchimp's clock shows that the first window end was not safely in its
// past.
//
// # Seams
//
// The engine declares what it needs of the world around it, and no more,
// in seams.go:
//
//   - Store: read the connection, record the attempt, checkpoints, failed
//     pages and how the run ended, the connection's roster and its
//     rejected log. Every
//     state.Store is one; the engine links no store driver.
//   - MemberSource: page the members of a view and window, get one member
//     by subscriber hash, and count the requests. *mailchimp.Client is one;
//     the simulator's in-process source (mcsim.Source) is another, which
//     the unit tests of the paging proof use.
//   - Sink: apply a batch of target operations, upserts of records and
//     deletes of record ids. *target.HTTP is one; how a delete reaches the
//     target (a tombstone, a DELETE, nothing) is its configuration.
//
// # Paging
//
// Each view (the default view, archived members, or one status) is paged
// by a viewPager in passes. In a pass a planner decides which offsets to
// fetch and fetches them; a sequencer puts the pages in order and offers
// each to the chain, which checks it and hands its new members to
// delivery. Every fetch of every view holds one of the attempt's
// PageConcurrency request slots while it runs, so the views share
// Mailchimp's 10 connections instead of queueing for them one behind the
// other.
//
// Why offset paging is safe here: a window in the past can only lose
// members while it is paged (a member that changes moves to "now", after
// T; a deleted or archived one leaves the view), and nothing can enter it.
// Offset paging over a shrinking set skips members, so the planner asks
// for overlapping pages and the chain proves each page shares a member
// with the previous one; see viewPager. Members that left the window are
// caught by the next run, because their new last_changed lies after T.
//
// # The mirror
//
// Members deleted for good, moved to a new address (a new id) or out of
// the status filter vanish from Mailchimp without a trace, so a window of
// changes never shows them. The roster does: the member ids the target may
// hold, written before each batch is sent (delivery.go). Each run counts
// every view beside its window's first requests; once the window is
// delivered, a roster larger than the counts, a due reconcile_every, a
// full re-sync or a connection without a roster yet make the run
// reconcile (mirror.go): it scans every member id, confirms with a GET
// each roster id the scan did not see, and deletes the gone ones from the
// target (reconcile.go). A reconcile never deletes a member that exists:
// only the GET's 404, or a status outside the filter, makes a member gone.
//
// # Records the target refuses
//
// One record a target refuses (400 or 422) must not hold back its
// connection. A refused batch is split until the records refused on their
// own are found (refused.go); they go to the connection's rejected log and
// the rest to the target, so the watermark moves on with nothing lost.
// Every later run first fetches each logged member again and retries it
// (retried.go): accepted, or deleted when the member is gone, it leaves
// the log. A target that refuses everything, or more records than
// Job.MaxRejected in one run, stops the run after a few requests with a
// *RefusalsError, and the watermark stays. A 413 splits the batch too, and
// makes the rest of the run's batches smaller.
//
// While its requests retry (Mailchimp unreachable, a target answering
// 503), a run records the error it is retrying as the connection's last
// error (notes.go), so status and alerts can say why it is slow.
package engine
