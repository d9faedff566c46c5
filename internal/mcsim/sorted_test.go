package mcsim

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWindowPageMatchesScan: the binary-searched page of a view sorted by
// last_changed is exactly what scanning every entry gives, for windows
// with and without bounds, either inclusivity, both directions, every
// status view, offsets past the end and count 0, on a list full of ties.
func TestWindowPageMatchesScan(t *testing.T) {
	clk := newFakeAtStart()
	l := newList("w", 0, 7, clk)
	r := rand.New(rand.NewPCG(7, 8))
	statuses := []string{StatusSubscribed, StatusUnsubscribed, StatusCleaned, StatusPending, StatusTransactional, StatusArchived}
	for i := range 2000 {
		if r.IntN(8) == 0 {
			clk.Advance(time.Duration(1+r.IntN(3)) * time.Second)
		}
		if _, err := l.add(Member{EmailAddress: fmt.Sprintf("m%d@example.com", i), Status: statuses[r.IntN(len(statuses))]}, sourceAPI); err != nil {
			t.Fatal(err)
		}
	}
	first, last := start.UnixNano(), clk.Now().UnixNano()
	randomTime := func() int64 { // on a second, often on one that holds members
		return first + (r.Int64N((last-first)/int64(time.Second)+3)-1)*int64(time.Second)
	}
	for n := range 500 {
		q := memberQuery{count: []int{0, 1, 10, 100, 1000}[r.IntN(5)], offset: r.IntN(2200), inclusive: r.IntN(2) == 0,
			sortField: "last_changed", desc: r.IntN(2) == 0, status: statusCode(r.IntN(numStatusCodes)), withArchived: r.IntN(2) == 0}
		if q.offset > 100 && r.IntN(2) == 0 {
			q.offset %= 100
		}
		if r.IntN(4) > 0 {
			q.since, q.hasSince = randomTime(), true
		}
		if r.IntN(4) > 0 {
			q.before, q.hasBefore = randomTime(), true
		}
		view := l.sortedLocked(sortOrder{field: q.sortField, desc: q.desc})
		wantPage, wantTotal := scanPage(view.entries, q)
		gotPage, gotTotal := view.windowPage(q)
		if wantTotal != gotTotal || !cmp.Equal(wantPage, gotPage) {
			t.Fatalf("query %d %+v: window page (%d members, total %d) differs from the scan (%d, total %d)",
				n, q, len(gotPage), gotTotal, len(wantPage), wantTotal)
		}
	}
}
