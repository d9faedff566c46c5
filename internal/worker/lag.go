package worker

import (
	"context"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/state"
)

// setGauges sets the lag, last-success and roster gauges of every
// configured connection from the store, in one read: a worker that just
// started reports every connection at once, including those another
// worker runs.
func (w *Worker) setGauges(ctx context.Context) {
	states, err := w.states(ctx)
	if err != nil {
		w.log.Warn("reading the connections' state at start-up failed", "error", err)
		return
	}
	now := w.cfg.Clock.Now()
	for _, c := range w.conns {
		w.observe(c.Name, states[c.Name], now)
	}
}

// watchLag runs checkLag at once and then every LagEvery until ctx ends.
// The first check does not wait a period: a worker that restarts more
// often than LagEvery (crash-looping on a large first sync, say) must still
// decide on lag, or a connection could fall behind with no alert at all.
func (w *Worker) watchLag(ctx context.Context) {
	for {
		w.checkLag(ctx)
		if w.cfg.Clock.Sleep(ctx, w.cfg.LagEvery) != nil {
			return
		}
	}
}

// checkLag is one lag beat: every configured connection's gauges are set
// from one read of the store, and its lag policy and rejected-records
// check run against the shared alert state.
func (w *Worker) checkLag(ctx context.Context) {
	states, err := w.states(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading the connections' state for the lag check failed", "error", err)
		}
		return
	}
	for _, c := range w.conns {
		if ctx.Err() != nil {
			return
		}
		st := states[c.Name]
		now := w.cfg.Clock.Now()
		w.observe(c.Name, st, now)
		if err := c.Lag.CheckConfirmed(ctx, w.cfg.Store, w.cfg.Notifier, c.Name, alert.ReadFreshness(w.cfg.Store, c.Name, st), now); err != nil && ctx.Err() == nil {
			w.log.Warn("lag alert failed", "connection", c.Name, "error", err)
		}
		// A run's own check usually flips it; the beat catches a flip a
		// process died before sending, and writes nothing otherwise.
		if err := alert.CheckRejected(ctx, w.cfg.Store, w.cfg.Notifier, c.Name, st, now); err != nil && ctx.Err() == nil {
			w.log.Warn("rejected records alert failed", "connection", c.Name, "error", err)
		}
	}
	w.cfg.Metrics.CountLagCheck()
}

// observe sets the connection's lag, last-success, roster and rejected
// gauges from st. The roster's and the rejected log's sizes are read on
// every beat, like the lag, so a worker that does not run the connection
// follows the one that does.
func (w *Worker) observe(name string, st state.ConnectionState, now time.Time) {
	lag, known := alert.FreshnessOf(st).Lag(now)
	w.cfg.Metrics.SetLag(name, lag, known)
	w.cfg.Metrics.SetLastSuccess(name, st.LastSuccess)
	w.cfg.Metrics.SetRosterMembers(name, st.Roster.Members, st.Roster.Complete())
	w.cfg.Metrics.SetRejected(name, st.Rejected.Count)
}

// states is every connection's state by name, in one read. A connection
// the store does not know yet is absent: its zero state is the right one.
func (w *Worker) states(ctx context.Context) (map[string]state.ConnectionState, error) {
	all, err := w.cfg.Store.Connections(ctx)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]state.ConnectionState, len(all))
	for _, st := range all {
		byName[st.Connection] = st
	}
	return byName, nil
}
