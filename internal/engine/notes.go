package engine

import (
	"context"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/state"
)

// noteEvery is the most often a run records the error it is retrying.
const noteEvery = 10 * time.Second

// errorNotes records, while a run goes on, the latest error its requests
// are retrying (Mailchimp unreachable, a target answering 503): until the
// run fails, status, the status page and a lag alert would otherwise say
// nothing of why it is slow. The first retry is noted at once, later ones
// at most every noteEvery.
//
// Notes are written by the request that retries, before it waits, and
// never after the run's requests have all returned: so no note can land
// after the run's CompleteRun and stand as the error of a run that
// succeeded.
type errorNotes struct {
	store Store
	name  string
	clock clock.Clock

	mu   sync.Mutex
	last time.Time // of the last note written; zero before the first
}

// watch returns ctx with the observer that notes retried errors.
func (n *errorNotes) watch(ctx context.Context) context.Context {
	return retry.WithObserver(ctx, func(err error) {
		now := n.clock.Now()
		n.mu.Lock()
		due := n.last.IsZero() || now.Sub(n.last) >= noteEvery
		if due {
			n.last = now
		}
		n.mu.Unlock()
		if due {
			// Best effort: a store that cannot take the note will fail the
			// run's own writes soon enough.
			_ = n.store.NoteError(ctx, n.name, state.RetryingPrefix+err.Error(), now)
		}
	})
}
