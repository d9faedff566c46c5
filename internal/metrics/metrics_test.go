package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveRun(t *testing.T) {
	m := New()
	m.ObserveRun("shop", state.ResultOK, 120, 118, 7, 42*time.Second, mailchimp.Stats{Requests: 5, Retries: 2, ByStatus: map[int]int64{200: 3, 429: 1, 0: 1}})
	m.ObserveRun("shop", state.ResultFailed, 10, 0, 2, 2*time.Hour, mailchimp.Stats{Requests: 2, Retries: 1, ByStatus: map[int]int64{503: 2}})
	m.ObserveRun("news", state.ResultCancelled, 0, 0, 0, time.Second, mailchimp.Stats{})

	want := `
# HELP chimport_runs_total Runs this process finished, by result (ok, failed, cancelled).
# TYPE chimport_runs_total counter
chimport_runs_total{connection="news",result="cancelled"} 1
chimport_runs_total{connection="news",result="failed"} 0
chimport_runs_total{connection="news",result="ok"} 0
chimport_runs_total{connection="shop",result="cancelled"} 0
chimport_runs_total{connection="shop",result="failed"} 1
chimport_runs_total{connection="shop",result="ok"} 1
# HELP chimport_members_read_total Members received from Mailchimp, page overlaps included.
# TYPE chimport_members_read_total counter
chimport_members_read_total{connection="news"} 0
chimport_members_read_total{connection="shop"} 130
# HELP chimport_members_delivered_total Records the target acknowledged.
# TYPE chimport_members_delivered_total counter
chimport_members_delivered_total{connection="news"} 0
chimport_members_delivered_total{connection="shop"} 118
# HELP chimport_members_tombstoned_total Members that left the target (deleted for good, changed address or out of the status filter): deletes the target acknowledged, or, with deletes off, members dropped from the roster.
# TYPE chimport_members_tombstoned_total counter
chimport_members_tombstoned_total{connection="news"} 0
chimport_members_tombstoned_total{connection="shop"} 9
# HELP chimport_mailchimp_requests_total Mailchimp HTTP attempts, retries included, by response status; status="none" when there was no response (transport error).
# TYPE chimport_mailchimp_requests_total counter
chimport_mailchimp_requests_total{status="200"} 3
chimport_mailchimp_requests_total{status="429"} 1
chimport_mailchimp_requests_total{status="503"} 2
chimport_mailchimp_requests_total{status="none"} 1
# HELP chimport_mailchimp_retries_total Mailchimp attempts that failed and were retried.
# TYPE chimport_mailchimp_retries_total counter
chimport_mailchimp_retries_total 3
`
	if err := testutil.CollectAndCompare(m.reg, strings.NewReader(want),
		"chimport_runs_total", "chimport_members_read_total", "chimport_members_delivered_total",
		"chimport_members_tombstoned_total", "chimport_mailchimp_requests_total", "chimport_mailchimp_retries_total"); err != nil {
		t.Error(err)
	}

	// Durations land in buckets that tell a 42 s delta from a 2 h first sync.
	wantHist := `
# HELP chimport_run_duration_seconds How long runs took, whatever their result.
# TYPE chimport_run_duration_seconds histogram
chimport_run_duration_seconds_bucket{connection="shop",le="1"} 0
chimport_run_duration_seconds_bucket{connection="shop",le="5"} 0
chimport_run_duration_seconds_bucket{connection="shop",le="15"} 0
chimport_run_duration_seconds_bucket{connection="shop",le="30"} 0
chimport_run_duration_seconds_bucket{connection="shop",le="60"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="120"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="300"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="600"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="1200"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="1800"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="3600"} 1
chimport_run_duration_seconds_bucket{connection="shop",le="7200"} 2
chimport_run_duration_seconds_bucket{connection="shop",le="14400"} 2
chimport_run_duration_seconds_bucket{connection="shop",le="28800"} 2
chimport_run_duration_seconds_bucket{connection="shop",le="+Inf"} 2
chimport_run_duration_seconds_sum{connection="shop"} 7242
chimport_run_duration_seconds_count{connection="shop"} 2
`
	m.Forget("news")
	if err := testutil.CollectAndCompare(m.reg, strings.NewReader(wantHist), "chimport_run_duration_seconds"); err != nil {
		t.Error(err)
	}
}

func TestLagAndLastSuccess(t *testing.T) {
	m := New()
	m.SetLag("shop", 90*time.Minute, true)
	m.SetLag("news", 0, false)
	m.SetLastSuccess("shop", time.Unix(1772600767, 500_000_000))
	m.SetLastSuccess("news", time.Time{})
	if got := testutil.ToFloat64(m.lag.WithLabelValues("shop")); got != 5400 {
		t.Errorf("lag = %v, want 5400", got)
	}
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("shop")); got != 1772600767.5 {
		t.Errorf("last success = %v, want 1772600767.5", got)
	}
	// A connection never attempted has no lag series at all, rather than a
	// 0 that reads as fresh; one that was known and is no longer loses it.
	m.SetLag("shop", 0, false)
	if n := testutil.CollectAndCount(m.lag); n != 0 {
		t.Errorf("%d lag series, want none", n)
	}
	m.SetLastSuccess("shop", time.Time{})
	if n := testutil.CollectAndCount(m.lastSuccess); n != 0 {
		t.Errorf("%d last success series, want none", n)
	}
}

func TestRosterMembers(t *testing.T) {
	m := New()
	m.SetRosterMembers("shop", 2500, true)
	m.SetRosterMembers("news", 0, false)
	m.SetRosterMembers("empty", 0, true)
	want := `
# HELP chimport_roster_members Members in the target: the size of the connection's roster, as its last run counted it. Absent until a run built the roster.
# TYPE chimport_roster_members gauge
chimport_roster_members{connection="empty"} 0
chimport_roster_members{connection="shop"} 2500
`
	// A connection without a roster has no series, rather than a 0 that
	// reads as an empty target; an empty target that is known reads 0.
	if err := testutil.CollectAndCompare(m.reg, strings.NewReader(want), "chimport_roster_members"); err != nil {
		t.Error(err)
	}
	m.SetRosterMembers("shop", 2480, true)
	if got := testutil.ToFloat64(m.members.WithLabelValues("shop")); got != 2480 {
		t.Errorf("members = %v, want 2480", got)
	}
	m.SetRosterMembers("empty", 0, false)
	if n := testutil.CollectAndCount(m.members); n != 1 {
		t.Errorf("%d roster series, want shop's only", n)
	}
}

// The rejected gauge follows the log's size, 0 included: an empty log is
// a real reading (nothing refused), unlike an unknown roster.
func TestRecordsRejected(t *testing.T) {
	m := New()
	m.SetRejected("shop", 3)
	m.SetRejected("news", 0)
	want := `
# HELP chimport_records_rejected Records the target refused that wait in the connection's rejected log, retried by every run until the target accepts them or their members are gone.
# TYPE chimport_records_rejected gauge
chimport_records_rejected{connection="news"} 0
chimport_records_rejected{connection="shop"} 3
`
	if err := testutil.CollectAndCompare(m.reg, strings.NewReader(want), "chimport_records_rejected"); err != nil {
		t.Error(err)
	}
	m.SetRejected("shop", 0)
	if got := testutil.ToFloat64(m.rejected.WithLabelValues("shop")); got != 0 {
		t.Errorf("rejected = %v after the log emptied, want 0", got)
	}
}

// Forget drops every series of a connection that left the configuration,
// the roster's among them, and keeps the others'.
func TestForget(t *testing.T) {
	m := New()
	for _, c := range []string{"shop", "news"} {
		m.ObserveRun(c, state.ResultOK, 3, 3, 1, time.Second, mailchimp.Stats{})
		m.SetLag(c, time.Minute, true)
		m.SetLastSuccess(c, time.Unix(1772600767, 0))
		m.SetRosterMembers(c, 40, true)
		m.SetRejected(c, 2)
	}
	m.Forget("news")
	for name, c := range map[string]prometheus.Collector{
		"lag": m.lag, "last success": m.lastSuccess, "read": m.read, "delivered": m.delivered,
		"tombstoned": m.tombstoned, "roster members": m.members, "rejected": m.rejected, "duration": m.duration,
	} {
		if n := testutil.CollectAndCount(c); n != 1 {
			t.Errorf("%s: %d series after Forget, want shop's only", name, n)
		}
	}
	if n := testutil.CollectAndCount(m.runs); n != 3 {
		t.Errorf("runs: %d series after Forget, want shop's 3", n)
	}
	if got := testutil.ToFloat64(m.tombstoned.WithLabelValues("shop")); got != 1 {
		t.Errorf("shop's tombstoned = %v after Forget(news), want 1", got)
	}
}

func TestHandlerScrape(t *testing.T) {
	m := New()
	m.SetLag("shop", 3*time.Hour, true)
	m.ObserveRun("shop", state.ResultOK, 1, 1, 4, time.Second, mailchimp.Stats{Requests: 1, ByStatus: map[int]int64{200: 1}})
	m.SetRosterMembers("shop", 1250, true)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d\n%s", resp.StatusCode, body)
	}
	for _, line := range []string{
		`chimport_connection_lag_seconds{connection="shop"} 10800`,
		`chimport_runs_total{connection="shop",result="ok"} 1`,
		`chimport_members_tombstoned_total{connection="shop"} 4`,
		`chimport_roster_members{connection="shop"} 1250`,
		`chimport_mailchimp_requests_total{status="200"} 1`,
		`chimport_run_duration_seconds_count{connection="shop"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("scrape lacks %q", line)
		}
	}
}

// Each Metrics has its own registry: two side by side do not collide, as
// they would on the global one.
func TestIndependentRegistries(t *testing.T) {
	a, b := New(), New()
	a.ObserveRun("shop", state.ResultOK, 1, 1, 0, time.Second, mailchimp.Stats{})
	if n := testutil.CollectAndCount(b.runs); n != 0 {
		t.Errorf("second Metrics sees %d run series", n)
	}
}

func TestCountLagCheck(t *testing.T) {
	m := New()
	m.CountLagCheck()
	m.CountLagCheck()
	want := `
# HELP chimport_lag_checks_total Lag checks this process finished: every connection measured and its lag policy applied. A rate of 0 means lag alerts have stopped.
# TYPE chimport_lag_checks_total counter
chimport_lag_checks_total 2
`
	if err := testutil.CollectAndCompare(m.reg, strings.NewReader(want), "chimport_lag_checks_total"); err != nil {
		t.Error(err)
	}
}

func TestWebhookSeries(t *testing.T) {
	m := New()
	w := m.Webhooks()
	if m.Webhooks() != w {
		t.Fatal("Webhooks registered twice")
	}
	w.Event("profile", "delivered")
	w.Fetches("shop", 3)
	w.Depth("shop", 7)
	w.Latency(300 * time.Millisecond)
	body := scrape(t, m)
	for _, want := range []string{
		`chimport_webhook_events_total{outcome="delivered",type="profile"} 1`,
		`chimport_webhook_fetches_total{connection="shop"} 3`,
		`chimport_webhook_queue_members{connection="shop"} 7`,
		`chimport_webhook_latency_seconds_count 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
