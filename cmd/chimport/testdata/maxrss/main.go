// Command maxrss runs a command and writes the command's peak RSS, in
// KiB, to a file: maxrss FILE COMMAND [ARG...]. It passes its standard
// input, output and error on, and exits with the command's status.
//
// BenchmarkScale runs `chimport run` through it because the rusage a
// process gets for a child it started itself overstates the child's peak
// RSS: Go starts a command with vfork, so the child shares its parent's
// memory until it execs, and at exec Linux carries the parent's peak RSS
// over into the child's (ru_maxrss is then the larger of the two). A
// benchmark holding a simulator of 10,000 audiences would report its own
// peak as chimport's. Started from this small process instead, the
// command inherits this process's peak (a few MiB) at most.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: maxrss FILE COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[2], os.Args[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(2)
	}
	kib := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
	if err := os.WriteFile(os.Args[1], []byte(fmt.Sprint(kib)), 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(2)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
