// Command chimport keeps a customer's own system in step with their Mailchimp
// audiences. See README.md for the commands and the config file.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGINT and SIGTERM cancel the root context; every command stops at its
	// next checkpoint and returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once: an
	// operator can always force a stop.
	context.AfterFunc(ctx, stop)
	code := execute(ctx, os.Args[1:], env{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		lookupEnv: os.LookupEnv,
	})
	stop()
	os.Exit(code)
}
