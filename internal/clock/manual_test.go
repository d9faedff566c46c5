package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestManualSleepWaitsForAdvance(t *testing.T) {
	m := NewManual(time.Unix(1000, 0))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- m.Sleep(ctx, time.Minute) }()
	if err := m.WaitForSleepers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	m.Advance(59 * time.Second)
	select {
	case <-woke:
		t.Fatal("Sleep returned before its deadline")
	default:
	}
	if m.Sleepers() != 1 {
		t.Fatalf("sleepers = %d, want 1", m.Sleepers())
	}
	m.Advance(time.Second)
	if err := <-woke; err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}

func TestManualSleepHonoursContext(t *testing.T) {
	m := NewManual(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	woke := make(chan error, 1)
	go func() { woke <- m.Sleep(ctx, time.Hour) }()
	if err := m.WaitForSleepers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-woke; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v, want context.Canceled", err)
	}
	if m.Sleepers() != 0 {
		t.Errorf("a cancelled sleeper is still registered")
	}
}
