package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
)

// waitQueued waits, with a deadline, until n writes of s are queued.
func waitQueued(t *testing.T, s *sqlite.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sqlite.Queued(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", sqlite.Queued(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func checkpointAt(at time.Time, token int64) state.Checkpoint {
	return state.Checkpoint{WindowStart: at.Add(-time.Hour), WindowEnd: at, Token: token,
		Views: map[string]time.Time{"default": at.Add(-time.Minute)}, UpdatedAt: at}
}

// hasCheckpoint reports whether the store at path holds a checkpoint for
// connection name, read through a handle of its own.
func hasCheckpoint(t *testing.T, s state.Store, name string) bool {
	t.Helper()
	c, err := s.Connection(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c.Checkpoint != nil
}

// Writes that queue behind a transaction go together in the next one:
// many concurrent writes take fewer transactions than calls. Of them, the
// fenced one alone fails, and writes nothing; one that fails after
// writing is rolled back alone; one whose caller gave up while it waited
// leaves the queue and writes nothing; the others commit.
func TestSQLiteGroupCommit(t *testing.T) {
	ctx := context.Background()
	s := openSQLite(t, filepath.Join(t.TempDir(), "state.db"))
	at := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	// Two claims: token 1 is stale, so a write with it is fenced.
	for range 2 {
		if _, err := s.ClaimLease(ctx, "fenced", "worker", at, time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	release := sqlite.HoldWriter(s, "hold")
	before := sqlite.Commits(s)
	const n = 60
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.SaveCheckpoint(ctx, fmt.Sprintf("c%02d", i), checkpointAt(at, 0))
		})
	}
	var fencedErr, partialErr, cancelledErr error
	wg.Go(func() { fencedErr = s.SaveCheckpoint(ctx, "fenced", checkpointAt(at, 1)) })
	errPartial := errors.New("failed half-way")
	wg.Go(func() { partialErr = sqlite.WriteThenFail(ctx, s, "partial", "half-way", errPartial) })
	cctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { cancelledErr = s.SaveCheckpoint(cctx, "gave-up", checkpointAt(at, 0)) })
	waitQueued(t, s, n+3)
	cancel()
	waitQueued(t, s, n+2)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
		if !hasCheckpoint(t, s, fmt.Sprintf("c%02d", i)) {
			t.Errorf("write %d answered, but its checkpoint is not there", i)
		}
	}
	if !errors.Is(fencedErr, state.ErrFenced) {
		t.Errorf("fenced write: %v, want ErrFenced", fencedErr)
	}
	if hasCheckpoint(t, s, "fenced") {
		t.Error("the fenced write left a checkpoint")
	}
	if !errors.Is(partialErr, errPartial) {
		t.Errorf("write that failed half-way: %v, want its own error", partialErr)
	}
	all, err := s.Connections(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.Connection == "partial" || c.Connection == "gave-up" {
			t.Errorf("%s is known to the store (last error %q): its write should have left nothing", c.Connection, c.LastError)
		}
	}
	if !errors.Is(cancelledErr, context.Canceled) {
		t.Errorf("write whose caller gave up: %v, want context.Canceled", cancelledErr)
	}
	if hasCheckpoint(t, s, "gave-up") {
		t.Error("the write whose caller gave up left a checkpoint")
	}
	// The held write's transaction, then one for all the queued ones.
	if got := sqlite.Commits(s) - before; got != 2 {
		t.Errorf("%d writes took %d transactions, want 2", n+4, got)
	}
}

// A transaction whose COMMIT fails fails every write in it, and writes
// none of them; the writes answered with success are all in the file,
// read again after the store is closed (as after a crash: WAL mode makes
// every commit survive one). The same holds when the store is closed
// while a transaction is under way and writes are queued behind it.
func TestSQLiteGroupCommitLosesNoAcknowledgedWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	acked := map[string]bool{}
	var mu sync.Mutex
	// round queues n writes behind a held one, runs hold in between (with
	// the writer held), releases it and records which writes succeeded.
	round := func(prefix string, n int, hold func()) (failed int) {
		release := sqlite.HoldWriter(s, prefix+"-hold")
		var wg sync.WaitGroup
		for i := range n {
			name := fmt.Sprintf("%s%02d", prefix, i)
			wg.Go(func() {
				err := s.SaveCheckpoint(ctx, name, checkpointAt(at, 0))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					acked[name] = true
				} else {
					acked[name] = false
					failed++
				}
			})
		}
		waitQueued(t, s, n)
		hold()
		_ = release() // the held write may fail too: it is not recorded
		wg.Wait()
		return failed
	}

	var stop func()
	if failed := round("a", 30, func() {}); failed != 0 {
		t.Fatalf("%d writes failed with nothing wrong", failed)
	}
	// The commit of the held write's transaction and of the next one fail.
	if failed := round("b", 30, func() { stop = sqlite.FailCommits(s, errors.New("injected commit failure")) }); failed != 30 {
		t.Errorf("%d of 30 writes failed with their COMMIT failing, want all", failed)
	}
	stop()
	if failed := round("c", 30, func() {}); failed != 0 {
		t.Fatalf("%d writes failed after the commit failures stopped", failed)
	}
	// Closed while a transaction is under way: the queued writes fail.
	round("d", 30, func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})

	again := openSQLite(t, path)
	for name, ok := range acked {
		if got := hasCheckpoint(t, again, name); got != ok {
			t.Errorf("write %s answered success %v, but its checkpoint is there: %v", name, ok, got)
		}
	}
}
