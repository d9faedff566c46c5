package deploy

// Shards (issue 14): the Indexed Job CronJobs of
// kubernetes/cronjob-sharded.yaml, and the Terraform's shards variable, one
// schedule per shard.

import (
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

const shardedCronJobFile = "cronjob-sharded.yaml"

// cronJobsIn returns the CronJobs of kubernetes/file by name.
func cronJobsIn(t *testing.T, objs []k8sObject, file string) map[string]k8sObject {
	t.Helper()
	out := map[string]k8sObject{}
	for _, o := range byKind(objs, "CronJob") {
		if o.file == filepath.Join("kubernetes", file) {
			out[o.name()] = o
		}
	}
	if len(out) == 0 {
		t.Fatalf("kubernetes/%s: no CronJob", file)
	}
	return out
}

// shardsArg is N in a container's args [run --shards N] (or --shards=N),
// or 0 when there is none.
func shardsArg(args []any) int {
	for i, a := range args {
		s := fmt.Sprint(a)
		if v, ok := strings.CutPrefix(s, "--shards="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
		if s == "--shards" && i+1 < len(args) {
			n, _ := strconv.Atoi(fmt.Sprint(args[i+1]))
			return n
		}
	}
	return 0
}

// podFailureAction is what a Job's podFailurePolicy does with a pod whose
// container exited with code, as the Job controller decides it: the first
// rule whose onExitCodes match wins; "" means no rule matched (the failure
// counts against the backoff limit).
func podFailureAction(policy map[string]any, code int) string {
	for _, r := range list(policy["rules"]) {
		on := obj(dig(r, "onExitCodes"))
		if on == nil {
			continue // onPodConditions: not about exit codes
		}
		in := slices.ContainsFunc(list(on["values"]), func(v any) bool { return v == code })
		if (on["operator"] == "In") == in {
			action, _ := dig(r, "action").(string)
			return action
		}
	}
	return ""
}

func TestPodFailureAction(t *testing.T) {
	policy := map[string]any{"rules": []any{
		map[string]any{"action": "Ignore", "onPodConditions": []any{map[string]any{"type": "DisruptionTarget"}}},
		map[string]any{"action": "FailJob", "onExitCodes": map[string]any{"operator": "In", "values": []any{2}}},
		map[string]any{"action": "Count", "onExitCodes": map[string]any{"operator": "NotIn", "values": []any{0, 1, 2, 3}}},
		map[string]any{"action": "FailIndex", "onExitCodes": map[string]any{"operator": "In", "values": []any{3}}},
	}}
	for code, want := range map[int]string{1: "", 2: "FailJob", 3: "FailIndex", 137: "Count"} {
		if got := podFailureAction(policy, code); got != want {
			t.Errorf("exit %d: action %q, want %q", code, got, want)
		}
	}
}

// TestKubernetesShardedCronJob checks cronjob-sharded.yaml against
// cronjob.yaml, which it shards: Indexed Jobs of N pods running
// `run --shards N`, the same names, identity, hardening and resources, the
// shared PostgreSQL config, and a failure policy that fails one shard, not
// the Job, and never retries exit 3. (TestKubernetesManifests checks the
// cadence and references of every CronJob.)
func TestKubernetesShardedCronJob(t *testing.T) {
	objs := loadKubernetes(t)
	plain := cronJobsIn(t, objs, "cronjob.yaml")
	sharded := cronJobsIn(t, objs, shardedCronJobFile)
	if !reflect.DeepEqual(slices.Sorted(maps.Keys(plain)), slices.Sorted(maps.Keys(sharded))) {
		t.Errorf("%s: CronJobs %v, want the names of cronjob.yaml's %v (prometheusrule.yaml and the README's commands name them)",
			shardedCronJobFile, slices.Sorted(maps.Keys(sharded)), slices.Sorted(maps.Keys(plain)))
	}
	pg := loadPostgresVariant(t)

	var jobs []map[string]any
	for name, cj := range sharded {
		where := cj.file + ": CronJob " + name
		twin, ok := plain[name]
		if !ok {
			continue
		}
		spec, twinSpec := obj(dig(cj.m, "spec")), obj(dig(twin.m, "spec"))
		for _, k := range []string{"schedule", "timeZone", "concurrencyPolicy", "startingDeadlineSeconds"} {
			if !reflect.DeepEqual(spec[k], twinSpec[k]) {
				t.Errorf("%s: %s = %v, want cronjob.yaml's %v", where, k, spec[k], twinSpec[k])
			}
		}
		job := obj(dig(spec, "jobTemplate", "spec"))
		jobs = append(jobs, job)
		checkShardedJob(t, where, job, obj(dig(twinSpec, "jobTemplate", "spec")), pg)
	}
	// One CronJob in two documents, as in cronjob.yaml.
	for i := 1; i < len(jobs); i++ {
		if diff := cmp.Diff(jobs[0], jobs[i]); diff != "" {
			t.Errorf("%s: the CronJobs' jobTemplates differ (-first +other):\n%s", shardedCronJobFile, diff)
		}
	}
}

func checkShardedJob(t *testing.T, where string, job, twinJob map[string]any, pg postgresVariant) {
	t.Helper()
	if job["completionMode"] != "Indexed" {
		t.Errorf("%s: completionMode = %v, want Indexed (JOB_COMPLETION_INDEX tells each pod its shard)", where, job["completionMode"])
	}
	pod := obj(dig(job, "template", "spec"))
	twinPod := obj(dig(twinJob, "template", "spec"))
	cs := list(pod["containers"])
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, have %d", where, len(cs))
	}
	c := obj(cs[0])
	n := shardsArg(list(c["args"]))
	if n < 2 {
		t.Errorf("%s: args = %v, want [run --shards N] with N >= 2", where, c["args"])
	}
	if job["completions"] != n || job["parallelism"] != n {
		t.Errorf("%s: completions = %v, parallelism = %v, want both = --shards %d (one pod per shard, all at once)",
			where, job["completions"], job["parallelism"], n)
	}
	if fmt.Sprint(c["args"]) != fmt.Sprintf("[run --shards %d]", n) {
		t.Errorf("%s: args = %v, want [run --shards %d]", where, c["args"], n)
	}
	if job["activeDeadlineSeconds"] != twinJob["activeDeadlineSeconds"] {
		t.Errorf("%s: activeDeadlineSeconds = %v, want cronjob.yaml's %v", where, job["activeDeadlineSeconds"], twinJob["activeDeadlineSeconds"])
	}
	checkShardFailurePolicy(t, where, job, pod)

	// The same identity, pod security and container hardening and
	// resources as cronjob.yaml.
	twinC := obj(list(twinPod["containers"])[0])
	for _, k := range []string{"serviceAccountName", "automountServiceAccountToken", "securityContext", "terminationGracePeriodSeconds"} {
		if !reflect.DeepEqual(pod[k], twinPod[k]) {
			t.Errorf("%s: pod %s = %v, want cronjob.yaml's %v", where, k, pod[k], twinPod[k])
		}
	}
	for _, k := range []string{"image", "securityContext", "resources", "envFrom"} {
		if !reflect.DeepEqual(c[k], twinC[k]) {
			t.Errorf("%s: container %s = %v, want cronjob.yaml's %v", where, k, c[k], twinC[k])
		}
	}

	// Shared state: the PostgreSQL config and its state URL from the
	// Secret, no SQLite volume.
	for _, v := range list(pod["volumes"]) {
		if dig(v, "persistentVolumeClaim") != nil {
			t.Errorf("%s: volume %v: the shards run on several nodes at once; a ReadWriteOnce volume attaches to one", where, dig(v, "name"))
		}
		if cm, ok := dig(v, "configMap", "name").(string); ok && cm != pg.configMap.name() {
			t.Errorf("%s: config from ConfigMap %q, want %q (PostgreSQL state, shared by the shards)", where, cm, pg.configMap.name())
		}
	}
	checkStateURLFromSecret(t, where, c, pg)
	inits := list(pod["initContainers"])
	if len(inits) != 1 {
		t.Fatalf("%s: want one init container running chimport init, have %d", where, len(inits))
	}
	init := obj(inits[0])
	if len(pg.inits) != 1 {
		t.Fatalf("%s: want one init container, have %d", postgresDeploymentFile, len(pg.inits))
	}
	checkContainerHardened(t, where+": init", init)
	if diff := cmp.Diff(pg.inits[0], init); diff != "" {
		t.Errorf("%s: the init container differs from %s's (-there +here):\n%s", where, postgresDeploymentFile, diff)
	}
}

// checkStateURLFromSecret: the container reads the state URL the config
// names (${VAR}) from the Secret's key, as deployment-serve-postgres.yaml
// does.
func checkStateURLFromSecret(t *testing.T, where string, c map[string]any, pg postgresVariant) {
	t.Helper()
	for _, e := range list(c["env"]) {
		if dig(e, "name") != pg.stateVar {
			continue
		}
		ref := obj(dig(e, "valueFrom", "secretKeyRef"))
		if ref["key"] != pg.stateVar || ref["name"] != pg.secretName(t) {
			t.Errorf("%s: %s from %v, want the key %s of Secret %s", where, pg.stateVar, ref, pg.stateVar, pg.secretName(t))
		}
		return
	}
	t.Errorf("%s: no %s from the Secret (the config's state: ${%s})", where, pg.stateVar, pg.stateVar)
}

func (v postgresVariant) secretName(t *testing.T) string {
	t.Helper()
	return inFile(t, v.objs, "secret.example.yaml", "Secret").name()
}

// checkShardFailurePolicy: a failed shard fails its own index, never the
// Job (the other shards run on), and is not retried; exit 2 (config, the
// same for every shard) fails the Job; exit 3 is never retried; an evicted
// pod is.
func checkShardFailurePolicy(t *testing.T, where string, job, pod map[string]any) {
	t.Helper()
	if pod["restartPolicy"] != "Never" {
		t.Errorf("%s: restartPolicy = %v, want Never (podFailurePolicy needs it)", where, pod["restartPolicy"])
	}
	if job["backoffLimitPerIndex"] != 0 {
		t.Errorf("%s: backoffLimitPerIndex = %v, want 0: a failed shard waits for the next run, and only it", where, job["backoffLimitPerIndex"])
	}
	if _, set := job["backoffLimit"]; set {
		t.Errorf("%s: backoffLimit is set: with backoffLimitPerIndex it counts failures across shards, and one shard's failures would fail them all", where)
	}
	policy := obj(job["podFailurePolicy"])
	if policy == nil {
		t.Fatalf("%s: podFailurePolicy is missing", where)
	}
	for code, want := range map[int]string{
		1:   "", // counts against backoffLimitPerIndex 0: that shard fails
		2:   "FailJob",
		3:   "FailIndex",
		137: "",
	} {
		if got := podFailureAction(policy, code); got != want {
			t.Errorf("%s: podFailurePolicy acts on exit %d with %q, want %q", where, code, got, want)
		}
	}
	var evicted bool
	for _, r := range list(policy["rules"]) {
		for _, cond := range list(dig(r, "onPodConditions")) {
			if dig(cond, "type") == "DisruptionTarget" {
				evicted = dig(r, "action") == "Ignore"
			}
		}
		// Ignore on an exit code starts a new pod for every failure, for as
		// long as the run may last.
		if dig(r, "onExitCodes") != nil && dig(r, "action") == "Ignore" {
			t.Errorf("%s: podFailurePolicy rule %v retries on exit codes without limit", where, r)
		}
	}
	if !evicted {
		t.Errorf("%s: podFailurePolicy: want Ignore on the DisruptionTarget condition, so that an evicted shard starts again", where)
	}
}

// ---------------------------------------------------------------------------
// Terraform: var.shards, one schedule per shard
// ---------------------------------------------------------------------------

// startsWithFunc is Terraform's startswith.
var startsWithFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

// tfEval evaluates expr with the variables' defaults, overrides and
// count.index, and Terraform's functions the shard settings use.
func (m *tfModule) tfEval(t *testing.T, expr hcl.Expression, overrides map[string]cty.Value, index int) cty.Value {
	t.Helper()
	vars := map[string]cty.Value{}
	for name := range m.variables {
		vars[name] = cty.DynamicVal
	}
	for name, v := range m.defaults {
		vars[name] = v
	}
	for name, v := range overrides {
		vars[name] = v
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{
			"var":   cty.ObjectVal(vars),
			"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(index))}),
		},
		Functions: map[string]function.Function{
			"jsonencode": stdlib.JSONEncodeFunc,
			"floor":      stdlib.FloorFunc,
			"length":     stdlib.LengthFunc,
			"startswith": startsWithFunc,
		},
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		t.Fatalf("%s: %s", expr.Range(), diags.Error())
	}
	return v
}

func TestTerraformShardsVariable(t *testing.T) {
	m := loadTerraform(t)
	b := m.variables["shards"]
	if b == nil {
		t.Fatal(`variable "shards" is missing`)
	}
	if d, ok := m.defaults["shards"]; !ok || !d.RawEquals(cty.NumberIntVal(1)) {
		t.Errorf("variable shards: default = %#v, want 1 (one task, as before shards)", d)
	}
	if typ := m.text(b.Body.Attributes["type"].Expr.Range()); typ != "number" {
		t.Errorf("variable shards: type = %s, want number", typ)
	}
	vs := nested(b, "validation")
	if len(vs) != 1 {
		t.Fatalf("variable shards: want one validation block, have %d", len(vs))
	}
	cond := vs[0].Body.Attributes["condition"].Expr
	for _, c := range []struct {
		shards float64
		ok     bool
	}{{1, true}, {2, true}, {10, true}, {0, false}, {-1, false}, {11, false}, {2.5, false}} {
		v := m.tfEval(t, cond, map[string]cty.Value{"shards": cty.NumberFloatVal(c.shards)}, 0)
		if v.True() != c.ok {
			t.Errorf("variable shards = %v: validation passes = %v, want %v", c.shards, v.True(), c.ok)
		}
	}
}

// TestTerraformShardSchedules evaluates the schedules as a plan would with
// shards = 1 and shards = N: N schedules, each task with a distinct
// CHIMPORT_SHARD=i/N for i in 1..N, and with 1 today's single schedule,
// with its name and no override.
func TestTerraformShardSchedules(t *testing.T) {
	m := loadTerraform(t)
	s := m.resource(t, "aws_scheduler_schedule.chimport")
	count := s.Body.Attributes["count"]
	if count == nil || !refersTo(count.Expr, "var.shards") {
		t.Fatal("aws_scheduler_schedule.chimport: want count = var.shards")
	}
	target := one(t, s, "target")
	input := target.Body.Attributes["input"]
	if input == nil {
		t.Fatal("aws_scheduler_schedule.chimport: target.input (the task overrides with CHIMPORT_SHARD) is missing")
	}
	container := containerName(t, m)

	for _, n := range []int{1, 2, 4, 10} {
		t.Run(fmt.Sprintf("shards=%d", n), func(t *testing.T) {
			over := map[string]cty.Value{"shards": cty.NumberIntVal(int64(n))}
			c := m.tfEval(t, count.Expr, over, 0)
			if !c.RawEquals(cty.NumberIntVal(int64(n))) {
				t.Fatalf("count = %#v, want %d", c, n)
			}
			names := map[string]bool{}
			var shards []string
			for i := range n {
				name := m.tfEval(t, s.Body.Attributes["name"].Expr, over, i).AsString()
				if names[name] {
					t.Errorf("schedule %d: name %q is taken by another shard", i, name)
				}
				names[name] = true
				if len(name) > 64 {
					t.Errorf("schedule %d: name %q is longer than Scheduler's 64 characters", i, name)
				}
				in := m.tfEval(t, input.Expr, over, i)
				if n == 1 {
					if name != m.defaults["name"].AsString() || !in.IsNull() {
						t.Errorf("shards = 1: name %q, input %#v; want today's schedule, %q with no input", name, in, m.defaults["name"].AsString())
					}
					return
				}
				shards = append(shards, shardOverride(t, in.AsString(), container))
			}
			var want []string
			for i := 1; i <= n; i++ {
				want = append(want, fmt.Sprintf("%d/%d", i, n))
			}
			if diff := cmp.Diff(want, shards); diff != "" {
				t.Errorf("CHIMPORT_SHARD of the schedules (-want +got):\n%s", diff)
			}
		})
	}

	// Adding count kept the schedule: no replacement for shards = 1.
	moved := regexp.MustCompile(`moved\s*\{\s*from\s*=\s*aws_scheduler_schedule\.chimport\s+to\s*=\s*aws_scheduler_schedule\.chimport\[0\]\s*\}`)
	if !moved.Match(m.src[filepath.Join(terraformDir, "scheduler.tf")]) {
		t.Error("scheduler.tf: want moved { from = aws_scheduler_schedule.chimport, to = aws_scheduler_schedule.chimport[0] }")
	}

	// --shard in run_args would win over CHIMPORT_SHARD in every task.
	pre := nested(one(t, s, "lifecycle"), "precondition")
	if len(pre) == 0 {
		t.Fatal("aws_scheduler_schedule.chimport: no precondition on run_args")
	}
	args := func(a ...string) cty.Value {
		var vs []cty.Value
		for _, s := range a {
			vs = append(vs, cty.StringVal(s))
		}
		if len(vs) == 0 {
			return cty.ListValEmpty(cty.String)
		}
		return cty.ListVal(vs)
	}
	for _, c := range []struct {
		shards int64
		args   cty.Value
		ok     bool
	}{
		{1, args(), true},
		{1, args("--shard", "2/3"), true},
		{4, args("--parallel", "32"), true},
		{4, args("--shard", "1/4"), false},
		{4, args("--shards=4"), false},
	} {
		over := map[string]cty.Value{"shards": cty.NumberIntVal(c.shards), "run_args": c.args}
		if ok := m.tfEval(t, pre[0].Body.Attributes["condition"].Expr, over, 0).True(); ok != c.ok {
			t.Errorf("shards = %d, run_args = %#v: precondition holds = %v, want %v", c.shards, c.args, ok, c.ok)
		}
	}

	for _, o := range []string{"schedule_name", "schedule_names"} {
		if b := m.outputs[o]; b == nil || !refersTo(b.Body.Attributes["value"].Expr, "aws_scheduler_schedule.chimport") {
			t.Errorf("output %q: want the schedules' names", o)
		}
	}
}

// shardOverride checks one schedule's input, the RunTask overrides, and
// returns its CHIMPORT_SHARD.
func shardOverride(t *testing.T, input, container string) string {
	t.Helper()
	var o struct {
		ContainerOverrides []struct {
			Name        string
			Environment []struct{ Name, Value string }
		} `json:"containerOverrides"`
	}
	if err := json.Unmarshal([]byte(input), &o); err != nil {
		t.Fatalf("input %s: %v", input, err)
	}
	if len(o.ContainerOverrides) != 1 || o.ContainerOverrides[0].Name != container {
		t.Fatalf("input %s: want one containerOverrides entry for the container %q", input, container)
	}
	var shard []string
	for _, e := range o.ContainerOverrides[0].Environment {
		if e.Name == "CHIMPORT_SHARD" {
			shard = append(shard, e.Value)
		}
	}
	if len(shard) != 1 {
		t.Fatalf("input %s: want CHIMPORT_SHARD once", input)
	}
	return shard[0]
}

// containerName is the name of the task definition's one container.
func containerName(t *testing.T, m *tfModule) string {
	t.Helper()
	td := m.resource(t, "aws_ecs_task_definition.chimport")
	call := td.Body.Attributes["container_definitions"].Expr.(*hclsyntax.FunctionCallExpr)
	defs := call.Args[0].(*hclsyntax.TupleConsExpr)
	name, ok := literalString(objectItems(t, defs.Exprs[0])["name"])
	if !ok {
		t.Fatal("container definition: name must be a literal")
	}
	return name
}
