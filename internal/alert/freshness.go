package alert

import (
	"context"

	"github.com/chimport/chimport/internal/state"
)

// FreshnessOf is what the lag policy needs of a connection's state. The
// error is dated by the store's LastErrorAt: the end of the failed run,
// or the retry a run under way noted (so a lag alert that comes while a
// run retries quotes what it retries, and when). State from a release
// before LastErrorAt dates it by the last attempt instead.
func FreshnessOf(st state.ConnectionState) Freshness {
	f := Freshness{Watermark: st.Watermark, FirstAttempt: st.FirstAttempt, LastError: st.LastError}
	if st.LastError != "" {
		f.LastErrorAt = st.LastErrorAt
		if f.LastErrorAt.IsZero() {
			f.LastErrorAt = st.LastAttempt
		}
	}
	return f
}

// StateReader is the part of the state store freshness is read from.
type StateReader interface {
	Connection(ctx context.Context, name string) (state.ConnectionState, error)
}

// Store is what the policy needs of the shared state store: the incident
// record and each connection's freshness. state.Store is one.
type Store interface {
	AlertStore
	StateReader
}

// ReadFreshness is the read CheckConfirmed and AfterRunConfirmed take, for
// a caller that has just read conn's state st: the first read is st, every
// later one reads the store again, so that a flip another process's run has
// since overtaken is taken back rather than sent.
func ReadFreshness(store StateReader, conn string, st state.ConnectionState) func(context.Context) (Freshness, error) {
	first := true
	return func(ctx context.Context) (Freshness, error) {
		if first {
			first = false
			return FreshnessOf(st), nil
		}
		st, err := store.Connection(ctx, conn)
		return FreshnessOf(st), err
	}
}
