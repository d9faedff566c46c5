package deploy

// The PostgreSQL variant of the serve Deployment
// (kubernetes/deployment-serve-postgres.yaml with configmap-postgres.yaml):
// checked against the SQLite one it varies, and its config run against a
// real PostgreSQL server the way its pods run it.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	postgresDeploymentFile = "deployment-serve-postgres.yaml"
	postgresConfigMapFile  = "configmap-postgres.yaml"
)

// postgresVariant is what the PostgreSQL manifests hold, read once per
// test.
type postgresVariant struct {
	objs       []k8sObject
	deployment k8sObject
	configMap  k8sObject
	pod        map[string]any   // the Deployment's pod spec
	serve      map[string]any   // its one container
	inits      []map[string]any // its init containers
	config     string           // the ConfigMap's chimport.yaml
	stateVar   string           // NAME in the config's state: ${NAME}
	secret     map[string]any   // secret.example.yaml's stringData
}

func loadPostgresVariant(t *testing.T) postgresVariant {
	t.Helper()
	v := postgresVariant{objs: loadKubernetes(t)}
	v.deployment = inFile(t, v.objs, postgresDeploymentFile, "Deployment")
	v.configMap = inFile(t, v.objs, postgresConfigMapFile, "ConfigMap")
	v.pod = obj(dig(v.deployment.m, "spec", "template", "spec"))
	if cs := list(v.pod["containers"]); len(cs) == 1 {
		v.serve = obj(cs[0])
	} else {
		t.Fatalf("%s: want one container, have %d", postgresDeploymentFile, len(cs))
	}
	for _, c := range list(v.pod["initContainers"]) {
		v.inits = append(v.inits, obj(c))
	}
	v.config, _ = dig(v.configMap.m, "data", "chimport.yaml").(string)
	if v.config == "" {
		t.Fatalf("%s: no data.chimport.yaml", postgresConfigMapFile)
	}
	// The state: line as written, before any expansion.
	var raw struct {
		State string `yaml:"state"`
	}
	if err := yaml.Unmarshal([]byte(v.config), &raw); err != nil {
		t.Fatalf("%s: chimport.yaml: %v", postgresConfigMapFile, err)
	}
	m := regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`).FindStringSubmatch(raw.State)
	if m == nil {
		t.Fatalf("%s: state: %q, want ${VAR}: the URL holds the database password and comes from a Secret", postgresConfigMapFile, raw.State)
	}
	v.stateVar = m[1]
	v.secret = obj(dig(inFile(t, v.objs, "secret.example.yaml", "Secret").m, "stringData"))
	return v
}

// env is the environment a pod of the variant sees, with the example
// Secret's values and the state URL set to stateURL.
func (v postgresVariant) env(stateURL string) map[string]string {
	env := map[string]string{}
	for k, val := range v.secret {
		env[k] = fmt.Sprint(val)
	}
	env[v.stateVar] = stateURL
	return env
}

func TestKubernetesPostgresServe(t *testing.T) {
	v := loadPostgresVariant(t)
	sqlite := inFile(t, v.objs, "deployment-serve.yaml", "Deployment")
	sqlitePod := obj(dig(sqlite.m, "spec", "template", "spec"))
	sqliteServe := obj(list(sqlitePod["containers"])[0])
	where := v.deployment.file + ": Deployment " + v.deployment.name()
	spec := obj(dig(v.deployment.m, "spec"))

	// The same Deployment: applying one variant replaces the other, and
	// `kubectl exec deploy/chimport` works with both.
	if v.deployment.name() != sqlite.name() || !reflect.DeepEqual(spec["selector"], dig(sqlite.m, "spec", "selector")) {
		t.Errorf("%s: want the name and selector of deployment-serve.yaml's Deployment (%s)", where, sqlite.name())
	}
	if spec["replicas"] != 3 {
		t.Errorf("%s: replicas = %v, want 3", where, spec["replicas"])
	}
	if typ := dig(spec, "strategy", "type"); typ != "RollingUpdate" {
		t.Errorf("%s: strategy %v, want RollingUpdate: no volume ties the pods to one writer", where, typ)
	}

	c := checkPodSpec(t, where, v.pod, definedNames(v.objs), v.objs)
	checkHealthProbes(t, where, c)
	if a := fmt.Sprint(c["args"]); !strings.HasPrefix(a, "[serve --listen 0.0.0.0:9187") {
		t.Errorf("%s: args = %s, want [serve --listen 0.0.0.0:9187 ...]", where, a)
	}

	t.Run("no volume", func(t *testing.T) {
		for _, vol := range list(v.pod["volumes"]) {
			if dig(vol, "persistentVolumeClaim") != nil {
				t.Errorf("%s: volume %v is a PersistentVolumeClaim; PostgreSQL state needs none", where, dig(vol, "name"))
			}
		}
		for _, o := range v.objs {
			if o.file == v.deployment.file && o.kind() != "Deployment" && o.kind() != "Service" {
				t.Errorf("%s: a %s; want only the Deployment and its Service", o.file, o.kind())
			}
		}
	})

	// Same hardening as the SQLite variant, in every container.
	t.Run("hardening", func(t *testing.T) {
		for _, k := range []string{"securityContext", "serviceAccountName", "automountServiceAccountToken", "terminationGracePeriodSeconds"} {
			if !reflect.DeepEqual(v.pod[k], sqlitePod[k]) {
				t.Errorf("%s: pod %s = %v, want deployment-serve.yaml's %v", where, k, v.pod[k], sqlitePod[k])
			}
		}
		if !reflect.DeepEqual(dig(v.deployment.m, "spec", "template", "metadata", "labels"), dig(sqlite.m, "spec", "template", "metadata", "labels")) {
			t.Errorf("%s: pod labels differ from deployment-serve.yaml's", where)
		}
		for _, k := range []string{"image", "imagePullPolicy", "ports", "livenessProbe", "readinessProbe"} {
			if !reflect.DeepEqual(v.serve[k], sqliteServe[k]) {
				t.Errorf("%s: container %s = %v, want deployment-serve.yaml's %v", where, k, v.serve[k], sqliteServe[k])
			}
		}
		if len(v.inits) == 0 {
			t.Fatalf("%s: no init container", where)
		}
		for _, c := range append([]map[string]any{v.serve}, v.inits...) {
			cw := fmt.Sprintf("%s: container %v", where, c["name"])
			checkContainerHardened(t, cw, c)
			for _, k := range []string{"securityContext", "resources"} {
				if !reflect.DeepEqual(c[k], sqliteServe[k]) {
					t.Errorf("%s: %s = %v, want deployment-serve.yaml's %v", cw, k, c[k], sqliteServe[k])
				}
			}
		}
	})

	// Every pod runs `chimport init` first, with the same image, config
	// and environment as serve.
	t.Run("init container", func(t *testing.T) {
		if len(v.inits) != 1 {
			t.Fatalf("%s: want one init container, have %d", where, len(v.inits))
		}
		ic := v.inits[0]
		if a := fmt.Sprint(ic["args"]); a != "[init]" {
			t.Errorf("%s: init container args = %s, want [init]", where, a)
		}
		if ic["image"] != v.serve["image"] {
			t.Errorf("%s: init container image %v, want serve's %v", where, ic["image"], v.serve["image"])
		}
		for _, k := range []string{"envFrom", "volumeMounts"} {
			if !reflect.DeepEqual(ic[k], v.serve[k]) {
				t.Errorf("%s: init container %s = %v, want serve's %v", where, k, ic[k], v.serve[k])
			}
		}
		for _, name := range []string{"CHIMPORT_CONFIG", v.stateVar} {
			if e, se := envVar(ic, name), envVar(v.serve, name); e == nil || !reflect.DeepEqual(e, se) {
				t.Errorf("%s: init container env %s = %v, want serve's %v", where, name, e, se)
			}
		}
	})

	// The state URL (with its password) comes from a Secret's key and is
	// written in no manifest.
	t.Run("state from a Secret", func(t *testing.T) {
		secrets := definedNames(v.objs)["Secret"]
		for _, c := range append([]map[string]any{v.serve}, v.inits...) {
			cw := fmt.Sprintf("%s: container %v", where, c["name"])
			e := envVar(c, v.stateVar)
			if e == nil {
				t.Errorf("%s: env %s (the config's state: ${%s}) is missing", cw, v.stateVar, v.stateVar)
				continue
			}
			ref := obj(dig(e, "valueFrom", "secretKeyRef"))
			if _, literal := e["value"]; literal || ref == nil {
				t.Errorf("%s: env %s must come from valueFrom.secretKeyRef, not a value", cw, v.stateVar)
				continue
			}
			name, _ := ref["name"].(string)
			key, _ := ref["key"].(string)
			if !secrets[name] {
				t.Errorf("%s: env %s: Secret %q is not defined (see secret.example.yaml)", cw, v.stateVar, name)
			}
			if _, ok := v.secret[key]; !ok {
				t.Errorf("%s: env %s: secret.example.yaml has no key %q", cw, v.stateVar, key)
			}
			if ref["optional"] == true {
				t.Errorf("%s: env %s: an optional key would start the pod without state", cw, v.stateVar)
			}
			for _, e := range list(c["env"]) {
				val, _ := dig(e, "value").(string)
				if strings.HasPrefix(val, "postgres://") || strings.HasPrefix(val, "postgresql://") ||
					(strings.HasPrefix(fmt.Sprint(dig(e, "name")), "PGPASS") && val != "") {
					t.Errorf("%s: env %v has a literal value %q; database credentials come from the Secret", cw, dig(e, "name"), val)
				}
			}
		}
		// The example Secret's URL is written nowhere else.
		example := fmt.Sprint(v.secret[v.stateVar])
		if !strings.HasPrefix(example, "postgres://") && !strings.HasPrefix(example, "postgresql://") {
			t.Errorf("secret.example.yaml: %s = %q, want an example postgres:// URL", v.stateVar, example)
		}
		paths, _ := filepath.Glob(filepath.Join("kubernetes", "*.y*ml"))
		for _, p := range paths {
			if strings.Contains(p, "secret.example") {
				continue
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), example) {
				t.Errorf("%s holds the example Secret's state URL; it belongs in the Secret only", p)
			}
		}
	})

	// Each replica leases connections under its own worker id: the pod's
	// name, which Kubernetes puts in $(POD_NAME) for the args.
	t.Run("worker id per pod", func(t *testing.T) {
		pods := []string{"chimport-5d8f7c9b4-x2kqp", "chimport-5d8f7c9b4-7hzjt", "chimport-6b7c8d9f5-m4n8w"}
		ids := map[string]string{}
		for _, pod := range pods {
			id, ok := workerID(podArgs(v.serve, pod))
			switch {
			case !ok:
				t.Fatalf("%s: args %v have no --worker-id; give each pod its own (the pod name, through the downward API)", where, v.serve["args"])
			case id != pod:
				t.Errorf("%s: in pod %s, --worker-id is %q, want the pod name", where, pod, id)
			case ids[id] != "":
				t.Errorf("%s: pods %s and %s share worker id %q", where, ids[id], pod, id)
			}
			ids[id] = pod
		}
	})

	t.Run("service", func(t *testing.T) {
		svc := inFile(t, v.objs, postgresDeploymentFile, "Service")
		if want := inFile(t, v.objs, "deployment-serve.yaml", "Service"); !reflect.DeepEqual(svc.m, want.m) {
			t.Errorf("%s: the Service differs from deployment-serve.yaml's; they are one Service", svc.file)
		}
	})
}

// TestKubernetesPostgresConfig: configmap-postgres.yaml is configmap.yaml
// with PostgreSQL state, and nothing else changed.
func TestKubernetesPostgresConfig(t *testing.T) {
	v := loadPostgresVariant(t)
	url := "postgres://chimport:x@db.internal:5432/chimport?sslmode=require"
	pg, err := parseConfig(v.config, v.env(url))
	if err != nil {
		t.Fatalf("%s: %v", postgresConfigMapFile, err)
	}
	if pg.State != url {
		t.Errorf("%s: state = %q, want $%s's %q", postgresConfigMapFile, pg.State, v.stateVar, url)
	}
	sqliteText, _ := dig(inFile(t, v.objs, "configmap.yaml", "ConfigMap").m, "data", "chimport.yaml").(string)
	sqlite, err := parseConfig(sqliteText, v.env(url))
	if err != nil {
		t.Fatalf("configmap.yaml: %v", err)
	}
	pg.State, sqlite.State = "", ""
	if d := cmp.Diff(sqlite, pg); d != "" {
		t.Errorf("%s and configmap.yaml differ in more than state (-configmap.yaml +%s):\n%s", postgresConfigMapFile, postgresConfigMapFile, d)
	}
}

// TestKubernetesPostgresOnServer runs the variant's config against a real
// PostgreSQL server as its pods do: serve alone is refused on an empty
// schema; every replica's init container runs `chimport init` at once and
// they all succeed, once creating; init again changes nothing; then each
// replica opens the store and they share the connections' leases under
// their worker ids.
func TestKubernetesPostgresOnServer(t *testing.T) {
	v := loadPostgresVariant(t)
	cfg, err := parseConfig(v.config, v.env(pgtest.URL(t)))
	if err != nil {
		t.Fatalf("%s: %v", postgresConfigMapFile, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Without init, serve would not start.
	if s, err := state.Open(ctx, cfg.State); !errors.Is(err, postgres.ErrNotInitialised) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open before init: %v, want ErrNotInitialised", err)
	}

	// The replicas' init containers, all at once.
	replicas, _ := dig(v.deployment.m, "spec", "replicas").(int)
	if replicas < 2 {
		t.Fatalf("replicas = %d", replicas)
	}
	reports := make([]state.InitReport, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { reports[i], errs[i] = state.Init(ctx, cfg.State) })
	}
	wg.Wait()
	var created int
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("init in pod %d: %v", i, errs[i])
		}
		if len(reports[i].Created) > 0 {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d concurrent inits created the schema, want 1: %+v", created, reports)
	}
	// A pod restarting runs init again: nothing to do.
	for range 2 {
		r, err := state.Init(ctx, cfg.State)
		if err != nil {
			t.Fatalf("init again: %v", err)
		}
		if len(r.Created) != 0 || len(r.Existing) == 0 {
			t.Errorf("init again: %+v, want only Existing", r)
		}
	}

	// Each replica opens the store and claims every connection under its
	// worker id; one claim per connection wins.
	pods := make([]string, replicas)
	for i := range pods {
		pods[i] = fmt.Sprintf("chimport-5d8f7c9b4-pod%02d", i)
	}
	stores := make([]state.Store, len(pods))
	for i := range pods {
		if stores[i], err = state.Open(ctx, cfg.State); err != nil {
			t.Fatalf("open in pod %s: %v", pods[i], err)
		}
		defer stores[i].Close()
	}
	now := time.Now()
	for _, conn := range cfg.Connections {
		var winners []state.Lease
		for i, pod := range pods {
			id, ok := workerID(podArgs(v.serve, pod))
			if !ok {
				t.Fatal("no --worker-id")
			}
			l, err := stores[i].ClaimLease(ctx, conn.Name, id, now, 2*time.Minute)
			var held *state.LeaseHeldError
			switch {
			case err == nil:
				winners = append(winners, l)
			case errors.As(err, &held):
				if len(winners) == 0 || held.Owner != winners[0].Owner {
					t.Errorf("%s: pod %s was refused for %q, want the first claimer", conn.Name, pod, held.Owner)
				}
			default:
				t.Fatalf("%s: claim in pod %s: %v", conn.Name, pod, err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%s: %d replicas hold the lease, want 1", conn.Name, len(winners))
		}
		// A stopping pod releases it, and another replica takes over.
		if err := stores[0].ReleaseLease(ctx, winners[0]); err != nil {
			t.Fatal(err)
		}
		id, _ := workerID(podArgs(v.serve, pods[1]))
		l, err := stores[1].ClaimLease(ctx, conn.Name, id, now, 2*time.Minute)
		if err != nil || l.Token <= winners[0].Token {
			t.Errorf("%s: claim after release: %+v, %v; want a larger token than %d", conn.Name, l, err, winners[0].Token)
		}
	}
}

// envVar is the container's env entry name, or nil.
func envVar(c map[string]any, name string) map[string]any {
	for _, e := range list(c["env"]) {
		if dig(e, "name") == name {
			return obj(e)
		}
	}
	return nil
}

// podArgs is the container's args as the kubelet passes them in a pod
// called podName: $(VAR) becomes the container's env var VAR when it has a
// literal value or is the pod's name (downward API, metadata.name), $$ is
// a $, and any other reference stays as written.
func podArgs(c map[string]any, podName string) []string {
	vars := map[string]string{}
	for _, e := range list(c["env"]) {
		name, _ := dig(e, "name").(string)
		if val, ok := dig(e, "value").(string); ok {
			vars[name] = val
		} else if dig(e, "valueFrom", "fieldRef", "fieldPath") == "metadata.name" {
			vars[name] = podName
		}
	}
	var out []string
	for _, a := range list(c["args"]) {
		s := fmt.Sprint(a)
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			if s[i] != '$' || i+1 == len(s) {
				b.WriteByte(s[i])
				continue
			}
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if end := strings.IndexByte(s[i:], ')'); s[i+1] == '(' && end > 0 {
				if val, ok := vars[s[i+2:i+end]]; ok {
					b.WriteString(val)
					i += end
					continue
				}
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
	}
	return out
}

// workerID is serve's --worker-id in args.
func workerID(args []string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--worker-id="); ok {
			return v, true
		}
		if a == "--worker-id" && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}
