package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/chimport/chimport/internal/clock"
)

// Defaults applied by WithDefaults to zero fields.
const (
	DefaultMaxAttempts = 6
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = 30 * time.Second
)

// Policy is exponential backoff with jitter and a bounded number of
// attempts. The zero Policy is usable: every zero field takes its default.
type Policy struct {
	// MaxAttempts is the total number of attempts, the first included.
	// Zero or less means DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the nominal wait before the first retry; each further
	// retry doubles it. Zero or less means DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps every single wait, including a server's RetryAfter, so
	// a run's worst case stays MaxAttempts*MaxDelay. Zero or less means
	// DefaultMaxDelay.
	MaxDelay time.Duration
	// Clock waits between attempts. Nil means clock.Real{}.
	Clock clock.Clock
	// Rand returns a number in [0, 1) for jitter. Nil means math/rand/v2.
	// Tests pin it to get exact waits.
	Rand func() float64
	// OnRetry, if set, is called after a failed attempt that will be
	// retried, before the wait: attempt is the number of the attempt that
	// failed (1-based), wait the time about to be slept.
	OnRetry func(attempt int, err error, wait time.Duration)
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.Clock == nil {
		p.Clock = clock.Real{}
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

// Backoff returns the wait before retry number retry (1-based):
// d = min(MaxDelay, BaseDelay*2^(retry-1)), jittered into [d/2, d).
//
// Jitter spreads the retries of many workers that failed together (a 429
// burst hits every connection sharing a key at once), so they do not come
// back in lockstep; keeping at least d/2 keeps the backoff meaningful.
func (p Policy) Backoff(retry int) time.Duration {
	p = p.WithDefaults()
	if retry < 1 {
		retry = 1
	}
	d := p.BaseDelay
	// Double step by step rather than shifting, so a large retry number
	// cannot overflow time.Duration.
	for i := 1; i < retry && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	r := p.Rand()
	if r < 0 || r >= 1 {
		r = 0
	}
	return half + time.Duration(r*float64(d-half))
}

// ExhaustedError is returned by Do when every attempt failed with a
// retryable error. errors.As still finds the last attempt's typed error
// through Unwrap.
type ExhaustedError struct {
	Attempts int   // attempts made, the first included
	Err      error // the last attempt's error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %v", e.Attempts, e.Err)
}

func (e *ExhaustedError) Unwrap() error { return e.Err }

// Retryable reports whether err asks to be retried: some error in its chain
// has a Retryable method returning true, and it is not a context
// cancellation or deadline.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// retryAfter returns the wait the error asks for, or 0.
func retryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return max(ra.RetryAfter(), 0)
	}
	return 0
}

// Do calls fn until it succeeds, returns an error that is not Retryable,
// attempts run out, or ctx ends. fn receives the attempt number (1-based).
//
//   - Success returns nil; a non-retryable error is returned unchanged.
//   - When attempts run out, the last error is returned in an
//     *ExhaustedError.
//   - When ctx ends (before an attempt, during one, or during a wait), Do
//     returns at once with an error that matches ctx.Err() under errors.Is
//     and also wraps the last attempt's error, if there was one.
//
// A retryable error with RetryAfter() > 0 waits that long, capped at
// MaxDelay and without jitter (the server already chose the time), instead
// of the computed backoff.
func (p Policy) Do(ctx context.Context, fn func(ctx context.Context, attempt int) error) error {
	p = p.WithDefaults()
	if err := ctx.Err(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx, attempt)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return stopped(ctxErr, err)
		}
		if !Retryable(err) {
			return err
		}
		if attempt >= p.MaxAttempts {
			return &ExhaustedError{Attempts: attempt, Err: err}
		}
		wait := p.Backoff(attempt)
		if ra := retryAfter(err); ra > 0 {
			wait = min(ra, p.MaxDelay)
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, err, wait)
		}
		if observe, ok := ctx.Value(observerKey{}).(func(error)); ok {
			observe(err)
		}
		if sleepErr := p.Clock.Sleep(ctx, wait); sleepErr != nil {
			return stopped(sleepErr, err)
		}
	}
}

type observerKey struct{}

// WithObserver returns a context under which every Do, whatever its
// policy, calls observe with each error it is about to retry (after the
// policy's OnRetry). A caller that runs many requests through clients it
// did not configure (the engine, whose Mailchimp client and target sink
// are shared and built elsewhere) learns this way what its requests are
// retrying while they still are, as httptrace lets one watch a request.
// observe must be quick and safe for concurrent use. An observer set on a
// parent context is replaced, not chained.
func WithObserver(ctx context.Context, observe func(err error)) context.Context {
	return context.WithValue(ctx, observerKey{}, observe)
}

// stopped reports a loop ended by its context, keeping both the context's
// error (so errors.Is(err, context.Canceled) holds) and the last failure
// (so the operator sees what was going wrong when the run was stopped).
func stopped(ctxErr, last error) error {
	if errors.Is(last, ctxErr) {
		return last
	}
	return fmt.Errorf("%w (last error: %w)", ctxErr, last)
}
