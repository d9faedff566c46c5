// Package engine is the sync engine: one run of one connection, from the
// stored watermark to a new one, with no member lost.
//
// A run reads the watermark W (every member whose last_changed < W has been
// delivered), picks a window end T a little in Mailchimp's past, pages every
// member of [W, T) and delivers it, and moves the watermark to T only once
// the target has acknowledged every record. Paging and delivery overlap;
// each has its own connection pool and concurrency.
//
// Why offset paging is safe here: a window in the past can only lose
// members while it is paged (a member that changes moves to "now", after
// T; a deleted or archived one leaves the view), and nothing can enter it.
// Offset paging over a shrinking set skips members, so the pager requests
// overlapping pages and proves each page shares a member with the previous
// one; see viewPager. Members that left the window are caught by the next
// run, because their new last_changed lies after T.
package engine
