// Package awstest starts the AWS emulators that chimport's tests run
// against: dynalite for DynamoDB, goaws for SNS and SQS, and s3rver for S3.
// They are real servers on free loopback ports, never mocks.
//
// `make test` installs them into .tools/ at the repository root (see the
// Makefile's tools target). A test that needs an emulator that is missing or
// does not start fails: it never skips, so CI cannot pass by not testing.
//
// Each emulator starts once per test binary, on first use. A package that
// uses them runs its tests through Main, which stops them at the end:
//
//	func TestMain(m *testing.M) { awstest.Main(m) }
package awstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/testproc"
)

// Region and credentials the emulators accept. s3rver checks its fixed
// key pair; dynalite and goaws accept any.
const (
	Region    = "us-east-1"
	AccessKey = "S3RVER"
	SecretKey = "S3RVER"
	AccountID = "100010001000" // goaws's account in ARNs
)

type emulator struct {
	once     sync.Once
	endpoint string
	err      error
	proc     *testproc.Process
}

var (
	dynamo, goaws, s3 emulator
	all               = []*emulator{&dynamo, &goaws, &s3}
)

// Main runs the package's tests, then stops every emulator they started.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// Stop stops every emulator started so far: for a TestMain that starts
// other servers too, instead of Main.
func Stop() {
	for _, e := range all {
		if e.proc != nil {
			e.proc.Kill()
		}
	}
}

// DynamoDB returns the endpoint URL of a dynalite server.
func DynamoDB(t testing.TB) string {
	t.Helper()
	return dynamo.start(t, "dynalite", func(dir string, port int) (*exec.Cmd, error) {
		bin, err := nodeTool(dir, "dynalite")
		if err != nil {
			return nil, err
		}
		guard, err := abortGuard()
		if err != nil {
			return nil, err
		}
		return exec.Command("node", "--require", guard, bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"), nil
	})
}

// SNS returns the endpoint URL of a goaws server, which serves SNS and SQS
// on one port.
func SNS(t testing.TB) string {
	t.Helper()
	return goaws.start(t, "goaws", func(dir string, port int) (*exec.Cmd, error) {
		bin := filepath.Join(dir, "bin", "goaws")
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s is missing: %w", bin, err)
		}
		cfg := filepath.Join(os.TempDir(), fmt.Sprintf("chimport-goaws-%d.yaml", port))
		conf := fmt.Sprintf("Local:\n  Host: 127.0.0.1\n  Port: %d\n  Region: %s\n  AccountId: %q\n  LogToFile: false\n  QueueAttributeDefaults:\n    VisibilityTimeout: 30\n    ReceiveMessageWaitTimeSeconds: 0\n", port, Region, AccountID)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		return exec.Command(bin, "-config", cfg, "Local"), nil
	})
}

// S3 returns the endpoint URL of an s3rver server. Clients must use
// path-style addressing and the AccessKey/SecretKey pair.
func S3(t testing.TB) string {
	t.Helper()
	return s3.start(t, "s3rver", func(dir string, port int) (*exec.Cmd, error) {
		bin, err := nodeTool(dir, "s3rver")
		if err != nil {
			return nil, err
		}
		data, err := os.MkdirTemp("", "chimport-s3rver-")
		if err != nil {
			return nil, err
		}
		return exec.Command("node", bin, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--directory", data, "--silent"), nil
	})
}

// Env sets the standard AWS SDK environment for a test, so code under test
// finds the emulator exactly as it would find AWS: region, static
// credentials, and AWS_ENDPOINT_URL_<SERVICE> for each endpoint given
// (service names as the SDK spells them: DYNAMODB, SNS, SQS, S3).
func Env(t testing.TB, endpoints map[string]string) {
	t.Helper()
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	for service, url := range endpoints {
		t.Setenv("AWS_ENDPOINT_URL_"+service, url)
	}
}

func (e *emulator) start(t testing.TB, name string, command func(toolsDir string, port int) (*exec.Cmd, error)) string {
	t.Helper()
	e.once.Do(func() {
		e.endpoint, e.proc, e.err = launch(name, command)
	})
	if e.err != nil {
		t.Fatalf("%s: %v (run `make tools`, which `make test` does, to install the emulators)", name, e.err)
	}
	return e.endpoint
}

func launch(name string, command func(string, int) (*exec.Cmd, error)) (string, *testproc.Process, error) {
	dir, err := ToolsDir()
	if err != nil {
		return "", nil, err
	}
	port, err := testproc.FreePort()
	if err != nil {
		return "", nil, err
	}
	cmd, err := command(dir, port)
	if err != nil {
		return "", nil, err
	}
	proc, err := testproc.Start(name, cmd)
	if err != nil {
		return "", nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := proc.WaitListening(addr, 30*time.Second); err != nil {
		proc.Kill()
		return "", nil, err
	}
	return "http://" + addr, proc, nil
}

// ToolsDir is where `make tools` installs the emulators: $CHIMPORT_TOOLS_DIR,
// or .tools/ in the repository root (found by walking up to go.mod).
func ToolsDir() (string, error) {
	if d := os.Getenv("CHIMPORT_TOOLS_DIR"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// abortGuard writes a Node preload script that keeps dynalite alive when a
// client hangs up in the middle of a request. dynalite rethrows the
// request's "aborted" error and exits; real DynamoDB shrugs. Tests that
// cancel a run or kill chimport with SIGKILL do exactly that.
func abortGuard() (string, error) {
	path := filepath.Join(os.TempDir(), "chimport-dynalite-guard.js")
	const script = `process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) return;
  console.error(err); process.exit(1);
});
`
	return path, os.WriteFile(path, []byte(script), 0o600)
}

func nodeTool(dir, name string) (string, error) {
	bin := filepath.Join(dir, "node", "node_modules", name, "cli.js")
	if _, err := os.Stat(bin); err != nil {
		// Fall back to the package's .bin link.
		bin = filepath.Join(dir, "node", "node_modules", ".bin", name)
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s is not installed under %s", name, filepath.Join(dir, "node"))
		}
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", errors.New("node is not on PATH")
	}
	return bin, nil
}

// WaitContext returns a context for a test step that gives up after d.
func WaitContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
