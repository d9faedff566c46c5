package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a command writing while a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// result is what one chimport invocation did.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs chimport in-process with args and the given environment.
func runCLI(t *testing.T, ctx context.Context, vars map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	code := execute(ctx, args, env{
		stdout: &stdout,
		stderr: &stderr,
		lookupEnv: func(k string) (string, bool) {
			v, ok := vars[k]
			return v, ok
		},
	})
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// writeFile writes content into a file in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestVersion(t *testing.T) {
	r := runCLI(t, context.Background(), nil, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "chimport ") {
		t.Fatalf("version: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"version", "--nope"}, "unknown flag: --nope"},
		{"bad log format", []string{"--log-format", "xml", "version"}, "--log-format"},
		{"stray argument", []string{"version", "extra"}, "takes no arguments"},
		{"missing config file", []string{"check", "--config", "/nonexistent/chimport.yaml"}, "/nonexistent/chimport.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, context.Background(), nil, tt.args...)
			if r.code != exitUsage {
				t.Errorf("exit code = %d, want %d", r.code, exitUsage)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tt.want)
			}
		})
	}
}

func TestConfigPathFromEnvironment(t *testing.T) {
	path := writeFile(t, "from-env.yaml", "connections: []\n")
	r := runCLI(t, context.Background(), map[string]string{"CHIMPORT_CONFIG": path}, "check")
	if r.code != exitUsage || !strings.Contains(r.stderr, "from-env.yaml") {
		t.Fatalf("check with CHIMPORT_CONFIG: code %d, stderr %q; want exit 2 naming the file", r.code, r.stderr)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, with a deadline
	}
}
