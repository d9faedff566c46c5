package engine

// Review experiments: stress the pager's chain proof under churn, faults and
// retries that advance the fake clock. Not part of the regular suite unless
// REVIEW_EXPERIMENTS is set (they are slow), except where noted.

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
)

type expOptions struct {
	members     int
	seed        int64
	inclusive   bool
	churn       int
	pageSize    int
	overlap     int
	pageConc    int
	limiter     int // per-key slots of the client's limiter; 0 = 10
	faultRate   float64
	faults      []mcsim.Fault
	targetFail  float64
	maxAttempts int
}

// badBeforeWatermark counts members whose last_changed is before the stored
// watermark and which are missing or stale in the target.
func (w *world) badBeforeWatermark(t *testing.T) (bad int, first string) {
	t.Helper()
	st, err := w.store.Connection(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	records := w.target.Records()
	for _, m := range w.members(t) {
		lc, err := mailchimp.Member(m).LastChanged()
		if err != nil {
			t.Fatal(err)
		}
		if !lc.Before(st.Watermark) {
			continue
		}
		id := mailchimp.Member(m).ID()
		if diff := cmp.Diff(w.want(t, m), records[id]); diff != "" {
			if bad == 0 {
				first = fmt.Sprintf("member %s (last_changed %s, watermark %s):\n%s", id, lc, st.Watermark, diff)
			}
			bad++
		}
	}
	return bad, first
}

func runExperiment(t *testing.T, o expOptions) (Summary, error, int, string) {
	t.Helper()
	w := newWorld(t, worldOptions{members: o.members, seed: o.seed, inclusive: o.inclusive})
	if o.limiter > 0 {
		w.limiter = mailchimp.NewLimiter(o.limiter)
	}
	w.engine.PageSize = o.pageSize
	w.engine.Overlap = o.overlap
	w.engine.PageConcurrency = o.pageConc
	if o.faultRate > 0 {
		w.sim.SetFaultRate(o.faultRate, o.faults...)
	}
	if o.targetFail > 0 {
		w.target.SetFailRate(o.targetFail, 503)
	}
	w.sim.SetChurnPerRequest(testList, o.churn)
	sum, err := w.run(t, context.Background(), false)
	w.sim.SetChurnPerRequest(testList, 0)
	bad, first := w.badBeforeWatermark(t)
	return sum, err, bad, first
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func skipUnlessReview(t *testing.T) {
	if os.Getenv("REVIEW_EXPERIMENTS") == "" {
		t.Skip("set REVIEW_EXPERIMENTS=1 to run")
	}
}

// TestReviewChurnSweep sweeps seeds with small pages so boundaries are many.
func TestReviewChurnSweep(t *testing.T) {
	skipUnlessReview(t)
	seeds := envInt("SEEDS", 20)
	configs := []expOptions{
		{members: 3000, churn: 10, pageSize: 50, overlap: 5},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, limiter: 30, pageConc: 20},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, faultRate: 0.3, faults: []mcsim.Fault{mcsim.FaultRateLimit}},
		{members: 3000, churn: 10, pageSize: 50, overlap: 5, faultRate: 0.2, faults: []mcsim.Fault{mcsim.FaultTruncate, mcsim.FaultServerHTML}},
		{members: 3000, churn: 3, pageSize: 100, overlap: 1, pageConc: 4},
		{members: 3000, churn: 20, pageSize: 50, overlap: 10},
	}
	total := 0
	for ci, c := range configs {
		for s := 1; s <= seeds; s++ {
			for _, inc := range []bool{false, true} {
				o := c
				o.seed, o.inclusive = int64(s), inc
				sum, err, bad, first := runExperiment(t, o)
				if testing.Verbose() && os.Getenv("QUIET") == "" {
					t.Logf("config %d seed %d inc %v: completed %v err %v read %d delivered %d requests %d", ci, s, inc, sum.Completed, err, sum.Read, sum.Delivered, sum.Requests)
				}
				if bad > 0 {
					total++
					t.Errorf("config %d seed %d inclusive %v: completed %v err %v read %d delivered %d: %d bad; first: %s",
						ci, s, inc, sum.Completed, err, sum.Read, sum.Delivered, bad, first)
				}
			}
		}
	}
	t.Logf("%d failing experiments", total)
}

// TestReviewChurnLikeFlake is TestChurnWhilePaging's first run with a
// limiter that lets more than 10 requests through (so the simulator answers
// 429 and retries advance the fake clock), or with injected 429s.
func TestReviewChurnLikeFlake(t *testing.T) {
	skipUnlessReview(t)
	limiter := envInt("LIMITER", 12)
	rate, _ := strconv.ParseFloat(os.Getenv("RATE"), 64)
	members := envInt("MEMBERS", 30000)
	for s := envInt("SEED0", 2); s < envInt("SEED0", 2)+envInt("SEEDS", 1); s++ {
		for _, inc := range []bool{false, true} {
			o := expOptions{members: members, seed: int64(s), inclusive: inc, churn: envInt("CHURN", 10),
				limiter: limiter, pageSize: envInt("PAGE", 0), overlap: envInt("OVERLAP", 0), pageConc: envInt("CONC", 0)}
			if rate > 0 {
				o.faultRate, o.faults = rate, []mcsim.Fault{mcsim.FaultRateLimit}
			}
			sum, err, bad, first := runExperiment(t, o)
			t.Logf("seed %d inc %v: completed %v err %v read %d delivered %d requests %d bad %d", s, inc, sum.Completed, err, sum.Read, sum.Delivered, sum.Requests, bad)
			if bad > 0 {
				t.Errorf("seed %d inc %v: %d bad; first: %s", s, inc, bad, first)
			}
		}
	}
}
