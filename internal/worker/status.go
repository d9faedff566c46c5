package worker

import (
	"context"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/human"

	"github.com/chimport/chimport/internal/statuspage"
)

// StatusRows is every configured connection as the status page shows it,
// from one read of the store: its lag, last success and last error (with
// what to do about it, when this worker saw it fail), the
// members in its target and its last reconcile, the records its target
// refused, the lag policy's verdict, and when this worker's scheduler runs
// it next.
func (w *Worker) StatusRows(ctx context.Context) ([]statuspage.Row, error) {
	states, err := w.states(ctx)
	if err != nil {
		return nil, err
	}
	now := w.cfg.Clock.Now()
	rows := make([]statuspage.Row, 0, len(w.conns))
	for _, c := range w.conns {
		st := states[c.Name]
		f := alert.FreshnessOf(st)
		row := statuspage.Row{Name: c.Name, LastError: st.LastError, Retrying: st.Retrying(),
			Hint: w.hints.get(c.Name, st.LastError), Lagging: c.Lag.Lagging(f, now)}
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
		row.Rejected = st.Rejected.Count
		if r := alert.RecordOf(st.Rejected.Sample); r != nil {
			row.RejectedSample = r.String()
		}
		if t, ok := w.events.get(c.Name); ok {
			row.LastEvent = &t
		}
		if next, ok := w.sched.Next(c.Name); ok {
			row.NextRun = &next
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// hintOf is what to do about a run's error: the advice of an error that
// retrying cannot fix, or else that the next run retries and when the lag
// alert would page. The status page and the failure's log record say it.
func hintOf(c Connection, runErr error, now time.Time) string {
	if a, ok := alert.NeedsPerson(c.Name, runErr, now); ok {
		return a.Problem + " " + a.Action // Problem is a sentence already
	}
	if c.Lag.Threshold > 0 {
		return "The next run retries; a lag alert is sent if the lag passes " + human.Duration(c.Lag.Threshold) + "."
	}
	return "The next run retries."
}

// hints remembers the hint of each connection's last failure this worker
// saw, with the error it belongs to: the store keeps only the error's
// text, which no longer says what kind of error it was.
type hints struct {
	mu sync.Mutex
	by map[string]hint
}

type hint struct{ err, text string }

func (h *hints) set(name, err, text string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = map[string]hint{}
	}
	h.by[name] = hint{err, text}
}

// get is the hint for lastError, the connection's error as the store has
// it; "" when this worker did not see that error (another worker's run, or
// one before a restart).
func (h *hints) get(name, lastError string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if got, ok := h.by[name]; ok && got.err == lastError && lastError != "" {
		return got.text
	}
	return ""
}
