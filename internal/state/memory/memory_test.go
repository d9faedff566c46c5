package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
	"github.com/chimport/chimport/internal/state/storetest"
	"github.com/google/go-cmp/cmp"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (state.Store, func() state.Store) {
		s := memory.New()
		// One Store shared by goroutines is what several workers sharing
		// one database look like in process.
		return s, func() state.Store { return s }
	})
}

var t0 = time.Date(2024, 3, 10, 9, 30, 15, 123456789, time.UTC)

// TestMemoryValuesAreCopies: changing a map after saving it, or one that
// was read back, changes nothing in the store, as with a store that
// serialises everything.
func TestMemoryValuesAreCopies(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	views := map[string]time.Time{"default": t0}
	if err := s.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowEnd: t0, Views: views}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAlert(ctx, "news", "lag", true, t0); err != nil {
		t.Fatal(err)
	}
	views["default"] = t0.Add(time.Hour)
	views["archived"] = t0

	got, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	got.Checkpoint.Views["default"] = t0.Add(2 * time.Hour)
	got.Alerts["permanent_error"] = t0

	want := state.ConnectionState{Connection: "news", Alerts: map[string]time.Time{"lag": t0},
		Checkpoint: &state.Checkpoint{WindowEnd: t0, Views: map[string]time.Time{"default": t0}}}
	again, err := s.Connection(ctx, "news")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, again); d != "" {
		t.Errorf("after changing the caller's maps (-want +got):\n%s", d)
	}
}

// TestMemoryClose: closing changes nothing, so a store handed to several
// users that each close it keeps working.
func TestMemoryClose(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	if err := s.StartRun(ctx, "news", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := s.Connection(ctx, "news")
	if err != nil || !c.LastAttempt.Equal(t0) {
		t.Errorf("after Close: %+v, %v", c, err)
	}
}

// TestMemoryRefusesUnstorableTimes: what SQLite and DynamoDB cannot hold,
// the memory store refuses too, so tests on it do not pass by leniency.
func TestMemoryRefusesUnstorableTimes(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	calls := map[string]error{
		"StartRun":       s.StartRun(ctx, "news", far),
		"SaveCheckpoint": s.SaveCheckpoint(ctx, "news", state.Checkpoint{Views: map[string]time.Time{"default": far}}),
		"CompleteRun":    s.CompleteRun(ctx, state.Run{Connection: "news", WindowEnd: t0, Finished: t0, Started: far}),
		"FailRun":        s.FailRun(ctx, state.Run{Connection: "news", WindowEnd: far}),
		"AddFailure":     s.AddFailure(ctx, state.Failure{Connection: "news", At: far}),
	}
	for name, err := range calls {
		if err == nil {
			t.Errorf("%s accepted the year 3000", name)
		}
	}
	if all, err := s.Connections(ctx); err != nil || len(all) != 0 {
		t.Errorf("refused writes made connections known: %+v, %v", all, err)
	}
}
