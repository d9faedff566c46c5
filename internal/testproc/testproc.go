// Package testproc starts the real servers chimport's tests run against
// (the AWS emulators of awstest, the PostgreSQL cluster of pgtest) as child
// processes that cannot outlive the test binary.
package testproc

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a started server.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  string
	// exited is closed once the one cmd.Wait returns.
	exited chan struct{}
}

// Start starts cmd in its own process group, so Kill stops its children
// too, and has the kernel kill it if the test binary dies first. Its
// output goes to a temporary log file (Log reads it).
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	logFile, err := os.CreateTemp("", "chimport-"+name+"-*.log")
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	done := make(chan error)
	spawn <- func() { done <- cmd.Start() }
	if err := <-done; err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, cmd: cmd, log: logFile.Name(), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	return p, nil
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Log is what the process has written so far.
func (p *Process) Log() string {
	out, _ := os.ReadFile(p.log)
	return string(out)
}

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Kill kills the process group, waits for the process to exit, and
// removes its log.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	_ = os.Remove(p.log)
}

// WaitListening waits until something accepts TCP connections on addr,
// failing early when the process exits.
func (p *Process) WaitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before listening on %s:\n%s", p.Name, addr, p.Log())
		case <-time.After(20 * time.Millisecond): // polling for the port, with a deadline
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s", p.Name, addr, within)
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// spawn runs functions on one OS thread that lives as long as the test
// binary. Pdeathsig fires when the thread that started a child exits, not
// the process, and the Go runtime may retire threads: a server started
// from an ordinary goroutine could be killed in the middle of the tests.
var spawn = make(chan func())

func init() {
	go func() {
		runtime.LockOSThread() // never unlocked: the thread stays until exit
		for f := range spawn {
			f()
		}
	}()
}
