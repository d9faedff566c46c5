package state

import (
	"context"
	"strings"
	"time"
)

// The rejected log of a connection holds the records its target refused
// (HTTP 400 or 422 for that record on its own, or 413 for a record too
// large to send alone). A refused record is not lost: the watermark moves
// on, the log keeps one entry per member, and every later run fetches the
// member again and retries it until the target accepts it or the member is
// gone. So one bad record never holds back the rest of its connection.

// MaxRejectionReason is the most bytes of the target's answer an entry
// keeps (Rejection.Reason).
const MaxRejectionReason = 200

// Rejection is one entry of a connection's rejected log.
type Rejection struct {
	Member MemberID
	// Key is what the target calls the record: the value under the
	// mapping's id key (the output key whose path is id), or the member's
	// email address when the mapping has no id key; "" if neither was
	// known.
	Key string
	// Status is the HTTP status of the target's last refusal.
	Status int
	// Reason is the start of the target's answer to the last refusal: at
	// most MaxRejectionReason bytes of its body, with configured header
	// values blanked out; never a header.
	Reason string
	// FirstSeen is the first refusal, LastAttempt the latest, and Attempts
	// how many refusals the log has recorded for the member.
	FirstSeen, LastAttempt time.Time
	Attempts               int
}

// RejectedState is what ConnectionState says of the rejected log.
type RejectedState struct {
	// Count is the number of entries in the log.
	Count int64
	// Sample is one entry (the most recently refused), for a status line
	// or an alert; nil when the log is empty.
	Sample *Rejection
}

// Rejections is the part of a Store that keeps rejected logs. Like roster
// writes, they are not fenced by lease tokens: a refusal a worker saw is
// true whoever holds the lease now, and an entry cleared for a record the
// target accepted (or a member that is gone) is one the log no longer
// needs; a later run corrects anything else.
type Rejections interface {
	// RecordRejections adds refusals to the connection's log, one entry
	// per member, atomically. For a member not in the log the entry is
	// stored as given except that FirstSeen = LastAttempt and Attempts =
	// 1. For a member already in the log, FirstSeen is kept, Attempts
	// grows by one, and Key, Status, Reason and LastAttempt are replaced.
	// A member appearing twice in rs counts once, with its last entry. A
	// Reason longer than MaxRejectionReason, or a Key or Reason that is
	// not valid UTF-8, is an error (see CheckRejection), and then nothing
	// is written.
	RecordRejections(ctx context.Context, name string, rs []Rejection) error
	// ClearRejections takes members out of the log: the target accepted
	// them, or they are gone. Members not in the log are ignored.
	ClearRejections(ctx context.Context, name string, members []MemberID) error
	// RejectedLog returns the connection's log sorted by member id (in
	// ascending byte order); empty, not an error, when there is none.
	RejectedLog(ctx context.Context, name string) ([]Rejection, error)
}

// RetryingPrefix starts the LastError that NoteError records: the error
// of a run still under way, which may yet succeed, not of a run that
// failed.
const RetryingPrefix = "still retrying: "

// Retrying reports whether LastError is what a run under way is retrying
// (NoteError) rather than the error of a failed run.
func (c ConnectionState) Retrying() bool { return strings.HasPrefix(c.LastError, RetryingPrefix) }

// Errors is the part of a Store that records an error while a run goes
// on.
type Errors interface {
	// NoteError records err as the connection's LastError (the engine
	// starts it with RetryingPrefix), dated at, while
	// a run is still retrying it: so status, the status page and a lag
	// alert can say why a run is slow before it fails. It changes nothing
	// else; CompleteRun clears the error as usual and FailRun replaces it.
	// It is not fenced (it is a report, not progress), and a note older
	// than the connection's LastErrorAt is ignored.
	NoteError(ctx context.Context, name, err string, at time.Time) error
}

// LastPerMember keeps the last entry of each member in rs, in order: what
// RecordRejections stores when a member appears twice in one call.
func LastPerMember(rs []Rejection) []Rejection {
	last := make(map[MemberID]int, len(rs))
	for i, r := range rs {
		last[r.Member] = i
	}
	out := make([]Rejection, 0, len(last))
	for i, r := range rs {
		if last[r.Member] == i {
			out = append(out, r)
		}
	}
	return out
}
