package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
)

// The end-to-end tests of issue 14: OAuth access tokens, list_id "*" and
// lists of ids, shards, and directories of config fragments, through
// `chimport run`, `status` and `check` in process against the simulators.

// acmeToken is the access token of the test account. Every output is
// scanned for it.
const acmeToken = "acme-oauth-access-token-0123456789"

// accounts is a simulator with OAuth accounts, a target keyed on id and
// list_id, and an alert webhook. The simulator and the commands share a
// stepClock, which every command moves on a few seconds first, so the
// changes a test makes fall into the next run's window.
type accounts struct {
	clk       *stepClock
	sim       *mcsim.Mailchimp
	target    *mcsim.Target
	hook      *webhookRecorder
	simURL    string
	targetURL string
	hookURL   string
	state     string
	outputs   []string
}

func newAccounts(t *testing.T) *accounts {
	t.Helper()
	clk := &stepClock{now: time.Date(2026, 5, 6, 7, 0, 0, 0, time.UTC)}
	x := &accounts{
		clk:    clk,
		sim:    mcsim.New(mcsim.Options{Members: 1, Seed: 3, Clock: clk}),
		target: mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth, Key: []string{"id", "list_id"}}),
		hook:   &webhookRecorder{},
		state:  "sqlite://" + filepath.Join(t.TempDir(), "state.db"),
	}
	simSrv, targetSrv, hookSrv := httptest.NewServer(x.sim), httptest.NewServer(x.target), httptest.NewServer(x.hook)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	t.Cleanup(hookSrv.Close)
	x.simURL, x.targetURL, x.hookURL = simSrv.URL, targetSrv.URL+"/records", hookSrv.URL+"/hook"
	x.sim.AddAccessToken(acmeToken)
	return x
}

// config is a config whose connections are the YAML list items given,
// with the account's metadata URL, the target and the alert hook as
// defaults.
func (x *accounts) config(t *testing.T, connections string) string {
	t.Helper()
	return writeFile(t, "chimport.yaml", fmt.Sprintf(`state: %s
alerts:
  webhook_url: %s
defaults:
  mailchimp: {metadata_url: %q, settle: 0s}
  target:
    url: %q
    headers: {Authorization: "${TARGET_API_KEY}"}
connections:
%s`, x.state, x.hookURL, x.simURL+mcsim.MetadataPath, x.targetURL, connections))
}

func (x *accounts) cli(t *testing.T, cfg string, args ...string) result {
	t.Helper()
	vars := map[string]string{"ACME_TOKEN": acmeToken, "TARGET_API_KEY": targetAuth}
	x.clk.Advance(5 * time.Second)
	r := runCLIAt(t, context.Background(), x.clk, vars, append(args, "--config", cfg, "--log-format", "json")...)
	x.outputs = append(x.outputs, r.stdout, r.stderr)
	return r
}

// runJSON is `run --json` with its rows by connection name.
func (x *accounts) runJSON(t *testing.T, cfg string, args ...string) (int, map[string]runJSON) {
	t.Helper()
	r := x.cli(t, cfg, append([]string{"run", "--json"}, args...)...)
	var rows []runJSON
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("run --json (exit %d): %v\nstdout: %s\nstderr: %s", r.code, err, r.stdout, r.stderr)
	}
	out := make(map[string]runJSON, len(rows))
	for _, row := range rows {
		if _, dup := out[row.Connection]; dup {
			t.Fatalf("%s ran twice in one run", row.Connection)
		}
		out[row.Connection] = row
	}
	return r.code, out
}

func (x *accounts) status(t *testing.T, cfg string) []connectionStatus {
	t.Helper()
	r := x.cli(t, cfg, "status", "--json")
	var rows []connectionStatus
	if r.code != exitOK {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// noSecrets fails if the token or the target's credential is in any output
// or alert so far.
func (x *accounts) noSecrets(t *testing.T) {
	t.Helper()
	x.hook.mu.Lock()
	alerts, _ := json.Marshal(x.hook.alerts)
	x.hook.mu.Unlock()
	for _, out := range append(x.outputs, string(alerts)) {
		for _, secret := range []string{acmeToken, targetAuth} {
			if strings.Contains(out, secret) {
				t.Fatalf("a secret leaked into the output:\n%s", out)
			}
		}
	}
}

// records are the target keys of the members of lists, id|list_id.
func (x *accounts) records(lists ...string) map[string]bool {
	out := map[string]bool{}
	for _, l := range lists {
		for _, m := range x.sim.Members(l) {
			out[m.ID+"|"+l] = true
		}
	}
	return out
}

// wantMirror fails unless the target holds exactly the members of lists,
// each record with its audience's list_id.
func (x *accounts) wantMirror(t *testing.T, lists ...string) {
	t.Helper()
	x.wantRecords(t, x.records(lists...))
}

// wantRecords fails unless the target holds exactly the records want.
func (x *accounts) wantRecords(t *testing.T, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for key, rec := range x.target.Records() {
		if rec["status"] == "deleted" {
			continue
		}
		if !strings.HasSuffix(key, fmt.Sprint("|", rec["list_id"])) {
			t.Errorf("record %s carries list_id %v", key, rec["list_id"])
		}
		got[key] = true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("target records (-want +got):\n%s", diff)
	}
}

func TestStarSyncsEveryAudienceOfAnOAuthAccount(t *testing.T) {
	x := newAccounts(t)
	lists := []string{"a1", "a2", "a3", "a4", "a5"}
	for i, l := range lists {
		x.sim.AddAccountList(acmeToken, l, 20+i, int64(i))
	}
	x.sim.AddAccountList("another-account-token", "zz", 5, 9) // not acme's
	cfg := x.config(t, "  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")

	// Before any run, status knows no audience: the connection is one row.
	if st := x.status(t, cfg); len(st) != 1 || st[0].Name != "acme" || st[0].Watermark != nil {
		t.Fatalf("status before the first run: %+v", st)
	}
	r := x.cli(t, cfg, "check")
	if r.code != exitOK || !strings.Contains(r.stdout, "5 audiences") || !strings.Contains(r.stdout, "acme.a1") {
		t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	lookups := x.sim.Stats().MetadataRequests
	code, rows := x.runJSON(t, cfg)
	if code != exitOK || len(rows) != 5 {
		t.Fatalf("run: exit %d, %d rows, want 0 and 5: %v", code, len(rows), rows)
	}
	for _, l := range lists {
		row, ok := rows["acme."+l]
		if !ok || !row.Completed || row.Delivered == 0 {
			t.Errorf("acme.%s: %+v", l, row)
		}
	}
	x.wantMirror(t, lists...)
	if got := x.sim.Stats().MetadataRequests - lookups; got != 1 {
		t.Errorf("the run looked the token's data center up %d times, want once", got)
	}
	st := x.status(t, cfg)
	if len(st) != 5 {
		t.Fatalf("status shows %d connections, want 5: %+v", len(st), st)
	}
	for _, s := range st {
		if s.Parent != "acme" || s.Watermark == nil || s.Members == nil {
			t.Errorf("status row %+v", s)
		}
	}

	// An audience appears and another leaves the account.
	x.sim.AddAccountList(acmeToken, "a6", 7, 6)
	want := x.records("a1", "a2", "a3", "a4", "a5", "a6")
	x.sim.RemoveList("a2")
	r = x.cli(t, cfg, "run")
	if r.code != exitOK || !strings.Contains(r.stdout, "acme.a6") || !strings.Contains(r.stdout, "No longer in their Mailchimp accounts") {
		t.Fatalf("run after the change: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	x.wantRecords(t, want) // a2's records stay: its state is kept, and nothing deletes them
	st = x.status(t, cfg)
	if len(st) != 6 {
		t.Fatalf("status shows %d connections, want 6 (a2 kept): %+v", len(st), st)
	}
	for _, s := range st {
		gone := strings.Contains(s.LastError, "no longer in the Mailchimp account")
		if (s.Name == "acme.a2") != gone || s.Watermark == nil {
			t.Errorf("status row %s: last error %q, watermark %v", s.Name, s.LastError, s.Watermark)
		}
	}
	if !strings.Contains(r.stderr, `"connection":"acme.a2"`) {
		t.Errorf("the log does not report acme.a2 as gone:\n%s", r.stderr)
	}
	x.noSecrets(t)
}

func TestListOfIDsAndCheckWarning(t *testing.T) {
	x := newAccounts(t)
	for i, l := range []string{"b1", "b2"} {
		x.sim.AddAccountList(acmeToken, l, 10, int64(i))
	}
	cfg := x.config(t, `  - {name: both, mailchimp: {access_token: "${ACME_TOKEN}", list_id: [b1, b2]}}
  - name: plain
    mailchimp: {access_token: "${ACME_TOKEN}", list_id: b1}
    mapping: {id: id, email: email_address}
`)
	code, rows := x.runJSON(t, cfg, "--connection", "both")
	if code != exitOK || len(rows) != 2 || !rows["both.b1"].Completed || !rows["both.b2"].Completed {
		t.Fatalf("run: exit %d, rows %v", code, rows)
	}
	x.wantMirror(t, "b1", "b2")

	r := x.cli(t, cfg, "check")
	if r.code != exitOK {
		t.Fatalf("check: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// plain's records are keyed on id alone, in the target that both's
	// audiences share.
	if !strings.Contains(r.stdout, "WARN") || !strings.Contains(r.stdout, "plain") || !strings.Contains(r.stdout, "list_id") {
		t.Errorf("check does not warn about the shared target:\n%s", r.stdout)
	}
	x.noSecrets(t)
}

func TestRevokedTokenAlertsOnceAndLeaksNothing(t *testing.T) {
	for _, tt := range []struct{ name, listID string }{
		{"star", `"*"`},
		{"list of ids", "[r1, r2, r3]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newAccounts(t)
			for i, l := range []string{"r1", "r2", "r3"} {
				x.sim.AddAccountList(acmeToken, l, 5, int64(i))
			}
			// dc given: the revoked token fails at the API itself, not at
			// the metadata lookup; the base URL is the simulator's.
			cfg := x.config(t, fmt.Sprintf("  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", dc: us1, base_url: %q, list_id: %s}}\n",
				x.simURL+"/3.0", tt.listID))
			x.sim.RevokeAccessToken(acmeToken)
			r := x.cli(t, cfg, "run")
			if r.code != exitFailed {
				t.Fatalf("run: exit %d, want %d\n%s\n%s", r.code, exitFailed, r.stdout, r.stderr)
			}
			if !strings.Contains(strings.ToLower(r.stdout), "access token") {
				t.Errorf("the error does not say the access token was refused:\n%s", r.stdout)
			}
			x.hook.mu.Lock()
			alerts := slices.Clone(x.hook.alerts)
			x.hook.mu.Unlock()
			if len(alerts) != 1 {
				t.Fatalf("%d alerts, want 1: %v", len(alerts), alerts)
			}
			if c := fmt.Sprint(alerts[0]["connection"]); !strings.HasPrefix(c, "acme") {
				t.Errorf("the alert names %q, want the acme connection", c)
			}
			x.noSecrets(t)
		})
	}
}

func TestShardsRunEachConnectionOnce(t *testing.T) {
	f := newFixture(t, 3)
	ids := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	for i, id := range ids {
		f.sim.AddList(id, 3, int64(i))
	}
	cfg := f.config(t, ids...)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	ran := func(extra map[string]string, args ...string) []string {
		t.Helper()
		v := maps.Clone(vars)
		maps.Copy(v, extra)
		r := runCLI(t, context.Background(), v, append([]string{"run", "--json", "--config", cfg}, args...)...)
		var rows []runJSON
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rows) != nil {
			t.Fatalf("run %v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
		var names []string
		for _, row := range rows {
			names = append(names, row.Connection)
		}
		return names
	}
	var all []string
	byShard := map[int][]string{}
	for i := 1; i <= 3; i++ {
		byShard[i] = ran(nil, "--shard", fmt.Sprintf("%d/3", i))
		all = append(all, byShard[i]...)
	}
	slices.Sort(all)
	want := []string{"conn0", "conn1", "conn2", "conn3", "conn4", "conn5", "conn6"}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Fatalf("the shards together ran (-want +got):\n%s", diff)
	}
	// The same split from the environment: CHIMPORT_SHARD, an Indexed
	// Job's index, an array job's index.
	for i := 1; i <= 3; i++ {
		for _, got := range [][]string{
			ran(map[string]string{"CHIMPORT_SHARD": fmt.Sprintf("%d/3", i)}),
			ran(map[string]string{"JOB_COMPLETION_INDEX": fmt.Sprint(i - 1)}, "--shards", "3"),
			ran(map[string]string{"AWS_BATCH_JOB_ARRAY_INDEX": fmt.Sprint(i - 1)}, "--shards", "3"),
		} {
			if diff := cmp.Diff(byShard[i], got); diff != "" {
				t.Errorf("shard %d/3 from the environment ran (-flag +env):\n%s", i, diff)
			}
		}
	}

	r := runCLI(t, context.Background(), vars, "run", "--config", cfg, "--shards", "3")
	if r.code != exitUsage || !strings.Contains(r.stderr, "JOB_COMPLETION_INDEX") {
		t.Errorf("--shards without an index: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, context.Background(), vars, "run", "--config", cfg, "--shard", "4/3")
	if r.code != exitUsage || !strings.Contains(r.stderr, "--shard") {
		t.Errorf("--shard 4/3: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestEmptyShardHasNothingToDo(t *testing.T) {
	f := newFixture(t, 3)
	cfg := f.config(t, "a1b2c3d4e5")
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	empty := 0
	for i := 1; i <= 4; i++ {
		r := runCLI(t, context.Background(), vars, "run", "--config", cfg, "--shard", fmt.Sprintf("%d/4", i))
		if r.code != exitOK {
			t.Fatalf("shard %d/4: exit %d\n%s\n%s", i, r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout, "nothing to do") {
			empty++
		}
	}
	if empty != 3 {
		t.Errorf("%d of 4 shards had nothing to do, want 3", empty)
	}
}

func TestDirectoryConfig(t *testing.T) {
	f := newFixture(t, 4)
	f.sim.AddList("d2", 4, 2)
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	write("00-base.yaml", fmt.Sprintf(`state: sqlite://%s
defaults:
  mailchimp: {api_key: "${MAILCHIMP_API_KEY}", base_url: %q, settle: 0s}
  target: {url: %q, headers: {Authorization: "${TARGET_API_KEY}"}}
`, filepath.Join(t.TempDir(), "state.db"), f.baseURL, f.targetURL))
	write("10-first.yaml", "connections:\n  - {name: first, mailchimp: {list_id: a1b2c3d4e5}}\n")
	write("20-second.yaml", "connections:\n  - {name: second, mailchimp: {list_id: d2}}\n")
	write("README.md", "not a fragment")
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}

	r := runCLI(t, context.Background(), vars, "run", "--json", "--config", dir)
	var rows []runJSON
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &rows) != nil || len(rows) != 2 {
		t.Fatalf("run on a directory: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	write("30-broken.yaml", "connections:\n  - name: third\n    mailchimp: {list_id: a1b2c3d4e5}\n    target: {batch_size: lots}\n")
	r = runCLI(t, context.Background(), vars, "run", "--config", dir)
	if r.code != exitUsage || !strings.Contains(r.stderr, "30-broken.yaml") || !strings.Contains(r.stderr, "batch_size") {
		t.Errorf("a broken fragment: exit %d, stderr %q; want 2 naming the file and the field", r.code, r.stderr)
	}
	must(t, os.Remove(filepath.Join(dir, "30-broken.yaml")))
	write("40-state-again.yaml", "state: sqlite://elsewhere.db\n")
	r = runCLI(t, context.Background(), vars, "check", "--config", dir)
	if r.code != exitUsage || !strings.Contains(r.stderr, "00-base.yaml") || !strings.Contains(r.stderr, "40-state-again.yaml") {
		t.Errorf("state in two fragments: exit %d, stderr %q; want 2 naming both files", r.code, r.stderr)
	}
}

// One person in two audiences that share a target is two records; when
// they leave one audience, only that audience's record leaves the target,
// by a tombstone that carries list_id or by a DELETE whose URL names the
// audience.
func TestDeletesReachTheRightAudience(t *testing.T) {
	for _, tt := range []struct{ name, target string }{
		{"tombstone", ""},
		{"request", "deletes: request, delete_url: \"%s/{id}?list_id={list_id}\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newAccounts(t)
			x.sim.AddAccountList(acmeToken, "p1", 3, 1)
			x.sim.AddAccountList(acmeToken, "p2", 3, 2)
			shared := mcsim.Member{EmailAddress: "both@example.com", Status: mcsim.StatusSubscribed}
			id, err := x.sim.Add("p1", shared)
			must(t, err)
			_, err = x.sim.Add("p2", shared)
			must(t, err)
			target := ""
			if tt.target != "" {
				target = ", target: {" + fmt.Sprintf(tt.target, x.targetURL) + "}"
			}
			cfg := x.config(t, fmt.Sprintf("  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}%s}\n", target))
			if code, rows := x.runJSON(t, cfg); code != exitOK || len(rows) != 2 {
				t.Fatalf("first run: exit %d, %v", code, rows)
			}
			if recs := x.target.Records(); recs[id+"|p1"] == nil || recs[id+"|p2"] == nil {
				t.Fatalf("the person is not in the target once per audience: %v", recs)
			}

			must(t, x.sim.Delete("p1", id))
			if code, rows := x.runJSON(t, cfg, "--reconcile"); code != exitOK || rows["acme.p1"].Tombstoned != 1 {
				t.Fatalf("second run: exit %d, %+v", code, rows)
			}
			recs := x.target.Records()
			if rec := recs[id+"|p1"]; rec != nil && rec["status"] != "deleted" {
				t.Errorf("the p1 record is still live: %v", rec)
			}
			if rec := recs[id+"|p2"]; rec == nil || rec["status"] == "deleted" {
				t.Errorf("the p2 record went too: %v", rec)
			}
			x.noSecrets(t)
		})
	}
}

// Of the shards, only the one that holds the "*" connection's own name
// reports, and alerts on, an account whose audiences cannot be listed.
func TestListingFailureAlertsInOneShard(t *testing.T) {
	x := newAccounts(t)
	x.sim.AddAccountList(acmeToken, "q1", 3, 1)
	x.sim.RevokeAccessToken(acmeToken)
	cfg := x.config(t, "  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")
	failed := 0
	for i := 1; i <= 3; i++ {
		r := x.cli(t, cfg, "run", "--shard", fmt.Sprintf("%d/3", i))
		switch r.code {
		case exitFailed:
			failed++
			if !strings.Contains(r.stdout, "acme") || !strings.Contains(strings.ToLower(r.stdout), "access token") {
				t.Errorf("shard %d/3 does not say what failed:\n%s", i, r.stdout)
			}
		case exitOK:
			if !strings.Contains(r.stdout, "nothing to do") {
				t.Errorf("shard %d/3:\n%s", i, r.stdout)
			}
		default:
			t.Errorf("shard %d/3: exit %d\n%s", i, r.code, r.stderr)
		}
	}
	if failed != 1 || len(x.hook.kinds()) != 1 {
		t.Errorf("%d shards failed and %d alerts came, want 1 and 1", failed, len(x.hook.kinds()))
	}
	x.noSecrets(t)
}

// Shards run side by side know nothing of each other, yet together they
// never have more than a key's 10 requests in flight: each takes its share.
func TestShardsSideBySideShareAKeysSlots(t *testing.T) {
	sim := mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: "m00", Members: 2, Seed: 5, Latency: 20 * time.Millisecond})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth})
	simSrv, targetSrv := httptest.NewServer(sim), httptest.NewServer(target)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	f := &fixture{sim: sim, target: target, baseURL: simSrv.URL + "/3.0", targetURL: targetSrv.URL + "/records"}
	ids := []string{"m00"}
	for i := 1; i < 40; i++ {
		id := fmt.Sprintf("m%02d", i)
		sim.AddList(id, 2, int64(i))
		ids = append(ids, id)
	}
	cfg := f.config(t, ids...)
	vars := map[string]string{"MAILCHIMP_API_KEY": sim.APIKey(), "TARGET_API_KEY": targetAuth}
	results := make([]result, 4)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() {
			results[i] = runCLI(t, context.Background(), vars, "run", "--config", cfg, "--shard", fmt.Sprintf("%d/4", i+1))
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != exitOK {
			t.Fatalf("shard %d/4: exit %d\n%s\n%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	if st := sim.Stats(); st.MaxInFlight > mailchimp.DefaultPerKey || st.LimitRejected > 0 {
		t.Errorf("the key had %d requests in flight at most and %d refused for the limit; want at most %d and none",
			st.MaxInFlight, st.LimitRejected, mailchimp.DefaultPerKey)
	}
}

// serve lists a "*" connection's audiences when it starts and runs each
// as a connection of its own: synced, in the metrics and on the status
// page under its sub-connection name. (A real process: it waits on the
// wall clock for the runs, with a deadline.)
func TestServeSyncsEveryAudience(t *testing.T) {
	x := newAccounts(t)
	lists := []string{"v1", "v2", "v3"}
	for i, l := range lists {
		x.sim.AddAccountList(acmeToken, l, 4, int64(i))
	}
	cfg := x.config(t, "  - {name: acme, every: 2s, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")
	w := startWorker(t, cfg, []string{"ACME_TOKEN=" + acmeToken, "TARGET_API_KEY=" + targetAuth})
	want := x.records(lists...)
	deadline := time.Now().Add(30 * time.Second)
	for len(x.target.Records()) != len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the target holds %d records, want %d; serve said:\n%.4000s", len(x.target.Records()), len(want), w.out.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	x.wantRecords(t, want)
	_, metrics := w.get(t, "/metrics")
	_, page := w.get(t, "/")
	for _, l := range lists {
		if !strings.Contains(metrics, `connection="acme.`+l+`"`) || !strings.Contains(page, "acme."+l) {
			t.Errorf("acme.%s is missing from /metrics or the status page", l)
		}
	}
	w.terminate(t)
	x.outputs = append(x.outputs, w.out.String(), metrics, page)
	x.noSecrets(t)
}

// serve, too, tells a person once when a token stops working for every
// audience of a connection: the first audience's alert goes out, the
// others' wait in the log. (A real process: it waits on the wall clock for
// the runs, with a deadline.)
func TestServeAlertsOnceForARevokedToken(t *testing.T) {
	x := newAccounts(t)
	lists := []string{"u1", "u2", "u3"}
	for i, l := range lists {
		x.sim.AddAccountList(acmeToken, l, 2, int64(i))
	}
	cfg := x.config(t, fmt.Sprintf("  - {name: acme, every: 1s, mailchimp: {access_token: \"${ACME_TOKEN}\", dc: us1, base_url: %q, list_id: [u1, u2, u3]}}\n",
		x.simURL+"/3.0"))
	x.sim.RevokeAccessToken(acmeToken)
	w := startWorker(t, cfg, []string{"ACME_TOKEN=" + acmeToken, "TARGET_API_KEY=" + targetAuth})
	failedRuns := regexp.MustCompile(`(?m)^chimport_runs_total\{connection="acme\.u\d",result="failed"\} [1-9]`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, metrics := w.get(t, "/metrics")
		if len(failedRuns.FindAllString(metrics, -1)) == len(lists) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s not every audience has failed a run:\n%s", metrics)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
	w.terminate(t)
	if kinds := x.hook.kinds(); len(kinds) != 1 || kinds[0] != "permanent_error" {
		t.Errorf("alerts %v, want one permanent_error", kinds)
	}
	x.outputs = append(x.outputs, w.out.String())
	x.noSecrets(t)
}

// chimport rejected lists the rejected logs of a "*" connection's
// audiences, all of them or one by name.
func TestRejectedListsTheAudiencesOfAStarConnection(t *testing.T) {
	x := newAccounts(t)
	x.sim.AddAccountList(acmeToken, "j1", 4, 1)
	x.sim.AddAccountList(acmeToken, "j2", 4, 2)
	refused := x.sim.Members("j2")[0].EmailAddress
	x.target.SetRefuseRule(func(rec map[string]any) string {
		if rec["email"] == refused {
			return "email not allowed"
		}
		return ""
	})
	cfg := x.config(t, "  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")
	if code, rows := x.runJSON(t, cfg); code != exitRejected || rows["acme.j2"].Rejected != 1 {
		t.Fatalf("run: exit %d, %+v", code, rows)
	}
	for _, args := range [][]string{nil, {"--connection", "acme"}, {"--connection", "acme.j2"}} {
		r := x.cli(t, cfg, append([]string{"rejected", "--json"}, args...)...)
		var entries []struct {
			Connection string `json:"connection"`
		}
		if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &entries) != nil || len(entries) != 1 || entries[0].Connection != "acme.j2" {
			t.Errorf("rejected %v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
	x.noSecrets(t)
}

// An account whose audiences cannot be listed (Mailchimp down) still falls
// behind where a person can see it: its known audiences record the error
// and lag, and alert once through lag; one that was never listed does so
// under its own name. Both recover once the listing works again.
func TestListingOutageLagsAndRecovers(t *testing.T) {
	for _, tt := range []struct {
		name       string
		firstRunOK bool
		rows       []string // what status shows during the outage
	}{
		{"known audiences", true, []string{"acme.o1", "acme.o2"}},
		{"never listed", false, []string{"acme"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := newAccounts(t)
			x.sim.AddAccountList(acmeToken, "o1", 3, 1)
			x.sim.AddAccountList(acmeToken, "o2", 3, 2)
			cfg := writeFile(t, "lag.yaml", strings.Replace(
				readFile(t, x.config(t, "  - {name: acme, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")),
				"alerts:\n", "alerts:\n  lag_threshold: 1h\n", 1))
			if tt.firstRunOK {
				if r := x.cli(t, cfg, "run"); r.code != exitOK {
					t.Fatalf("first run: exit %d\n%s", r.code, r.stdout)
				}
			}
			x.sim.SetFaultRate(1, mcsim.FaultServerHTML)
			for range 3 {
				x.clk.Advance(40 * time.Minute)
				if r := x.cli(t, cfg, "run"); r.code != exitFailed {
					t.Fatalf("run in the outage: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
				}
			}
			var names []string
			for _, s := range x.status(t, cfg) {
				names = append(names, s.Name)
				// A connection that never completed shows no lag; its
				// alert counts from its first attempt.
				if !strings.Contains(s.LastError, "listing the audiences") || (tt.firstRunOK && (s.LagSeconds == nil || *s.LagSeconds < 3600)) {
					t.Errorf("status row %s: last error %q, lag %v", s.Name, s.LastError, s.LagSeconds)
				}
			}
			if diff := cmp.Diff(tt.rows, names); diff != "" {
				t.Errorf("status rows in the outage (-want +got):\n%s", diff)
			}
			if kinds := x.hook.kinds(); len(kinds) != 1 || kinds[0] != "lag" {
				t.Fatalf("alerts in the outage %v, want one lag alert", kinds)
			}

			x.sim.SetFaultRate(0)
			if r := x.cli(t, cfg, "run"); r.code != exitOK {
				t.Fatalf("run after the outage: exit %d\n%s", r.code, r.stdout)
			}
			if kinds := x.hook.kinds(); len(kinds) != 2 || kinds[1] != "recovered" {
				t.Errorf("alerts %v, want the lag alert and one recovery", kinds)
			}
			x.wantMirror(t, "o1", "o2")
			x.noSecrets(t)
		})
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return string(b)
}

// serve starting while Mailchimp fails still serves the audiences the
// store knows of a "*" account, so they stay visible and their lag counts.
// (A real process: it waits on the wall clock for the listing's few
// retries, with a deadline.)
func TestServeStartsWithKnownAudiencesWhenListingFails(t *testing.T) {
	x := newAccounts(t)
	x.sim.AddAccountList(acmeToken, "k1", 3, 1)
	x.sim.AddAccountList(acmeToken, "k2", 3, 2)
	cfg := x.config(t, "  - {name: acme, every: 1h, mailchimp: {access_token: \"${ACME_TOKEN}\", list_id: \"*\"}}\n")
	if r := x.cli(t, cfg, "run"); r.code != exitOK {
		t.Fatalf("run: exit %d\n%s", r.code, r.stdout)
	}
	x.sim.SetFaultRate(1, mcsim.FaultServerHTML)
	w := startWorker(t, cfg, []string{"ACME_TOKEN=" + acmeToken, "TARGET_API_KEY=" + targetAuth})
	_, page := w.get(t, "/")
	for _, name := range []string{"acme.k1", "acme.k2"} {
		if !strings.Contains(page, name) {
			t.Errorf("the status page does not show %s:\n%.2000s", name, page)
		}
	}
	w.terminate(t)
	if out := w.out.String(); !strings.Contains(out, "listing the audiences failed") {
		t.Errorf("serve did not log the failed listing:\n%.3000s", out)
	}
	x.outputs = append(x.outputs, w.out.String(), page)
	x.noSecrets(t)
}

// Runs start one connection of each key in turn, so that --parallel runs
// spread over every key's slots.
func TestRunsStartAcrossKeys(t *testing.T) {
	c := func(key, token string) config.Connection {
		var conn config.Connection
		conn.Mailchimp.APIKey, conn.Mailchimp.AccessToken = config.Secret(key), config.Secret(token)
		return conn
	}
	conns := []config.Connection{c("k1", ""), c("k1", ""), c("k1", ""), c("k2", ""), c("", "t1"), c("", "t1"), c("k2", "")}
	if diff := cmp.Diff([]int{0, 3, 4, 1, 6, 5, 2}, acrossKeys(conns)); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
