package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/postgres"
)

// The end-to-end tests of issue 13 for the PostgreSQL store: `chimport
// init`, `run`, `status`, `check` and two `serve` workers against the
// throwaway cluster of internal/pgtest (password authentication, a schema
// of its own per test), and the simulators. Every output of every command
// is searched for the cluster's password, which is random per test binary.

// pgSchema is the schema a pgtest URL names.
func pgSchema(t *testing.T, stateURL string) string {
	t.Helper()
	u, err := url.Parse(stateURL)
	must(t, err)
	s := u.Query().Get("schema")
	if s == "" {
		t.Fatalf("%s names no schema", state.RedactPassword(stateURL))
	}
	return s
}

// pgAdmin is a connection to the test database as its superuser, beside
// chimport: for a test to read what the store wrote (the leases) or to
// change it behind chimport's back (a newer schema version).
func pgAdmin(t *testing.T) *pgx.Conn {
	t.Helper()
	srv := pgtest.Start(t)
	u := url.URL{Scheme: "postgres", User: url.UserPassword(pgtest.User, srv.Password),
		Host: net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), Path: "/" + pgtest.Database, RawQuery: "sslmode=disable"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	must(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// pgNoPassword fails the test if any output holds the cluster's password
// (a wrong password the tests make holds it too).
func pgNoPassword(t *testing.T, outputs ...string) {
	t.Helper()
	pw := pgtest.Start(t).Password
	for _, out := range outputs {
		if i := strings.Index(out, pw); i >= 0 {
			t.Errorf("an output holds the PostgreSQL password: ...%s...", strings.ReplaceAll(out[max(0, i-80):i], "\n", `\n`))
		}
	}
}

// chimportProcess runs chimport in a process of its own, as a person or a
// scheduler does, with vars added to the environment, and returns its
// exit code and what it printed.
func chimportProcess(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CHIMPORT_TEST_RUN_MAIN=1",
		// A binary built with -race sleeps 1 s on exit otherwise.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("chimport %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// pgWhere is how init names a schema of the test cluster.
func pgWhere(t *testing.T, schema string) string {
	t.Helper()
	srv := pgtest.Start(t)
	return fmt.Sprintf("PostgreSQL schema %s in database %s on %s as user %s (schema version %d)",
		schema, pgtest.Database, net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)), pgtest.User, postgres.Version)
}

// TestPostgresInitIsIdempotent: `chimport init` on a PostgreSQL URL
// creates the schema's tables and says so; run again it finds them and
// says they exist; both exit 0, and the store is then usable (check
// passes). Four inits started at once on a fresh schema all succeed, and
// exactly one of them created it.
func TestPostgresInitIsIdempotent(t *testing.T) {
	f := newFixture(t, 10)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	stateURL := pgtest.URL(t)
	cfg := f.configWithState(t, stateURL, "")
	where := pgWhere(t, pgSchema(t, stateURL))
	var outputs []string
	keep := func(r result) result {
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	first := keep(chimportProcess(t, vars, "init", "--config", cfg, "--log-level", "debug"))
	if first.code != exitOK || first.stdout != "created  "+where+"\n" {
		t.Fatalf("first init: exit %d\nstdout: %q\nstderr: %s\nwant exit 0 and %q", first.code, first.stdout, first.stderr, "created  "+where+"\n")
	}
	second := keep(chimportProcess(t, vars, "init", "--config", cfg, "--log-level", "debug"))
	if second.code != exitOK || second.stdout != "exists   "+where+"\n" {
		t.Fatalf("second init: exit %d\nstdout: %q\nstderr: %s\nwant exit 0 and %q", second.code, second.stdout, second.stderr, "exists   "+where+"\n")
	}
	if r := keep(chimportProcess(t, vars, "check", "--config", cfg)); r.code != exitOK {
		t.Errorf("check after init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Concurrent inits on a schema nobody made yet: one creates it, the
	// others wait for it (the advisory lock) and find it made.
	fresh := pgtest.URL(t)
	freshCfg := f.configWithState(t, fresh, "")
	freshWhere := pgWhere(t, pgSchema(t, fresh))
	results := make(chan result, 4)
	for range 4 {
		go func() { results <- chimportProcess(t, vars, "init", "--config", freshCfg) }()
	}
	created := 0
	for range 4 {
		r := keep(<-results)
		switch {
		case r.code == exitOK && r.stdout == "created  "+freshWhere+"\n":
			created++
		case r.code == exitOK && r.stdout == "exists   "+freshWhere+"\n":
		default:
			t.Errorf("concurrent init: exit %d\nstdout: %q\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	}
	if created != 1 {
		t.Errorf("%d of 4 concurrent inits said they created the schema, want exactly 1", created)
	}
	pgNoPassword(t, outputs...)
}

// TestPostgresRunsKeepTheTargetInSync: a first sync, then incremental
// runs on PostgreSQL state (on a step clock, so each run's window holds
// the changes before it without waiting): 30 changes cost at most 4
// Mailchimp requests and are delivered once each; a run with nothing new
// makes at most 4 and no target request; members deleted for good or
// moved to a new address leave the target, which ends a strict mirror of
// the audience; `status` shows the connection with its roster.
func TestPostgresRunsKeepTheTargetInSync(t *testing.T) {
	x := newRefusalsOn(t, 3000, pgtest.URL(t)) // its target refuses nobody here
	if r := x.cli(t, "init"); r.code != exitOK {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	code, sum := x.run(t)
	if code != exitOK || !sum.Completed || sum.Delivered != 3000 || sum.Members != 3000 {
		t.Fatalf("first sync: exit %d, %+v; want completed with 3000 delivered and in the roster", code, sum)
	}
	if wrong := x.wrong(); len(wrong) > 0 {
		t.Fatalf("after the first sync %d members are missing or stale in the target", len(wrong))
	}

	x.change(t, "Incremental", x.ids(100, 130)...)
	x.sim.ResetStats()
	x.target.ResetStats()
	code, sum = x.run(t)
	requests := x.sim.Stats().Requests
	t.Logf("incremental run with 30 changes: %d Mailchimp requests, %d target requests, %d delivered", requests, x.target.Stats().Requests, sum.Delivered)
	if code != exitOK || !sum.Completed || sum.Delivered != 30 || sum.Read != 30 {
		t.Errorf("incremental run: exit %d, %+v; want completed with the 30 changes read and delivered", code, sum)
	}
	if requests > 4 || sum.Requests != int64(requests) {
		t.Errorf("incremental run with 30 changes made %d Mailchimp requests (it counts %d), want at most 4", requests, sum.Requests)
	}
	if wrong := x.wrong(); len(wrong) > 0 {
		t.Errorf("after the incremental run %d members are missing or stale in the target", len(wrong))
	}

	x.sim.ResetStats()
	x.target.ResetStats()
	code, sum = x.run(t)
	if code != exitOK || sum.Delivered != 0 {
		t.Errorf("no-change run: exit %d, %+v", code, sum)
	}
	if got := x.sim.Stats().Requests; got > 4 {
		t.Errorf("no-change run made %d Mailchimp requests, want at most 4", got)
	}
	if got := x.target.Stats().Requests; got != 0 {
		t.Errorf("no-change run made %d target requests, want 0", got)
	}

	// Two members are deleted for good, one moves to a new address.
	gone := x.ids(200, 203)
	must(t, x.sim.Delete(outageList, gone[0]))
	must(t, x.sim.Delete(outageList, gone[1]))
	_, err := x.sim.ChangeAddress(outageList, gone[2], "moved.postgres@example.org")
	must(t, err)
	code, sum = x.run(t)
	rep := mirrorReport(t, &fixture{sim: x.sim, target: x.target})
	if code != exitOK || sum.Tombstoned != 3 || sum.Members != int64(rep.Live) {
		t.Errorf("run after 3 members left: exit %d, %+v; want 3 tombstoned and %d members", code, sum, rep.Live)
	}
	if !rep.OK() {
		t.Errorf("the target is not a mirror of the audience: %s", rep)
	}

	st := x.status(t)
	if st.Name != "newsletter" || st.Watermark == nil || st.LagSeconds == nil || st.LastError != "" ||
		st.Members == nil || *st.Members != int64(rep.Live) || st.TombstonesTotal != 3 || st.LastReconcile == nil {
		t.Errorf("status --json = %+v, want newsletter with a watermark, %d members, 3 tombstones and a reconcile", st, rep.Live)
	}
	table := x.cli(t, "status")
	if table.code != exitOK || !strings.Contains(table.stdout, "MEMBERS") ||
		!regexp.MustCompile(`(?m)^newsletter\s+\d{4}-\d\d-\d\dT\S+\s+.*\s`+strconv.Itoa(rep.Live)+`\s+3\s+0\s`).MatchString(table.stdout) {
		t.Errorf("status table: exit %d\n%s", table.code, table.stdout)
	}
	x.noSecrets(t)
	pgNoPassword(t, x.outputs...)
}

// stallGate stands between one worker and the Mailchimp simulator. Once
// stalled, it holds every request until its client goes away: that
// worker's runs hang part-way, each holding its connection's lease (and
// renewing it) until the worker dies.
type stallGate struct {
	next    http.Handler
	stalled atomic.Bool
	held    atomic.Int64
}

func (g *stallGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.stalled.Load() {
		g.held.Add(1)
		hold(w, r)
		return
	}
	g.next.ServeHTTP(w, r)
}

// pgLease is a connection's lease as the store keeps it.
type pgLease struct {
	owner   string
	token   int64
	expires time.Time
}

// readLeases reads every connection's lease from the store's table: no
// command shows them, and a probing claim would take them.
func readLeases(t *testing.T, conn *pgx.Conn, schema string) map[string]pgLease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := conn.Query(ctx, `SELECT name, lease_owner, lease_token, coalesce(lease_expires, 0) FROM `+
		pgx.Identifier{schema, "connections"}.Sanitize())
	must(t, err)
	out := map[string]pgLease{}
	for rows.Next() {
		var name string
		var l pgLease
		var expires int64
		must(t, rows.Scan(&name, &l.owner, &l.token, &expires))
		if expires != 0 {
			l.expires = time.Unix(0, expires)
		}
		out[name] = l
	}
	must(t, rows.Err())
	return out
}

// TestTwoWorkersShareFourConnectionsOnPostgres: two serve processes on one
// PostgreSQL schema keep four connections (every 2 s) in sync. Then
// Mailchimp stops answering worker A (a gate in front of the simulator
// holds its requests), so A's runs hang part-way holding their leases;
// A is killed with SIGKILL. Worker B claims each of A's connections only
// once A's lease has expired, then keeps all four in sync alone; SIGTERM
// stops it with exit 0. Every watermark keeps its promise, status shows
// the four connections, and no output holds the password.
func TestTwoWorkersShareFourConnectionsOnPostgres(t *testing.T) {
	stateURL := pgtest.URL(t)
	schema := pgSchema(t, stateURL)
	x := newLists(t, stateURL, 4, "2s", "")
	vars := map[string]string{"MAILCHIMP_API_KEY": x.sim.APIKey()}
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+x.sim.APIKey())
	var outputs []string
	if r := chimportProcess(t, vars, "init", "--config", x.cfg); r.code != exitOK {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	} else {
		outputs = append(outputs, r.stdout, r.stderr)
	}
	gate := &stallGate{next: x.sim}
	gateSrv := httptest.NewServer(gate)
	t.Cleanup(gateSrv.Close)
	const ttl = 3 * time.Second
	a := startWorker(t, x.configVia(t, gateSrv.URL+"/3.0"), env, "--lease-ttl", ttl.String(), "--lag-check", "500ms", "--worker-id", "worker-a")
	b := startWorker(t, x.cfg, env, "--lease-ttl", ttl.String(), "--lag-check", "500ms", "--worker-id", "worker-b")
	defer func() { pgNoPassword(t, append(outputs, a.out.String(), b.out.String())...) }()

	waitUntil(t, "the first syncs", 60*time.Second, x.inSync)
	x.change(t, 1)
	waitUntil(t, "round 1 to arrive", 60*time.Second, x.inSync)
	waitUntil(t, "runs by both workers", 30*time.Second, func() bool {
		_, fromA := a.get(t, "/metrics")
		_, fromB := b.get(t, "/metrics")
		return sumSeries(fromA, "chimport_runs_total", "result", "ok") > 0 && sumSeries(fromB, "chimport_runs_total", "result", "ok") > 0
	})

	// Mailchimp stops answering A; once A hangs in a run, it dies.
	admin := pgAdmin(t)
	gate.stalled.Store(true)
	x.change(t, 2)
	waitUntil(t, "worker A to hang in a run, holding its lease", 30*time.Second, func() bool {
		if gate.held.Load() == 0 {
			return false
		}
		for _, l := range readLeases(t, admin, schema) {
			if l.owner == "worker-a" && l.expires.After(time.Now()) {
				return true
			}
		}
		return false
	})
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	a.exited <- <-a.exited // wait, and leave the news for the cleanup
	killed := time.Now()
	held := map[string]pgLease{}
	for name, l := range readLeases(t, admin, schema) {
		if l.owner == "worker-a" {
			held[name] = l
		}
	}
	if len(held) == 0 {
		t.Fatal("worker A held no lease when it was killed")
	}

	// B takes each of them over, but not before A's lease expires.
	taken := map[string]time.Time{}
	waitUntil(t, "worker B to claim the connections A held", 30*time.Second, func() bool {
		now := readLeases(t, admin, schema)
		seen := time.Now()
		for name, l := range held {
			if _, ok := taken[name]; !ok && now[name].token > l.token {
				taken[name] = seen
			}
		}
		return len(taken) == len(held)
	})
	for _, name := range slices.Sorted(maps.Keys(held)) {
		l, at := held[name], taken[name]
		t.Logf("%s: worker A's lease (token %d) ran out %s after the kill; worker B claimed it %s after the kill, %s after it ran out",
			name, l.token, l.expires.Sub(killed).Round(time.Millisecond), at.Sub(killed).Round(time.Millisecond), at.Sub(l.expires).Round(time.Millisecond))
		if at.Before(l.expires) {
			t.Errorf("%s was claimed by worker B at %s, before worker A's lease ran out at %s", name, at.Format(time.RFC3339Nano), l.expires.Format(time.RFC3339Nano))
		}
		if l.expires.Sub(killed) > ttl {
			t.Errorf("%s: worker A's lease ran out %s after the kill, more than the %s TTL", name, l.expires.Sub(killed), ttl)
		}
		if late := at.Sub(l.expires); late > 2*ttl {
			t.Errorf("%s: worker B claimed it %s after worker A's lease ran out, want within %s", name, late, 2*ttl)
		}
	}
	waitUntil(t, "round 2 after worker A was killed", 60*time.Second, x.inSync)
	x.change(t, 3)
	waitUntil(t, "round 3", 60*time.Second, x.inSync)

	b.terminate(t)

	store, err := state.Open(context.Background(), stateURL)
	must(t, err)
	t.Cleanup(func() { store.Close() })
	x.checkWatermarksHonest(t, store)

	r := chimportProcess(t, vars, "status", "--json", "--config", x.cfg)
	outputs = append(outputs, r.stdout, r.stderr)
	var rows []connectionStatus
	if err := json.Unmarshal([]byte(r.stdout), &rows); r.code != exitOK || err != nil || len(rows) != len(x.lists) {
		t.Fatalf("status --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	for i, row := range rows {
		if row.Name != "conn-"+x.lists[i] || row.Watermark == nil || row.LagSeconds == nil || row.Members == nil || *row.Members != 1500 || row.LastError != "" {
			t.Errorf("status --json row %d = %+v, want conn-%s with a watermark, a lag and 1500 members", i, row, x.lists[i])
		}
	}
	table := chimportProcess(t, vars, "status", "--config", x.cfg)
	outputs = append(outputs, table.stdout, table.stderr)
	for _, id := range x.lists {
		if !strings.Contains(table.stdout, "conn-"+id) {
			t.Errorf("the status table lacks conn-%s:\n%s", id, table.stdout)
		}
	}
}

// TestPostgresWrongPasswordIsMasked: with a wrong password in the state
// URL (written in it, percent-escaped with characters that end a URL's
// parts, or from the environment), run, check, status, init, rejected and
// serve exit 2 before anything else, with the state URL shown as it was
// written but its password masked, the server's refusal and what to
// check; no output holds the password.
func TestPostgresWrongPasswordIsMasked(t *testing.T) {
	srv := pgtest.Start(t)
	f := newFixture(t, 10)
	schema := pgSchema(t, pgtest.URL(t))
	host := net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))
	query := "sslmode=disable&schema=" + schema
	tests := []struct {
		name, stateURL string
		vars           map[string]string
		redacted       string
	}{
		{
			name:     "in the URL",
			stateURL: "postgres://" + pgtest.User + ":Wr0ng" + srv.Password + "@" + host + "/" + pgtest.Database + "?" + query,
			redacted: "postgres://" + pgtest.User + ":REDACTED@" + host + "/" + pgtest.Database + "?" + query,
		},
		{
			name: "escaped, postgresql://",
			stateURL: (&url.URL{Scheme: "postgresql", User: url.UserPassword(pgtest.User, "Wr0ng@/:?#"+srv.Password),
				Host: host, Path: "/" + pgtest.Database, RawQuery: query}).String(),
			redacted: "postgresql://" + pgtest.User + ":REDACTED@" + host + "/" + pgtest.Database + "?" + query,
		},
		{
			name:     "from the environment",
			stateURL: "postgres://" + pgtest.User + ":${STATE_PASSWORD}@" + host + "/" + pgtest.Database + "?" + query,
			vars:     map[string]string{"STATE_PASSWORD": "Wr0ng" + srv.Password + "Env"},
			redacted: "postgres://" + pgtest.User + ":REDACTED@" + host + "/" + pgtest.Database + "?" + query,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
			for k, v := range tt.vars {
				vars[k] = v
			}
			cfg := f.configWithState(t, tt.stateURL, "")
			for _, args := range [][]string{{"run"}, {"check"}, {"status"}, {"init"}, {"rejected"}, {"serve", "--listen", "127.0.0.1:0"}} {
				r := chimportProcess(t, vars, append(args, "--config", cfg, "--log-level", "debug", "--log-format", "json")...)
				what := args[0]
				if r.code != exitUsage {
					t.Errorf("%s: exit %d, want 2\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
				}
				for _, want := range []string{" " + tt.redacted + ": ", "password authentication failed", "check the user and password"} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("%s: stderr lacks %q:\n%s", what, want, r.stderr)
					}
				}
				if strings.Contains(r.stderr, usageHint) {
					t.Errorf("%s: a wrong password got the usage hint:\n%s", what, r.stderr)
				}
				if strings.Contains(r.stdout+r.stderr, "Wr0ng") {
					t.Errorf("%s: the output holds the start of the wrong password:\nstdout: %s\nstderr: %s", what, r.stdout, r.stderr)
				}
				pgNoPassword(t, r.stdout, r.stderr)
			}
			if n := f.sim.Stats().Requests + f.target.Stats().Requests; n != 0 {
				t.Errorf("%d requests reached Mailchimp or the target", n)
			}
		})
	}

	// A URL with the password that does not parse is a config error
	// naming state:, and it does not quote the password either.
	t.Run("a URL that does not parse", func(t *testing.T) {
		vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
		cfg := f.configWithState(t, "postgres://"+pgtest.User+":Wr0ng"+srv.Password+"@"+srv.Host+":notaport/"+pgtest.Database+"?"+query, "")
		for _, cmd := range []string{"run", "check", "init"} {
			r := runCLI(t, context.Background(), vars, cmd, "--config", cfg)
			if r.code != exitUsage || !strings.Contains(r.stderr, "state: ") || !strings.Contains(r.stderr, "invalid port") {
				t.Errorf("%s: exit %d, stderr %q; want 2 and a config error naming state: and the port", cmd, r.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "Wr0ng") {
				t.Errorf("%s: the output holds the start of the password:\n%s", cmd, r.stderr)
			}
			pgNoPassword(t, r.stdout, r.stderr)
		}
	})
}

// TestPostgresUninitialisedSchemaIsRefused: on a schema without
// chimport's tables, run, check and status exit 2 with one message that
// says to run `chimport init`, make no request and create nothing; after
// init, run syncs. A schema a newer chimport wrote is refused by run,
// check, status and init alike.
func TestPostgresUninitialisedSchemaIsRefused(t *testing.T) {
	f := newFixture(t, 50)
	vars := map[string]string{"MAILCHIMP_API_KEY": f.sim.APIKey(), "TARGET_API_KEY": targetAuth}
	stateURL := pgtest.URL(t)
	schema := pgSchema(t, stateURL)
	cfg := f.configWithState(t, stateURL, "")
	admin := pgAdmin(t)
	var outputs []string
	cli := func(args ...string) result {
		r := chimportProcess(t, vars, append(args, "--config", cfg)...)
		outputs = append(outputs, r.stdout, r.stderr)
		return r
	}

	run := cli("run")
	if run.code != exitUsage || !strings.Contains(run.stderr, "run `chimport init`") || !strings.Contains(run.stderr, state.RedactPassword(stateURL)) {
		t.Fatalf("run before init: exit %d, stderr %q; want 2, the state URL and a pointer to chimport init", run.code, run.stderr)
	}
	if strings.Contains(run.stderr, usageHint) {
		t.Errorf("run gave the usage hint: %q", run.stderr)
	}
	for _, cmd := range []string{"check", "status"} {
		if r := cli(cmd); r.code != exitUsage || r.stderr != run.stderr || r.stdout != "" {
			t.Errorf("%s before init: exit %d, stdout %q, stderr %q; want 2 and run's message %q", cmd, r.code, r.stdout, r.stderr, run.stderr)
		}
	}
	if n := f.sim.Stats().Requests + f.target.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached Mailchimp or the target before init", n)
	}
	var exists bool
	must(t, admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists))
	if exists {
		t.Errorf("schema %s exists before init: a command other than init created it", schema)
	}

	if r := cli("init"); r.code != exitOK {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli("run"); r.code != exitOK || f.target.Len() != 50 {
		t.Fatalf("run after init: exit %d, %d records in the target\n%s%s", r.code, f.target.Len(), r.stdout, r.stderr)
	}

	// A newer chimport upgraded the schema: this one reads none of it.
	newer := postgres.Version + 1
	_, err := admin.Exec(context.Background(), `UPDATE `+pgx.Identifier{schema, "schema_version"}.Sanitize()+` SET version = $1`, newer)
	must(t, err)
	want := fmt.Sprintf("schema %q has version %d, this build knows up to %d", schema, newer, postgres.Version)
	for _, cmd := range []string{"run", "check", "status", "init"} {
		if r := cli(cmd); r.code != exitUsage || !strings.Contains(r.stderr, "newer than this chimport") || !strings.Contains(r.stderr, want) {
			t.Errorf("%s on a newer schema: exit %d, stderr %q; want 2 and %q", cmd, r.code, r.stderr, want)
		}
	}
	pgNoPassword(t, outputs...)
}
