package schedule

import (
	"fmt"
	"time"

	"github.com/adhocore/gronx"
)

// nextRun returns when a connection should run next, given the last attempt
// any worker recorded (zero if none) and, for a connection that never ran,
// when this worker began to schedule it. It depends on nothing else, so
// every worker that reads the same last attempt gets the same answer (the
// start differs a little between workers; whoever claims first runs it,
// and the others then see its attempt).
func nextRun(c Connection, last, began time.Time, jitter func(string, time.Duration) time.Duration, loc *time.Location) (time.Time, error) {
	if c.Cron == "" {
		if last.IsZero() {
			return began.Add(jitter(c.Name, c.Every)), nil
		}
		return last.Add(c.Every + jitter(c.Name, c.Every)), nil
	}
	from := last
	if from.IsZero() {
		from = began
	}
	// A run starts at a tick plus this connection's jitter, so the first
	// tick strictly after its start is the following one: jitter stays
	// below a tenth of the gap.
	tick, err := gronx.NextTickAfter(c.Cron, from.In(loc), false)
	if err != nil {
		return time.Time{}, fmt.Errorf("cron expression %q: %v", c.Cron, err)
	}
	// The gap to the tick after sizes the jitter, as Every does: "*/5 * *
	// * *" spreads over 30 s, "@daily" over MaxJitter. An expression with
	// no later tick (a final year) gets no jitter.
	var gap time.Duration
	if after, err := gronx.NextTickAfter(c.Cron, tick, false); err == nil {
		gap = after.Sub(tick)
	}
	return tick.Add(jitter(c.Name, gap)), nil
}

// NextRun is when `chimport serve` runs c next with the default jitter,
// given the last attempt any worker recorded (zero if none) and now: what
// `chimport status` reports. Every defaults as in New.
func NextRun(c Connection, lastAttempt, now time.Time) (time.Time, error) {
	if c.Every <= 0 {
		c.Every = DefaultEvery
	}
	return nextRun(c, lastAttempt, now, DefaultJitter, time.UTC)
}
