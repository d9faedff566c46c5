package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
	"github.com/chimport/chimport/internal/webhook"
)

// runConfig is a config for the fixture's list with its state in dir.
func (f *fixture) runConfig(t *testing.T, extra string) string {
	t.Helper()
	return f.configWithState(t, "sqlite://"+filepath.Join(t.TempDir(), "state.db"), extra)
}

// configWithState is runConfig's connection with its state at stateURL.
func (f *fixture) configWithState(t *testing.T, stateURL, extra string) string {
	t.Helper()
	return writeFile(t, "chimport.yaml", fmt.Sprintf(`state: %s
connections:
  - name: newsletter
    mailchimp:
      api_key: ${MAILCHIMP_API_KEY}
      list_id: a1b2c3d4e5
      base_url: %s
      settle: 0s
    target:
      url: %s
      headers:
        Authorization: ${TARGET_API_KEY}
%s`, stateURL, f.baseURL, f.targetURL, extra))
}

func TestRunSyncsAndStatusReports(t *testing.T) {
	f := newFixture(t, 3000)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	cfg := f.runConfig(t, "")
	ctx := context.Background()

	r := runCLI(t, ctx, vars, "run", "--config", cfg)
	if r.code != exitOK {
		t.Fatalf("run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	all := len(f.sim.Members("a1b2c3d4e5"))
	row := regexp.MustCompile(`(?m)^newsletter\s+ok\s+\d+\s+(\d+)\s`).FindStringSubmatch(r.stdout)
	if row == nil || row[1] != fmt.Sprint(all) {
		t.Errorf("run summary should show newsletter ok with %d delivered:\n%s", all, r.stdout)
	}
	if got := f.target.Len(); got != all {
		t.Errorf("target holds %d records, want %d", got, all)
	}

	// A second run right away finds nothing new: at most 4 requests (2 for
	// the window, 2 to learn whether members were deleted).
	f.sim.ResetStats()
	r = runCLI(t, ctx, vars, "run", "--config", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("second run: exit %d, stderr %s", r.code, r.stderr)
	}
	var summaries []runJSON
	if err := json.Unmarshal([]byte(r.stdout), &summaries); err != nil {
		t.Fatalf("run --json output does not parse: %v\n%s", err, r.stdout)
	}
	if len(summaries) != 1 || summaries[0].Result != "ok" || !summaries[0].Completed || summaries[0].Watermark == nil || summaries[0].Delivered != 0 ||
		summaries[0].Members != int64(all) || summaries[0].Tombstoned != 0 {
		t.Errorf("second run summary = %+v, want result ok, completed with a watermark, nothing delivered, none left and %d members", summaries, all)
	}
	if got := f.sim.Stats().Requests; got > 4 {
		t.Errorf("no-change run made %d Mailchimp requests, want at most 4", got)
	}

	r = runCLI(t, ctx, vars, "status", "--config", cfg, "--json")
	if r.code != exitOK {
		t.Fatalf("status: exit %d, stderr %s", r.code, r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if len(rows) != 1 || rows[0]["name"] != "newsletter" || rows[0]["lag_seconds"] == nil || rows[0]["last_success"] == nil || rows[0]["last_error"] != "" || rows[0]["next_run"] == nil ||
		rows[0]["members"] != float64(all) || rows[0]["tombstones_total"] != 0.0 {
		t.Errorf("status rows = %v, want %d members and no tombstones", rows, all)
	}
	r = runCLI(t, ctx, vars, "status", "--config", cfg)
	if !strings.Contains(r.stdout, "newsletter") || !strings.Contains(r.stdout, "LAG") {
		t.Errorf("status table:\n%s", r.stdout)
	}
}

func TestRunWithWrongKeyExplainsAndLeaksNothing(t *testing.T) {
	f := newFixture(t, 50)
	const wrongKey = "deadbeefdeadbeefdeadbeefdeadbeef-us6"
	vars := map[string]string{"MAILCHIMP_API_KEY": wrongKey, "TARGET_API_KEY": targetAuth}
	f.sim.ResetStats()
	r := runCLI(t, context.Background(), vars, "--log-level", "debug", "run", "--config", f.runConfig(t, ""))
	if r.code != exitFailed {
		t.Errorf("exit code = %d, want %d", r.code, exitFailed)
	}
	if !strings.Contains(r.stdout, "401") || !strings.Contains(r.stdout, "mailchimp.api_key") {
		t.Errorf("output does not explain the rejected key:\n%s", r.stdout)
	}
	if got := f.sim.Stats().Requests; got > 2 {
		t.Errorf("wrong key made %d requests, want at most 2", got)
	}
	for _, secret := range []string{wrongKey, "deadbeefdeadbeef", targetAuth} {
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("output contains %q", secret)
		}
	}
}

func TestRunWithoutListIDExits2(t *testing.T) {
	path := writeFile(t, "chimport.yaml", `connections:
  - name: newsletter
    mailchimp:
      api_key: abc-us6
    target:
      url: http://127.0.0.1:1/records
`)
	r := runCLI(t, context.Background(), nil, "run", "--config", path)
	if r.code != exitUsage || !strings.Contains(r.stderr, "connections[0].mailchimp.list_id: required") {
		t.Fatalf("exit %d, stderr %q; want 2 naming connections[0].mailchimp.list_id", r.code, r.stderr)
	}
}

func TestDemo(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "demo", "--members", "3000")
	if r.code != exitOK {
		t.Fatalf("demo: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"1. First run", "2. Second run", "3. Target and Mailchimp agree"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	// Only the changes move in the second run: 21 members changed in
	// place and 2 under new addresses are delivered, and the 2 deleted for
	// good and the 2 old addresses leave the target.
	second := r.stdout[strings.Index(r.stdout, "2. Second run"):]
	if !regexp.MustCompile(`(?m)^demo +ok +\d+ +23 +4 `).MatchString(second) {
		t.Errorf("second run did not deliver exactly the 23 changes and remove the 4 members who left:\n%s", second)
	}
	if !strings.Contains(r.stdout, "holds only 4 tombstones") {
		t.Errorf("demo's final check does not account for the 4 members who left:\n%s", r.stdout)
	}
	// The live step: one edit reaches the target through the webhook,
	// with one GET and one POST, and the target is still a mirror.
	live := regexp.MustCompile(`(?m)^4\. Live: a webhook registered with Mailchimp calls http://127\.0\.0\.1:\d+/webhooks/mailchimp/demo/\*\*\*\* \(token masked\)\.\n` +
		`   \S+ first name changed to "Live" in Mailchimp; it reached the target through the webhook\n` +
		`   in (\d+) ms \(1 Mailchimp request, 1 target request, no run\)\.\n` +
		`   Target and Mailchimp still agree: all 3003 members match, and it holds 4 tombstones and no other record\.\n`)
	if m := live.FindStringSubmatch(r.stdout); m == nil {
		t.Errorf("demo's live step is missing or reads otherwise:\n%s", r.stdout)
	} else {
		t.Logf("the demo's live change took %s ms through the webhook", m[1])
	}
	if token := webhook.Token(demoWebhookSecret, "demo"); strings.Contains(r.stdout+r.stderr, token) || strings.Contains(r.stdout+r.stderr, demoWebhookSecret) {
		t.Error("the demo printed its webhook secret or token")
	}
}

// Members deleted for good in Mailchimp leave the target on the next run,
// and both outputs say so: run --json counts them with the reconcile that
// found them, status the members left and the tombstones sent.
func TestRunReportsMembersThatLeft(t *testing.T) {
	f := newFixture(t, 500)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	cfg := f.runConfig(t, "")
	ctx := context.Background()
	if r := runCLI(t, ctx, vars, "run", "--config", cfg); r.code != exitOK {
		t.Fatalf("first run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	members := f.sim.Members("a1b2c3d4e5")
	for _, m := range members[:3] {
		must(t, f.sim.Delete("a1b2c3d4e5", m.ID))
	}
	// --full reconciles whenever it runs; a plain run may come in the same
	// second as the first and have no window to close.
	r := runCLI(t, ctx, vars, "run", "--config", cfg, "--json", "--full")
	if r.code != exitOK {
		t.Fatalf("second run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var runs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil {
		t.Fatalf("run --json: %v\n%s", err, r.stdout)
	}
	left := len(members) - 3
	wantRun := map[string]any{"tombstoned": 3.0, "members": float64(left), "reconciled": true, "reconcile_reason": "full"}
	if len(runs) != 1 {
		t.Fatalf("run --json has %d rows, want 1:\n%s", len(runs), r.stdout)
	}
	for k, want := range wantRun {
		if got := runs[0][k]; got != want {
			t.Errorf("run --json %s = %v, want %v", k, got, want)
		}
	}

	r = runCLI(t, ctx, vars, "status", "--config", cfg, "--json")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	if rows[0]["members"] != float64(left) || rows[0]["tombstones_total"] != 3.0 || rows[0]["last_reconcile"] == nil {
		t.Errorf("status --json = %v, want %d members, 3 tombstones and a last reconcile", rows[0], left)
	}
}

// Every call the engine makes to the store is timed, the roster's among
// them, so the run's state_store_calls counts them all. The clock moves
// 1 ms each time it is read: each call costs 1 ms.
func TestTimedStoreTimesEveryEngineCall(t *testing.T) {
	ctx := context.Background()
	tick := time.Unix(0, 0)
	ts := &timedStore{Store: memory.New(), now: func() time.Time {
		tick = tick.Add(time.Millisecond)
		return tick
	}}
	must(t, ts.UpdateRoster(ctx, "shop", state.RosterChange{Add: []state.MemberID{{1}, {2}}}))
	ids, err := ts.Roster(ctx, "shop")
	must(t, err)
	n, err := ts.RosterSize(ctx, "shop")
	must(t, err)
	if len(ids) != 2 || n != 2 {
		t.Errorf("through the timed store: roster %v, size %d; want 2 ids", ids, n)
	}
	if spent, calls := ts.Spent(); calls != 3 || spent != 3*time.Millisecond {
		t.Errorf("Spent() = %v, %d; want 3ms over 3 calls", spent, calls)
	}

	// The same for every method of engine.Store, present and future: one
	// the wrapper does not time would go through the embedded store
	// uncounted.
	_, before := ts.Spent()
	seam := reflect.TypeFor[engine.Store]()
	for i := range seam.NumMethod() {
		m := seam.Method(i)
		args := []reflect.Value{reflect.ValueOf(ctx)}
		for j := 1; j < m.Type.NumIn(); j++ {
			args = append(args, reflect.Zero(m.Type.In(j)))
		}
		reflect.ValueOf(ts).MethodByName(m.Name).Call(args) // errors for the zero arguments do not matter
		_, calls := ts.Spent()
		if calls != before+1 {
			t.Errorf("timedStore does not time %s", m.Name)
		}
		before = calls
	}
}

var (
	statusNow  = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	reconciled = statusNow.Add(-30 * time.Minute)
)

// rosterStates is a store holding the three kinds of connection status
// tells apart: "kept" keeps a roster (3 delivered, 1 left since), "older"
// completed runs under a release without rosters, and "never" never ran.
func rosterStates(t *testing.T) []connectionStatus {
	t.Helper()
	ctx := context.Background()
	store := memory.New()
	for _, name := range []string{"kept", "older"} {
		started := statusNow.Add(-2 * time.Hour)
		must(t, store.StartRun(ctx, name, started))
		must(t, store.CompleteRun(ctx, state.Run{Connection: name, Started: started, Finished: started.Add(time.Minute),
			WindowEnd: statusNow.Add(-time.Hour), Result: state.ResultOK, Read: 3, Delivered: 3}))
	}
	ids := []state.MemberID{{1}, {2}, {3}}
	must(t, store.UpdateRoster(ctx, "kept", state.RosterChange{Add: ids, Reconciled: statusNow.Add(-2 * time.Hour)}))
	must(t, store.UpdateRoster(ctx, "kept", state.RosterChange{Remove: ids[:1], Reconciled: reconciled}))
	var rows []connectionStatus
	for _, name := range []string{"kept", "older", "never"} {
		s, err := statusOf(ctx, store, name, statusNow)
		must(t, err)
		rows = append(rows, s)
	}
	return rows
}

func TestStatusJSONShowsTheRoster(t *testing.T) {
	var buf bytes.Buffer
	must(t, printStatusJSON(&buf, rosterStates(t)))
	var rows []map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &rows))
	type roster struct {
		Members, LastReconcile, TombstonesTotal any
	}
	var got []roster
	for _, r := range rows {
		for _, k := range []string{"members", "last_reconcile", "tombstones_total"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: status --json lacks %q", r["name"], k) // null, not absent
			}
		}
		got = append(got, roster{r["members"], r["last_reconcile"], r["tombstones_total"]})
	}
	want := []roster{
		{2.0, reconciled.Format(time.RFC3339), 1.0},
		{nil, nil, 0.0}, // no roster yet: members unknown, not 0
		{nil, nil, 0.0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members, last_reconcile, tombstones_total (-want +got):\n%s", diff)
	}
}

func TestStatusTableShowsTheRoster(t *testing.T) {
	rows := rosterStates(t)
	next := statusNow.Add(time.Hour)
	rows[0].NextRun, rows[1].NextRun = &next, &next
	var buf bytes.Buffer
	must(t, printStatusTable(&buf, rows))
	want := `CONNECTION  WATERMARK             LAG           LAST SUCCESS          NEXT RUN              MEMBERS  LEFT  REJECTED  LAST RECONCILE        FAILED PAGES  LAST ERROR
kept        2026-03-04T11:00:00Z  1h0m0s        2026-03-04T10:01:00Z  2026-03-04T13:00:00Z  2        1     0         2026-03-04T11:30:00Z  0             -
older       2026-03-04T11:00:00Z  1h0m0s        2026-03-04T10:01:00Z  2026-03-04T13:00:00Z  -*       0     0         never                 0             -
never       never                 never synced  never                 with the first run    -        0     0         never                 0             -

* no roster yet (state from an older release): the next run of older builds it with one scan of member ids.
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("status table (-want +got):\n%s", diff)
	}
}

func TestRunOutputShowsWhatLeft(t *testing.T) {
	end := time.Date(2026, 3, 4, 11, 59, 0, 0, time.UTC)
	outcomes := []outcome{
		{summary: engine.Summary{Connection: "shop", Result: state.ResultOK, Completed: true, Read: 120, Delivered: 118,
			Tombstoned: 3, Members: 4997, Reconciled: true, ReconcileReason: "counts",
			WindowEnd: end, Duration: 1500 * time.Millisecond, MailchimpStats: mailchimp.Stats{Requests: 9}}},
		{summary: engine.Summary{Connection: "news", Result: state.ResultOK, Completed: true, Members: 250,
			WindowEnd: end, Duration: 200 * time.Millisecond, MailchimpStats: mailchimp.Stats{Requests: 2}}},
	}
	var buf bytes.Buffer
	must(t, printRunJSON(&buf, outcomes))
	var rows []map[string]any
	must(t, json.Unmarshal(buf.Bytes(), &rows))
	type mirror struct {
		Tombstoned, Members, Reconciled, Reason any
		HasReason                               bool
	}
	var got []mirror
	for _, r := range rows {
		reason, has := r["reconcile_reason"]
		got = append(got, mirror{r["tombstoned"], r["members"], r["reconciled"], reason, has})
	}
	want := []mirror{
		{3.0, 4997.0, true, "counts", true},
		{0.0, 250.0, false, nil, false}, // no reconcile: no reason at all
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tombstoned, members, reconciled, reconcile_reason (-want +got):\n%s", diff)
	}

	buf.Reset()
	must(t, printRunTable(&buf, outcomes))
	wantTable := `CONNECTION  RESULT  READ  DELIVERED  LEFT  REJECTED  REQUESTS  DURATION  WATERMARK
shop        ok      120   118        3     0         9         1.5s      2026-03-04T11:59:00Z
news        ok      0     0          0     0         2         200ms     2026-03-04T11:59:00Z
`
	if diff := cmp.Diff(wantTable, buf.String()); diff != "" {
		t.Errorf("run table (-want +got):\n%s", diff)
	}
}
