package deploy

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
)

// shardRuns builds chimport and returns a function that runs it with args
// (plus --config and --json) and the environment given, on 9 connections
// that share one PostgreSQL schema, and returns the connections it ran.
func shardRuns(t *testing.T) func(args []string, env ...string) []string {
	t.Helper()
	const key = "0123456789abcdef0123456789abcdef-us6"
	sim := mcsim.New(mcsim.Options{APIKey: key, ListID: "l0", Members: 3, Seed: 1})
	mc := httptest.NewServer(sim)
	t.Cleanup(mc.Close)
	target := httptest.NewServer(mcsim.NewTarget(mcsim.TargetOptions{Seed: 1}))
	t.Cleanup(target.Close)
	conns := ""
	for i := range 9 {
		if i > 0 {
			sim.AddList(fmt.Sprintf("l%d", i), 3, int64(i))
		}
		conns += fmt.Sprintf("  - {name: conn%d, mailchimp: {list_id: l%d}}\n", i, i)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chimport")
	build := exec.Command("go", "build", "-o", bin, "../cmd/chimport")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "chimport.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`state: %q
defaults:
  mailchimp: {api_key: %q, base_url: %q, settle: 0s}
  target: {url: %q}
connections:
%s`, pgtest.URL(t), key, mc.URL+"/3.0", target.URL+"/records", conns)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "init", "--config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("chimport init: %v\n%s", err, out)
	}
	return func(args []string, env ...string) []string {
		t.Helper()
		run := exec.Command(bin, append(slices.Clone(args), "--config", cfg, "--json")...)
		run.Env = append(os.Environ(), env...)
		out, err := run.Output()
		if err != nil {
			t.Fatalf("chimport %v with %v: %v\n%s", args, env, err, out)
		}
		var rows []struct {
			Connection string `json:"connection"`
			Completed  bool   `json:"completed"`
		}
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("chimport %v: %v\n%s", args, err, out)
		}
		var names []string
		for _, r := range rows {
			if !r.Completed {
				t.Errorf("%s did not complete", r.Connection)
			}
			names = append(names, r.Connection)
		}
		return names
	}
}

// wantEachOnce fails unless the shards' runs together hold conn0..conn8,
// each exactly once.
func wantEachOnce(t *testing.T, where string, ran [][]string) {
	t.Helper()
	var all, want []string
	for _, r := range ran {
		all = append(all, r...)
	}
	for i := range 9 {
		want = append(want, fmt.Sprintf("conn%d", i))
	}
	slices.Sort(all)
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("%s: the shards together ran (-want +got):\n%s", where, diff)
	}
}

// The sharded CronJob's own command, run as each pod of its Indexed Job
// would run it (JOB_COMPLETION_INDEX 0 to completions-1), runs every
// connection exactly once.
func TestShardedCronJobCommandRunsEachConnectionOnce(t *testing.T) {
	run := shardRuns(t)
	job := obj(dig(cronJobsIn(t, loadKubernetes(t), shardedCronJobFile)["chimport-a"].m, "spec", "jobTemplate", "spec"))
	completions, ok := dig(job, "completions").(int)
	if !ok {
		t.Fatalf("completions = %v", dig(job, "completions"))
	}
	var args []string
	for _, c := range list(dig(job, "template", "spec", "containers")) {
		if obj(c)["name"] == "chimport" {
			for _, a := range list(obj(c)["args"]) {
				args = append(args, fmt.Sprint(a))
			}
		}
	}
	var ran [][]string
	for i := range completions {
		ran = append(ran, run(args, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)))
	}
	wantEachOnce(t, shardedCronJobFile, ran)
}

// With shards = 4, the tasks Terraform schedules, each with its own
// CHIMPORT_SHARD and the task definition's command, run every connection
// exactly once.
func TestTerraformShardTasksRunEachConnectionOnce(t *testing.T) {
	run := shardRuns(t)
	m := loadTerraform(t)
	s := m.resource(t, "aws_scheduler_schedule.chimport")
	input := one(t, s, "target").Body.Attributes["input"]
	over := map[string]cty.Value{"shards": cty.NumberIntVal(4)}
	container := containerName(t, m)
	var ran [][]string
	for i := range 4 {
		shard := shardOverride(t, m.tfEval(t, input.Expr, over, i).AsString(), container)
		ran = append(ran, run([]string{"run"}, "CHIMPORT_SHARD="+shard))
	}
	wantEachOnce(t, "terraform, shards = 4", ran)
}
