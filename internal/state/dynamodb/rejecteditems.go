package dynamodb

import (
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// The rejected log's items, in the runs table under the connection's
// ListId, one per member: RunId is rejectedPrefix and the member id's 32
// hex digits, so a query of the prefix lists the log in member order
// (lower-case hex sorts as the bytes do). The prefix sorts above
// rosterPrefix, and run ids (digits) below both, so the queries of runs,
// which end below rosterPrefix, never meet an entry, in this release or
// in the one before it; the roster's queries are of its own prefixes.
const (
	rejectedPrefix = "target/rejected/"

	// Entry item, and the sample on the history item (attrRejectedSample),
	// which also holds attrMember.
	attrRecordKey = "RecordKey" // S, state.Rejection.Key; absent when ""
	attrStatus    = "Status"    // N
	attrReason    = "Reason"    // S; absent when ""
	attrFirstSeen = "FirstSeen" // N, unix nanoseconds; and LastAttempt (attrLastAttempt)
	attrAttempts  = "Attempts"  // N
	attrMember    = "Member"    // S, 32 hex digits: the sample's member (an entry's is in its RunId)

	// The history item: the log's summary, refreshed after every change
	// (see refreshRejected). Small, as a scan of the history table reads
	// every one.
	attrRejectedCount  = "RejectedCount"  // N, entries in the log
	attrRejectedSample = "RejectedSample" // M, the latest refusal; absent when the log is empty
	attrLastErrorAt    = "LastErrorAt"    // N, unix nanoseconds: when LastError was recorded
)

func rejectedKey(name string, id state.MemberID) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrListID: str(name), attrRunID: str(rejectedPrefix + id.String())}
}

// decodeRejection reads an entry's attributes from r; the member is the
// caller's to fill in.
func decodeRejection(r *reader) state.Rejection {
	return state.Rejection{
		Key:         r.string(attrRecordKey),
		Status:      int(r.int(attrStatus)),
		Reason:      r.string(attrReason),
		FirstSeen:   r.time(attrFirstSeen),
		LastAttempt: r.time(attrLastAttempt),
		Attempts:    int(r.int(attrAttempts)),
	}
}

func decodeEntry(it map[string]types.AttributeValue) (state.Rejection, error) {
	r := &reader{item: it}
	rj := decodeRejection(r)
	key := r.string(attrRunID)
	id, err := state.ParseMemberID(strings.TrimPrefix(key, rejectedPrefix))
	if err != nil {
		r.fail(attrRunID, err)
	}
	rj.Member = id
	return rj, r.err
}

// encodeSample is the M attribute that holds r on the history item.
func encodeSample(r state.Rejection) types.AttributeValue {
	it := item{
		attrMember:      str(r.Member.String()),
		attrStatus:      num(int64(r.Status)),
		attrFirstSeen:   num(r.FirstSeen.UnixNano()),
		attrLastAttempt: num(r.LastAttempt.UnixNano()),
		attrAttempts:    num(int64(r.Attempts)),
	}
	it.setString(attrRecordKey, r.Key)
	it.setString(attrReason, r.Reason)
	return &types.AttributeValueMemberM{Value: it}
}

// decodeRejected reads the log's summary from a history item.
func decodeRejected(r *reader) state.RejectedState {
	rs := state.RejectedState{Count: r.int(attrRejectedCount)}
	switch v := r.item[attrRejectedSample].(type) {
	case nil:
	case *types.AttributeValueMemberM:
		sr := &reader{item: v.Value, in: attrRejectedSample}
		sample := decodeRejection(sr)
		id, err := state.ParseMemberID(sr.string(attrMember))
		if err != nil {
			sr.fail(attrMember, err)
		}
		sample.Member = id
		if sr.err != nil && r.err == nil {
			r.err = fmt.Errorf("item %s=%q: %w", attrListID, r.string(attrListID), sr.err)
		}
		rs.Sample = &sample
	default:
		r.fail(attrRejectedSample, fmt.Errorf("holds %T, want a map", v))
	}
	return rs
}

// latestRefusal is the sample of a log: the entry refused last, and of
// those refused at the same instant the smallest member id, as in every
// store. nil for an empty log.
func latestRefusal(log []state.Rejection) *state.Rejection {
	var latest *state.Rejection
	for i := range log {
		r := &log[i]
		if latest == nil || r.LastAttempt.After(latest.LastAttempt) ||
			r.LastAttempt.Equal(latest.LastAttempt) && compareIDs(r.Member, latest.Member) < 0 {
			latest = r
		}
	}
	return latest
}
