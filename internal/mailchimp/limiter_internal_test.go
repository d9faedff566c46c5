package mailchimp

import (
	"context"
	"errors"
	"testing"
)

func TestLimiterAcquire(t *testing.T) {
	l := NewLimiter(2)
	a, b := newKeyID("key-a"), newKeyID("key-b")
	ctx := context.Background()

	r1, err1 := l.acquire(ctx, a)
	r2, err2 := l.acquire(ctx, a)
	if err1 != nil || err2 != nil {
		t.Fatalf("acquire: %v, %v", err1, err2)
	}
	// Key a is full; key b is not.
	rb, err := l.acquire(ctx, b)
	if err != nil {
		t.Fatalf("acquire other key: %v", err)
	}
	rb()

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.acquire(cancelled, a); !errors.Is(err, context.Canceled) {
		t.Errorf("acquire on a full key with a done ctx = %v, want context.Canceled", err)
	}

	r1()
	r1() // release is idempotent: a double release must not create a slot
	r3, err := l.acquire(ctx, a)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	if _, err := l.acquire(cancelled, a); err == nil {
		t.Error("a double release created an extra slot")
	}
	r2()
	r3()

	for k := range l.sems {
		if string(k[:]) == "key-a" {
			t.Error("limiter keyed by the raw key")
		}
	}
	if got := NewLimiter(0).PerKey(); got != DefaultPerKey {
		t.Errorf("NewLimiter(0).PerKey() = %d, want %d", got, DefaultPerKey)
	}
}
