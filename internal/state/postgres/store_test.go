package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/postgres"
	"github.com/chimport/chimport/internal/state/storetest"
)

var t0 = time.Date(2024, 3, 10, 9, 30, 15, 123456789, time.UTC)

// Init makes the schema once and then finds it; deploy scripts run it
// every time.
func TestInitTwiceIsIdempotent(t *testing.T) {
	u := pgtest.URL(t)
	first := initStore(t, u)
	if len(first.Created) != 1 || len(first.Existing) != 0 || !strings.Contains(first.Created[0], "schema version 1") {
		t.Errorf("first init = %+v, want one created schema at version 1", first)
	}
	second := initStore(t, u)
	if len(second.Created) != 0 || len(second.Existing) != 1 {
		t.Errorf("second init = %+v, want the schema found, nothing created", second)
	}
	s := openStore(t, u).(*postgres.Store)
	if n, err := s.Count(context.Background(), "SELECT count(*) FROM schema_version"); err != nil || n != 1 {
		t.Errorf("schema_version rows = %d, %v; want 1", n, err)
	}
	for _, r := range append(first.Created, second.Existing...) {
		if strings.Contains(r, pgtest.Start(t).Password) {
			t.Errorf("init report %q shows the password", r)
		}
	}
}

// Workers starting together may all run init: one makes the schema, the
// others find it, and none fails.
func TestConcurrentInits(t *testing.T) {
	u := pgtest.URL(t)
	var wg sync.WaitGroup
	reports := make([]state.InitReport, 6)
	errs := make([]error, len(reports))
	for i := range reports {
		wg.Go(func() { reports[i], errs[i] = state.Init(context.Background(), u) })
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("init %d: %v", i, err)
		}
		created += len(reports[i].Created)
	}
	if created != 1 {
		t.Errorf("%d inits reported creating the schema, want 1", created)
	}
	openStore(t, u)
}

// Open never makes tables: a typo in the schema must not start over from
// an empty state somewhere new.
func TestOpenBeforeInit(t *testing.T) {
	u := pgtest.URL(t)
	_, err := state.Open(context.Background(), u)
	if !errors.Is(err, state.ErrUnusable) || !errors.Is(err, postgres.ErrNotInitialised) {
		t.Fatalf("Open before init: %v, want ErrUnusable and ErrNotInitialised", err)
	}
	if !strings.Contains(err.Error(), "run `chimport init`") {
		t.Errorf("error %q does not say to run chimport init", err)
	}
	if err := state.Check(context.Background(), u); !errors.Is(err, postgres.ErrNotInitialised) {
		t.Errorf("Check before init: %v, want ErrNotInitialised", err)
	}
}

// A schema a newer chimport wrote is refused by Open and by Init alike.
func TestRefusesNewerSchema(t *testing.T) {
	u := pgtest.URL(t)
	initStore(t, u)
	s := openStore(t, u).(*postgres.Store)
	if err := s.Exec(context.Background(), "UPDATE schema_version SET version = $1", postgres.Version+1); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Open(context.Background(), u); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("Open: %v, want ErrSchemaTooNew", err)
	}
	if _, err := state.Init(context.Background(), u); !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Errorf("Init: %v, want ErrSchemaTooNew", err)
	}
}

// Each schema is a store of its own, and without ?schema= the tables go
// to "chimport".
func TestSchemasAreSeparate(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	a, b := pgtest.URL(t), pgtest.URL(t)
	initStore(t, a)
	initStore(t, b)
	sa, sb := openStore(t, a), openStore(t, b)
	if err := sa.StartRun(ctx, "news", t0); err != nil {
		t.Fatal(err)
	}
	if all, err := sb.Connections(ctx); err != nil || len(all) != 0 {
		t.Errorf("the other schema holds %v, %v; want nothing", all, err)
	}
	u, err := url.Parse(srv.URL("ignored"))
	if err != nil {
		t.Fatal(err)
	}
	u.RawQuery = "sslmode=disable"
	initStore(t, u.String())
	d := openStore(t, u.String()).(*postgres.Store)
	if path, err := d.Show(ctx, "search_path"); err != nil || path != postgres.DefaultSchema {
		t.Errorf("search_path = %q, %v; want %q", path, err, postgres.DefaultSchema)
	}
}

// A wrong password fails Open at once, saying what to check, and no
// error holds the password given or the real one.
func TestWrongPassword(t *testing.T) {
	srv := pgtest.Start(t)
	u := pgtest.URL(t)
	initStore(t, u)
	wrong := strings.Replace(u, srv.Password, "Wrong-"+srv.Password, 1)
	for name, call := range map[string]func() error{
		"open":  func() error { _, err := state.Open(context.Background(), wrong); return err },
		"init":  func() error { _, err := state.Init(context.Background(), wrong); return err },
		"check": func() error { return state.Check(context.Background(), wrong) },
	} {
		err := call()
		if !errors.Is(err, state.ErrUnusable) {
			t.Errorf("%s: %v, want ErrUnusable", name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "password authentication failed") || !strings.Contains(msg, "check the user and password") {
			t.Errorf("%s: %q does not say the password was refused and what to check", name, msg)
		}
		if strings.Contains(msg, srv.Password) {
			t.Errorf("%s: error shows a password: %q", name, msg)
		}
		if !strings.Contains(msg, "database chimport on 127.0.0.1:") {
			t.Errorf("%s: %q does not name the database and server", name, msg)
		}
	}
}

// pgx reads libpq's environment: a URL without the password takes it
// from PGPASSWORD.
func TestPasswordFromEnvironment(t *testing.T) {
	srv := pgtest.Start(t)
	u := pgtest.URL(t)
	t.Setenv("PGPASSWORD", srv.Password)
	bare := strings.Replace(u, ":"+srv.Password+"@", "@", 1)
	if bare == u {
		t.Fatalf("no password to take out of %s", u)
	}
	initStore(t, bare)
	openStore(t, bare)
}

// Sessions get the statement and idle-transaction timeouts unless the URL
// sets its own.
func TestSessionDefaults(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	initStore(t, u)
	s := openStore(t, u).(*postgres.Store)
	for setting, want := range map[string]string{
		"statement_timeout":                   "30s",
		"idle_in_transaction_session_timeout": "1min",
		"application_name":                    "chimport",
	} {
		if got, err := s.Show(ctx, setting); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", setting, got, err, want)
		}
	}
	if n := s.MaxConns(); n != 8 {
		t.Errorf("pool size = %d, want 8", n)
	}
	o := openStore(t, u+"&statement_timeout=5000&application_name=sync-eu&pool_max_conns=3").(*postgres.Store)
	if n := o.MaxConns(); n != 3 {
		t.Errorf("pool size with pool_max_conns=3 = %d", n)
	}
	for setting, want := range map[string]string{"statement_timeout": "5s", "application_name": "sync-eu"} {
		if got, err := o.Show(ctx, setting); err != nil || got != want {
			t.Errorf("with the URL's own %s = %q, %v; want %q", setting, got, err, want)
		}
	}
}

// The form of a URL is checked without connecting, and a bad one's error
// hides the password.
func TestURLValidation(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"postgres://u:secret@db/x?schema=Bad-Name", `schema "Bad-Name"`},
		{"postgres://u:secret@db/x?schema=a&schema=b", `"schema" given more than once`},
		{"postgres://u:secret@db/x?schema=" + strings.Repeat("a", 64), "at most 63"},
		{"postgres://u:secret@db/x?pool_max_conns=lots", "pool_max_conns"},
		{"postgres://u:secret@db/x?schema=pg_temp", "PostgreSQL's own"},
		{"postgres://u:s3cr3t?secret@db:bad/x", "cannot parse the URL"},
		{"postgres://u@db:bad/x?password=secret", "cannot parse the URL"},
	} {
		err := state.ValidateURL(tt.url)
		if !errors.Is(err, state.ErrBadURL) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ValidateURL(%s) = %v, want a bad URL error with %q", tt.url, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("ValidateURL(%s): the error shows the password: %v", tt.url, err)
		}
	}
	for _, ok := range []string{
		"postgres://u:secret@db:5432/x?sslmode=require",
		"postgresql://u@db/x?schema=sync_eu&pool_max_conns=20",
		"POSTGRES://db/x",
	} {
		if err := state.ValidateURL(ok); err != nil {
			t.Errorf("ValidateURL(%s) = %v, want nil", ok, err)
		}
	}
}

// PostgreSQL's text holds no NUL bytes and no invalid UTF-8; a target's
// answer may hold both, and a refusal must still be kept.
func TestTextTheServerCannotHold(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	initStore(t, u)
	s := openStore(t, u)
	var id state.MemberID
	id[0] = 7
	r := state.Rejection{Member: id, Key: "k", Status: 422, Reason: "bad\x00value", LastAttempt: t0}
	if err := s.RecordRejections(ctx, "news", []state.Rejection{r}); err != nil {
		t.Fatal(err)
	}
	log, err := s.RejectedLog(ctx, "news")
	if err != nil || len(log) != 1 || log[0].Reason != "bad\uFFFDvalue" {
		t.Fatalf("rejected log = %+v, %v; want the reason with U+FFFD for the NUL", log, err)
	}
	if err := s.FailRun(ctx, state.Run{Connection: "news", Finished: t0, Result: state.ResultFailed, Error: "target said \x00\xff"}); err != nil {
		t.Fatal(err)
	}
	st, err := s.Connection(ctx, "news")
	if err != nil || st.LastError != "target said \uFFFD\uFFFD" {
		t.Errorf("last error = %q, %v", st.LastError, err)
	}
}

// Every append trims its log to the newest entries.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	initStore(t, u)
	s := openStore(t, u).(*postgres.Store)
	s.SetRetention(3, 2)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := s.CompleteRun(ctx, state.Run{Connection: "news", Finished: at, WindowEnd: at, Result: state.ResultOK}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddFailure(ctx, state.Failure{Connection: "news", At: at, WindowEnd: at.Add(time.Hour), Error: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.Runs(ctx, "news", 10)
	if err != nil || len(runs) != 3 || !runs[0].Finished.Equal(t0.Add(4*time.Minute)) {
		t.Errorf("runs = %d (%v), want the newest 3", len(runs), err)
	}
	if n, err := s.Count(ctx, "SELECT count(*) FROM failures"); err != nil || n != 2 {
		t.Errorf("failures kept = %d, %v; want 2", n, err)
	}
}

// The URL's query reaches the server as written: a space in libpq's
// options= stays a space.
func TestQueryPassesThrough(t *testing.T) {
	u := pgtest.URL(t)
	initStore(t, u)
	s := openStore(t, u+"&options=-c%20work_mem%3D8MB").(*postgres.Store)
	if got, err := s.Show(context.Background(), "work_mem"); err != nil || got != "8MB" {
		t.Errorf("work_mem = %q, %v; want the options= setting 8MB", got, err)
	}
}

// Behind PgBouncer a pool runs in simple-protocol mode, where results
// come back as text: every promise still holds.
func TestPostgresStoreSimpleProtocol(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (state.Store, func() state.Store) {
		url := pgtest.URL(t) + "&default_query_exec_mode=simple_protocol"
		initStore(t, url)
		return openStore(t, url), func() state.Store { return openStore(t, url) }
	})
}

// Workers whose user may only read and write the tables run init at
// start-up too: with the schema up to date, it changes nothing and needs
// no privilege to create.
func TestInitByAWorkerWithoutCreate(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	u := pgtest.URL(t)
	initStore(t, u)
	admin := openStore(t, u).(*postgres.Store)
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	schema := parsed.Query().Get("schema")
	role := "worker_" + schema
	for _, stmt := range []string{
		fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, srv.Password),
		fmt.Sprintf("GRANT CONNECT ON DATABASE %s TO %s", pgtest.Database, role),
		fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s", schema, role),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s", schema, role),
	} {
		if err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	worker := strings.Replace(u, pgtest.User+":", role+":", 1)
	report := initStore(t, worker)
	if len(report.Created) != 0 || len(report.Existing) != 1 {
		t.Errorf("init by the worker = %+v, want the schema found", report)
	}
	s := openStore(t, worker)
	if err := s.StartRun(ctx, "news", t0); err != nil {
		t.Fatalf("the worker cannot write: %v", err)
	}
}
