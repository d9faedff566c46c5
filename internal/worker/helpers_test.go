package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/metrics"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

var start = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

// keyRejected is what a run with a revoked API key ends with.
var keyRejected = fmt.Errorf("reading the default view: %w", &mailchimp.Error{
	Kind: mailchimp.KindAuth, Connection: "shop", Method: "GET", Endpoint: "/lists/l1/members", Status: 401, Title: "API Key Invalid", Attempts: 1,
})

// recorder is a Notifier that workers share.
type recorder struct {
	mu  sync.Mutex
	got []alert.Alert
}

func (r *recorder) Notify(_ context.Context, a alert.Alert) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, a)
	return nil
}

// kinds lists the alerts sent, as "kind resolves connection".
func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.got {
		out = append(out, strings.Join(strings.Fields(fmt.Sprintf("%s %s %s", a.Kind, a.Resolves, a.Connection)), " "))
	}
	return out
}

// fakeEngine stands in for the engine: it records a run in the store as
// the engine would (start, then complete or fail), with the outcome the
// test scripted for the connection, and returns the engine's summary.
type fakeEngine struct {
	store *memory.Store
	clk   clock.Clock

	mu       sync.Mutex
	outcomes map[string]error // nil: the run completes
	// rosters is what a connection's next run writes to its roster before
	// it completes or fails, as the engine's reconcile does; the summary
	// then counts the removed ids as Tombstoned and, for a completed run,
	// the roster's size as Members.
	rosters map[string]state.RosterChange
	calls   []string
	onRun   func(name string) // called as a run starts, if set
}

// scriptRoster sets what the connection's next run writes to its roster.
func (e *fakeEngine) scriptRoster(name string, c state.RosterChange) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rosters == nil {
		e.rosters = map[string]state.RosterChange{}
	}
	e.rosters[name] = c
}

// memberIDs are n distinct member ids, from the (from+1)th on.
func memberIDs(from, n int) []state.MemberID {
	out := make([]state.MemberID, n)
	for i := range out {
		out[i][0], out[i][1] = byte((from+i)>>8), byte(from+i)
	}
	return out
}

func (e *fakeEngine) script(name string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.outcomes == nil {
		e.outcomes = map[string]error{}
	}
	e.outcomes[name] = err
}

func (e *fakeEngine) run(ctx context.Context, name string, token int64) (engine.Summary, error) {
	e.mu.Lock()
	e.calls = append(e.calls, name)
	runErr, onRun := e.outcomes[name], e.onRun
	roster, reconciles := e.rosters[name]
	delete(e.rosters, name)
	e.mu.Unlock()
	if onRun != nil {
		onRun(name)
	}
	now := e.clk.Now()
	sum := engine.Summary{Connection: name, Started: now, Read: 3, Delivered: 3, Result: state.ResultOK}
	if err := e.store.StartRun(ctx, name, now); err != nil {
		return sum, err
	}
	if reconciles {
		if err := e.store.UpdateRoster(ctx, name, roster); err != nil {
			return sum, err
		}
		sum.Tombstoned = int64(len(roster.Remove))
	}
	run := state.Run{Connection: name, Started: now, Finished: now, WindowEnd: now.Add(-time.Minute), Token: token}
	if runErr != nil {
		run.Result, run.Error = state.ResultFailed, runErr.Error()
		sum.Result = state.ResultFailed
		if err := e.store.FailRun(ctx, run); err != nil {
			runErr = errors.Join(runErr, err)
		}
		return sum, runErr
	}
	run.Result = state.ResultOK
	if err := e.store.CompleteRun(ctx, run); err != nil {
		sum.Result = state.ResultFailed
		return sum, err
	}
	sum.Completed, sum.WindowEnd = true, run.WindowEnd
	// The engine reports the rejected log as the run leaves it; the test
	// writes the log itself.
	st, err := e.store.Connection(ctx, name)
	if err != nil {
		return sum, err
	}
	sum.Rejected, sum.RejectedSample = st.Rejected.Count, st.Rejected.Sample
	if reconciles {
		size, err := e.store.RosterSize(ctx, name)
		if err != nil {
			return sum, err
		}
		sum.Members = size
	}
	return sum, nil
}

func (e *fakeEngine) runs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

// newTestWorker is a worker on store and clk, sending to rec, with a lag
// threshold of 3h for every connection (runs every hour).
func newTestWorker(t *testing.T, store *memory.Store, clk clock.Clock, rec *recorder, eng *fakeEngine, names ...string) *Worker {
	t.Helper()
	var conns []Connection
	for _, n := range names {
		conns = append(conns, Connection{
			Connection: schedule.Connection{Name: n, Every: time.Hour},
			Lag:        alert.LagPolicy{Threshold: 3 * time.Hour},
		})
	}
	w, err := New(Config{
		Connections: conns, Store: store, Run: eng.run, Notifier: rec,
		Metrics: metrics.New(), Clock: clk, LagEvery: time.Minute, Owner: "worker-" + t.Name(),
		Jitter: func(string, time.Duration) time.Duration { return 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// gauge reads one connection's series of a gauge from /metrics; ok is
// false when the series is absent.
func gauge(t *testing.T, m *metrics.Metrics, name, connection string) (value float64, ok bool) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	prefix := fmt.Sprintf("%s{connection=%q} ", name, connection)
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), prefix); found {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f, true
		}
	}
	return 0, false
}

// counter reads chimport_runs_total for a connection and result.
func counter(t *testing.T, m *metrics.Metrics, connection, result string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	line := fmt.Sprintf("chimport_runs_total{connection=%q,result=%q} ", connection, result)
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, found := strings.CutPrefix(l, line); found {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// scalar reads a series without labels from /metrics.
func scalar(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if v, found := strings.CutPrefix(l, name+" "); found {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// logCapture is a slog.Handler that keeps every record, with its
// attributes as text (those of With included), for a test to count.
type logCapture struct {
	mu      sync.Mutex
	records []logRecord
	with    []slog.Attr
	parent  *logCapture
}

type logRecord struct {
	Level   slog.Level
	Message string
	attrs   map[string]string
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{Level: r.Level, Message: r.Message, attrs: map[string]string{}}
	for _, a := range h.with {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	root := h
	for root.parent != nil {
		root = root.parent
	}
	root.mu.Lock()
	defer root.mu.Unlock()
	root.records = append(root.records, rec)
	return nil
}

func (h *logCapture) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logCapture{with: append(slices.Clone(h.with), attrs...), parent: h}
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

func (h *logCapture) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.records)
}
