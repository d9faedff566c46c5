package main

import (
	"errors"
	"fmt"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/state"
)

// Exit codes are the same for every command, and decided here only.
const (
	exitOK      = 0 // everything asked for completed
	exitFailed  = 1 // a connection or an endpoint failed
	exitUsage   = 2 // bad usage or bad config: nothing was attempted
	exitUnknown = exitFailed
	// exitRejected: every connection completed, but the target refused
	// records, which wait in the rejected log. A failure (exit 1) wins.
	exitRejected = 3
)

// usageError marks a mistake in how chimport was invoked: a bad flag, an
// unknown command, an unknown connection name.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// setupError marks a problem with what chimport was given to work with,
// found before anything was attempted: a config file that cannot be read.
// It exits 2 like a usage error, without the usage hint: --help cannot
// fix it. (A config that says something wrong is a *config.Error; a state
// store that cannot be used matches state.ErrUnusable. Both exit 2 the
// same way.)
type setupError struct{ err error }

func (e setupError) Error() string { return e.err.Error() }
func (e setupError) Unwrap() error { return e.err }

// errFailed reports that a command ran but something it checked or synced
// failed. Details were already printed, so main prints nothing more.
var errFailed = errors.New("one or more connections failed")

// errRejected reports that every connection completed but some records
// were refused by their target and wait in the rejected log. Details were
// already printed, so main prints nothing more.
var errRejected = errors.New("the target refused some records")

// exitCode maps an error returned by a command to the process exit code.
func exitCode(err error) int {
	var useErr usageError
	switch {
	case err == nil:
		return exitOK
	case isSetupProblem(err), errors.As(err, &useErr):
		return exitUsage
	case errors.Is(err, errRejected) && !errors.Is(err, errFailed):
		return exitRejected
	default:
		return exitUnknown
	}
}

// printed reports whether err says only what the command has printed
// already: main adds nothing to it.
func printed(err error) bool {
	return errors.Is(err, errFailed) || errors.Is(err, errRejected)
}

// syncResult is what the outcomes of a sync come to: errFailed when a
// connection did not complete (failed or cancelled), else errRejected
// when a connection's rejected log holds records at the end of its run
// (refused in this run or an earlier one, and not accepted since), else
// nil. run and demo both end with it.
func syncResult(outcomes []outcome) error {
	rejected := false
	for _, o := range outcomes {
		if o.summary.Result != state.ResultOK {
			return errFailed
		}
		rejected = rejected || o.summary.Rejected > 0
	}
	if rejected {
		return errRejected
	}
	return nil
}

// wantsUsageHint reports whether err is about how chimport was invoked, so
// that pointing at --help helps. Config and state problems wrapped as
// usage errors by a command are not.
func wantsUsageHint(err error) bool {
	var useErr usageError
	return errors.As(err, &useErr) && !isSetupProblem(err)
}

// isSetupProblem reports whether err is about the config or the state
// store rather than about a connection or an endpoint.
func isSetupProblem(err error) bool {
	var cfgErr *config.Error
	var setupErr setupError
	return errors.As(err, &cfgErr) || errors.As(err, &setupErr) ||
		errors.Is(err, state.ErrUnusable) || errors.Is(err, state.ErrBadURL)
}
