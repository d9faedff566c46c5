package clock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFakeSleepAdvancesAndRecords(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := NewFake(start)
	for _, d := range []time.Duration{time.Second, 3 * time.Second} {
		if err := f.Sleep(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.Now(), start.Add(4*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
	if diff := cmp.Diff([]time.Duration{time.Second, 3 * time.Second}, f.Slept()); diff != "" {
		t.Errorf("Slept() mismatch (-want +got):\n%s", diff)
	}
}

func TestFakeSleepHonoursCancelledContext(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on cancelled ctx = %v, want context.Canceled", err)
	}
	if !f.Now().Equal(time.Unix(0, 0)) {
		t.Errorf("cancelled Sleep moved the clock to %v", f.Now())
	}
}

func TestRealSleepReturnsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Real{}).Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
}

func TestOffsetAdvances(t *testing.T) {
	var o Offset
	before := time.Now()
	o.Advance(time.Hour)
	if got := o.Now(); got.Sub(before) < time.Hour {
		t.Errorf("Now() = %v, want at least an hour after %v", got, before)
	}
}
