package mcsim

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sort"
	"time"
)

// Sorted views: a list's members in the order a sort_field asks for, and
// the pages served from them.
//
// A members query sorted by last_changed selects a contiguous run of the
// sorted view: the window between since and before. Finding it by binary
// search, and counting the statuses inside it from prefix sums, makes
// serving a page cost its own size rather than the list's: a scan reads
// every member of a million-member list for every page, on the same cores
// as the sync being measured. The answers are exactly the scan's.

// sortedView is a list's entries in one sort order, valid while the list's
// version is unchanged.
type sortedView struct {
	version uint64
	entries []entry
	desc    bool
	// counts[c][i] is how many of entries[:i] have status c; only for views
	// sorted by last_changed, nil otherwise.
	counts [][]int32
}

// numStatusCodes bounds statusCode values.
const numStatusCodes = int(codeArchived) + 1

func (v *sortedView) countStatuses() {
	v.counts = make([][]int32, numStatusCodes)
	for c := range v.counts {
		v.counts[c] = make([]int32, len(v.entries)+1)
	}
	for i := range v.entries {
		for c := range v.counts {
			v.counts[c][i+1] = v.counts[c][i]
		}
		v.counts[v.entries[i].status][i+1]++
	}
}

// matchesBefore counts the entries of entries[:i] in q's status view.
func (v *sortedView) matchesBefore(q *memberQuery, i int) int {
	if q.status == codeInvalid { // the default view
		if q.withArchived {
			return i
		}
		return i - int(v.counts[codeArchived][i])
	}
	return int(v.counts[q.status][i])
}

// window is the run of entries whose last_changed q's since and before
// admit, with q's inclusivity.
func (v *sortedView) window(q *memberQuery) (lo, hi int) {
	n := len(v.entries)
	lc := func(i int) int64 { return v.entries[i].lastChanged }
	// afterSince: entry i is not excluded by since; beforeBefore: not
	// excluded by before.
	afterSince := func(i int) bool { return !q.hasSince || lc(i) > q.since || q.inclusive && lc(i) == q.since }
	beforeBefore := func(i int) bool { return !q.hasBefore || lc(i) < q.before || q.inclusive && lc(i) == q.before }
	if v.desc {
		lo = sort.Search(n, beforeBefore)
		hi = sort.Search(n, func(i int) bool { return !afterSince(i) })
	} else {
		lo = sort.Search(n, afterSince)
		hi = sort.Search(n, func(i int) bool { return !beforeBefore(i) })
	}
	return lo, max(lo, hi)
}

// windowPage is page for a view sorted by last_changed.
func (v *sortedView) windowPage(q memberQuery) (page []*Member, total int) {
	lo, hi := v.window(&q)
	base := v.matchesBefore(&q, lo)
	total = v.matchesBefore(&q, hi) - base
	page = make([]*Member, 0, max(0, min(q.count, total-q.offset)))
	if q.offset >= total || q.count == 0 {
		return page, total
	}
	// The first entry of the page is the one with offset matches before it.
	first := lo + sort.Search(hi-lo, func(k int) bool { return v.matchesBefore(&q, lo+k+1)-base > q.offset })
	for i := first; i < hi && len(page) < q.count; i++ {
		if q.matches(&v.entries[i]) {
			page = append(page, v.entries[i].m)
		}
	}
	return page, total
}

// sortedLocked returns the entries in the given order, ties kept in natural
// order so paging is stable. Views are cached until the next mutation, as
// sorting a large list for every page would dominate the cost of serving it.
// l.mu must be held (a read lock is enough).
func (l *list) sortedLocked(o sortOrder) *sortedView {
	l.sortMu.Lock()
	defer l.sortMu.Unlock()
	if v, ok := l.sorted[o]; ok && v.version == l.version {
		return v
	}
	// Keys are computed once, not per comparison, and ties fall back to
	// seq (the natural order) in both directions: with that total order the
	// fast unstable sort gives the stable result.
	key := sortKeys[o.field]
	keyed := make([]keyedEntry, len(l.entries))
	for i := range l.entries {
		keyed[i] = keyedEntry{key: key(&l.entries[i]), seq: l.entries[i].seq, pos: i}
	}
	slices.SortFunc(keyed, func(a, b keyedEntry) int {
		c := cmp.Compare(a.key, b.key)
		if o.desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.seq, b.seq)
		}
		return c
	})
	view := &sortedView{version: l.version, entries: make([]entry, len(keyed)), desc: o.desc}
	for i, k := range keyed {
		view.entries[i] = l.entries[k.pos]
	}
	if o.field == "last_changed" {
		view.countStatuses()
	}
	l.sorted[o] = view
	return view
}

type keyedEntry struct {
	key int64
	seq uint64
	pos int // index in l.entries
}

// sortKeys are the orders sort_field accepts. An empty timestamp sorts first.
var sortKeys = map[string]func(*entry) int64{
	"last_changed":     func(e *entry) int64 { return e.lastChanged },
	"timestamp_opt":    func(e *entry) int64 { return unixOrZero(e.m.TimestampOpt) },
	"timestamp_signup": func(e *entry) int64 { return unixOrZero(e.m.TimestampSignup) },
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// shuffledPage is page for a server whose order among equal sort keys is
// not stable: the whole filtered set in sorted order, each tie group
// shuffled anew, then the page. The set of members is exactly the stable
// one's; only ties move.
func shuffledPage(sorted []entry, q memberQuery) (page []*Member, total int) {
	key := sortKeys[q.sortField]
	var all []*entry
	for i := range sorted {
		if q.matches(&sorted[i]) {
			all = append(all, &sorted[i])
		}
	}
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && key(all[j]) == key(all[i]) {
			j++
		}
		group := all[i:j]
		q.shuffleTies.Shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	lo, hi := min(q.offset, len(all)), min(q.offset+q.count, len(all))
	page = make([]*Member, 0, hi-lo)
	for _, e := range all[lo:hi] {
		page = append(page, e.m)
	}
	return page, len(all)
}

// SetUnstableTieOrder makes sorted members requests serve every group of
// members with the same sort key (the same last_changed second, say) in a
// new random order, seeded, on every request: Mailchimp does not promise
// any order among ties, and a database may order them differently from one
// query to the next. Off by default: ties keep the natural order.
func (s *Mailchimp) SetUnstableTieOrder(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unstableTies = on
}

// tieShuffler returns the order of ties for one request: nil when ties are
// stable.
func (s *Mailchimp) tieShuffler() *rand.Rand {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unstableTies {
		return nil
	}
	s.tieRequests++
	return rand.New(rand.NewPCG(uint64(s.opts.Seed), s.tieRequests))
}
