package retry_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/retry"
)

// testErr is a classified error like the ones the Mailchimp client returns.
type testErr struct {
	retry bool
	after time.Duration
}

func (e *testErr) Error() string             { return fmt.Sprintf("test error (retry=%v)", e.retry) }
func (e *testErr) Retryable() bool           { return e.retry }
func (e *testErr) RetryAfter() time.Duration { return e.after }

var (
	transient = &testErr{retry: true}
	permanent = &testErr{retry: false}
	start     = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
)

func fixedRand(r float64) func() float64 { return func() float64 { return r } }

func TestBackoff(t *testing.T) {
	p := retry.Policy{BaseDelay: time.Second, MaxDelay: 10 * time.Second}
	tests := []struct {
		name  string
		rand  float64
		retry int
		want  time.Duration
	}{
		{"first retry, lowest jitter", 0, 1, 500 * time.Millisecond},
		{"first retry, mid jitter", 0.5, 1, 750 * time.Millisecond},
		{"second retry doubles", 0, 2, time.Second},
		{"third retry", 0, 3, 2 * time.Second},
		{"capped at MaxDelay", 0, 5, 5 * time.Second},
		{"huge retry number does not overflow", 0, 10_000, 5 * time.Second},
		{"top of jitter stays below d", 0.999, 5, 9_995 * time.Millisecond},
		{"retry 0 treated as first", 0, 0, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := p
			p.Rand = fixedRand(tt.rand)
			if got := p.Backoff(tt.retry); got != tt.want {
				t.Errorf("Backoff(%d) = %v, want %v", tt.retry, got, tt.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	p := retry.Policy{}.WithDefaults()
	got := []any{p.MaxAttempts, p.BaseDelay, p.MaxDelay, p.Clock != nil, p.Rand != nil}
	want := []any{6, time.Second, 30 * time.Second, true, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestDo(t *testing.T) {
	type retryCall struct {
		Attempt int
		Wait    time.Duration
	}
	tests := []struct {
		name        string
		maxAttempts int
		errs        []error // error returned by each attempt; nil = success; past the end = success
		wantCalls   int
		wantSlept   []time.Duration
		wantHooks   []retryCall
		wantNil     bool
		wantPerm    bool // the permanent error comes back unwrapped
		wantExhaust int  // Attempts in *ExhaustedError; 0 = not exhausted
	}{
		{
			name: "success first time", maxAttempts: 6,
			wantCalls: 1, wantNil: true,
		},
		{
			name: "transient twice then success", maxAttempts: 6,
			errs:      []error{transient, transient},
			wantCalls: 3, wantNil: true,
			wantSlept: []time.Duration{500 * time.Millisecond, time.Second},
			wantHooks: []retryCall{{1, 500 * time.Millisecond}, {2, time.Second}},
		},
		{
			name: "permanent error not retried", maxAttempts: 6,
			errs:      []error{permanent},
			wantCalls: 1, wantPerm: true,
		},
		{
			name: "permanent after transient", maxAttempts: 6,
			errs:      []error{transient, permanent},
			wantCalls: 2, wantPerm: true,
			wantSlept: []time.Duration{500 * time.Millisecond},
			wantHooks: []retryCall{{1, 500 * time.Millisecond}},
		},
		{
			name: "unclassified error not retried", maxAttempts: 6,
			errs:      []error{errors.New("plain")},
			wantCalls: 1,
		},
		{
			name: "context errors from fn never retried", maxAttempts: 6,
			errs:      []error{fmt.Errorf("%w: %w", context.DeadlineExceeded, transient)},
			wantCalls: 1,
		},
		{
			name: "attempts bounded", maxAttempts: 4,
			errs:        []error{transient, transient, transient, transient, transient},
			wantCalls:   4,
			wantExhaust: 4,
			wantSlept:   []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second},
			wantHooks:   []retryCall{{1, 500 * time.Millisecond}, {2, time.Second}, {3, 2 * time.Second}},
		},
		{
			name: "RetryAfter honoured instead of backoff", maxAttempts: 6,
			errs:      []error{&testErr{retry: true, after: 7 * time.Second}},
			wantCalls: 2, wantNil: true,
			wantSlept: []time.Duration{7 * time.Second},
			wantHooks: []retryCall{{1, 7 * time.Second}},
		},
		{
			name: "RetryAfter capped at MaxDelay", maxAttempts: 6,
			errs:      []error{&testErr{retry: true, after: time.Hour}},
			wantCalls: 2, wantNil: true,
			wantSlept: []time.Duration{30 * time.Second},
			wantHooks: []retryCall{{1, 30 * time.Second}},
		},
		{
			name: "one attempt means no retry", maxAttempts: 1,
			errs:        []error{transient},
			wantCalls:   1,
			wantExhaust: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(start)
			var hooks []retryCall
			p := retry.Policy{
				MaxAttempts: tt.maxAttempts,
				Clock:       clk,
				Rand:        fixedRand(0),
				OnRetry: func(attempt int, err error, wait time.Duration) {
					hooks = append(hooks, retryCall{attempt, wait})
				},
			}
			calls := 0
			err := p.Do(context.Background(), func(_ context.Context, attempt int) error {
				calls++
				if attempt != calls {
					t.Errorf("attempt = %d, want %d", attempt, calls)
				}
				if attempt <= len(tt.errs) {
					return tt.errs[attempt-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if diff := cmp.Diff(tt.wantSlept, clk.Slept()); diff != "" {
				t.Errorf("slept (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHooks, hooks); diff != "" {
				t.Errorf("OnRetry calls (-want +got):\n%s", diff)
			}
			if tt.wantNil != (err == nil) {
				t.Fatalf("err = %v, want nil: %v", err, tt.wantNil)
			}
			if tt.wantPerm && err != permanent {
				t.Errorf("err = %v, want the permanent error itself", err)
			}
			var ex *retry.ExhaustedError
			if errors.As(err, &ex) != (tt.wantExhaust > 0) {
				t.Fatalf("err = %v, want exhausted: %v", err, tt.wantExhaust > 0)
			}
			if tt.wantExhaust > 0 {
				if ex.Attempts != tt.wantExhaust {
					t.Errorf("Attempts = %d, want %d", ex.Attempts, tt.wantExhaust)
				}
				var te *testErr
				if !errors.As(err, &te) {
					t.Errorf("errors.As cannot find the typed error in %v", err)
				}
			}
		})
	}
}

func TestDoContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := retry.Policy{Clock: clock.NewFake(start)}.Do(ctx, func(context.Context, int) error {
		calls++
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 0 {
		t.Errorf("err = %v, calls = %d; want context.Canceled and no call", err, calls)
	}
}

// The context ends during an attempt: the retryable error is not retried,
// and the result matches both the context error and the attempt's error.
func TestDoCancelDuringAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := clock.NewFake(start)
	calls := 0
	err := retry.Policy{Clock: clk}.Do(ctx, func(context.Context, int) error {
		calls++
		cancel()
		return transient
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	var te *testErr
	if !errors.As(err, &te) {
		t.Errorf("err = %v, want the last attempt's error kept", err)
	}
	if calls != 1 || len(clk.Slept()) != 0 {
		t.Errorf("calls = %d, slept = %v; want 1 call and no wait", calls, clk.Slept())
	}
}

// blockingClock waits until the context ends, like a real clock asked for a
// long backoff; it reports when a wait starts.
type blockingClock struct{ sleeping chan struct{} }

func (blockingClock) Now() time.Time { return start }
func (c blockingClock) Sleep(ctx context.Context, _ time.Duration) error {
	c.sleeping <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestDoCancelDuringWaitReturnsPromptly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clk := blockingClock{sleeping: make(chan struct{}, 1)}
	done := make(chan error, 1)
	calls := 0
	go func() {
		done <- retry.Policy{Clock: clk}.Do(ctx, func(context.Context, int) error {
			calls++
			return transient
		})
	}()
	<-clk.sleeping
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if calls != 1 {
			t.Errorf("calls = %d, want 1 (no attempt after cancel)", calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return after cancel")
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{transient, true},
		{permanent, false},
		{fmt.Errorf("wrapped: %w", transient), true},
		{&retry.ExhaustedError{Attempts: 2, Err: transient}, true},
		{errors.New("plain"), false},
		{context.Canceled, false},
		{errors.Join(context.Canceled, transient), false},
	}
	for _, tt := range tests {
		if got := retry.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestObserverSeesEachRetriedError(t *testing.T) {
	var seen []int
	ctx := retry.WithObserver(context.Background(), func(err error) {
		var te *testErr
		if errors.As(err, &te) {
			seen = append(seen, int(te.after))
		}
	})
	p := retry.Policy{MaxAttempts: 3, Clock: clock.NewFake(start), Rand: fixedRand(0)}
	err := p.Do(ctx, func(_ context.Context, attempt int) error {
		return &testErr{retry: true, after: time.Duration(attempt)}
	})
	if err == nil {
		t.Fatal("Do succeeded, want the exhausted error")
	}
	// The third attempt is not retried, so the observer does not see it.
	if want := []int{1, 2}; !slices.Equal(seen, want) {
		t.Errorf("observer saw %v, want %v", seen, want)
	}
}
