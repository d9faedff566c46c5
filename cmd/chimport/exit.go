package main

import (
	"errors"
	"fmt"

	"github.com/chimport/chimport/internal/config"
)

// Exit codes are the same for every command, and decided here only.
const (
	exitOK      = 0 // everything asked for completed
	exitFailed  = 1 // a connection or an endpoint failed
	exitUsage   = 2 // bad usage or bad config: nothing was attempted
	exitUnknown = exitFailed
)

// usageError marks a mistake in how chimport was invoked: a bad flag, an
// unknown command, an unknown connection name.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// errFailed reports that a command ran but something it checked or synced
// failed. Details were already printed, so main prints nothing more.
var errFailed = errors.New("one or more connections failed")

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	var cfgErr *config.Error
	var useErr usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &cfgErr), errors.As(err, &useErr):
		return exitUsage
	default:
		return exitUnknown
	}
}
