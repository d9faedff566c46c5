// Command chimport keeps a customer's own system in step with their Mailchimp
// audiences. See README.md for the commands and the config file.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// SIGINT and SIGTERM cancel the root context; every command stops at its
	// next checkpoint and returns.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], env{
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		lookupEnv: os.LookupEnv,
		now:       time.Now,
	})
	stop()
	os.Exit(code)
}
