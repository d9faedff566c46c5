package worker

import (
	"context"

	"github.com/chimport/chimport/internal/statuspage"
)

// StatusRows is every configured connection as the status page shows it,
// from one read of the store: its lag, last success and last error, the
// members in its target and its last reconcile, the lag policy's verdict,
// and when this worker's scheduler runs it next.
func (w *Worker) StatusRows(ctx context.Context) ([]statuspage.Row, error) {
	states, err := w.states(ctx)
	if err != nil {
		return nil, err
	}
	now := w.cfg.Clock.Now()
	rows := make([]statuspage.Row, 0, len(w.conns))
	for _, c := range w.conns {
		st := states[c.Name]
		f := freshnessOf(st)
		row := statuspage.Row{Name: c.Name, LastError: st.LastError, Lagging: c.Lag.Lagging(f, now)}
		if lag, known := f.Lag(now); known && !st.Watermark.IsZero() {
			row.Lag = &lag
		}
		if !st.LastSuccess.IsZero() {
			t := st.LastSuccess
			row.LastSuccess = &t
		}
		if st.Roster.Complete() {
			members := st.Roster.Members
			row.Members = &members
		}
		if !st.Roster.LastReconcile.IsZero() {
			t := st.Roster.LastReconcile
			row.LastReconcile = &t
		}
		if next, ok := w.sched.Next(c.Name); ok {
			row.NextRun = &next
		}
		rows = append(rows, row)
	}
	return rows, nil
}
