package alert

import (
	"context"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/human"
	"github.com/chimport/chimport/internal/state"
)

// A record the target refuses does not stop its connection: it waits in
// the rejected log, every run retries it, and the rest keeps syncing. So
// nothing would ever page a person about it, and the target may refuse
// the record forever. CheckRejected pages once when a connection's log
// goes from empty to holding records, and sends a recovery notice when it
// is empty again: one incident per connection, of KindRejected, in the
// shared store as for lag.

// CheckRejected opens conn's rejected-records incident when st, its state
// just read from store, has records in the rejected log, closes it when
// the log is empty, and notifies on each flip: a KindRejected alert with
// the count and one record, or a KindRecovered notice. When st's open
// incidents already agree with its log, which is the case for nearly
// every connection on nearly every call, it writes nothing.
//
// Like LagPolicy.CheckConfirmed, after a flip it reads the state again:
// another worker's run may have changed the log in between, and then the
// flip is taken back quietly instead of sent.
//
// While an error that needs a person has its incident open, no rejected
// incident opens: a run that stopped because the target refuses records
// wholesale leaves some in the log too, and one cause pages once. The
// incident opens after the error is over, if the log still holds records.
func CheckRejected(ctx context.Context, store Store, n Notifier, conn string, st state.ConnectionState, now time.Time) error {
	refused := st.Rejected.Count > 0
	if _, open := st.Alerts[string(KindRejected)]; open == refused {
		return nil
	}
	if _, failing := st.Alerts[string(KindPermanentError)]; failing && refused {
		return nil
	}
	changed, err := store.SetAlert(ctx, conn, string(KindRejected), refused, now)
	if err != nil {
		return fmt.Errorf("alert: recording the rejected records alert state of connection %q: %w", conn, err)
	}
	if !changed {
		return nil
	}
	if again, err := store.Connection(ctx, conn); err == nil {
		if (again.Rejected.Count > 0) != refused {
			_, err := store.SetAlert(ctx, conn, string(KindRejected), !refused, now)
			return err
		}
		st = again // the newer count and sample
	}
	if refused {
		return notifyDetached(ctx, n, rejectedAlert(conn, st.Rejected, now))
	}
	return notifyDetached(ctx, n, Alert{
		Kind:       KindRecovered,
		Resolves:   KindRejected,
		Connection: conn,
		Subject:    fmt.Sprintf("chimport: %s has no rejected records left", conn),
		Problem:    "The rejected log is empty: the target accepted the records it had refused, or their members are gone.",
		At:         now,
	})
}

// rejectedAlert is the alert for a rejected log that holds records.
func rejectedAlert(conn string, rs state.RejectedState, now time.Time) Alert {
	records := plural(rs.Count, "record", "records")
	a := Alert{
		Kind:       KindRejected,
		Connection: conn,
		Subject:    fmt.Sprintf("chimport: %s needs attention: the target refused %d %s", conn, rs.Count, records),
		Problem: fmt.Sprintf("The target refused %d %s. They wait in the rejected log and every run retries them; the rest of the audience keeps syncing.",
			rs.Count, records),
		Action: fmt.Sprintf("Find out why the target refuses them (chimport rejected --connection %s lists them, with the target's answers): "+
			"fix the members in Mailchimp, or the mapping or the target. The next run retries them; a notice follows when none is left.", conn),
		Rejected: rs.Count,
		At:       now,
	}
	if a.Sample = RecordOf(rs.Sample); a.Sample != nil {
		a.Status = a.Sample.Status
		a.Subject += fmt.Sprintf(" (HTTP %d)", a.Status)
	}
	return a
}

// RecordOf is an entry of the rejected log as alerts and status lines
// quote it; nil for nil.
func RecordOf(r *state.Rejection) *RejectedRecord {
	if r == nil {
		return nil
	}
	return &RejectedRecord{MemberID: r.Member.String(), Status: r.Status, Reason: human.Printable(r.Reason)}
}

// String is the record on one line: "member <id>: HTTP 422: <reason>".
func (r RejectedRecord) String() string {
	s := fmt.Sprintf("member %s: HTTP %d", r.MemberID, r.Status)
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
