package alert

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/human"
)

// Kind says why an alert went out. Receivers can route on it (SNS carries it
// as the "kind" message attribute, for subscription filter policies).
type Kind string

const (
	// KindPermanentError: a run failed in a way retrying cannot fix.
	KindPermanentError Kind = "permanent_error"
	// KindLag: a connection's lag passed the threshold.
	KindLag Kind = "lag"
	// KindRejected: the target refused records, which wait in the
	// connection's rejected log while the rest of it keeps syncing.
	KindRejected Kind = "rejected"
	// KindRecovered: an incident ended (Alert.Resolves says which): a
	// lagging connection is fresh again, a run completed after a permanent
	// error, or the rejected log is empty again.
	KindRecovered Kind = "recovered"
)

// Alert is one notification for a person. Every field is plain text that is
// safe to send anywhere: no API key, no header value.
type Alert struct {
	Kind       Kind
	Connection string
	// Subject is one line for an e-mail subject or a chat headline, e.g.
	// "chimport: newsletter needs attention: Mailchimp rejected the API key (HTTP 401)".
	Subject string
	// Problem says what failed, in one sentence.
	Problem string
	// Status is the HTTP status behind the problem, 0 if there is none.
	Status int
	// Action says what to do next.
	Action string
	// Error is the error text the run ended with, already free of secrets.
	Error string
	At    time.Time
	// Lag is how far behind the connection is at At, when LagKnown: always
	// for KindLag and KindRecovered, and for KindPermanentError when the
	// policy read the connection's freshness.
	Lag      time.Duration
	LagKnown bool
	// Threshold is the lag policy's threshold, 0 if lag alerts are off.
	Threshold time.Duration
	// ErrorAt is when Error happened, if known. A lag alert quotes the last
	// failed run, which may be older than the alert itself.
	ErrorAt time.Time
	// Resolves is, for KindRecovered, the kind of incident that ended
	// (KindLag, KindPermanentError or KindRejected), so a receiver can
	// close the right one.
	Resolves Kind
	// Rejected is, for KindRejected, how many records the connection's
	// rejected log holds, and Sample one of them.
	Rejected int64
	Sample   *RejectedRecord
}

// RejectedRecord is one record the target refused, as an alert quotes it:
// the member and the target's answer, never a header. Reason is on one
// line (Printable).
type RejectedRecord struct {
	MemberID string
	Status   int
	Reason   string
}

// labelWidth is the column Text's values start in.
const labelWidth = 15

// Text is the plain-text body: one labelled line per field that is set, so
// it reads well in an e-mail, an SMS (which drops the subject) or a log.
func (a Alert) Text() string {
	var b strings.Builder
	line := func(label, value string) {
		if value == "" {
			return
		}
		// Continuation lines (errors.Join puts one error per line) are
		// indented under the value so the labels stay in one column.
		value = strings.ReplaceAll(strings.TrimSpace(value), "\n", "\n"+strings.Repeat(" ", labelWidth))
		fmt.Fprintf(&b, "%-*s%s\n", labelWidth, label+":", value)
	}
	line("Connection", a.Connection)
	if a.Kind == KindRecovered {
		line("What happened", a.Problem)
	} else {
		line("What failed", a.Problem)
	}
	if a.Status != 0 {
		line("HTTP status", strings.TrimSpace(fmt.Sprintf("%d %s", a.Status, http.StatusText(a.Status))))
	}
	if a.Kind == KindRejected {
		line("Rejected", fmt.Sprintf("%d %s", a.Rejected, plural(a.Rejected, "record", "records")))
	}
	if s := a.Sample; s != nil {
		line("Member", s.MemberID)
		line("Target said", s.Reason)
	}
	if a.Lag > 0 || a.LagKnown {
		lag := a.Lag.Round(time.Second).String()
		if a.Threshold > 0 {
			lag += " (threshold " + human.Duration(a.Threshold) + ")"
		}
		line("Lag", lag)
	}
	line("What to do", a.Action)
	line("Error", a.Error)
	if !a.ErrorAt.IsZero() {
		line("Error at", a.ErrorAt.UTC().Format(time.RFC3339))
	}
	if !a.At.IsZero() {
		line("Time", a.At.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Notifier delivers alerts. Notify returns once the alert is handed over (or
// failed to be); callers log its error, since there is no one else to tell.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}
