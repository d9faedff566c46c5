package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
)

// TestPausedWorkerCannotWrite: worker A holds the lease and pauses in the
// middle of a run long enough for its lease to expire; worker B claims the
// connection. A's late checkpoint and completion are refused, A's run stops
// with ErrFenced, and the watermark is B's to move.
func TestPausedWorkerCannotWrite(t *testing.T) { forEachStore(t, testPausedWorkerCannotWrite) }

func testPausedWorkerCannotWrite(t *testing.T, store string) {
	w := newWorld(t, worldOptions{members: 20000, seed: 13, store: store})
	ctx := context.Background()
	now := w.clk.Now()
	leaseA, err := w.store.ClaimLease(ctx, "test", "worker-a", now, time.Minute)
	must(t, err)

	job := w.job(t)
	job.LeaseToken = leaseA.Token
	var once sync.Once
	var leaseB state.Lease
	job.Progress = func(p Progress) {
		if p.Delivered < 3000 {
			return
		}
		once.Do(func() {
			// A "sleeps" past its lease; B claims the connection.
			var err error
			leaseB, err = w.store.ClaimLease(ctx, "test", "worker-b", now.Add(2*time.Minute), time.Minute)
			if err != nil {
				t.Errorf("B's claim: %v", err)
			}
		})
	}
	_, err = w.engine.Run(ctx, job)
	if !errors.Is(err, state.ErrFenced) {
		t.Fatalf("A's run returned %v, want ErrFenced", err)
	}
	st, err := w.store.Connection(ctx, "test")
	must(t, err)
	if !st.Watermark.IsZero() {
		t.Fatalf("the fenced worker moved the watermark to %s", st.Watermark)
	}

	// B runs the connection to completion with its own token.
	jobB := w.job(t)
	jobB.LeaseToken = leaseB.Token
	sum, err := w.engine.Run(ctx, jobB)
	if err != nil || !sum.Completed {
		t.Fatalf("B's run: completed %v, err %v", sum.Completed, err)
	}
	w.checkInSync(t)
	w.checkWatermarkHonest(t)
}
