package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
)

// The end-to-end tests of issue 11: records the target refuses are
// isolated, kept in the rejected log, retried by every run and reported,
// and the rest keeps syncing. They run `chimport run`, `status` and
// `rejected` in process against the simulators, on a stepClock (the runs'
// retries take no time; time passes between runs, as the tests say).

// refuseMe is the first name the target's rule refuses.
const refuseMe = "REFUSE-ME"

// refusalReason is the rule's answer. It quotes the Authorization header,
// as a target that echoes its request would: what chimport keeps, prints
// and sends must never hold the header's value.
var refusalReason = "firstname " + refuseMe + " is not allowed (request from " + targetAuth + ")"

// refusals is one connection whose target refuses records, with its runs
// on a stepClock, its alerts on a webhook, and every output kept so a test
// can scan it for secrets.
type refusals struct {
	clk    *stepClock
	sim    *mcsim.Mailchimp
	target *mcsim.Target
	hook   *webhookRecorder
	cfg    string
	vars   map[string]string
	// outputs are the stdout and stderr of every command so far.
	outputs []string
}

// newRefusals builds the fixture on a SQLite file; wrap, if given, stands
// in front of the target simulator.
func newRefusals(t *testing.T, members int, wrap ...func(http.Handler) http.Handler) *refusals {
	t.Helper()
	return newRefusalsOn(t, members, "sqlite://"+filepath.Join(t.TempDir(), "state.db"), wrap...)
}

// newRefusalsOn is newRefusals with its state at stateURL.
func newRefusalsOn(t *testing.T, members int, stateURL string, wrap ...func(http.Handler) http.Handler) *refusals {
	t.Helper()
	x := &refusals{clk: &stepClock{now: time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)}, hook: &webhookRecorder{}}
	x.sim = mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: outageList, Members: members, Seed: 11, Clock: x.clk})
	x.target = mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth})
	x.target.SetRefuseRule(func(rec map[string]any) string {
		if rec["firstname"] == refuseMe {
			return refusalReason
		}
		return ""
	})
	var targetHandler http.Handler = x.target
	for _, w := range wrap {
		targetHandler = w(targetHandler)
	}
	simSrv, targetSrv, hookSrv := httptest.NewServer(x.sim), httptest.NewServer(targetHandler), httptest.NewServer(x.hook)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	t.Cleanup(hookSrv.Close)
	x.cfg = writeFile(t, "chimport.yaml", fmt.Sprintf(`state: %s
alerts:
  webhook_url: %s/hook
connections:
  - name: newsletter
    mailchimp: {api_key: "${MAILCHIMP_API_KEY}", list_id: %s, base_url: %q, settle: 0s}
    target:
      url: %q
      headers: {Authorization: "${TARGET_API_KEY}"}
`, stateURL, hookSrv.URL, outageList, simSrv.URL+"/3.0", targetSrv.URL+"/records"))
	x.vars = map[string]string{"MAILCHIMP_API_KEY": x.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	return x
}

// cli runs a chimport command on the fixture's config and clock.
func (x *refusals) cli(t *testing.T, args ...string) result {
	t.Helper()
	args = append(args, "--config", x.cfg, "--log-format", "json", "--log-level", "debug")
	r := runCLIAt(t, context.Background(), x.clk, x.vars, args...)
	x.outputs = append(x.outputs, r.stdout, r.stderr)
	return r
}

// run is `chimport run --json` a few seconds after the last changes, so
// its window holds them; it returns the exit code and the run's summary.
func (x *refusals) run(t *testing.T) (int, runJSON) {
	t.Helper()
	x.clk.Advance(5 * time.Second)
	r := x.cli(t, "run", "--json")
	var rows []runJSON
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("run --json (exit %d): %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	return r.code, rows[0]
}

// status is the connection's row of `status --json`.
func (x *refusals) status(t *testing.T) connectionStatus {
	t.Helper()
	r := x.cli(t, "status", "--json")
	var rows []connectionStatus
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("status --json (exit %d): %v\n%s", r.code, err, r.stdout)
	}
	return rows[0]
}

// rejected is `chimport rejected --json`.
func (x *refusals) rejected(t *testing.T) []rejectionJSON {
	t.Helper()
	r := x.cli(t, "rejected", "--json")
	var rows []rejectionJSON
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rows) != nil {
		t.Fatalf("rejected --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	return rows
}

// change sets the first name of the members with these ids.
func (x *refusals) change(t *testing.T, name string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		must(t, x.sim.Change(outageList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = name }))
	}
}

// ids are the ids of the audience's members from..to-1.
func (x *refusals) ids(from, to int) []string {
	var out []string
	for _, m := range x.sim.Members(outageList)[from:to] {
		out = append(out, m.ID)
	}
	return out
}

// wrong lists the members whose record in the target is missing or not
// their current values (the default mapping's fields).
func (x *refusals) wrong() []string {
	records := x.target.Records()
	var out []string
	for _, m := range x.sim.Members(outageList) {
		r, ok := records[m.ID]
		if !ok || r["email"] != m.EmailAddress || r["status"] != m.Status || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) {
			out = append(out, m.ID)
		}
	}
	return out
}

// noSecrets checks every output, alert and the state file's rejected log
// (through `rejected --json`, among the outputs) for the API key and the
// target's header value.
func (x *refusals) noSecrets(t *testing.T) {
	t.Helper()
	x.hook.mu.Lock()
	alerts, _ := json.Marshal(x.hook.alerts)
	x.hook.mu.Unlock()
	all := strings.Join(append(x.outputs, string(alerts)), "\n")
	for _, secret := range []string{x.sim.APIKey(), targetAuth, strings.TrimPrefix(targetAuth, "Bearer ")} {
		if strings.Contains(all, secret) {
			t.Errorf("a command's output or an alert contains the secret %q", secret)
		}
	}
}

// TestOneRefusedRecordAmong31Changes is the story: one record the
// target refuses among 31 changes no longer holds back the other 30, nor
// any later change; it is reported, retried by every run, and delivered
// once the member is fixed in Mailchimp.
func TestOneRefusedRecordAmong31Changes(t *testing.T) {
	x := newRefusals(t, 300)
	if code, sum := x.run(t); code != exitOK || sum.Delivered != 300 {
		t.Fatalf("first sync: exit %d, %d delivered", code, sum.Delivered)
	}
	before := x.status(t).Watermark

	// 31 changes, one of them refused.
	changed := x.ids(0, 31)
	bad := changed[17]
	x.change(t, "Changed", changed[:17]...)
	x.change(t, refuseMe, bad)
	x.change(t, "Changed", changed[18:]...)
	x.target.ResetStats()
	code, sum := x.run(t)
	posts := x.target.Stats().Posts
	t.Logf("one refused among 31 changes: %d target requests", posts)
	if code != exitRejected || sum.Delivered != 30 || sum.Rejected != 1 || sum.Refused != 1 || sum.RejectedSample == nil || sum.RejectedSample.MemberID != bad {
		t.Errorf("run with one refused record: exit %d, %+v; want exit 3, 30 delivered, 1 rejected (%s)", code, sum, bad)
	}
	if posts > 16 {
		t.Errorf("%d target requests, want at most 16", posts)
	}
	if got := x.wrong(); len(got) != 1 || got[0] != bad {
		t.Errorf("members wrong in the target: %v, want only the refused %s", got, bad)
	}
	st := x.status(t)
	if st.Rejected != 1 || st.RejectedSample == nil || st.RejectedSample.MemberID != bad || st.RejectedSample.Status != 422 ||
		st.Watermark == nil || before == nil || !st.Watermark.After(*before) {
		t.Errorf("status --json: rejected %d, sample %+v, watermark %v (was %v); want 1, %s, advanced", st.Rejected, st.RejectedSample, st.Watermark, before, bad)
	}
	if st.RejectedSample != nil && !strings.Contains(st.RejectedSample.Reason, "firstname "+refuseMe+" is not allowed") {
		t.Errorf("the sample's reason %q does not quote the target's answer", st.RejectedSample.Reason)
	}
	if got := x.hook.kinds(); len(got) != 1 || got[0] != "rejected" {
		t.Errorf("alerts after the refusal: %v, want one rejected alert", got)
	} else {
		a := x.hook.alerts[0]
		sample, _ := a["rejected_sample"].(map[string]any)
		if a["connection"] != "newsletter" || a["rejected"] != 1.0 || sample["member_id"] != bad || !strings.Contains(fmt.Sprint(sample["reason"]), "is not allowed") {
			t.Errorf("rejected alert = %v", a)
		}
	}

	// The next run: the member is still refused, nothing else waits.
	later := x.ids(100, 120)
	x.change(t, "Later", later...)
	code, sum = x.run(t)
	if code != exitRejected || sum.Delivered < 20 || sum.Rejected != 1 {
		t.Errorf("next run: exit %d, %+v; want exit 3, the 20 changes delivered, 1 rejected", code, sum)
	}
	if got := x.wrong(); len(got) != 1 || got[0] != bad {
		t.Errorf("after the next run, members wrong in the target: %v, want only %s", got, bad)
	}
	if log := x.rejected(t); len(log) != 1 || log[0].MemberID != bad || log[0].Attempts != 2 || log[0].Connection != "newsletter" {
		t.Errorf("rejected --json = %+v, want %s tried twice", log, bad)
	}
	table := x.cli(t, "status")
	if !strings.Contains(table.stdout, "  newsletter: 1 record, e.g. member "+bad+": HTTP 422: ") {
		t.Errorf("status table does not name the refused record:\n%s", table.stdout)
	}

	// Fixed in Mailchimp: delivered, the log empties, one recovery notice.
	x.change(t, "Fixed", bad)
	code, sum = x.run(t)
	if code != exitOK || sum.Rejected != 0 {
		t.Errorf("run after the fix: exit %d, %+v; want exit 0, nothing rejected", code, sum)
	}
	if got := x.wrong(); len(got) != 0 {
		t.Errorf("after the fix, members wrong in the target: %v", got)
	}
	if st := x.status(t); st.Rejected != 0 || st.RejectedSample != nil {
		t.Errorf("status after the fix: rejected %d, sample %+v", st.Rejected, st.RejectedSample)
	}
	if r := x.cli(t, "rejected"); !strings.HasPrefix(r.stdout, "No rejected records") {
		t.Errorf("rejected after the fix:\n%s", r.stdout)
	}
	if got := x.hook.kinds(); len(got) != 2 || got[1] != "recovered" || x.hook.alerts[1]["resolves"] != "rejected" {
		t.Errorf("alerts: %v, want rejected then recovered", got)
	}
	x.noSecrets(t)
}

// TestTargetRefusingEverything: a broken mapping is not taken for a few
// bad records. A first sync of 5,000 members to a target that refuses
// every record stops after a few requests, exits 1 with the target's
// answer and leaves no watermark.
func TestTargetRefusingEverything(t *testing.T) {
	x := newRefusals(t, 5000)
	x.target.RefuseAll("unknown field firstname")
	x.clk.Advance(5 * time.Second)
	r := x.cli(t, "run")
	posts := x.target.Stats().Posts
	t.Logf("a target refusing every record: %d target requests for a first sync of 5,000 members", posts)
	if r.code != exitFailed {
		t.Errorf("exit %d, want %d\n%s", r.code, exitFailed, r.stdout)
	}
	if posts > 40 {
		t.Errorf("%d target requests, want at most 40", posts)
	}
	if !strings.Contains(r.stdout, "unknown field firstname") {
		t.Errorf("the output does not quote the target's answer:\n%s", r.stdout)
	}
	st := x.status(t)
	if st.Watermark != nil || st.LastError == "" {
		t.Errorf("status: watermark %v, last error %q; want none and the error", st.Watermark, st.LastError)
	}
	if got := x.hook.kinds(); len(got) == 0 || got[0] != "permanent_error" {
		t.Errorf("alerts: %v, want a permanent error first", got)
	}
	x.noSecrets(t)
}

// hostileRefusal is a target that answers a batch holding refuseMe with
// a body no JSON encoder made: a line break, an escape sequence and a
// bidi override, raw. Other batches reach next.
func hostileRefusal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(refuseMe)) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			io.WriteString(w, "bad\nrecord\x1b[31m red \u202e")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// The target's answer is kept and printed without a byte of what a
// terminal would act on, and the rejected command shows it on one line.
func TestRejectedReasonPrintedSafely(t *testing.T) {
	x := newRefusals(t, 50, hostileRefusal)
	id := x.ids(0, 1)[0]
	x.change(t, refuseMe, id)
	if code, _ := x.run(t); code != exitRejected {
		t.Fatalf("exit %d, want %d", code, exitRejected)
	}
	r := x.cli(t, "rejected")
	var line string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "newsletter") {
			line = l
		}
	}
	if !strings.Contains(line, id) || !strings.Contains(line, `bad\nrecord\x1b[31m red \u202e`) {
		t.Errorf("rejected line %q, want the member and the reason escaped on one line:\n%s", line, r.stdout)
	}
	x.clk.Advance(5 * time.Second)
	again := x.cli(t, "run") // retries it, and prints the table with the record under it
	if again.code != exitRejected || !strings.Contains(again.stdout, `bad\nrecord\x1b[31m red \u202e`) {
		t.Errorf("run: exit %d, want %d, and the record named under the table:\n%s", again.code, exitRejected, again.stdout)
	}
	for _, out := range []string{r.stdout, again.stdout, x.cli(t, "status").stdout} {
		if bytes.ContainsAny([]byte(out), "\x1b\u202e") {
			t.Errorf("output holds a control character:\n%q", out)
		}
	}
}
