package mailchimp

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// DefaultPerKey is Mailchimp's limit of simultaneous connections per API
// key; the 11th gets a 429.
const DefaultPerKey = 10

// Limiter allows at most N simultaneous requests per API key or access
// token, across every Client that shares it. Build one per process and hand
// it to every Client, so connections that use the same key (or token) also
// share its 10 slots. A key and a token never share slots.
type Limiter struct {
	perKey int64
	mu     sync.Mutex
	sems   map[keyID]*semaphore.Weighted
}

// NewLimiter returns a Limiter with perKey slots per API key; perKey < 1
// means DefaultPerKey.
func NewLimiter(perKey int) *Limiter {
	if perKey < 1 {
		perKey = DefaultPerKey
	}
	return &Limiter{perKey: int64(perKey), sems: make(map[keyID]*semaphore.Weighted)}
}

// PerKey returns the number of slots per key.
func (l *Limiter) PerKey() int { return int(l.perKey) }

// acquire waits for a slot for key (in FIFO order) or for ctx to end. The
// returned release must be called exactly once, when the attempt's
// response body has been read and closed.
func (l *Limiter) acquire(ctx context.Context, key keyID) (release func(), err error) {
	l.mu.Lock()
	sem, ok := l.sems[key]
	if !ok {
		sem = semaphore.NewWeighted(l.perKey)
		l.sems[key] = sem
	}
	l.mu.Unlock()
	if err := sem.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { sem.Release(1) }) }, nil
}
