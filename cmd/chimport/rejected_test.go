package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"nothing wrong", nil, exitOK},
		{"a connection failed", errFailed, exitFailed},
		{"records refused", errRejected, exitRejected},
		{"refused, and a failure", errors.Join(errRejected, errFailed), exitFailed},
		{"usage", usageErrorf("bad flag"), exitUsage},
		{"anything else", errors.New("boom"), exitFailed},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestSyncResult(t *testing.T) {
	ok := func(rejected int64) outcome {
		return outcome{summary: engine.Summary{Result: state.ResultOK, Rejected: rejected}}
	}
	failed := outcome{summary: engine.Summary{Result: state.ResultFailed}, err: errors.New("boom")}
	cancelled := outcome{summary: engine.Summary{Result: state.ResultCancelled}}
	for _, tt := range []struct {
		name     string
		outcomes []outcome
		want     error
	}{
		{"all completed, nothing refused", []outcome{ok(0), ok(0)}, nil},
		// The log of an earlier run that is still not empty counts too:
		// Summary.Rejected is the log's size at the end of the run.
		{"one log holds records", []outcome{ok(0), ok(2)}, errRejected},
		{"a failure wins", []outcome{ok(2), failed}, errFailed},
		{"a cancelled run is not complete", []outcome{ok(1), cancelled}, errFailed},
		{"nothing run", nil, nil},
	} {
		if got := syncResult(tt.outcomes); got != tt.want {
			t.Errorf("%s: syncResult = %v, want %v", tt.name, got, tt.want)
		}
	}
}

var refusedAt = time.Date(2026, 3, 4, 11, 58, 0, 0, time.UTC)

// sampleRejection is a refusal whose answer holds what a terminal would
// act on: a line break and an escape sequence.
func sampleRejection() *state.Rejection {
	return &state.Rejection{Member: state.MemberID{0x0c, 0xc1}, Key: "0cc1", Status: 422,
		Reason: "{\"error\":\"invalid email\"}\n\x1b[2J", FirstSeen: refusedAt.Add(-time.Hour), LastAttempt: refusedAt, Attempts: 2}
}

func TestRunOutputShowsRejected(t *testing.T) {
	end := time.Date(2026, 3, 4, 11, 59, 0, 0, time.UTC)
	outcomes := []outcome{
		{summary: engine.Summary{Connection: "shop", Result: state.ResultOK, Completed: true, Read: 31, Delivered: 30, Members: 30,
			Rejected: 1, RejectedSample: sampleRejection(), Refused: 1,
			WindowEnd: end, Duration: 1500 * time.Millisecond, MailchimpStats: mailchimp.Stats{Requests: 4}}},
		{summary: engine.Summary{Connection: "news", Result: state.ResultOK, Completed: true,
			WindowEnd: end, Duration: 200 * time.Millisecond, MailchimpStats: mailchimp.Stats{Requests: 2}}},
	}
	var buf bytes.Buffer
	must(t, printRunTable(&buf, outcomes))
	want := `CONNECTION  RESULT  READ  DELIVERED  LEFT  REJECTED  REQUESTS  DURATION  WATERMARK
shop        ok      31    30         0     1         4         1.5s      2026-03-04T11:59:00Z
news        ok      0     0          0     0         2         200ms     2026-03-04T11:59:00Z

Rejected records (the target refused them; they wait in the rejected log and every run retries them):
  shop: 1 record, e.g. member 0cc10000000000000000000000000000: HTTP 422: {"error":"invalid email"}\n\x1b[2J
chimport rejected lists them all; chimport rejected --connection NAME one connection's.
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("run table (-want +got):\n%s", diff)
	}

	buf.Reset()
	must(t, printRunJSON(&buf, outcomes))
	var rows []map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &rows))
	sample := map[string]any{"member_id": "0cc10000000000000000000000000000", "key": "0cc1", "status": 422.0,
		"reason": "{\"error\":\"invalid email\"}\n\x1b[2J", "first_seen": "2026-03-04T10:58:00Z", "last_attempt": "2026-03-04T11:58:00Z", "attempts": 2.0}
	type rejected struct{ Rejected, Refused, Sample any }
	got := []rejected{{rows[0]["rejected"], rows[0]["refused"], rows[0]["rejected_sample"]}, {rows[1]["rejected"], rows[1]["refused"], rows[1]["rejected_sample"]}}
	if diff := cmp.Diff([]rejected{{1.0, 1.0, sample}, {0.0, 0.0, nil}}, got); diff != "" {
		t.Errorf("run --json rejected, refused, rejected_sample (-want +got):\n%s", diff)
	}
}

// rejectedStore holds two connections whose targets refused records and
// one whose did not.
func rejectedStore(t *testing.T) *memory.Store {
	t.Helper()
	ctx := context.Background()
	store := memory.New()
	r := sampleRejection()
	first := *r
	first.LastAttempt = r.FirstSeen
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{first,
		{Member: state.MemberID{0x01}, Key: "a@example.com", Status: 400, Reason: "", LastAttempt: refusedAt.Add(-time.Minute)}}))
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{*r})) // a second attempt
	must(t, store.RecordRejections(ctx, "crm", []state.Rejection{{Member: state.MemberID{0xff}, Key: "k", Status: 422, Reason: "no", LastAttempt: refusedAt}}))
	must(t, store.StartRun(ctx, "news", refusedAt))
	return store
}

func TestStatusShowsRejected(t *testing.T) {
	ctx := context.Background()
	store := rejectedStore(t)
	var rows []connectionStatus
	for _, name := range []string{"shop", "news"} {
		s, err := statusOf(ctx, store, name, statusNow)
		must(t, err)
		rows = append(rows, s)
	}
	var buf bytes.Buffer
	must(t, printStatusTable(&buf, rows))
	out := buf.String()
	for _, want := range []string{
		"LEFT  REJECTED  LAST RECONCILE",
		"\nRejected records (the target refused them; they wait in the rejected log and every run retries them):\n" +
			`  shop: 2 records, e.g. member 0cc10000000000000000000000000000: HTTP 422: {"error":"invalid email"}\n\x1b[2J` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("status printed an escape character")
	}

	buf.Reset()
	must(t, printStatusJSON(&buf, rows))
	var got []map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &got))
	if got[0]["rejected"] != 2.0 || got[1]["rejected"] != 0.0 {
		t.Errorf("rejected = %v, %v; want 2, 0", got[0]["rejected"], got[1]["rejected"])
	}
	if s, ok := got[0]["rejected_sample"].(map[string]any); !ok || s["member_id"] != "0cc10000000000000000000000000000" || s["attempts"] != 2.0 ||
		s["first_seen"] != "2026-03-04T10:58:00Z" || s["last_attempt"] != "2026-03-04T11:58:00Z" || s["status"] != 422.0 || s["key"] != "0cc1" {
		t.Errorf("rejected_sample = %v", got[0]["rejected_sample"])
	}
	if v, present := got[1]["rejected_sample"]; !present || v != nil {
		t.Errorf("without rejected records: rejected_sample = %v (present %v), want null", v, present)
	}
}

// With thousands of connections at most 20 lines follow the table.
func TestRejectedLinesAreBounded(t *testing.T) {
	var lines []rejectedLine
	for i := range 25 {
		lines = append(lines, rejectedLine{connection: fmt.Sprintf("c%02d", i), count: 1})
	}
	var buf bytes.Buffer
	printRejectedLines(&buf, lines)
	if n := strings.Count(buf.String(), ": 1 record"); n != 20 || !strings.Contains(buf.String(), "  ... and 5 more connections.\n") {
		t.Errorf("%d connection lines:\n%s", n, buf.String())
	}
}

func TestRejectedListing(t *testing.T) {
	ctx := context.Background()
	store := rejectedStore(t)
	entries, err := readRejected(ctx, store, []string{"shop", "news", "crm"}, false)
	must(t, err)
	var buf bytes.Buffer
	must(t, printRejectedTable(&buf, entries, nil))
	want := `CONNECTION  MEMBER                            KEY            STATUS  ATTEMPTS  FIRST SEEN            LAST ATTEMPT          REASON
crm         ff000000000000000000000000000000  k              422     1         2026-03-04T11:58:00Z  2026-03-04T11:58:00Z  no
shop        01000000000000000000000000000000  a@example.com  400     1         2026-03-04T11:57:00Z  2026-03-04T11:57:00Z  -
shop        0cc10000000000000000000000000000  0cc1           422     2         2026-03-04T10:58:00Z  2026-03-04T11:58:00Z  {"error":"invalid email"}\n\x1b[2J

3 rejected records. Every run retries them first; one leaves the log when the target accepts it or its member is gone.
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("rejected table (-want +got):\n%s", diff)
	}

	buf.Reset()
	must(t, printRejectedJSON(&buf, entries))
	var rows []map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &rows))
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %s %v %v %q", r["connection"], r["member_id"], r["status"], r["attempts"], r["reason"]))
	}
	wantJSON := []string{
		`crm ff000000000000000000000000000000 422 1 "no"`,
		`shop 01000000000000000000000000000000 400 1 ""`,
		`shop 0cc10000000000000000000000000000 422 2 "{\"error\":\"invalid email\"}\n\x1b[2J"`,
	}
	if diff := cmp.Diff(wantJSON, got); diff != "" {
		t.Errorf("rejected --json (-want +got):\n%s", diff)
	}

	// One connection, and an empty log.
	entries, err = readRejected(ctx, store, []string{"news"}, true)
	must(t, err)
	buf.Reset()
	must(t, printRejectedTable(&buf, entries, []string{"news"}))
	if want := "No rejected records for news: the target accepted every record it was sent.\n"; buf.String() != want {
		t.Errorf("empty log: %q, want %q", buf.String(), want)
	}
	buf.Reset()
	must(t, printRejectedJSON(&buf, entries))
	if strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("empty log as JSON: %q, want []", buf.String())
	}
	buf.Reset()
	must(t, printRejectedTable(&buf, nil, nil))
	if !strings.HasPrefix(buf.String(), "No rejected records: ") {
		t.Errorf("no records anywhere: %q", buf.String())
	}
}

// rejected knows the configured connections: a name that is not one is a
// usage error that names it, before the store is opened.
func TestRejectedUnknownConnection(t *testing.T) {
	cfg := writeFile(t, "chimport.yaml", `state: sqlite:///nonexistent-dir/state.db
connections:
  - name: newsletter
    mailchimp: {api_key: abc-us6, list_id: a1b2c3d4e5}
    target: {url: "http://127.0.0.1:1/records"}
`)
	r := runCLI(t, context.Background(), nil, "rejected", "--config", cfg, "--connection", "newsleter")
	if r.code != exitUsage || !strings.Contains(r.stderr, `"newsleter"`) {
		t.Errorf("exit %d, stderr %q; want 2 naming the unknown connection", r.code, r.stderr)
	}
}

// alertRecorder keeps the alerts sent.
type alertRecorder struct{ got []alert.Alert }

func (r *alertRecorder) Notify(_ context.Context, a alert.Alert) error {
	r.got = append(r.got, a)
	return nil
}

// run alerts once when a connection's rejected log fills, on the store's
// incident record, and sends one recovery notice once it is empty.
func TestRunAlertsOnRejectedRecordsOnce(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	rec := &alertRecorder{}
	clk := &stepClock{now: refusedAt}
	cfg := &config.Config{Connections: []config.Connection{{Name: "shop"}}}
	alerts := newRunAlerts(cfg, cfg.Connections, store, rec, clk, slog.New(slog.DiscardHandler))
	afterRuns := func(n int) {
		for range n {
			clk.Advance(time.Hour)
			alerts.afterRun(ctx, "shop", nil)
		}
	}
	afterRuns(1)
	must(t, store.RecordRejections(ctx, "shop", []state.Rejection{*sampleRejection()}))
	afterRuns(3)
	must(t, store.ClearRejections(ctx, "shop", []state.MemberID{sampleRejection().Member}))
	afterRuns(2)
	var kinds []string
	for _, a := range rec.got {
		kinds = append(kinds, strings.TrimSpace(string(a.Kind)+" "+string(a.Resolves)))
	}
	if diff := cmp.Diff([]string{"rejected", "recovered rejected"}, kinds); diff != "" {
		t.Fatalf("alerts (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.Connection != "shop" || a.Rejected != 1 || a.Sample == nil || a.Sample.MemberID != "0cc10000000000000000000000000000" ||
		!strings.Contains(a.Text(), `Target said:   {"error":"invalid email"}\n\x1b[2J`) {
		t.Errorf("rejected alert = %+v\n%s", a, a.Text())
	}
}

// target.max_rejected reaches the engine, and its default is the engine's.
func TestMaxRejectedReachesTheJob(t *testing.T) {
	if config.DefaultMaxRejected != engine.DefaultMaxRejected {
		t.Errorf("config.DefaultMaxRejected = %d, engine.DefaultMaxRejected = %d", config.DefaultMaxRejected, engine.DefaultMaxRejected)
	}
	conn := config.Connection{Name: "shop"}.WithDefaults()
	conn.Mailchimp.APIKey, conn.Mailchimp.ListID, conn.Target.URL = "0123456789abcdef-us6", "a1b2c3d4e5", "http://127.0.0.1:1/records"
	conn.Target.MaxRejected = 7
	job, err := newJob(conn, clientOptions{limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey), logger: slog.New(slog.DiscardHandler)}, runMode{})
	must(t, err)
	if job.MaxRejected != 7 {
		t.Errorf("job.MaxRejected = %d, want 7", job.MaxRejected)
	}
}

// A checkpoint of no view, which a webhook refresh's lease check writes,
// is no part-way run: status does not call the connection resumable.
func TestStatusResumableOnlyForAPartWayRun(t *testing.T) {
	ctx := context.Background()
	store := rejectedStore(t)
	for _, tc := range []struct {
		views map[string]time.Time
		want  bool
	}{{map[string]time.Time{}, false}, {map[string]time.Time{"default": statusNow.Add(-time.Hour)}, true}} {
		must(t, store.SaveCheckpoint(ctx, "news", state.Checkpoint{WindowStart: statusNow.Add(-2 * time.Hour), Views: tc.views, UpdatedAt: statusNow}))
		s, err := statusOf(ctx, store, "news", statusNow)
		must(t, err)
		if s.Resumable != tc.want {
			t.Errorf("checkpoint of views %v: resumable %v, want %v", tc.views, s.Resumable, tc.want)
		}
	}
}
