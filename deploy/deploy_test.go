package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	"go.yaml.in/yaml/v3"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/dynamodb"
)

// ===========================================================================
// Terraform (deploy/terraform)
// ===========================================================================

const terraformDir = "terraform"

// tfModule is the root module in deploy/terraform, as parsed by hclsyntax:
// every block by address, and an evaluation context in which var.X is the
// variable's default (unknown when it has none), so literal settings can be
// read the way Terraform would see them with default variables.
type tfModule struct {
	src       map[string][]byte // file path -> contents
	resources map[string]*hclsyntax.Block
	data      map[string]*hclsyntax.Block
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	defaults  map[string]cty.Value // variables with a default
	ctx       *hcl.EvalContext
}

func loadTerraform(t *testing.T) *tfModule {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(terraformDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tf") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no .tf files under %s", terraformDir)
	}
	sort.Strings(paths)

	m := &tfModule{
		src:       map[string][]byte{},
		resources: map[string]*hclsyntax.Block{},
		data:      map[string]*hclsyntax.Block{},
		variables: map[string]*hclsyntax.Block{},
		outputs:   map[string]*hclsyntax.Block{},
		locals:    map[string]*hclsyntax.Attribute{},
		defaults:  map[string]cty.Value{},
	}
	parser := hclparse.NewParser()
	for _, p := range paths {
		f, diags := parser.ParseHCLFile(p)
		if len(diags) > 0 {
			t.Errorf("%s", diags.Error())
			continue
		}
		m.src[p] = f.Bytes
		if filepath.Dir(p) != terraformDir {
			continue // a nested module: syntax checked, not part of the root module
		}
		body := f.Body.(*hclsyntax.Body)
		for name, a := range body.Attributes {
			t.Errorf("%s: top-level attribute %q is not valid Terraform", a.SrcRange, name)
		}
		for _, b := range body.Blocks {
			m.addBlock(t, b)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	vars := map[string]cty.Value{}
	for name, b := range m.variables {
		vars[name] = cty.DynamicVal
		a := b.Body.Attributes["default"]
		if a == nil {
			continue
		}
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() {
			t.Errorf("%s: variable %q: default must be a literal: %s", a.SrcRange, name, diags.Error())
			continue
		}
		vars[name] = v
		m.defaults[name] = v
	}
	m.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: map[string]function.Function{
			"concat": stdlib.ConcatFunc,
			"merge":  stdlib.MergeFunc,
			"length": stdlib.LengthFunc,
			"keys":   stdlib.KeysFunc,
			"values": stdlib.ValuesFunc,
		},
	}
	return m
}

func (m *tfModule) addBlock(t *testing.T, b *hclsyntax.Block) {
	t.Helper()
	add := func(into map[string]*hclsyntax.Block, key string) {
		if prev, dup := into[key]; dup {
			t.Errorf("%s: %s %q already declared at %s", b.DefRange(), b.Type, key, prev.DefRange())
			return
		}
		into[key] = b
	}
	switch b.Type {
	case "resource", "data":
		if len(b.Labels) != 2 {
			t.Errorf("%s: %s block needs two labels", b.DefRange(), b.Type)
			return
		}
		into := m.resources
		if b.Type == "data" {
			into = m.data
		}
		add(into, b.Labels[0]+"."+b.Labels[1])
	case "variable", "output":
		if len(b.Labels) != 1 {
			t.Errorf("%s: %s block needs one label", b.DefRange(), b.Type)
			return
		}
		into := m.variables
		if b.Type == "output" {
			into = m.outputs
		}
		add(into, b.Labels[0])
	case "locals":
		for name, a := range b.Body.Attributes {
			if prev, dup := m.locals[name]; dup {
				t.Errorf("%s: local %q already declared at %s", a.SrcRange, name, prev.SrcRange)
			}
			m.locals[name] = a
		}
	case "terraform", "provider", "module", "moved", "import", "check", "removed":
	default:
		t.Errorf("%s: unknown top-level block %q", b.DefRange(), b.Type)
	}
}

// resource returns the resource at addr ("type.name") or fails the test.
func (m *tfModule) resource(t *testing.T, addr string) *hclsyntax.Block {
	t.Helper()
	b := m.resources[addr]
	if b == nil {
		t.Fatalf("resource %s is missing", addr)
	}
	return b
}

func (m *tfModule) ofType(typ string) map[string]*hclsyntax.Block {
	out := map[string]*hclsyntax.Block{}
	for addr, b := range m.resources {
		if b.Labels[0] == typ {
			out[addr] = b
		}
	}
	return out
}

// text is the source text of a node.
func (m *tfModule) text(r hcl.Range) string {
	return string(r.SliceBytes(m.src[r.Filename]))
}

// eval evaluates expr with default variables; ok is false when the value
// depends on anything else (resources, locals, variables without default).
func (m *tfModule) eval(expr hcl.Expression) (cty.Value, bool) {
	v, diags := expr.Value(m.ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
		return cty.NilVal, false
	}
	return v, true
}

func (m *tfModule) evalString(expr hcl.Expression) (string, bool) {
	v, ok := m.eval(expr)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// attrString is the string value of b's attribute name, or fails the test.
func (m *tfModule) attrString(t *testing.T, b *hclsyntax.Block, name string) string {
	t.Helper()
	a := b.Body.Attributes[name]
	if a == nil {
		t.Errorf("%s: %s is missing", b.DefRange(), name)
		return ""
	}
	s, ok := m.evalString(a.Expr)
	if !ok {
		t.Errorf("%s: %s = %s is not a string known from defaults", a.SrcRange, name, m.text(a.Expr.Range()))
	}
	return s
}

func (m *tfModule) attrBool(t *testing.T, b *hclsyntax.Block, name string) bool {
	t.Helper()
	a := b.Body.Attributes[name]
	if a == nil {
		t.Errorf("%s: %s is missing", b.DefRange(), name)
		return false
	}
	v, ok := m.eval(a.Expr)
	if !ok || v.Type() != cty.Bool {
		t.Errorf("%s: %s = %s is not a bool known from defaults", a.SrcRange, name, m.text(a.Expr.Range()))
		return false
	}
	return v.True()
}

func nested(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, c := range b.Body.Blocks {
		if c.Type == typ {
			out = append(out, c)
		}
	}
	return out
}

func one(t *testing.T, b *hclsyntax.Block, typ string) *hclsyntax.Block {
	t.Helper()
	bs := nested(b, typ)
	if len(bs) != 1 {
		t.Fatalf("%s: want one %s block, have %d", b.DefRange(), typ, len(bs))
	}
	return bs[0]
}

// refs lists the references in expr as "root.attr.attr[]" strings.
func refs(expr hcl.Expression) []string {
	var out []string
	for _, tr := range hclsyntax.Variables(expr.(hclsyntax.Expression)) {
		out = append(out, traversalString(tr))
	}
	return out
}

func traversalString(tr hcl.Traversal) string {
	var sb strings.Builder
	for _, s := range tr {
		switch s := s.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			sb.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			sb.WriteString("[]")
		case hcl.TraverseSplat:
			sb.WriteString("[*]")
		}
	}
	return sb.String()
}

// refersTo reports whether expr references addr (or something inside it).
func refersTo(expr hcl.Expression, addr string) bool {
	for _, r := range refs(expr) {
		if r == addr || strings.HasPrefix(r, addr+".") || strings.HasPrefix(r, addr+"[") {
			return true
		}
	}
	return false
}

func (m *tfModule) wantRef(t *testing.T, b *hclsyntax.Block, name, addr string) {
	t.Helper()
	a := b.Body.Attributes[name]
	if a == nil {
		t.Errorf("%s: %s is missing", b.DefRange(), name)
		return
	}
	if !refersTo(a.Expr, addr) {
		t.Errorf("%s: %s = %s, want a reference to %s", a.SrcRange, name, m.text(a.Expr.Range()), addr)
	}
}

func TestTerraformParses(t *testing.T) {
	m := loadTerraform(t)
	for _, f := range []string{"versions.tf", "variables.tf", "outputs.tf", "ecr.tf", "ecs.tf",
		"scheduler.tf", "dynamodb.tf", "sns.tf", "iam.tf", "config.tf", "secrets.tf", "alarms.tf"} {
		if _, ok := m.src[filepath.Join(terraformDir, f)]; !ok {
			t.Errorf("%s is missing", filepath.Join(terraformDir, f))
		}
	}
	for _, b := range m.variables {
		if b.Body.Attributes["description"] == nil {
			t.Errorf("%s: variable %q has no description", b.DefRange(), b.Labels[0])
		} else if _, diags := b.Body.Attributes["description"].Expr.Value(nil); diags.HasErrors() {
			// "${VAR}" in a description is an interpolation: write "$${VAR}".
			t.Errorf("%s: variable %q: description must be a literal: %s", b.DefRange(), b.Labels[0], diags.Error())
		}
		if b.Body.Attributes["type"] == nil {
			t.Errorf("%s: variable %q has no type", b.DefRange(), b.Labels[0])
		}
	}
	for _, b := range m.outputs {
		if b.Body.Attributes["description"] == nil {
			t.Errorf("%s: output %q has no description", b.DefRange(), b.Labels[0])
		}
	}
	// The AWS provider is pinned to 5.x.
	pin := regexp.MustCompile(`source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"~> 5\.\d+"`)
	if !pin.Match(m.src[filepath.Join(terraformDir, "versions.tf")]) {
		t.Error(`required_providers: want aws { source = "hashicorp/aws", version = "~> 5.x" }`)
	}
}

// TestTerraformFormatted keeps the files as `terraform fmt` writes them
// (hclwrite.Format is its formatter).
func TestTerraformFormatted(t *testing.T) {
	m := loadTerraform(t)
	for p, src := range m.src {
		if got := hclwrite.Format(src); string(got) != string(src) {
			t.Errorf("%s is not formatted: run terraform fmt (or hclwrite.Format)", p)
		}
	}
}

// TestTerraformReferences is a small `terraform validate` for references,
// since Terraform itself is not available in CI: every var., local., data.
// and resource reference names something declared, counted resources are
// indexed and others are not.
func TestTerraformReferences(t *testing.T) {
	m := loadTerraform(t)
	check := func(r hcl.Range, tr hcl.Traversal) {
		root := tr.RootName()
		attr := func(i int) (string, bool) {
			if i >= len(tr) {
				return "", false
			}
			a, ok := tr[i].(hcl.TraverseAttr)
			return a.Name, ok
		}
		switch root {
		case "var":
			if n, _ := attr(1); m.variables[n] == nil {
				t.Errorf("%s: undeclared variable in %s", r, traversalString(tr))
			}
		case "local":
			if n, _ := attr(1); m.locals[n] == nil {
				t.Errorf("%s: undeclared local in %s", r, traversalString(tr))
			}
		case "data":
			typ, _ := attr(1)
			name, _ := attr(2)
			if m.data[typ+"."+name] == nil {
				t.Errorf("%s: undeclared data source in %s", r, traversalString(tr))
			}
		case "each", "count", "path", "terraform", "self":
		default:
			name, _ := attr(1)
			b := m.resources[root+"."+name]
			if b == nil {
				t.Errorf("%s: undeclared resource in %s", r, traversalString(tr))
				return
			}
			multi := b.Body.Attributes["count"] != nil || b.Body.Attributes["for_each"] != nil
			if len(tr) > 2 {
				_, indexed := tr[2].(hcl.TraverseIndex)
				if multi && !indexed {
					t.Errorf("%s: %s has count/for_each: index it (%s)", r, root+"."+name, traversalString(tr))
				}
				if !multi && indexed {
					t.Errorf("%s: %s has no count/for_each: do not index it (%s)", r, root+"."+name, traversalString(tr))
				}
			}
		}
	}
	var walk func(b *hclsyntax.Block)
	walk = func(b *hclsyntax.Block) {
		for name, a := range b.Body.Attributes {
			if b.Type == "variable" && name == "type" {
				continue // a type constraint, not references
			}
			for _, tr := range hclsyntax.Variables(a.Expr) {
				check(a.SrcRange, tr)
			}
		}
		for _, c := range b.Body.Blocks {
			if c.Type == "lifecycle" {
				continue // ignore_changes names attributes, not references
			}
			walk(c)
		}
	}
	for _, set := range []map[string]*hclsyntax.Block{m.resources, m.data, m.variables, m.outputs} {
		for _, b := range set {
			walk(b)
		}
	}
	for _, a := range m.locals {
		for _, tr := range hclsyntax.Variables(a.Expr) {
			check(a.SrcRange, tr)
		}
	}
}

func TestTerraformResources(t *testing.T) {
	m := loadTerraform(t)

	for _, addr := range []string{
		"aws_ecr_repository.chimport",
		"aws_ecr_lifecycle_policy.chimport",
		"aws_ecs_cluster.chimport",
		"aws_ecs_task_definition.chimport",
		"aws_cloudwatch_log_group.chimport",
		"aws_scheduler_schedule.chimport",
		"aws_sns_topic.alerts",
		"aws_sns_topic_subscription.alert_email",
		"aws_s3_bucket.config",
		"aws_s3_bucket_versioning.config",
		"aws_s3_bucket_public_access_block.config",
		"aws_s3_bucket_server_side_encryption_configuration.config",
		"aws_s3_object.config",
		"aws_ssm_parameter.secret",
		"aws_iam_role.execution",
		"aws_iam_role.task",
		"aws_iam_role.scheduler",
		"aws_iam_role_policy.execution",
		"aws_iam_role_policy.task",
		"aws_iam_role_policy.scheduler",
	} {
		m.resource(t, addr)
	}

	t.Run("ecr", func(t *testing.T) {
		repo := m.resource(t, "aws_ecr_repository.chimport")
		if !m.attrBool(t, one(t, repo, "image_scanning_configuration"), "scan_on_push") {
			t.Error("ECR: scan_on_push must be true")
		}
		lp := m.resource(t, "aws_ecr_lifecycle_policy.chimport")
		m.wantRef(t, lp, "repository", "aws_ecr_repository.chimport")
		m.wantRef(t, lp, "policy", "var.ecr_keep_images")
		if v, ok := m.defaults["ecr_keep_images"]; !ok || v.Type() != cty.Number {
			t.Error("variable ecr_keep_images needs a number default")
		}
	})

	t.Run("log group", func(t *testing.T) {
		lg := m.resource(t, "aws_cloudwatch_log_group.chimport")
		m.wantRef(t, lg, "retention_in_days", "var.log_retention_days")
		if _, ok := m.defaults["log_retention_days"]; !ok {
			t.Error("variable log_retention_days needs a default")
		}
	})

	t.Run("task definition", func(t *testing.T) { checkTaskDefinition(t, m) })
	t.Run("schedule", func(t *testing.T) { checkSchedule(t, m) })
	t.Run("dynamodb", func(t *testing.T) { checkTables(t, m) })

	t.Run("sns", func(t *testing.T) {
		sub := m.resource(t, "aws_sns_topic_subscription.alert_email")
		m.wantRef(t, sub, "topic_arn", "aws_sns_topic.alerts")
		if p := m.attrString(t, sub, "protocol"); p != "email" {
			t.Errorf("alert subscription protocol = %q, want email", p)
		}
		count := sub.Body.Attributes["count"]
		if count == nil || !refersTo(count.Expr, "var.alert_email") {
			t.Fatal("the e-mail subscription needs a count on var.alert_email")
		}
		if d := m.defaults["alert_email"]; d.IsNull() || d.AsString() != "" {
			t.Error(`variable alert_email must default to ""`)
		}
		if v, ok := m.eval(count.Expr); !ok || v.Type() != cty.Number || !v.Equals(cty.NumberIntVal(0)).True() {
			t.Errorf("with alert_email empty, count = %s should be 0", m.text(count.Expr.Range()))
		}
	})

	t.Run("config in s3", func(t *testing.T) {
		obj := m.resource(t, "aws_s3_object.config")
		m.wantRef(t, obj, "bucket", "aws_s3_bucket.config")
		m.wantRef(t, obj, "key", "var.config_key")
		content := obj.Body.Attributes["content"]
		src := obj.Body.Attributes["source"]
		switch {
		case content != nil && refersTo(content.Expr, "local.config_content"):
			if !refersTo(m.locals["config_content"].Expr, "var.config_file") {
				t.Error("local.config_content must read var.config_file")
			}
		case src != nil && refersTo(src.Expr, "var.config_file"):
		default:
			t.Error("aws_s3_object.config must upload var.config_file")
		}

		v := m.resource(t, "aws_s3_bucket_versioning.config")
		if s := m.attrString(t, one(t, v, "versioning_configuration"), "status"); s != "Enabled" {
			t.Errorf("config bucket versioning = %q, want Enabled", s)
		}
		pab := m.resource(t, "aws_s3_bucket_public_access_block.config")
		for _, a := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
			if !m.attrBool(t, pab, a) {
				t.Errorf("config bucket: %s must be true", a)
			}
		}
		sse := m.resource(t, "aws_s3_bucket_server_side_encryption_configuration.config")
		one(t, one(t, sse, "rule"), "apply_server_side_encryption_by_default")
	})

	t.Run("outputs", func(t *testing.T) {
		for _, o := range []string{"ecr_repository_url", "ecs_cluster_name", "task_definition_arn",
			"schedule_name", "alert_topic_arn", "dynamodb_table_names", "config_bucket", "log_group_name"} {
			if m.outputs[o] == nil {
				t.Errorf("output %q is missing", o)
			}
		}
	})
}

func checkTaskDefinition(t *testing.T, m *tfModule) {
	td := m.resource(t, "aws_ecs_task_definition.chimport")
	if v, ok := m.eval(td.Body.Attributes["requires_compatibilities"].Expr); !ok || !v.RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("FARGATE")})) {
		t.Error(`requires_compatibilities must be ["FARGATE"]`)
	}
	if s := m.attrString(t, td, "network_mode"); s != "awsvpc" {
		t.Errorf("network_mode = %q, want awsvpc", s)
	}
	m.wantRef(t, td, "cpu", "var.task_cpu")
	m.wantRef(t, td, "memory", "var.task_memory")
	m.wantRef(t, td, "execution_role_arn", "aws_iam_role.execution")
	m.wantRef(t, td, "task_role_arn", "aws_iam_role.task")
	rp := one(t, td, "runtime_platform")
	if arch := m.attrString(t, rp, "cpu_architecture"); arch != "ARM64" && arch != "X86_64" {
		t.Errorf("cpu_architecture = %q, want ARM64 or X86_64", arch)
	}
	m.wantRef(t, rp, "cpu_architecture", "var.cpu_architecture")
	if s := m.attrString(t, rp, "operating_system_family"); s != "LINUX" {
		t.Errorf("operating_system_family = %q, want LINUX", s)
	}

	// container_definitions = jsonencode([{ ... }])
	cd := td.Body.Attributes["container_definitions"]
	call, ok := cd.Expr.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "jsonencode" || len(call.Args) != 1 {
		t.Fatalf("%s: container_definitions must be jsonencode([{...}])", cd.SrcRange)
	}
	defs, ok := call.Args[0].(*hclsyntax.TupleConsExpr)
	if !ok || len(defs.Exprs) != 1 {
		t.Fatalf("%s: want exactly one container", cd.SrcRange)
	}
	c := objectItems(t, defs.Exprs[0])
	want := func(key string) hclsyntax.Expression {
		t.Helper()
		e, ok := c[key]
		if !ok {
			t.Errorf("container definition: %s is missing", key)
			return &hclsyntax.LiteralValueExpr{Val: cty.NullVal(cty.DynamicPseudoType)}
		}
		return e
	}
	if v, ok := m.eval(want("command")); !ok || !v.RawEquals(cty.TupleVal([]cty.Value{cty.StringVal("run")})) {
		t.Errorf(`container command = %s, want ["run"] with default variables`, m.text(want("command").Range()))
	}
	for _, k := range []string{"essential", "readonlyRootFilesystem"} {
		if v, ok := m.eval(want(k)); !ok || !v.True() {
			t.Errorf("container %s must be true", k)
		}
	}
	if !refersTo(want("image"), "local.image") || !refersTo(m.locals["image"].Expr, "aws_ecr_repository.chimport") {
		t.Error("container image must come from the ECR repository")
	}

	// Environment: CHIMPORT_CONFIG = s3://<bucket>/<key>.
	if !refersTo(want("environment"), "local.environment") {
		t.Fatal("container environment must come from local.environment")
	}
	env := objectItems(t, lastArg(t, m.locals["environment"].Expr))
	cfg, ok := env["CHIMPORT_CONFIG"]
	if !ok || !refersTo(cfg, "local.config_uri") {
		t.Fatal("local.environment must set CHIMPORT_CONFIG = local.config_uri")
	}
	// The S3 config reader takes its region from the SDK's environment.
	if r, ok := env["AWS_REGION"]; !ok || !refersTo(r, "var.aws_region") {
		t.Error("local.environment must set AWS_REGION = var.aws_region")
	}
	uri, ok := m.locals["config_uri"].Expr.(*hclsyntax.TemplateExpr)
	if !ok || len(uri.Parts) == 0 {
		t.Fatal("local.config_uri must be a template")
	}
	if lit, _ := literalString(uri.Parts[0]); lit != "s3://" || !refersTo(uri, "aws_s3_bucket.config") || !refersTo(uri, "aws_s3_object.config.key") {
		t.Errorf("local.config_uri = %s, want s3://<config bucket>/<config object key>", m.text(uri.Range()))
	}

	// Secrets: from SSM SecureString parameters (default) or Secrets Manager.
	if !refersTo(want("secrets"), "local.secret_arns") {
		t.Fatal("container secrets must come from local.secret_arns")
	}
	sa := m.locals["secret_arns"].Expr
	if !refersTo(sa, "aws_ssm_parameter.secret") || !refersTo(sa, "aws_secretsmanager_secret.secret") {
		t.Error("local.secret_arns must map the SSM parameters or the Secrets Manager secrets")
	}
	if d := m.defaults["secrets_backend"]; d.IsNull() || d.AsString() != "ssm" {
		t.Error(`variable secrets_backend must default to "ssm"`)
	}
	if p := m.attrString(t, m.resource(t, "aws_ssm_parameter.secret"), "type"); p != "SecureString" {
		t.Errorf("SSM parameter type = %q, want SecureString", p)
	}
	names := map[string]bool{}
	if d, ok := m.defaults["secret_env_names"]; ok {
		for it := d.ElementIterator(); it.Next(); {
			_, v := it.Element()
			names[v.AsString()] = true
		}
	}
	for _, n := range []string{"MAILCHIMP_API_KEY", "TARGET_API_KEY"} {
		if !names[n] {
			t.Errorf("variable secret_env_names must include %s by default", n)
		}
	}

	// Logs: awslogs to the log group.
	logs := objectItems(t, want("logConfiguration"))
	if d, _ := m.evalString(logs["logDriver"]); d != "awslogs" {
		t.Errorf("logDriver = %q, want awslogs", d)
	}
	opts := objectItems(t, logs["options"])
	if g := opts["awslogs-group"]; g == nil || !refersTo(g, "aws_cloudwatch_log_group.chimport") {
		t.Error("awslogs-group must be the log group")
	}
}

func checkSchedule(t *testing.T, m *tfModule) {
	s := m.resource(t, "aws_scheduler_schedule.chimport")
	m.wantRef(t, s, "schedule_expression", "var.schedule")
	if e := m.attrString(t, s, "schedule_expression"); e != "rate(90 minutes)" {
		t.Errorf("schedule_expression defaults to %q, want rate(90 minutes)", e)
	}
	target := one(t, s, "target")
	m.wantRef(t, target, "arn", "aws_ecs_cluster.chimport")
	m.wantRef(t, target, "role_arn", "aws_iam_role.scheduler")
	ecs := one(t, target, "ecs_parameters")
	m.wantRef(t, ecs, "task_definition_arn", "aws_ecs_task_definition.chimport")
	if lt := m.attrString(t, ecs, "launch_type"); lt != "FARGATE" {
		t.Errorf("launch_type = %q, want FARGATE", lt)
	}
	net := one(t, ecs, "network_configuration")
	m.wantRef(t, net, "subnets", "var.subnet_ids")
	m.wantRef(t, net, "security_groups", "var.security_group_ids")
	m.wantRef(t, net, "assign_public_ip", "var.assign_public_ip")
	if m.attrBool(t, net, "assign_public_ip") {
		t.Error("assign_public_ip should default to false")
	}
}

func checkTables(t *testing.T, m *tfModule) {
	type table struct {
		hash, rng string
		attrs     map[string]string
	}
	want := map[string]table{
		"mailchimp-list-import-history": {"ListId", "", map[string]string{"ListId": "S"}},
		"mailchimp-failed-imports":      {"ListId", "offset", map[string]string{"ListId": "S", "offset": "N"}},
		"chimport-run-history":          {"ListId", "RunId", map[string]string{"ListId": "S", "RunId": "S"}},
	}
	// chimport's defaults are these names, so a config without table
	// parameters finds them.
	for _, n := range []string{dynamodb.DefaultHistoryTable, dynamodb.DefaultFailuresTable, dynamodb.DefaultRunsTable} {
		if _, ok := want[n]; !ok {
			t.Errorf("chimport's default table %q is not one of the tables here", n)
		}
	}
	tables := m.ofType("aws_dynamodb_table")
	if len(tables) != len(want) {
		t.Errorf("want %d DynamoDB tables, have %d", len(want), len(tables))
	}
	seen := map[string]bool{}
	for addr, b := range tables {
		name := m.attrString(t, b, "name")
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: unexpected table name %q", addr, name)
			continue
		}
		seen[name] = true
		if bm := m.attrString(t, b, "billing_mode"); bm != "PAY_PER_REQUEST" {
			t.Errorf("%s: billing_mode = %q, want PAY_PER_REQUEST", addr, bm)
		}
		if h := m.attrString(t, b, "hash_key"); h != w.hash {
			t.Errorf("%s: hash_key = %q, want %q", addr, h, w.hash)
		}
		var rng string
		if b.Body.Attributes["range_key"] != nil {
			rng = m.attrString(t, b, "range_key")
		}
		if rng != w.rng {
			t.Errorf("%s: range_key = %q, want %q", addr, rng, w.rng)
		}
		// Exactly the key attributes: Terraform rejects attributes that are
		// not keys of the table or an index.
		got := map[string]string{}
		for _, a := range nested(b, "attribute") {
			got[m.attrString(t, a, "name")] = m.attrString(t, a, "type")
		}
		if !reflect.DeepEqual(got, w.attrs) {
			t.Errorf("%s: attributes = %v, want %v", addr, got, w.attrs)
		}
		if !m.attrBool(t, one(t, b, "point_in_time_recovery"), "enabled") {
			t.Errorf("%s: point-in-time recovery must be enabled", addr)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("table %q is missing", name)
		}
	}
	// The task role's table statement covers these three, through local.state_tables.
	st := m.locals["state_tables"]
	if st == nil {
		t.Fatal("local.state_tables is missing")
	}
	for addr := range tables {
		if !refersTo(st.Expr, addr) {
			t.Errorf("local.state_tables must list %s", addr)
		}
	}
}

// objectItems returns the items of an object constructor by key.
func objectItems(t *testing.T, e hclsyntax.Expression) map[string]hclsyntax.Expression {
	t.Helper()
	obj, ok := e.(*hclsyntax.ObjectConsExpr)
	if !ok {
		t.Fatalf("%s: want an object { ... }", e.Range())
	}
	out := map[string]hclsyntax.Expression{}
	for _, it := range obj.Items {
		k, diags := it.KeyExpr.Value(nil)
		if diags.HasErrors() || k.Type() != cty.String {
			t.Fatalf("%s: object key is not a literal", it.KeyExpr.Range())
		}
		out[k.AsString()] = it.ValueExpr
	}
	return out
}

// lastArg is the last argument of a function call (merge(a, b) -> b), or e.
func lastArg(t *testing.T, e hclsyntax.Expression) hclsyntax.Expression {
	t.Helper()
	if call, ok := e.(*hclsyntax.FunctionCallExpr); ok && len(call.Args) > 0 {
		return call.Args[len(call.Args)-1]
	}
	return e
}

// literalString is the value of a string literal ("x", with no
// interpolation).
func literalString(e hclsyntax.Expression) (string, bool) {
	switch e := e.(type) {
	case *hclsyntax.TemplateExpr:
		if !e.IsStringLiteral() {
			return "", false
		}
		v, diags := e.Value(nil)
		if diags.HasErrors() {
			return "", false
		}
		return v.AsString(), true
	case *hclsyntax.LiteralValueExpr:
		if e.Val.Type() == cty.String && !e.Val.IsNull() {
			return e.Val.AsString(), true
		}
	}
	return "", false
}

// literalList returns the string literals of a list expression, looking
// into both results of a conditional; computed is true when some element is
// not a literal (a reference, a function call, a for expression).
func literalList(e hclsyntax.Expression) (lits []string, computed bool) {
	switch e := e.(type) {
	case *hclsyntax.TupleConsExpr:
		for _, el := range e.Exprs {
			if s, ok := literalString(el); ok {
				lits = append(lits, s)
			} else {
				computed = true
			}
		}
	case *hclsyntax.ConditionalExpr:
		a, ca := literalList(e.TrueResult)
		b, cb := literalList(e.FalseResult)
		lits, computed = append(a, b...), ca || cb
	default:
		computed = true
	}
	return lits, computed
}

// ---------------------------------------------------------------------------
// IAM
// ---------------------------------------------------------------------------

// wildcardResourceOK are the only actions an Allow statement may grant on
// Resource "*", each because AWS does not support resource-level
// permissions for it.
var wildcardResourceOK = map[string]string{
	"ecr:GetAuthorizationToken": "account-wide token; AWS requires Resource \"*\"",
}

type statement struct {
	doc        string
	sid        string
	effect     string
	actions    []string
	computed   bool // some action is not a literal
	resources  hclsyntax.Expression
	principals []string
	gate       hclsyntax.Expression // for_each of a dynamic "statement", or nil
	rng        hcl.Range
}

func (m *tfModule) statements(t *testing.T, doc string) []statement {
	t.Helper()
	b := m.data["aws_iam_policy_document."+doc]
	if b == nil {
		t.Fatalf("data.aws_iam_policy_document.%s is missing", doc)
	}
	var out []statement
	parse := func(s *hclsyntax.Block, gate hclsyntax.Expression) {
		st := statement{doc: doc, effect: "Allow", gate: gate, rng: s.DefRange()}
		if a := s.Body.Attributes["sid"]; a != nil {
			st.sid, _ = m.evalString(a.Expr)
		}
		if a := s.Body.Attributes["effect"]; a != nil {
			st.effect, _ = literalString(a.Expr)
		}
		for _, bad := range []string{"not_actions", "not_resources"} {
			if a := s.Body.Attributes[bad]; a != nil && st.effect == "Allow" {
				t.Errorf("%s: %s in an Allow statement grants everything else", a.SrcRange, bad)
			}
		}
		if a := s.Body.Attributes["actions"]; a != nil {
			st.actions, st.computed = literalList(a.Expr)
		}
		if a := s.Body.Attributes["resources"]; a != nil {
			st.resources = a.Expr
		}
		for _, p := range nested(s, "principals") {
			if a := p.Body.Attributes["identifiers"]; a != nil {
				ids, _ := literalList(a.Expr)
				st.principals = append(st.principals, ids...)
			}
		}
		out = append(out, st)
	}
	for _, c := range b.Body.Blocks {
		switch {
		case c.Type == "statement":
			parse(c, nil)
		case c.Type == "dynamic" && len(c.Labels) == 1 && c.Labels[0] == "statement":
			parse(one(t, c, "content"), c.Body.Attributes["for_each"].Expr)
		}
	}
	return out
}

// TestIAMLeastPrivilege checks every policy document: no Allow statement
// grants an action wildcard ("*", "s3:*", "Get*") or Resource "*" (apart
// from wildcardResourceOK), and each role gets exactly what chimport needs.
// Deny statements (the config bucket's HTTPS-only rule) take permissions
// away, so their wildcards are fine.
func TestIAMLeastPrivilege(t *testing.T) {
	m := loadTerraform(t)
	actionRE := regexp.MustCompile(`^[a-z0-9-]+:[A-Za-z0-9]+$`)

	for addr := range m.data {
		doc, ok := strings.CutPrefix(addr, "aws_iam_policy_document.")
		if !ok {
			continue
		}
		for _, st := range m.statements(t, doc) {
			if st.effect != "Allow" {
				if st.effect != "Deny" {
					t.Errorf("%s: effect must be a literal Allow or Deny", st.rng)
				}
				continue
			}
			if len(st.actions) == 0 || st.computed {
				t.Errorf("%s: an Allow statement needs literal actions", st.rng)
			}
			for _, a := range st.actions {
				if !actionRE.MatchString(a) {
					t.Errorf("%s (%s): action %q is a wildcard or malformed", st.rng, doc, a)
				}
			}
			for _, p := range st.principals {
				if p == "*" {
					t.Errorf("%s (%s): Allow to principal \"*\"", st.rng, doc)
				}
			}
			if st.resources == nil {
				if !slices.Equal(st.actions, []string{"sts:AssumeRole"}) || len(st.principals) == 0 {
					t.Errorf("%s (%s): statement without resources (only trust policies may omit them)", st.rng, doc)
				}
				continue
			}
			lits, _ := literalList(st.resources)
			for _, r := range lits {
				if !strings.Contains(r, "*") {
					continue
				}
				for _, a := range st.actions {
					if _, ok := wildcardResourceOK[a]; !ok || r != "*" {
						t.Errorf("%s (%s): %s on resource %q", st.rng, doc, a, r)
					}
				}
			}
		}
	}

	// Every policy in the module is one of the documents checked above, and
	// no managed policy is attached.
	for _, typ := range []string{"aws_iam_role_policy_attachment", "aws_iam_policy_attachment", "aws_iam_policy", "aws_iam_user_policy", "aws_iam_group_policy"} {
		for addr := range m.ofType(typ) {
			t.Errorf("%s: use an inline aws_iam_role_policy from an aws_iam_policy_document", addr)
		}
	}
	policyAttrs := map[string]string{
		"aws_iam_role":              "assume_role_policy",
		"aws_iam_role_policy":       "policy",
		"aws_sns_topic_policy":      "policy",
		"aws_s3_bucket_policy":      "policy",
		"aws_ecr_repository_policy": "policy",
	}
	for typ, attr := range policyAttrs {
		for addr, b := range m.ofType(typ) {
			a := b.Body.Attributes[attr]
			var rs []string
			if a != nil {
				rs = refs(a.Expr)
			}
			if len(rs) != 1 || !strings.HasPrefix(rs[0], "data.aws_iam_policy_document.") || !strings.HasSuffix(rs[0], ".json") {
				t.Errorf("%s: %s must be data.aws_iam_policy_document.<name>.json", addr, attr)
			}
		}
	}

	// Which documents each role gets.
	roleDocs := map[string][]string{}
	for addr, b := range m.ofType("aws_iam_role_policy") {
		role := b.Body.Attributes["role"]
		var roleName string
		for _, r := range refs(role.Expr) {
			if s, ok := strings.CutPrefix(r, "aws_iam_role."); ok {
				roleName, _, _ = strings.Cut(s, ".")
			}
		}
		if roleName == "" {
			t.Errorf("%s: role must reference an aws_iam_role", addr)
			continue
		}
		doc := strings.TrimSuffix(strings.TrimPrefix(refs(b.Body.Attributes["policy"].Expr)[0], "data.aws_iam_policy_document."), ".json")
		roleDocs[roleName] = append(roleDocs[roleName], doc)
	}
	stmts := func(role string) []statement {
		var out []statement
		for _, d := range roleDocs[role] {
			out = append(out, m.statements(t, d)...)
		}
		if len(out) == 0 {
			t.Fatalf("role %s has no policy", role)
		}
		return out
	}
	allowed := func(role string, sts []statement, want ...string) {
		t.Helper()
		for _, st := range sts {
			for _, a := range st.actions {
				if !slices.Contains(want, a) {
					t.Errorf("%s: role %s must not get %s", st.rng, role, a)
				}
			}
		}
	}
	find := func(sts []statement, action string) []statement {
		var out []statement
		for _, st := range sts {
			if slices.Contains(st.actions, action) {
				out = append(out, st)
			}
		}
		if len(out) == 0 {
			t.Errorf("no statement grants %s", action)
		}
		return out
	}
	onlyRefs := func(st statement, addrs ...string) {
		t.Helper()
		if st.resources == nil {
			return
		}
		for _, r := range refs(st.resources) {
			ok := false
			for _, a := range addrs {
				ok = ok || r == a || strings.HasPrefix(r, a+".") || strings.HasPrefix(r, a+"[")
			}
			if !ok {
				t.Errorf("%s: %v on %s; want only %v", st.rng, st.actions, r, addrs)
			}
		}
		if lits, _ := literalList(st.resources); len(lits) > 0 {
			t.Errorf("%s: %v on literal resources %v; want only %v", st.rng, st.actions, lits, addrs)
		}
	}
	trusts := func(role, service string) {
		t.Helper()
		a := m.resource(t, "aws_iam_role."+role).Body.Attributes["assume_role_policy"]
		doc := strings.TrimSuffix(strings.TrimPrefix(refs(a.Expr)[0], "data.aws_iam_policy_document."), ".json")
		for _, st := range m.statements(t, doc) {
			if !slices.Equal(st.principals, []string{service}) || !slices.Equal(st.actions, []string{"sts:AssumeRole"}) {
				t.Errorf("%s: role %s must trust only %s", st.rng, role, service)
			}
		}
	}

	t.Run("execution role", func(t *testing.T) {
		trusts("execution", "ecs-tasks.amazonaws.com")
		sts := stmts("execution")
		allowed("execution", sts,
			"ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
			"logs:CreateLogStream", "logs:PutLogEvents",
			"ssm:GetParameters", "secretsmanager:GetSecretValue", "kms:Decrypt")
		for _, st := range find(sts, "ecr:BatchGetImage") {
			onlyRefs(st, "aws_ecr_repository.chimport")
		}
		for _, st := range find(sts, "logs:PutLogEvents") {
			onlyRefs(st, "aws_cloudwatch_log_group.chimport")
		}
		for _, st := range find(sts, "ssm:GetParameters") {
			onlyRefs(st, "local.secret_arns")
		}
		for _, st := range find(sts, "kms:Decrypt") {
			onlyRefs(st, "var.kms_key_arn")
		}
	})

	t.Run("task role", func(t *testing.T) {
		trusts("task", "ecs-tasks.amazonaws.com")
		sts := stmts("task")
		tableActions := []string{"dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:GetItem",
			"dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"}
		allowed("task", sts, append(tableActions, "dynamodb:CreateTable", "sns:Publish", "s3:GetObject", "kms:Decrypt", "kms:GenerateDataKey")...)
		for _, st := range find(sts, "dynamodb:GetItem") {
			got := slices.Clone(st.actions)
			sort.Strings(got)
			if !slices.Equal(got, tableActions) {
				t.Errorf("%s: table actions = %v, want %v", st.rng, got, tableActions)
			}
			onlyRefs(st, "local.state_tables")
		}
		for _, st := range find(sts, "dynamodb:CreateTable") {
			onlyRefs(st, "local.state_tables")
			if st.gate == nil || !refersTo(st.gate, "var.allow_create_tables") {
				t.Errorf("%s: CreateTable must be behind var.allow_create_tables", st.rng)
			}
		}
		if d := m.defaults["allow_create_tables"]; d.IsNull() || d.True() {
			t.Error("variable allow_create_tables must default to false")
		}
		for _, st := range find(sts, "sns:Publish") {
			onlyRefs(st, "aws_sns_topic.alerts")
		}
		for _, st := range find(sts, "s3:GetObject") {
			onlyRefs(st, "aws_s3_bucket.config", "aws_s3_object.config")
			if !refersTo(st.resources, "aws_s3_object.config.key") {
				t.Errorf("%s: s3:GetObject must be on the config object only", st.rng)
			}
		}
		for _, st := range find(sts, "kms:Decrypt") {
			onlyRefs(st, "var.kms_key_arn")
		}
	})

	t.Run("scheduler role", func(t *testing.T) {
		trusts("scheduler", "scheduler.amazonaws.com")
		sts := stmts("scheduler")
		allowed("scheduler", sts, "ecs:RunTask", "iam:PassRole")
		for _, st := range find(sts, "ecs:RunTask") {
			onlyRefs(st, "aws_ecs_task_definition.chimport")
		}
		for _, st := range find(sts, "iam:PassRole") {
			onlyRefs(st, "aws_iam_role.execution", "aws_iam_role.task")
		}
	})
}

// TestTaskRoleMatchesCode keeps the task role and the code in step: every
// AWS operation chimport's code calls (found by the SDK XxxInput types it
// builds) is granted to the task role, and the role is granted no
// DynamoDB, SNS or S3 operation the code never calls. A new call without
// a grant would fail in production with AccessDenied only.
func TestTaskRoleMatchesCode(t *testing.T) {
	m := loadTerraform(t)
	used := awsOperations(t, "..")
	if len(used) == 0 {
		t.Fatal("found no AWS SDK calls in chimport's code")
	}
	granted := map[string]bool{}
	for _, st := range m.statements(t, "task") {
		for _, a := range st.actions {
			granted[a] = true
		}
	}
	for op, where := range used {
		if !granted[op] {
			t.Errorf("%s calls %s, which the task role does not grant (deploy/terraform/iam.tf)", where, op)
		}
	}
	for op := range granted {
		svc, _, _ := strings.Cut(op, ":")
		if (svc == "dynamodb" || svc == "sns" || svc == "s3") && used[op] == "" {
			t.Errorf("the task role grants %s, which chimport's code never calls", op)
		}
	}
}

// iamActionFor names the IAM action of the SDK operations whose action has
// another name.
var iamActionFor = map[string]string{
	"s3:HeadObject":    "s3:GetObject",
	"s3:ListObjects":   "s3:ListBucket",
	"s3:ListObjectsV2": "s3:ListBucket",
	"s3:HeadBucket":    "s3:ListBucket",
}

// awsOperations maps "service:Operation" to the first non-test Go file under
// root that builds the operation's input (svc.OperationInput), the one way
// to call an SDK operation, paginate it or wait on it.
func awsOperations(t *testing.T, root string) map[string]string {
	t.Helper()
	const sdk = "github.com/aws/aws-sdk-go-v2/service/"
	out := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", ".tools", "deploy", "testdata", "node_modules", "vendor", "awstest":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		services := map[string]string{} // local package name -> service
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			svc, ok := strings.CutPrefix(path, sdk)
			if !ok || strings.Contains(svc, "/") {
				continue
			}
			local := svc
			if imp.Name != nil {
				local = imp.Name.Name
			}
			services[local] = svc
		}
		if len(services) == 0 {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || services[pkg.Name] == "" {
				return true
			}
			if op, ok := strings.CutSuffix(sel.Sel.Name, "Input"); ok && op != "" {
				key := services[pkg.Name] + ":" + op
				if action, ok := iamActionFor[key]; ok {
					key = action
				}
				if out[key] == "" {
					rel, _ := filepath.Rel(root, p)
					out[key] = rel
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTerraformExampleConfig validates the example config the Terraform
// uploads, tokens replaced as config.tf replaces them, with chimport's own
// config loader and state URL parser.
func TestTerraformExampleConfig(t *testing.T) {
	m := loadTerraform(t)

	// local.state_url with the tables' names and a region.
	tables := map[string]cty.Value{}
	for addr, b := range m.ofType("aws_dynamodb_table") {
		tables[b.Labels[1]] = cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(m.attrString(t, b, "name"))})
		if !refersTo(m.locals["state_url"].Expr, addr+".name") {
			t.Errorf("local.state_url must name %s", addr)
		}
	}
	vars := map[string]cty.Value{}
	for name := range m.variables {
		vars[name] = cty.DynamicVal
	}
	for name, v := range m.defaults {
		vars[name] = v
	}
	vars["aws_region"] = cty.StringVal("eu-west-1")
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var":                cty.ObjectVal(vars),
		"aws_dynamodb_table": cty.ObjectVal(tables),
	}}
	v, diags := m.locals["state_url"].Expr.Value(ctx)
	if diags.HasErrors() || v.Type() != cty.String {
		t.Fatalf("local.state_url: %s", diags.Error())
	}
	stateURL := v.AsString()
	if err := state.ValidateURL(stateURL); err != nil {
		t.Errorf("local.state_url: %v", err)
	}
	for _, want := range []string{"region=eu-west-1", "history_table=" + dynamodb.DefaultHistoryTable,
		"failures_table=" + dynamodb.DefaultFailuresTable, "runs_table=" + dynamodb.DefaultRunsTable} {
		if !strings.Contains(stateURL, want) {
			t.Errorf("local.state_url = %q, want %s in it", stateURL, want)
		}
	}

	data, err := os.ReadFile(filepath.Join(terraformDir, "chimport.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	topic := "arn:aws:sns:eu-west-1:111122223333:chimport-alerts"
	text := strings.NewReplacer(
		"__STATE_URL__", stateURL,
		"__ALERT_TOPIC_ARN__", topic,
		"__AWS_REGION__", "eu-west-1",
	).Replace(string(data))
	for _, tok := range []string{"__STATE_URL__", "__ALERT_TOPIC_ARN__", "__AWS_REGION__"} {
		if !strings.Contains(m.text(m.locals["config_content"].Expr.Range()), `"`+tok+`"`) {
			t.Errorf("local.config_content does not replace %s", tok)
		}
	}
	env := map[string]string{}
	names, ok := m.defaults["secret_env_names"]
	if !ok || !names.CanIterateElements() {
		t.Fatal("variable secret_env_names needs a list default")
	}
	for it := names.ElementIterator(); it.Next(); {
		_, v := it.Element()
		env[v.AsString()] = "value-of-" + v.AsString() + "-us6"
	}
	// Every ${VAR} of the config comes from a secret.
	cfg, err := parseConfig(text, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State != stateURL {
		t.Errorf("example state = %q, want __STATE_URL__", cfg.State)
	}
	if cfg.Alerts.SNSTopicARN != topic {
		t.Errorf("example alerts.sns_topic_arn = %q, want __ALERT_TOPIC_ARN__", cfg.Alerts.SNSTopicARN)
	}
}

// parseConfig runs chimport's own config loader, with env as the
// environment.
func parseConfig(text string, env map[string]string) (*config.Config, error) {
	lookup := func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
	return config.Parse([]byte(text), "example", lookup)
}

// ---------------------------------------------------------------------------
// Dead man's switch (alarms.tf)
// ---------------------------------------------------------------------------

// evalLocals evaluates every local that depends only on variables (defaults,
// then overrides) and Terraform's pure functions, the way a plan would.
// Locals that need a resource or data source stay unknown.
func (m *tfModule) evalLocals(t *testing.T, overrides map[string]cty.Value) map[string]cty.Value {
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
	locals := map[string]cty.Value{}
	for name := range m.locals {
		locals[name] = cty.DynamicVal
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: map[string]function.Function{
			"try":      tryfunc.TryFunc,
			"regex":    stdlib.RegexFunc,
			"tonumber": stdlib.MakeToFunc(cty.Number),
			"ceil":     stdlib.CeilFunc,
			"max":      stdlib.MaxFunc,
		},
	}
	// Locals refer to each other: evaluate until nothing changes.
	for changed := true; changed; {
		changed = false
		ctx.Variables["local"] = cty.ObjectVal(locals)
		for name, a := range m.locals {
			if locals[name].IsWhollyKnown() {
				continue
			}
			v, diags := a.Expr.Value(ctx)
			if !diags.HasErrors() && v.IsWhollyKnown() {
				locals[name] = v
				changed = true
			}
		}
	}
	return locals
}

func numberInt(t *testing.T, v cty.Value, what string) int64 {
	t.Helper()
	if v.IsNull() || !v.IsWhollyKnown() || v.Type() != cty.Number {
		t.Fatalf("%s = %#v, want a known number", what, v)
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != 0 {
		t.Fatalf("%s = %s, want a whole number", what, v.AsBigFloat())
	}
	return n
}

// TestTerraformDeadMansSwitch checks the alarm that fires when no run has
// completed: a metric filter on the task's log group, an alarm on its
// metric that treats missing data as breaching, notifying the alert topic
// on ALARM and OK, looking back 3 x the schedule period by default.
func TestTerraformDeadMansSwitch(t *testing.T) {
	m := loadTerraform(t)

	mf := m.resource(t, "aws_cloudwatch_log_metric_filter.run_completed")
	m.wantRef(t, mf, "log_group_name", "aws_cloudwatch_log_group.chimport")
	td := m.resource(t, "aws_ecs_task_definition.chimport")
	if !refersTo(td.Body.Attributes["container_definitions"].Expr, "aws_cloudwatch_log_group.chimport.name") {
		t.Error("the task's awslogs-group must be aws_cloudwatch_log_group.chimport, the group the metric filter reads")
	}
	pattern := m.attrString(t, mf, "pattern")
	if _, err := parseFilterPattern(pattern); err != nil {
		t.Errorf("metric filter pattern %q: %v", pattern, err)
	}
	tr := one(t, mf, "metric_transformation")
	if ns := m.attrString(t, tr, "namespace"); ns != "chimport" {
		t.Errorf("metric namespace = %q, want chimport (var.name)", ns)
	}
	if n := m.attrString(t, tr, "name"); n != "RunsCompleted" {
		t.Errorf("metric name = %q, want RunsCompleted", n)
	}
	if v := m.attrString(t, tr, "value"); v != "1" {
		t.Errorf("metric value = %q, want 1 per completed run", v)
	}
	if tr.Body.Attributes["default_value"] != nil {
		t.Error("metric_transformation: no default_value, so that a period without runs has no data (breaching)")
	}

	alarm := m.resource(t, "aws_cloudwatch_metric_alarm.no_run_completed")
	m.wantRef(t, alarm, "namespace", "aws_cloudwatch_log_metric_filter.run_completed")
	m.wantRef(t, alarm, "metric_name", "aws_cloudwatch_log_metric_filter.run_completed")
	for attr, want := range map[string]string{
		"treat_missing_data":  "breaching",
		"comparison_operator": "LessThanThreshold",
		"statistic":           "Sum",
	} {
		if got := m.attrString(t, alarm, attr); got != want {
			t.Errorf("alarm %s = %q, want %q", attr, got, want)
		}
	}
	if v, ok := m.eval(alarm.Body.Attributes["threshold"].Expr); !ok || !v.Equals(cty.NumberIntVal(1)).True() {
		t.Errorf("alarm threshold = %s, want 1 (fewer than one completed run)", m.text(alarm.Body.Attributes["threshold"].Expr.Range()))
	}
	for _, attr := range []string{"alarm_actions", "ok_actions"} {
		m.wantRef(t, alarm, attr, "aws_sns_topic.alerts")
	}
	m.wantRef(t, alarm, "actions_enabled", "var.schedule_enabled")
	for _, attr := range []string{"period", "evaluation_periods", "datapoints_to_alarm"} {
		if alarm.Body.Attributes[attr] == nil {
			t.Errorf("alarm %s is missing", attr)
		}
	}
	if m.text(alarm.Body.Attributes["evaluation_periods"].Expr.Range()) != m.text(alarm.Body.Attributes["datapoints_to_alarm"].Expr.Range()) {
		t.Error("alarm: datapoints_to_alarm must equal evaluation_periods (every period empty)")
	}
	if m.outputs["no_run_alarm_name"] == nil {
		t.Error(`output "no_run_alarm_name" is missing`)
	}

	// How long without a run alarms: 3 x the schedule period unless set.
	window := func(t *testing.T, overrides map[string]cty.Value) (minutes, period, periods int64) {
		l := m.evalLocals(t, overrides)
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"local": cty.ObjectVal(l)}}
		get := func(attr string) int64 {
			v, diags := alarm.Body.Attributes[attr].Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("alarm %s: %s", attr, diags.Error())
			}
			return numberInt(t, v, "alarm "+attr)
		}
		return numberInt(t, l["no_run_alarm_minutes"], "local.no_run_alarm_minutes"), get("period"), get("evaluation_periods")
	}
	for _, c := range []struct {
		name      string
		overrides map[string]cty.Value
		minutes   int64
	}{
		{"default rate(90 minutes)", nil, 270},
		{"rate(2 hours)", map[string]cty.Value{"schedule": cty.StringVal("rate(2 hours)")}, 360},
		{"rate(1 day)", map[string]cty.Value{"schedule": cty.StringVal("rate(1 day)")}, 3 * 1440},
		{"set explicitly", map[string]cty.Value{"no_run_alarm_minutes": cty.NumberIntVal(60)}, 60},
		{"cron() without a value", map[string]cty.Value{"schedule": cty.StringVal("cron(0 */3 * * ? *)")}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if d, ok := m.defaults["schedule"]; c.overrides == nil && (!ok || d.AsString() != "rate(90 minutes)") {
				t.Fatalf("variable schedule default = %#v, want rate(90 minutes)", d)
			}
			minutes, period, periods := window(t, c.overrides)
			if minutes != c.minutes {
				t.Fatalf("no_run_alarm_minutes = %d, want %d", minutes, c.minutes)
			}
			if minutes == 0 {
				return // the alarm's precondition asks for a value
			}
			if period%60 != 0 || period*periods < minutes*60 || period*periods >= minutes*60+period {
				t.Errorf("period %d s x %d = %d s, want the least multiple of the period covering %d minutes", period, periods, period*periods, minutes)
			}
			// CloudWatch: at most 1 day of periods under an hour, 7 days otherwise.
			if limit := map[bool]int64{true: 86400, false: 604800}[period < 3600]; period*periods > limit {
				t.Errorf("period %d s x %d exceeds CloudWatch's %d s", period, periods, limit)
			}
		})
	}
	pre := nested(one(t, alarm, "lifecycle"), "precondition")
	if len(pre) == 0 || !strings.Contains(m.text(pre[0].Body.Attributes["condition"].Expr.Range()), "local.no_run_alarm_minutes > 0") {
		t.Error("alarm: a precondition must reject a cron() schedule without no_run_alarm_minutes")
	}

	// The topic lets this alarm (and only it) publish as CloudWatch, with or
	// without alert_on_task_failure.
	pol := m.resource(t, "aws_sns_topic_policy.alerts")
	if pol.Body.Attributes["count"] != nil {
		t.Error("aws_sns_topic_policy.alerts: the alarm needs the topic policy always (no count)")
	}
	var found bool
	for _, st := range m.statements(t, "alerts_topic") {
		if !slices.Contains(st.principals, "cloudwatch.amazonaws.com") {
			continue
		}
		found = true
		if st.gate != nil || !slices.Equal(st.actions, []string{"sns:Publish"}) || !refersTo(st.resources, "aws_sns_topic.alerts") {
			t.Errorf("%s: CloudWatch needs an ungated sns:Publish on aws_sns_topic.alerts", st.rng)
		}
	}
	if !found {
		t.Error("data.aws_iam_policy_document.alerts_topic: no statement for cloudwatch.amazonaws.com")
	}
	doc := m.data["aws_iam_policy_document.alerts_topic"]
	if !strings.Contains(m.text(doc.Body.Range()), ":alarm:${local.no_run_alarm_name}") {
		t.Error("alerts_topic: the CloudWatch statement must be limited to the alarm's ARN (aws:SourceArn)")
	}
	if !strings.Contains(m.text(alarm.Body.Attributes["alarm_name"].Expr.Range()), "local.no_run_alarm_name") {
		t.Error("alarm_name must be local.no_run_alarm_name, the name in the topic policy")
	}
}

// TestRunCompletedLineMatchesFilter runs the real binary (`chimport run`,
// JSON logs as on ECS) against the simulator with one connection that
// completes and one that fails, and applies the metric filter's pattern to
// every stderr line, as CloudWatch Logs does to each awslogs event: exactly
// the completed connection's line counts.
func TestRunCompletedLineMatchesFilter(t *testing.T) {
	m := loadTerraform(t)
	pattern := m.attrString(t, m.resource(t, "aws_cloudwatch_log_metric_filter.run_completed"), "pattern")
	filter, err := parseFilterPattern(pattern)
	if err != nil {
		t.Fatalf("pattern %q: %v", pattern, err)
	}

	const key = "0123456789abcdef0123456789abcdef-us6"
	mc := httptest.NewServer(mcsim.New(mcsim.Options{APIKey: key, ListID: "a1b2c3d4e5", Members: 20, Seed: 1}))
	defer mc.Close()
	target := httptest.NewServer(mcsim.NewTarget(mcsim.TargetOptions{Seed: 1}))
	defer target.Close()

	dir := t.TempDir()
	bin := filepath.Join(dir, "chimport")
	build := exec.Command("go", "build", "-o", bin, "../cmd/chimport")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "chimport.yaml")
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`state: sqlite://%s
defaults:
  mailchimp: {api_key: %q, base_url: %q, settle: 0s}
  target: {url: %q}
connections:
  - name: newsletter
    mailchimp: {list_id: a1b2c3d4e5}
  - name: missing-list
    mailchimp: {list_id: ffffffffff}
`, filepath.Join(dir, "state.db"), key, mc.URL+"/3.0", target.URL+"/records")), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	// --log-format auto, as in the task definition: stderr is no terminal.
	run := exec.Command(bin, "run", "--config", cfg)
	var stderr strings.Builder
	run.Stdout, run.Stderr = io.Discard, &stderr
	err = run.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("chimport run: %v, want exit 1 (one connection failed)\n%s", err, stderr.String())
	}

	var matched []string
	var failedSeen bool
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("stderr line is not JSON (--log-format auto without a terminal): %q", line)
		}
		if ev["msg"] == "run failed" {
			failedSeen = true
		}
		if filter.match(line) {
			matched = append(matched, fmt.Sprint(ev["connection"]))
			if ev["level"] != "INFO" || ev["msg"] != "run completed" {
				t.Errorf("the filter matched %q, not a run completed line", line)
			}
		}
	}
	if !failedSeen {
		t.Errorf("no \"run failed\" line for the missing list:\n%s", stderr.String())
	}
	if !slices.Equal(matched, []string{"newsletter"}) {
		t.Errorf("filter %q matched the lines of %v, want [newsletter] only:\n%s", pattern, matched, stderr.String())
	}
}

// filterPattern is the part of CloudWatch Logs' JSON filter pattern syntax
// that alarms.tf may use: { $.a.b = "v" && $.c != "w" }, string values
// without wildcards. Anything else fails parseFilterPattern, so the test
// never approves a pattern it cannot evaluate.
type filterPattern []filterTerm

type filterTerm struct {
	path  []string
	equal bool
	value string
}

var filterTermRE = regexp.MustCompile(`^\(?\s*\$\.([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*(=|!=)\s*"([^"*\\]*)"\s*\)?$`)

func parseFilterPattern(p string) (filterPattern, error) {
	p = strings.TrimSpace(p)
	if !strings.HasPrefix(p, "{") || !strings.HasSuffix(p, "}") {
		return nil, errors.New("not a JSON pattern { ... }")
	}
	body := strings.TrimSpace(p[1 : len(p)-1])
	if strings.Contains(body, "||") {
		return nil, errors.New("|| is not supported by this test")
	}
	var out filterPattern
	for _, term := range strings.Split(body, "&&") {
		mt := filterTermRE.FindStringSubmatch(strings.TrimSpace(term))
		if mt == nil {
			return nil, fmt.Errorf("term %q: want $.field = \"value\" or !=", strings.TrimSpace(term))
		}
		out = append(out, filterTerm{path: strings.Split(mt[1], "."), equal: mt[2] == "=", value: mt[3]})
	}
	return out, nil
}

// match reports whether a log event matches: JSON, and every term holds (a
// missing field matches neither = nor !=, as in CloudWatch).
func (f filterPattern) match(event string) bool {
	var v any
	if err := json.Unmarshal([]byte(event), &v); err != nil {
		return false
	}
	for _, term := range f {
		var cur any = v
		for _, k := range term.path {
			cur = obj(cur)[k]
		}
		s, ok := cur.(string)
		if !ok || (s == term.value) != term.equal {
			return false
		}
	}
	return true
}

func TestFilterPattern(t *testing.T) {
	f, err := parseFilterPattern(`{ ($.msg = "run completed") && $.level != "DEBUG" }`)
	if err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]bool{
		`{"level":"INFO","msg":"run completed","connection":"a"}`: true,
		`{"level":"DEBUG","msg":"run completed"}`:                 false,
		`{"level":"ERROR","msg":"run failed","connection":"a"}`:   false,
		`{"level":"INFO"}`:               false,
		`level=INFO msg="run completed"`: false,
	} {
		if got := f.match(line); got != want {
			t.Errorf("match(%s) = %v, want %v", line, got, want)
		}
	}
	for _, bad := range []string{`$.msg = "x"`, `{ $.msg = "run*" }`, `{ $.a = "x" || $.b = "y" }`, `{ $.n > 1 }`} {
		if _, err := parseFilterPattern(bad); err == nil {
			t.Errorf("parseFilterPattern(%s): no error", bad)
		}
	}
}

// TestExampleConfigsSetLagThreshold: every example config under deploy/
// alerts when a connection falls 3 hours behind (two missed 90-minute runs).
func TestExampleConfigsSetLagThreshold(t *testing.T) {
	env := map[string]string{"MAILCHIMP_API_KEY": "0123456789abcdef0123456789abcdef-us6", "TARGET_API_KEY": "Bearer x",
		"CHIMPORT_STATE_URL": "postgres://chimport:x@db.internal:5432/chimport?sslmode=require"}
	configs := map[string]string{}
	data, err := os.ReadFile(filepath.Join(terraformDir, "chimport.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	configs["terraform/chimport.example.yaml"] = strings.NewReplacer(
		"__STATE_URL__", "dynamodb://?region=eu-west-1",
		"__ALERT_TOPIC_ARN__", "arn:aws:sns:eu-west-1:111122223333:chimport-alerts",
		"__AWS_REGION__", "eu-west-1",
	).Replace(string(data))
	for _, cm := range byKind(loadKubernetes(t), "ConfigMap") {
		for k, v := range obj(dig(cm.m, "data")) {
			if s, ok := v.(string); ok && strings.HasSuffix(k, ".yaml") {
				configs[cm.file+": "+k] = s
			}
		}
	}
	if len(configs) < 2 {
		t.Fatalf("found %d example configs, want the Terraform one and the ConfigMap's", len(configs))
	}
	for where, text := range configs {
		cfg, err := parseConfig(text, env)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if got := time.Duration(cfg.Alerts.LagThreshold); got != 3*time.Hour {
			t.Errorf("%s: alerts.lag_threshold = %v, want 3h", where, got)
		}
	}
}

// ===========================================================================
// Kubernetes (deploy/kubernetes)
// ===========================================================================

type k8sObject struct {
	file string
	m    map[string]any
}

func (o k8sObject) kind() string { s, _ := dig(o.m, "kind").(string); return s }
func (o k8sObject) name() string { s, _ := dig(o.m, "metadata", "name").(string); return s }

func loadKubernetes(t *testing.T) []k8sObject {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("kubernetes", "*.y*ml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no YAML files in kubernetes/ (%v)", err)
	}
	var out []k8sObject
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if m == nil {
				continue
			}
			o := k8sObject{file: p, m: m}
			if dig(m, "apiVersion") == nil || o.kind() == "" || o.name() == "" {
				t.Errorf("%s: every object needs apiVersion, kind and metadata.name", p)
			}
			out = append(out, o)
		}
		f.Close()
	}
	return out
}

// dig walks maps by string key and lists by int index.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func list(v any) []any         { l, _ := v.([]any); return l }
func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }

func byKind(objs []k8sObject, kind string) []k8sObject {
	var out []k8sObject
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// inFile returns the one object of kind in kubernetes/file, or fails the
// test.
func inFile(t *testing.T, objs []k8sObject, file, kind string) k8sObject {
	t.Helper()
	var found []k8sObject
	for _, o := range byKind(objs, kind) {
		if o.file == filepath.Join("kubernetes", file) {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("kubernetes/%s: want one %s, have %d", file, kind, len(found))
	}
	return found[0]
}

// definedNames lists the objects the pods may refer to, by kind and name.
func definedNames(objs []k8sObject) map[string]map[string]bool {
	defined := map[string]map[string]bool{}
	for _, kind := range []string{"ConfigMap", "Secret", "PersistentVolumeClaim", "ServiceAccount"} {
		defined[kind] = map[string]bool{}
		for _, o := range byKind(objs, kind) {
			defined[kind][o.name()] = true
		}
	}
	return defined
}

func TestKubernetesManifests(t *testing.T) {
	objs := loadKubernetes(t)
	counts := map[string]int{}
	for _, o := range objs {
		counts[o.kind()]++
	}
	// Two variants of the serve Deployment, each with its Service (the same
	// one) and config: SQLite (deployment-serve.yaml, configmap.yaml) and
	// PostgreSQL (deployment-serve-postgres.yaml, configmap-postgres.yaml,
	// checked in postgres_test.go).
	for kind, want := range map[string]int{"Deployment": 2, "Service": 2, "ConfigMap": 2, "Secret": 1, "PersistentVolumeClaim": 1, "ServiceAccount": 1} {
		if counts[kind] != want {
			t.Errorf("want %d %s, have %d", want, kind, counts[kind])
		}
	}
	cronJobs := byKind(objs, "CronJob")
	if len(cronJobs) == 0 {
		t.Fatal("no CronJob")
	}
	defined := definedNames(objs)

	for _, s := range byKind(objs, "Secret") {
		if !strings.Contains(s.file, "example") {
			t.Errorf("%s: a Secret belongs in secret.example.yaml only", s.file)
		}
	}

	// cronjob.yaml and cronjob-sharded.yaml are alternatives: the CronJobs
	// of each file share the day between them.
	firings := map[string][]int{} // file -> minutes of the day
	perFile := map[string]int{}
	for _, cj := range cronJobs {
		perFile[cj.file]++
	}
	for _, cj := range cronJobs {
		where := cj.file + ": CronJob " + cj.name()
		spec := obj(dig(cj.m, "spec"))
		if spec["concurrencyPolicy"] != "Forbid" {
			t.Errorf("%s: concurrencyPolicy = %v, want Forbid", where, spec["concurrencyPolicy"])
		}
		if spec["timeZone"] == nil {
			t.Errorf("%s: set timeZone so the schedule does not follow the node's clock", where)
		}
		sched, _ := spec["schedule"].(string)
		mins, err := cronMinutesOfDay(sched)
		if err != nil {
			t.Errorf("%s: schedule %q: %v", where, sched, err)
		}
		firings[cj.file] = append(firings[cj.file], mins...)
		jobSpec := obj(dig(spec, "jobTemplate", "spec"))
		pod := obj(dig(jobSpec, "template", "spec"))
		if pod["restartPolicy"] != "Never" && pod["restartPolicy"] != "OnFailure" {
			t.Errorf("%s: restartPolicy = %v", where, pod["restartPolicy"])
		}
		c := checkPodSpec(t, where, pod, defined, objs)
		if a := list(c["args"]); len(a) == 0 || a[0] != "run" {
			t.Errorf("%s: args = %v, want [run ...]", where, a)
		}
		// With several CronJobs, a run must end (deadline plus grace period)
		// before the next CronJob's run starts.
		if perFile[cj.file] > 1 {
			deadline, _ := jobSpec["activeDeadlineSeconds"].(int)
			grace, _ := pod["terminationGracePeriodSeconds"].(int)
			if deadline == 0 || deadline+grace >= 90*60 {
				t.Errorf("%s: activeDeadlineSeconds (%d) + terminationGracePeriodSeconds (%d) must stay under 90 minutes", where, deadline, grace)
			}
		}
	}
	// Together the CronJobs of a file fire every 90 minutes, like the
	// original task.
	for file, mins := range firings {
		sort.Ints(mins)
		if len(mins) != 16 {
			t.Errorf("%s: CronJobs fire at %v (%d times a day), want every 90 minutes (16)", file, mins, len(mins))
		}
		for i := range mins {
			next := mins[(i+1)%len(mins)]
			if i+1 == len(mins) {
				next += 24 * 60
			}
			if next-mins[i] != 90 {
				t.Errorf("%s: CronJob firings %d and %d (minutes of the day) are not 90 minutes apart", file, mins[i], next)
			}
		}
	}

	t.Run("serve", func(t *testing.T) {
		d := inFile(t, objs, "deployment-serve.yaml", "Deployment")
		where := d.file + ": Deployment " + d.name()
		spec := obj(dig(d.m, "spec"))
		if spec["replicas"] != 1 {
			t.Errorf("%s: replicas = %v, want 1", where, spec["replicas"])
		}
		if dig(spec, "strategy", "type") != "Recreate" {
			t.Errorf("%s: strategy must be Recreate (one writer on the SQLite volume)", where)
		}
		pod := obj(dig(spec, "template", "spec"))
		c := checkPodSpec(t, where, pod, defined, objs)
		args := fmt.Sprint(c["args"])
		if args != "[serve --listen 0.0.0.0:9187]" {
			t.Errorf("%s: args = %s, want [serve --listen 0.0.0.0:9187]", where, args)
		}
		checkHealthProbes(t, where, c)

		svc := inFile(t, objs, "deployment-serve.yaml", "Service")
		ann := obj(dig(svc.m, "metadata", "annotations"))
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9187" {
			t.Errorf("Service: want annotations prometheus.io/scrape \"true\" and prometheus.io/port \"9187\", have %v", ann)
		}
		podLabels := obj(dig(spec, "template", "metadata", "labels"))
		for k, v := range obj(dig(svc.m, "spec", "selector")) {
			if podLabels[k] != v {
				t.Errorf("Service selector %s=%v does not match the serve pods", k, v)
			}
		}
		var exposed bool
		for _, p := range list(dig(svc.m, "spec", "ports")) {
			exposed = exposed || dig(p, "port") == 9187
		}
		if !exposed {
			t.Error("Service must expose port 9187")
		}
	})

	t.Run("config", func(t *testing.T) {
		cm := inFile(t, objs, "configmap.yaml", "ConfigMap")
		text, _ := dig(cm.m, "data", "chimport.yaml").(string)
		env := map[string]string{}
		for k, v := range obj(dig(byKind(objs, "Secret")[0].m, "stringData")) {
			env[k] = fmt.Sprint(v)
		}
		for _, k := range []string{"MAILCHIMP_API_KEY", "TARGET_API_KEY"} {
			if _, ok := env[k]; !ok {
				t.Errorf("secret.example.yaml: stringData.%s is missing", k)
			}
		}
		// Every ${VAR} of the config comes from the Secret.
		cfg, err := parseConfig(text, env)
		if err != nil {
			t.Fatalf("configmap.yaml: chimport.yaml: %v", err)
		}
		if dir, ok := strings.CutPrefix(cfg.State, "sqlite://"); ok && !strings.HasPrefix(dir, "/var/lib/chimport/") {
			t.Errorf("configmap.yaml: SQLite state %q must live on the state volume (/var/lib/chimport)", cfg.State)
		}
	})
}

// checkHealthProbes checks that a serve container's liveness and readiness
// probes ask /healthz on port 9187.
func checkHealthProbes(t *testing.T, where string, c map[string]any) {
	t.Helper()
	ports := map[string]int{}
	for _, p := range list(c["ports"]) {
		name, _ := dig(p, "name").(string)
		port, _ := dig(p, "containerPort").(int)
		ports[name] = port
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		get := obj(dig(c, probe, "httpGet"))
		if get["path"] != "/healthz" {
			t.Errorf("%s: %s path = %v, want /healthz", where, probe, get["path"])
		}
		port, isNum := get["port"].(int)
		if !isNum {
			port = ports[fmt.Sprint(get["port"])]
		}
		if port != 9187 {
			t.Errorf("%s: %s port = %v, want 9187", where, probe, get["port"])
		}
	}
}

// checkPodSpec checks what every chimport pod needs and returns its one
// container.
func checkPodSpec(t *testing.T, where string, pod map[string]any, defined map[string]map[string]bool, objs []k8sObject) map[string]any {
	t.Helper()
	psc := obj(pod["securityContext"])
	if psc["runAsNonRoot"] != true {
		t.Errorf("%s: securityContext.runAsNonRoot must be true", where)
	}
	if psc["runAsUser"] != 65532 {
		t.Errorf("%s: runAsUser = %v, want 65532 (the image's nonroot user)", where, psc["runAsUser"])
	}
	if sa, _ := pod["serviceAccountName"].(string); sa != "" && !defined["ServiceAccount"][sa] {
		t.Errorf("%s: ServiceAccount %q is not defined", where, sa)
	}
	cs := list(pod["containers"])
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, have %d", where, len(cs))
	}
	c := obj(cs[0])
	checkContainerHardened(t, where, c)

	// Volumes: every referenced object exists.
	volumes := map[string]map[string]any{}
	for _, v := range list(pod["volumes"]) {
		vm := obj(v)
		name, _ := vm["name"].(string)
		volumes[name] = vm
		if n, ok := dig(vm, "configMap", "name").(string); ok && !defined["ConfigMap"][n] {
			t.Errorf("%s: ConfigMap %q is not defined", where, n)
		}
		if n, ok := dig(vm, "persistentVolumeClaim", "claimName").(string); ok && !defined["PersistentVolumeClaim"][n] {
			t.Errorf("%s: PersistentVolumeClaim %q is not defined", where, n)
		}
	}
	for _, e := range list(c["envFrom"]) {
		if n, ok := dig(e, "secretRef", "name").(string); ok && !defined["Secret"][n] {
			t.Errorf("%s: Secret %q is not defined (see secret.example.yaml)", where, n)
		}
	}
	// CHIMPORT_CONFIG names the ConfigMap's key where it is mounted.
	var configPath string
	for _, e := range list(c["env"]) {
		if dig(e, "name") == "CHIMPORT_CONFIG" {
			configPath, _ = dig(e, "value").(string)
		}
	}
	var found bool
	for _, vm := range list(c["volumeMounts"]) {
		mount := obj(vm)
		name, _ := mount["name"].(string)
		path, _ := mount["mountPath"].(string)
		v := volumes[name]
		if v == nil {
			t.Errorf("%s: volumeMount %q has no volume", where, name)
			continue
		}
		cmName, ok := dig(v, "configMap", "name").(string)
		if !ok {
			continue
		}
		for _, it := range list(dig(v, "configMap", "items")) {
			if path+"/"+fmt.Sprint(dig(it, "path")) != configPath {
				continue
			}
			for _, cm := range byKind(objs, "ConfigMap") {
				if cm.name() == cmName && dig(cm.m, "data", fmt.Sprint(dig(it, "key"))) != nil {
					found = true
				}
			}
		}
	}
	if !found {
		t.Errorf("%s: CHIMPORT_CONFIG=%q is not a ConfigMap key mounted in the container", where, configPath)
	}
	return c
}

// checkContainerHardened checks a container's own securityContext and
// resources.
func checkContainerHardened(t *testing.T, where string, c map[string]any) {
	t.Helper()
	sc := obj(c["securityContext"])
	if sc["readOnlyRootFilesystem"] != true {
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc["allowPrivilegeEscalation"] != false {
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if !slices.Contains(list(dig(sc, "capabilities", "drop")), any("ALL")) {
		t.Errorf("%s: capabilities.drop must include ALL", where)
	}
	for _, p := range [][]any{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
		if dig(c["resources"], p...) == nil {
			t.Errorf("%s: resources.%s.%s is missing", where, p[0], p[1])
		}
	}
}

// cronMinutesOfDay lists the minutes of the day at which a five-field cron
// schedule fires; day of month, month and day of week must be "*".
func cronMinutesOfDay(expr string) ([]int, error) {
	f := strings.Fields(expr)
	if len(f) != 5 {
		return nil, fmt.Errorf("want 5 fields")
	}
	if f[2] != "*" || f[3] != "*" || f[4] != "*" {
		return nil, fmt.Errorf("only daily schedules are checked")
	}
	mins, err := cronField(f[0], 0, 59)
	if err != nil {
		return nil, err
	}
	hours, err := cronField(f[1], 0, 23)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, h := range hours {
		for _, m := range mins {
			out = append(out, h*60+m)
		}
	}
	return out, nil
}

func cronField(s string, lo, hi int) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		rng, stepText, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("bad step in %q", part)
			}
			step = n
		}
		from, to := lo, hi
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err1, err2 error
			from, err1 = strconv.Atoi(a)
			to = from
			if isRange {
				to, err2 = strconv.Atoi(b)
			} else if hasStep {
				to = hi
			}
			if err1 != nil || err2 != nil || from < lo || to > hi || from > to {
				return nil, fmt.Errorf("bad range %q", part)
			}
		}
		for v := from; v <= to; v += step {
			out = append(out, v)
		}
	}
	return out, nil
}

func TestCronField(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []int
	}{
		{"0 */3 * * *", []int{0, 180, 360, 540, 720, 900, 1080, 1260}},
		{"30 1-22/3 * * *", []int{90, 270, 450, 630, 810, 990, 1170, 1350}},
		{"0,30 5 * * *", []int{300, 330}},
	} {
		got, err := cronMinutesOfDay(tc.expr)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("cronMinutesOfDay(%q) = %v, %v; want %v", tc.expr, got, err, tc.want)
		}
	}
}

// ===========================================================================
// Dockerfile
// ===========================================================================

type dockerStage struct {
	from  string   // the FROM line
	lines []string // instructions after it, continuations joined
}

func loadDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			stages = append(stages, dockerStage{from: line})
			return
		}
		if len(stages) == 0 {
			if !strings.HasPrefix(strings.ToUpper(line), "ARG ") {
				t.Errorf("Dockerfile: %q before the first FROM", line)
			}
			return
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	for _, raw := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: want a build and a runtime stage, have %d stages", len(stages))
	}
	return stages
}

func (s dockerStage) has(instr, substr string) bool {
	for _, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), instr+" ") && strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

func (s dockerStage) index(instr, substr string) int {
	for i, l := range s.lines {
		if strings.HasPrefix(strings.ToUpper(l), instr+" ") && strings.Contains(l, substr) {
			return i
		}
	}
	return -1
}

func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)
	build, final := stages[0], stages[len(stages)-1]

	if !regexp.MustCompile(`^FROM (--platform=\S+ )?golang:1\.26\.\d+(-\S+)? AS build$`).MatchString(build.from) {
		t.Errorf("build stage: %q, want FROM golang:1.26.x (pinned) AS build", build.from)
	}
	if !build.has("ENV", "CGO_ENABLED=0") && !build.has("ARG", "CGO_ENABLED=0") {
		t.Error("build stage: CGO_ENABLED=0 must be set (ENV)")
	}
	dl, src := build.index("RUN", "go mod download"), build.index("COPY", ". .")
	mods := build.index("COPY", "go.mod go.sum")
	if mods < 0 || dl < 0 || src < 0 || !(mods < dl && dl < src) {
		t.Error("build stage: COPY go.mod go.sum, RUN go mod download, then COPY . . (module download in its own layer)")
	}
	if !build.has("ARG", "VERSION=dev") {
		t.Error("build stage: ARG VERSION=dev is missing")
	}
	for _, want := range []string{"go build", "-trimpath", `-ldflags "-s -w -X main.version=${VERSION}"`, "./cmd/chimport"} {
		if !build.has("RUN", want) {
			t.Errorf("build stage: the go build RUN lacks %q", want)
		}
	}
	// The ldflags target exists.
	if v, err := os.ReadFile(filepath.Join("..", "cmd", "chimport", "version.go")); err != nil || !regexp.MustCompile(`(?m)^var version\b`).Match(v) {
		t.Error("cmd/chimport has no package-level `var version` for -X main.version")
	}

	if final.from != "FROM gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage: %q, want FROM gcr.io/distroless/static-debian12:nonroot", final.from)
	}
	if !final.has("COPY", "--from=build") {
		t.Error("final stage: COPY --from=build is missing")
	}
	if i := final.index("USER", ""); i >= 0 && !regexp.MustCompile(`^USER (65532(:65532)?|nonroot(:nonroot)?)$`).MatchString(final.lines[i]) {
		t.Errorf("final stage: %q, want the nonroot user 65532", final.lines[i])
	}
	if !final.has("ENTRYPOINT", `["/chimport"]`) {
		t.Error(`final stage: ENTRYPOINT ["/chimport"] is missing`)
	}
	if !final.has("CMD", `["run"]`) {
		t.Error(`final stage: CMD ["run"] is missing`)
	}

	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns := strings.Fields(string(ignore))
	for _, want := range []string{".git", ".tools", "bin", "*.db"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore: %q is missing", want)
		}
	}
}
