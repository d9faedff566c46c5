package alert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chimport/chimport/internal/human"
)

// Freshness is what the state store knows about how up to date one
// connection is: all the lag policy needs.
type Freshness struct {
	// Watermark is the window end of the last completed run; zero if no run
	// has completed.
	Watermark time.Time
	// FirstAttempt is when the first run started; zero if none has.
	FirstAttempt time.Time
	// LastError is the error of the last failed run ("" after a success),
	// and LastErrorAt when that run failed. A lag alert quotes them: they
	// are usually why the connection fell behind.
	LastError   string
	LastErrorAt time.Time
}

// Lag returns how far behind the connection is at now: now minus the
// watermark. A connection that has never completed a run has been behind
// since its first attempt, so its lag counts from there; one that was never
// attempted has no lag (known is false) and never alerts.
func (f Freshness) Lag(now time.Time) (lag time.Duration, known bool) {
	since := f.Watermark
	if since.IsZero() {
		since = f.FirstAttempt
	}
	if since.IsZero() {
		return 0, false
	}
	return max(now.Sub(since), 0), true
}

// AlertStore keeps which incidents are open. SetAlert is a compare-and-set:
// it records whether conn has an open incident of kind and reports whether
// that changed anything. Only the caller that flips the state sends the
// notice, which is what keeps several workers from sending duplicates.
type AlertStore interface {
	SetAlert(ctx context.Context, conn, kind string, open bool, at time.Time) (changed bool, err error)
}

// LagPolicy decides when a connection is too far behind. Transient errors
// page nobody by themselves: the next run retries them, and only lag that
// outlasts the threshold means a person should look.
type LagPolicy struct {
	// Threshold is the lag past which a connection is lagging. Zero turns
	// lag alerts off.
	Threshold time.Duration
}

// Lagging reports whether a connection with freshness f is past the
// threshold at now.
func (p LagPolicy) Lagging(f Freshness, now time.Time) bool {
	lag, known := f.Lag(now)
	return p.Threshold > 0 && known && lag > p.Threshold
}

// Evaluate is the lag policy as a pure function: given whether a lag
// incident is open, it returns whether it should be open at now and, when
// that is a change a person hears about, the alert to send (fire): KindLag
// when lag passes the threshold, KindRecovered when a lagging connection is
// fresh again. Staying over the threshold fires nothing. With lag alerts off
// (Threshold 0) an open incident closes without a notice: the connection did
// not recover, the operator stopped asking.
func (p LagPolicy) Evaluate(conn string, f Freshness, open bool, now time.Time) (a Alert, nowOpen bool, fire bool) {
	over := p.Lagging(f, now)
	switch {
	case over && !open:
		return p.lagAlert(conn, f, now), true, true
	case !over && open && p.Threshold > 0:
		return p.recoveredAlert(conn, f, now), false, true
	case !over && open:
		return Alert{}, false, false
	}
	return Alert{}, open, false
}

// Check runs the lag policy for one connection against the shared alert
// state: call it after every run and periodically (a worker that is down
// runs nothing, so only a periodic check notices). f must be read from the
// store just before: a check on stale freshness can reopen an incident that
// another worker's run has just closed.
//
// A notifier's error is returned, but the state stays flipped: reverting it
// would make the next check send again to every other notifier, once per
// check for as long as one of them is down.
func (p LagPolicy) Check(ctx context.Context, store AlertStore, n Notifier, conn string, f Freshness, now time.Time) error {
	open := p.Lagging(f, now)
	changed, err := store.SetAlert(ctx, conn, string(KindLag), open, now)
	if err != nil {
		return fmt.Errorf("alert: recording the lag alert state of connection %q: %w", conn, err)
	}
	if !changed {
		return nil
	}
	a, _, fire := p.Evaluate(conn, f, !open, now)
	if !fire {
		return nil
	}
	return notifyDetached(ctx, n, a)
}

// CheckConfirmed is Check for several workers sharing a store. Reading the
// freshness and flipping the incident are two steps, and another worker's
// run can complete in between: a worker that read "lagging" just before
// could then reopen the incident that run has closed, and alert twice.
// So after a flip it reads the freshness again and, if the flip no longer
// holds, flips back quietly instead of notifying.
func (p LagPolicy) CheckConfirmed(ctx context.Context, store AlertStore, n Notifier, conn string, read func(context.Context) (Freshness, error), now time.Time) error {
	f, err := read(ctx)
	if err != nil {
		return err
	}
	return p.checkConfirmed(ctx, store, n, conn, f, read, now)
}

// checkConfirmed is CheckConfirmed on f, already read; read is for the
// read after a flip.
func (p LagPolicy) checkConfirmed(ctx context.Context, store AlertStore, n Notifier, conn string, f Freshness, read func(context.Context) (Freshness, error), now time.Time) error {
	open := p.Lagging(f, now)
	if open {
		// f may be a beat's read of every connection, taken a while ago.
		// Opening on it could reopen an incident another worker's run has
		// just closed; the confirming read below would take that back, but
		// a third check in between would close it again with a second
		// recovery notice. Reading again first leaves only a run that
		// completes between this read and the flip.
		again, err := read(ctx)
		if err != nil {
			return err
		}
		f, open = again, p.Lagging(again, now)
	}
	changed, err := store.SetAlert(ctx, conn, string(KindLag), open, now)
	if err != nil {
		return fmt.Errorf("alert: recording the lag alert state of connection %q: %w", conn, err)
	}
	if !changed {
		return nil
	}
	if again, err := read(ctx); err == nil && p.Lagging(again, now) != open {
		_, err := store.SetAlert(ctx, conn, string(KindLag), !open, now)
		return err
	}
	a, _, fire := p.Evaluate(conn, f, !open, now)
	if !fire {
		return nil
	}
	return notifyDetached(ctx, n, a)
}

// CheckStore is CheckConfirmed reading conn's freshness from store: the
// lag step for a caller that holds no fresher state of its own, such as
// `chimport run` once a connection's run has ended.
func (p LagPolicy) CheckStore(ctx context.Context, store Store, n Notifier, conn string, now time.Time) error {
	return p.CheckConfirmed(ctx, store, n, conn, func(ctx context.Context) (Freshness, error) {
		st, err := store.Connection(ctx, conn)
		return FreshnessOf(st), err
	}, now)
}

// AfterRunConfirmed is AfterRun with the lag step of CheckConfirmed.
// The freshness is read once for both steps: the permanent-error alert
// quotes the lag too.
func (p LagPolicy) AfterRunConfirmed(ctx context.Context, store AlertStore, n Notifier, conn string, runErr error, read func(context.Context) (Freshness, error), now time.Time) error {
	f, err := read(ctx)
	if err != nil {
		// Without freshness the lag step cannot decide; a person must
		// still hear of an error only they can fix.
		return errors.Join(p.checkPermanent(ctx, store, n, conn, runErr, nil, now), err)
	}
	return errors.Join(
		p.checkPermanent(ctx, store, n, conn, runErr, &f, now),
		p.checkConfirmed(ctx, store, n, conn, f, read, now),
	)
}

// AfterRun is what a worker calls when a run of conn ends, with the run's
// error (nil on success) and the freshness the store has after it:
//
//   - An error that needs a person (NeedsPerson) opens a permanent-error
//     incident and alerts once; further runs failing the same way, every
//     90 minutes, stay quiet. A successful run closes the incident with a
//     KindRecovered notice.
//   - Then the lag policy runs, as in Check.
//
// Transient errors and cancellations touch no incident by themselves.
func (p LagPolicy) AfterRun(ctx context.Context, store AlertStore, n Notifier, conn string, runErr error, f Freshness, now time.Time) error {
	return errors.Join(
		p.checkPermanent(ctx, store, n, conn, runErr, &f, now),
		p.Check(ctx, store, n, conn, f, now),
	)
}

// PermanentAlert is NeedsPerson with what the policy knows of the
// connection: its lag at now and the threshold, when f (its freshness, nil
// if unknown) has them, and when the error happened (now: the run that
// failed has just ended).
func (p LagPolicy) PermanentAlert(conn string, runErr error, f *Freshness, now time.Time) (Alert, bool) {
	a, ok := NeedsPerson(conn, runErr, now)
	if !ok {
		return Alert{}, false
	}
	a.ErrorAt = now
	if f != nil {
		a.Lag, a.LagKnown = f.Lag(now)
	}
	a.Threshold = p.Threshold
	return a, true
}

func (p LagPolicy) checkPermanent(ctx context.Context, store AlertStore, n Notifier, conn string, runErr error, f *Freshness, now time.Time) error {
	var a Alert
	if runErr == nil {
		a = Alert{
			Kind:       KindRecovered,
			Resolves:   KindPermanentError,
			Connection: conn,
			Subject:    fmt.Sprintf("chimport: %s is working again", conn),
			Problem:    "A run completed after an error that needed a person.",
			Threshold:  p.Threshold,
			At:         now,
		}
		if f != nil {
			a.Lag, a.LagKnown = f.Lag(now)
		}
	} else {
		var ok bool
		if a, ok = p.PermanentAlert(conn, runErr, f, now); !ok {
			return nil
		}
	}
	changed, err := store.SetAlert(ctx, conn, string(KindPermanentError), a.Kind == KindPermanentError, now)
	if err != nil {
		return fmt.Errorf("alert: recording the permanent error alert state of connection %q: %w", conn, err)
	}
	if !changed {
		return nil
	}
	return notifyDetached(ctx, n, a)
}

// notifyGrace is how long a notice may still take once ctx is done.
const notifyGrace = 5 * time.Second

// notifyDetached sends a, which the store already records as sent, even if
// ctx ends meanwhile (SIGTERM during a webhook's retries): otherwise the
// incident would stay open with nobody told. It gets notifyGrace more, so
// shutdown still finishes promptly.
func notifyDetached(ctx context.Context, n Notifier, a Alert) error {
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(notifyGrace, cancel)
		context.AfterFunc(nctx, func() { t.Stop() })
	})
	defer stop()
	return n.Notify(nctx, a)
}

func (p LagPolicy) lagAlert(conn string, f Freshness, now time.Time) Alert {
	lag, _ := f.Lag(now)
	a := Alert{
		Kind:       KindLag,
		Connection: conn,
		Subject:    fmt.Sprintf("chimport: %s is %s behind (threshold %s)", conn, human.Duration(lag), human.Duration(p.Threshold)),
		Lag:        lag,
		LagKnown:   true,
		Threshold:  p.Threshold,
		Error:      clip(human.PrintableLines(f.LastError), maxErrorText),
		ErrorAt:    f.LastErrorAt,
		At:         now,
	}
	if f.Watermark.IsZero() {
		a.Problem = fmt.Sprintf("No run has completed since the first attempt at %s.", humanTime(f.FirstAttempt))
	} else {
		a.Problem = fmt.Sprintf("Mailchimp changes since %s have not reached the target.", humanTime(f.Watermark))
	}
	if f.LastError != "" {
		// The error is a failed run's, or the one a run under way is
		// retrying (the store notes it while the run goes on).
		a.Action = "Runs keep failing, or the run under way keeps retrying, with the error below. Each run retries it; if it does not clear, check Mailchimp's and the target's status and the network between them."
	} else {
		a.Action = "No failed run is recorded (a run under way may still be retrying): check that chimport serve is running, or that the schedule of chimport run still fires, and that the connection runs more often than the threshold."
	}
	return a
}

func (p LagPolicy) recoveredAlert(conn string, f Freshness, now time.Time) Alert {
	lag, _ := f.Lag(now)
	return Alert{
		Kind:       KindRecovered,
		Resolves:   KindLag,
		Connection: conn,
		Subject:    fmt.Sprintf("chimport: %s is fresh again (lag %s)", conn, human.Duration(lag)),
		Problem:    fmt.Sprintf("The connection caught up: its lag is %s, within the %s threshold.", human.Duration(lag), human.Duration(p.Threshold)),
		Lag:        lag,
		LagKnown:   true,
		Threshold:  p.Threshold,
		At:         now,
	}
}

// humanTime is t in UTC to the minute, for sentences a person reads.
func humanTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
