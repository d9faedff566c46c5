package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// testTwoHandlesNeverMoveWatermarkBack: two workers complete windows in any
// order, through their own handles; the watermark ends at the latest end,
// every run is counted and recorded, and neither handle ever reads it go
// back.
func testTwoHandlesNeverMoveWatermarkBack(t *testing.T, a, b state.Store) {
	ctx := context.Background()
	complete := func(s state.Store, end time.Time) error {
		return s.CompleteRun(ctx, state.Run{Connection: "news", Result: state.ResultOK,
			WindowEnd: end, Finished: end, Delivered: 1})
	}

	// The slow worker finishes an older window after the fast one finished
	// a newer one.
	ok(t, complete(a, at(2*time.Hour)))
	ok(t, complete(b, at(time.Hour)))
	for _, s := range []state.Store{a, b} {
		if got := connection(t, s, "news").Watermark; !got.Equal(at(2 * time.Hour)) {
			t.Fatalf("watermark = %s, want %s", got, at(2*time.Hour))
		}
	}

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		s := []state.Store{a, b}[i%2]
		end := at(time.Duration(i*17%n) * time.Hour)
		wg.Go(func() {
			if err := complete(s, end); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c := connection(t, b, "news")
	if want := at((n - 1) * time.Hour); !c.Watermark.Equal(want) {
		t.Errorf("watermark = %s, want %s", c.Watermark, want)
	}
	if c.TotalDelivered != n+2 {
		t.Errorf("TotalDelivered = %d, want %d", c.TotalDelivered, n+2)
	}
	runs, err := a.Runs(ctx, "news", 100)
	ok(t, err)
	if len(runs) != n+2 {
		t.Errorf("%d runs recorded, want %d", len(runs), n+2)
	}
}

// testTwoHandlesRejectedLog: what one worker writes to the rejected log,
// and the summary it leaves, is what the other reads.
func testTwoHandlesRejectedLog(t *testing.T, a, b state.Store) {
	ann, bob := member("ann@example.com"), member("bob@example.com")
	ra := refused(ann, "ann", 422, "x", at(0))
	rb := refused(bob, "bob", 400, "y", at(time.Minute))
	record(t, a, "news", ra)
	record(t, b, "news", rb, ra)
	want := sortedEntries(entry(ra, at(0), 2), entry(rb, at(time.Minute), 1))
	checkLog(t, a, "news", want...)
	diff(t, "Rejected read by a", summary(ptr(entry(rb, at(time.Minute), 1)), 2), connection(t, a, "news").Rejected)

	clearLog(t, a, "news", bob)
	checkLog(t, b, "news", entry(ra, at(0), 2))
	diff(t, "Rejected read by b", summary(ptr(entry(ra, at(0), 2)), 1), connection(t, b, "news").Rejected)
}
