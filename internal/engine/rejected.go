package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/chimport/chimport/internal/advice"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

// DefaultMaxRejected is Job.MaxRejected's default.
const DefaultMaxRejected = 100

// rejectedLog is one run's side of the connection's rejected log: which
// members are in it, and how many records the run had refused.
type rejectedLog struct {
	store   Store
	name    string
	clock   clock.Clock
	limit   int
	mapping *mapping.Mapping

	// writes keeps the run's writes to the log in order: a store that
	// sums the log up after each write (DynamoDB's) would otherwise keep
	// the sum of whichever write read the log first.
	writes sync.Mutex

	mu     sync.Mutex
	logged map[state.MemberID]struct{} // in the log, as far as this run knows
	// before are the members the log held when the run started; fresh
	// those the run found refused besides, which max_rejected limits.
	before, fresh map[state.MemberID]struct{}
	refused       int64 // refusals in this run, retries refused again included
	// alone counts the run's refusals of records not in before, outside
	// the retries, and accepted the records the target took: a run whose
	// target has refused minProbed such records on their own and taken
	// none refuses them all, whatever its batch size (systematic).
	alone, accepted int64
}

func newRejectedLog(store Store, job Job, clk clock.Clock) *rejectedLog {
	limit := job.MaxRejected
	if limit <= 0 {
		limit = DefaultMaxRejected
	}
	return &rejectedLog{store: store, name: job.Connection, clock: clk, limit: limit, mapping: job.Mapping,
		logged: map[state.MemberID]struct{}{}, before: map[state.MemberID]struct{}{}, fresh: map[state.MemberID]struct{}{}}
}

// load reads the log, when the connection's state says it has entries or
// its last run did not complete, and returns those to retry: at most the
// limit, the least recently tried first, so that a long log costs each run
// a bounded number of requests and is worked through over several runs.
//
// A store that sums the log up after writing its entries (DynamoDB's) may
// have written entries and not their sum when a run died or failed in
// between; the sum then says 0. Reading the log after such a run finds
// them, and the run's own writes to the log set the sum right again.
func (l *rejectedLog) load(ctx context.Context, st state.ConnectionState) ([]state.Rejection, error) {
	if st.Rejected.Count == 0 && !st.LastAttempt.After(st.LastSuccess) {
		return nil, nil
	}
	entries, err := l.store.RejectedLog(ctx, l.name)
	if err != nil {
		return nil, fmt.Errorf("reading the rejected log: %w", err)
	}
	l.mu.Lock()
	for _, r := range entries {
		l.logged[r.Member] = struct{}{}
		if r.FirstSeen.After(st.LastSuccess) {
			l.fresh[r.Member] = struct{}{} // logged by a run that failed
		} else {
			l.before[r.Member] = struct{}{}
		}
	}
	l.mu.Unlock()
	slices.SortStableFunc(entries, func(a, b state.Rejection) int { return a.LastAttempt.Compare(b.LastAttempt) })
	return entries[:min(len(entries), l.limit)], nil
}

// count adds a refusal to the run's, and stops the run once the members
// newly refused pass the limit. A member logged by a completed run before
// this one and refused again does not count (else a log that reached the
// limit would stop every later run, and with it every change), nor does a
// member refused twice in the run. One logged since the last completed
// run, by runs that failed, does: so running again and again cannot log
// more than the limit for one window.
func (l *rejectedLog) count(r refusal, retrying bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if _, ok := l.before[r.change.member]; !ok {
		l.fresh[r.change.member] = struct{}{}
		if !retrying {
			l.alone++
		}
	}
	if n := len(l.fresh); n > l.limit {
		return &RefusalsError{Connection: l.name, Refused: int64(n), Limit: l.limit, Err: r.err}
	}
	return nil
}

// unknownAt returns the indexes of the changes of b whose members were not
// in the log when the run started. Those in it were put there by a
// completed run: refused again, they are no sign that the target refuses
// everything.
func (l *rejectedLog) unknownAt(b batch) []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i, c := range b {
		if _, ok := l.before[c.member]; !ok {
			out = append(out, i)
		}
	}
	return out
}

// took counts records the target accepted. Each part of a batch counts as
// it lands, not when the batch's isolation ends: a batch still bisecting
// may have taken most of its records already, and a small batch beside it
// that checks the verdict meanwhile must see them.
func (l *rejectedLog) took(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepted += int64(n)
}

// systematic reports whether the run's refusals are: minProbed records
// not known refused on their own, and not one record accepted.
func (l *rejectedLog) systematic() (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted == 0 && l.alone >= minProbed, int(l.alone)
}

// refusals is the run's count of refusals.
func (l *rejectedLog) refusals() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refused
}

// record writes refusals to the log, one entry per member.
func (l *rejectedLog) record(ctx context.Context, rs []refusal) error {
	if len(rs) == 0 {
		return nil
	}
	now := l.clock.Now()
	entries := make([]state.Rejection, len(rs))
	for i, r := range rs {
		entries[i] = state.Rejection{Member: r.change.member, Key: l.keyOf(r.change), Status: r.err.Status,
			Reason: r.err.Body, LastAttempt: now}
	}
	l.writes.Lock()
	err := l.store.RecordRejections(ctx, l.name, entries)
	l.writes.Unlock()
	if err != nil {
		return fmt.Errorf("keeping %d refused records in the rejected log: %w", len(rs), err)
	}
	l.mu.Lock()
	for _, r := range rs {
		l.logged[r.change.member] = struct{}{}
	}
	l.mu.Unlock()
	return nil
}

// clear takes the delivered members that are in the log out of it.
func (l *rejectedLog) clear(ctx context.Context, delivered batch) error {
	l.mu.Lock()
	var out []state.MemberID
	if len(l.logged) > 0 {
		for _, c := range delivered {
			if _, ok := l.logged[c.member]; ok {
				out = append(out, c.member)
			}
		}
	}
	l.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	l.writes.Lock()
	err := l.store.ClearRejections(ctx, l.name, out)
	l.writes.Unlock()
	if err != nil {
		return fmt.Errorf("taking %d delivered records out of the rejected log: %w", len(out), err)
	}
	l.mu.Lock()
	for _, id := range out {
		delete(l.logged, id)
		delete(l.fresh, id) // out of the log: no longer counts against the limit
	}
	l.mu.Unlock()
	return nil
}

// size is the number of entries in the log, as far as this run knows.
func (l *rejectedLog) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.logged)
}

// keyOf is what the target calls a refused record: the value of the
// mapping's id key, else of its key for the email address. A delete
// carries the member id.
func (l *rejectedLog) keyOf(c change) string {
	if c.op.Kind == target.OpDelete {
		return c.op.ID
	}
	key, ok := l.mapping.IDKey()
	if !ok {
		if key, ok = l.mapping.KeyOf("email_address"); !ok {
			return ""
		}
	}
	var rec map[string]any
	if json.Unmarshal(c.op.Record, &rec) != nil {
		return ""
	}
	switch v := rec[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// RefusalsError stops a run whose target refuses records wholesale: every
// record tried on its own was refused (Systematic), or more were refused
// than target.max_rejected allows. That is a broken mapping or a changed
// target rather than a few bad records, so the run stops before it tries
// every record on its own: nothing of the batch that stopped it is
// logged, and the watermark stays where it was.
type RefusalsError struct {
	Connection string
	// Systematic: the Tried records of a batch tried on their own were
	// all refused.
	Systematic bool
	Tried      int
	// Otherwise Refused records not in the log before were refused in
	// the run, more than Limit.
	Refused int64
	Limit   int
	// Err is the target's last refusal, which the message quotes.
	Err *target.Error
}

func (e *RefusalsError) Error() string {
	var what string
	if e.Systematic {
		what = fmt.Sprintf("the target refused every record tried on its own (%d of %d), so it refuses them all", e.Tried, e.Tried)
	} else {
		what = fmt.Sprintf("the target refused %d records in this run besides those already in the rejected log, more than target.max_rejected (%d)", e.Refused, e.Limit)
	}
	quote := ""
	if e.Err != nil {
		quote = fmt.Sprintf("; its last answer: HTTP %d", e.Err.Status)
		if e.Err.Body != "" {
			quote += ": " + e.Err.Body
		}
	}
	return fmt.Sprintf("connection %q: %s%s; the run stopped, and the watermark stays (%s)", e.Connection, what, quote, e.advice())
}

// Advice marks the error as one a person must fix.
func (e *RefusalsError) Advice() (advice.Advice, bool) { return e.advice(), true }

func (e *RefusalsError) advice() advice.Advice {
	a := advice.Advice{Problem: "the target refuses records wholesale"}
	if e.Err != nil {
		a.Status = e.Err.Status
	}
	a.Action = "Check the mapping of this connection against what the target's API accepts (the error quotes its answer); if the records are right, raise target.max_rejected."
	if e.Systematic {
		a.Action = "Check the mapping of this connection against what the target's API accepts: the error quotes its answer."
	}
	return a
}

func (e *RefusalsError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}
