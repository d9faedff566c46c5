package alert

import (
	"context"

	"github.com/chimport/chimport/internal/state"
)

// FreshnessOf is what the lag policy needs of a connection's state. A
// failed run's error is dated by its attempt, the last one the store
// records.
func FreshnessOf(st state.ConnectionState) Freshness {
	f := Freshness{Watermark: st.Watermark, FirstAttempt: st.FirstAttempt, LastError: st.LastError}
	if st.LastError != "" {
		f.LastErrorAt = st.LastAttempt
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
