// Package pgtest starts the throwaway PostgreSQL cluster that chimport's
// tests run against: Debian's server binaries (`apt-get install
// postgresql`; `make test` installs them where they are missing), a
// cluster made by initdb in a temporary folder, run on a free loopback
// port, with password authentication (scram-sha-256) so that a wrong
// password fails as it would against a real server.
//
// The server refuses to run as root, so when the tests run as root it
// runs as the postgres user, which Debian's package creates. A test that
// needs it fails when it cannot start: it never skips, so CI cannot pass
// by not testing.
//
// The cluster starts once per test binary, on first use, and trades
// durability for speed (fsync off): it is thrown away at the end. A
// package that uses it runs its tests through Main, or calls Stop from
// its own TestMain.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chimport/chimport/internal/testproc"
)

// User and Database are the cluster's superuser and the database the
// tests use.
const (
	User     = "chimport"
	Database = "chimport"
)

// Server is a running cluster.
type Server struct {
	Host     string // 127.0.0.1
	Port     int
	Password string // random per test binary, so a test can look for it in output

	proc *testproc.Process
	dir  string
}

var (
	once    sync.Once
	server  *Server
	failure error
	schemas atomic.Int64
)

// Main runs the package's tests, then stops the cluster if they started it.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops the cluster, if one was started, and removes its folder.
func Stop() {
	if server == nil {
		return
	}
	server.proc.Signal(syscall.SIGINT) // PostgreSQL's fast shutdown
	select {
	case <-server.proc.Exited():
	case <-time.After(10 * time.Second):
	}
	server.proc.Kill() // and removes its log
	_ = os.RemoveAll(server.dir)
}

// Start returns the cluster, starting it on first use.
func Start(t testing.TB) *Server {
	t.Helper()
	once.Do(func() { server, failure = start() })
	if failure != nil {
		t.Fatalf("pgtest: %v (PostgreSQL's server binaries come from Debian's postgresql package; `make test` installs it when initdb is missing)", failure)
	}
	return server
}

// URL returns a `state:` URL for a schema of its own in the test
// database, so tests sharing the cluster never see each other's tables.
func URL(t testing.TB) string {
	t.Helper()
	s := Start(t)
	return s.URL(fmt.Sprintf("test%d", schemas.Add(1)))
}

// URL is the `state:` URL of schema in the test database, with the
// password.
func (s *Server) URL(schema string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(User, s.Password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + Database,
		RawQuery: url.Values{"sslmode": {"disable"}, "schema": {schema}}.Encode(),
	}
	return u.String()
}

func start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	sweep()
	dir, err := os.MkdirTemp("", folderPrefix)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	s := &Server{Host: "127.0.0.1", Password: rand.Text(), dir: dir}
	fail := func(err error) (*Server, error) {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	pwfile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	cred, err := runAs(dir, pwfile)
	if err != nil {
		return fail(err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", User, "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	// The port was free a moment ago; another test binary starting a
	// server at the same time may take it first, and then postgres
	// exits: it tries another.
	for attempt := 1; ; attempt++ {
		if s.Port, err = testproc.FreePort(); err != nil {
			return fail(err)
		}
		cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(s.Port),
			"-c", "listen_addresses="+s.Host, "-c", "unix_socket_directories=",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=400", "-c", "shared_buffers=256MB")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if s.proc, err = testproc.Start("postgres", cmd); err != nil {
			return fail(err)
		}
		err = s.ready()
		if err == nil {
			return s, nil
		}
		inUse := strings.Contains(s.proc.Log(), "Address already in use")
		s.proc.Kill()
		if !inUse || attempt == 3 {
			return fail(err)
		}
	}
}

// Each cluster's folder is named folderPrefix..., and holds ownerFile:
// the pid of the test binary that made it.
const (
	folderPrefix = "chimport-pg-"
	ownerFile    = "owner"
)

// sweep removes the folders of clusters whose test binary died without
// stopping them (killed, timed out): the server died with it, the folder
// did not. A folder without an owner file is being made, unless it is old.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), folderPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			if info, err := os.Stat(dir); err == nil && time.Since(info.ModTime()) > time.Hour {
				_ = os.RemoveAll(dir)
			}
			continue
		}
		pid, err := strconv.Atoi(string(b))
		if err == nil && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(dir)
		}
	}
}

// ready waits until the server takes connections (it listens a moment
// before it does), then creates the test database.
func (s *Server) ready() error {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	if err := s.proc.WaitListening(addr, 30*time.Second); err != nil {
		return err
	}
	admin := url.URL{Scheme: "postgres", User: url.UserPassword(User, s.Password), Host: addr,
		Path: "/postgres", RawQuery: "sslmode=disable"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, admin.String())
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE DATABASE "+Database)
			_ = conn.Close(ctx)
			cancel()
			return err
		}
		cancel()
		select {
		case <-s.proc.Exited():
			return fmt.Errorf("postgres exited:\n%s", s.proc.Log())
		case <-time.After(50 * time.Millisecond): // polling for readiness, with a deadline
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres took no connections within 30s: %v\n%s", err, s.proc.Log())
		}
	}
}

// binDir finds the server binaries: beside initdb on PATH, or in the
// newest of Debian's /usr/lib/postgresql/VERSION/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no initdb on PATH or in /usr/lib/postgresql/*/bin")
}

// runAs is the credential the server runs with: the postgres user when
// the tests run as root (the server refuses root), who is then given
// dir; nil (the tests' own user) otherwise.
func runAs(dir string, files ...string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range append([]string{dir}, files...) {
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, err
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
