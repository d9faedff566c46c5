package alert

import (
	"fmt"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/advice"
	"github.com/chimport/chimport/internal/human"
)

// maxErrorText bounds Alert.Error: a run that failed on many views joins
// their errors, and an alert should stay readable (SNS allows 256 KB, SMS far
// less; the full text is in the log and the state store).
const maxErrorText = 2000

// advisor is an error that knows whether a person must act on it, and what
// they should do: the Mailchimp client's and the target sink's errors are.
// ok is false for an error that a later run may get over by itself.
type advisor interface {
	Advice() (a advice.Advice, ok bool)
}

// NeedsPerson returns an alert of KindPermanentError when err, a run's error,
// holds an error that retrying cannot fix, and false otherwise. Such an
// error says so itself, with its advice (see advisor): a rejected API key,
// a missing audience, a target refusing the credentials or the records, a
// redirect, a rejected TLS certificate.
//
// Everything else is false: rate limits, 5xx, transport errors, timeouts and
// cancellation are retried by the next run, and page a person only through
// the lag policy. err may wrap advising errors at any depth, through %w,
// errors.Join or any Unwrap method; the first one that needs a person wins.
func NeedsPerson(connection string, err error, now time.Time) (Alert, bool) {
	var found advice.Advice
	ok := walk(err, func(e error) bool {
		if a, is := e.(advisor); is {
			found, is = a.Advice()
			return is
		}
		return false
	})
	if !ok {
		return Alert{}, false
	}
	subject := fmt.Sprintf("chimport: %s needs attention: %s", connection, found.Problem)
	if found.Status != 0 {
		subject += fmt.Sprintf(" (HTTP %d)", found.Status)
	}
	return Alert{
		Kind:       KindPermanentError,
		Connection: connection,
		Subject:    subject,
		Problem:    advice.Capitalize(found.Problem) + ".",
		Status:     found.Status,
		Action:     found.Action,
		Error:      clip(human.PrintableLines(err.Error()), maxErrorText),
		At:         now,
	}, true
}

// walk calls visit on err and everything it wraps, depth first, until visit
// returns true. Unlike errors.As it does not stop at the first error of a
// type: a run that joins a transient Mailchimp error with a rejected key
// must still alert.
func walk(err error, visit func(error) bool) bool {
	if err == nil {
		return false
	}
	if visit(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walk(u.Unwrap(), visit)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walk(e, visit) {
				return true
			}
		}
	}
	return false
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
