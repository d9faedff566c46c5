package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// durationBuckets spans a run's realistic range: seconds for an hourly
// delta of a small audience, hours for a first sync of millions of members.
var durationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800}

// Metrics is the set of chimport serve's series and the registry they are
// served from. Its methods are safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	lag         *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	read        *prometheus.CounterVec
	delivered   *prometheus.CounterVec
	tombstoned  *prometheus.CounterVec
	members     *prometheus.GaugeVec
	rejected    *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	mcRequests  *prometheus.CounterVec
	mcRetries   prometheus.Counter
	lagChecks   prometheus.Counter

	webhooksOnce sync.Once
	webhooks     *Webhooks
}

// New returns a Metrics with its own registry, which also carries the Go
// runtime and process collectors (memory, goroutines, open files).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chimport_connection_lag_seconds",
			Help: "How far behind the connection is: now minus the window end of its last completed run (or its first attempt, if none completed). Absent until a run was attempted.",
		}, []string{"connection"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chimport_last_success_timestamp_seconds",
			Help: "Unix time the connection's last completed run finished. Absent until one did.",
		}, []string{"connection"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chimport_runs_total",
			Help: "Runs this process finished, by result (ok, failed, cancelled).",
		}, []string{"connection", "result"}),
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chimport_members_read_total",
			Help: "Members received from Mailchimp, page overlaps included.",
		}, []string{"connection"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chimport_members_delivered_total",
			Help: "Records the target acknowledged.",
		}, []string{"connection"}),
		tombstoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chimport_members_tombstoned_total",
			Help: "Members that left the target (deleted for good, changed address or out of the status filter): deletes the target acknowledged, or, with deletes off, members dropped from the roster.",
		}, []string{"connection"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chimport_roster_members",
			Help: "Members in the target: the size of the connection's roster, as its last run counted it. Absent until a run built the roster.",
		}, []string{"connection"}),
		rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "chimport_records_rejected",
			Help: "Records the target refused that wait in the connection's rejected log, retried by every run until the target accepts them or their members are gone.",
		}, []string{"connection"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chimport_run_duration_seconds",
			Help:    "How long runs took, whatever their result.",
			Buckets: durationBuckets,
		}, []string{"connection"}),
		mcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chimport_mailchimp_requests_total",
			Help: `Mailchimp HTTP attempts, retries included, by response status; status="none" when there was no response (transport error).`,
		}, []string{"status"}),
		mcRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chimport_mailchimp_retries_total",
			Help: "Mailchimp attempts that failed and were retried.",
		}),
		lagChecks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chimport_lag_checks_total",
			Help: "Lag checks this process finished: every connection measured and its lag policy applied. A rate of 0 means lag alerts have stopped.",
		}),
	}
	m.reg.MustRegister(m.lag, m.lastSuccess, m.runs, m.read, m.delivered, m.tombstoned, m.members, m.rejected, m.duration, m.mcRequests, m.mcRetries, m.lagChecks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registerer lets other packages add their own series to this registry.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails is reported in the response, not by a 500, so one
// broken series does not blind every dashboard.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRun counts one finished run of connection: its result (the
// engine's Summary.Result: state.ResultOK, ResultFailed or
// ResultCancelled), the members it read and delivered, the members that
// left the target (Summary.Tombstoned), how long it took, and mc, its
// share of the Mailchimp client's counters.
func (m *Metrics) ObserveRun(connection, result string, read, delivered, tombstoned int64, d time.Duration, mc mailchimp.Stats) {
	// Every result starts at 0, so rate() and increase() work from the
	// first failure instead of from the second.
	for _, r := range []string{state.ResultOK, state.ResultFailed, state.ResultCancelled} {
		m.runs.WithLabelValues(connection, r)
	}
	m.runs.WithLabelValues(connection, result).Inc()
	m.read.WithLabelValues(connection).Add(float64(max(read, 0)))
	m.delivered.WithLabelValues(connection).Add(float64(max(delivered, 0)))
	m.tombstoned.WithLabelValues(connection).Add(float64(max(tombstoned, 0)))
	m.duration.WithLabelValues(connection).Observe(d.Seconds())
	for status, n := range mc.ByStatus {
		if n > 0 {
			m.mcRequests.WithLabelValues(statusLabel(status)).Add(float64(n))
		}
	}
	m.mcRetries.Add(float64(max(mc.Retries, 0)))
}

// CountLagCheck counts one finished lag check over every connection.
func (m *Metrics) CountLagCheck() { m.lagChecks.Inc() }

// statusLabel is the status label's value: the HTTP status, or "none".
func statusLabel(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status)
}

// SetLag records connection's lag. When it is not known (the connection
// was never attempted) the series is removed: a 0 would read as perfectly
// fresh.
func (m *Metrics) SetLag(connection string, lag time.Duration, known bool) {
	if !known {
		m.lag.DeleteLabelValues(connection)
		return
	}
	m.lag.WithLabelValues(connection).Set(lag.Seconds())
}

// SetLastSuccess records when connection's last completed run finished; a
// zero t (never) removes the series.
func (m *Metrics) SetLastSuccess(connection string, t time.Time) {
	if t.IsZero() {
		m.lastSuccess.DeleteLabelValues(connection)
		return
	}
	m.lastSuccess.WithLabelValues(connection).Set(float64(t.UnixNano()) / 1e9)
}

// SetRosterMembers records the members in connection's target (its
// roster's size). When the connection keeps no roster yet the series is
// removed: a 0 would read as an empty target.
func (m *Metrics) SetRosterMembers(connection string, members int64, known bool) {
	if !known {
		m.members.DeleteLabelValues(connection)
		return
	}
	m.members.WithLabelValues(connection).Set(float64(members))
}

// SetRejected records how many records wait in connection's rejected
// log. 0 is a real value here (nothing refused), so the series is always
// there once set.
func (m *Metrics) SetRejected(connection string, records int64) {
	m.rejected.WithLabelValues(connection).Set(float64(max(records, 0)))
}

// Forget removes every series of connection, for one that left the
// configuration. The process-wide Mailchimp counters keep their counts.
func (m *Metrics) Forget(connection string) {
	labels := prometheus.Labels{"connection": connection}
	m.lag.DeletePartialMatch(labels)
	m.lastSuccess.DeletePartialMatch(labels)
	m.runs.DeletePartialMatch(labels)
	m.read.DeletePartialMatch(labels)
	m.delivered.DeletePartialMatch(labels)
	m.tombstoned.DeletePartialMatch(labels)
	m.members.DeletePartialMatch(labels)
	m.rejected.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
}
