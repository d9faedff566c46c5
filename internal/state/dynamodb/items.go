package dynamodb

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// Attribute names. ListId, LastImportTime and offset are the original
// importer's; the rest are chimport's. Times are unix nanoseconds in N
// attributes (so condition expressions compare them as numbers, and they
// are exact to the nanosecond); the zero time is an absent attribute, and
// so is an empty string.
const (
	attrListID = "ListId" // hash key of every table: the connection name

	// History item: one per connection.
	attrWatermark      = "Watermark"      // N
	attrLastImportTime = "LastImportTime" // S, ISO 8601: a readable mirror of Watermark
	attrFirstAttempt   = "FirstAttempt"
	attrLastAttempt    = "LastAttempt"
	attrLastSuccess    = "LastSuccess"
	attrLastError      = "LastError"
	attrLastRead       = "LastRead"
	attrLastDelivered  = "LastDelivered"
	attrTotalDelivered = "TotalDelivered"
	attrCheckpoint     = "Checkpoint" // S, JSON (the same encoding as SQLite's column)
	// Appends to the logs so far; every trimEvery-th append trims that log.
	attrRunsRecorded     = "RunsRecorded"
	attrFailuresRecorded = "FailuresRecorded"
	// The lease (see Lease). LeaseToken only ever grows; a released lease
	// keeps it and loses LeaseOwner and LeaseExpires.
	attrLeaseOwner   = "LeaseOwner"   // S
	attrLeaseToken   = "LeaseToken"   // N
	attrLeaseExpires = "LeaseExpires" // N, unix nanoseconds
	// Open alerts: M of kind -> N (unix nanoseconds it opened). Once made,
	// the map stays (empty when every alert is closed), so an update of one
	// kind's path always has a parent to go in.
	attrAlerts = "Alerts"

	// Failure item.
	attrFailureKey  = "offset" // N, range key: unique per failure, see failureKey
	attrPageOffset  = "PageOffset"
	attrView        = "View"
	attrError       = "Error"
	attrWindowStart = "WindowStart"
	attrWindowEnd   = "WindowEnd"
	attrFailedAt    = "FailedAt"

	// Run item (also Error, WindowStart, WindowEnd).
	attrRunID     = "RunId" // S, range key: see runID
	attrStarted   = "Started"
	attrFinished  = "Finished"
	attrFull      = "Full"
	attrResult    = "Result"
	attrRead      = "Read"
	attrDelivered = "Delivered"
	attrRequests  = "Requests"
)

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// item builds an item, leaving out zero times and empty strings.
type item map[string]types.AttributeValue

func (it item) setString(attr, v string) {
	if v != "" {
		it[attr] = str(v)
	}
}

func (it item) setTime(attr string, t time.Time) error {
	n, err := state.Nanos(t)
	if err != nil {
		return fmt.Errorf("%s: %w", attr, err)
	}
	if n != nil {
		it[attr] = num(*n)
	}
	return nil
}

// reader decodes an item, keeping the first error so decoders read
// straight through.
type reader struct {
	item map[string]types.AttributeValue
	in   string // "" for an item, else the map attribute item is, for errors
	err  error
}

func (r *reader) fail(attr string, err error) {
	switch {
	case r.err != nil:
	case r.in != "":
		r.err = fmt.Errorf("attribute %s.%s: %w", r.in, attr, err)
	default:
		r.err = fmt.Errorf("item %s=%q: attribute %s: %w", attrListID, r.string(attrListID), attr, err)
	}
}

func (r *reader) string(attr string) string {
	switch v := r.item[attr].(type) {
	case nil:
		return ""
	case *types.AttributeValueMemberS:
		return v.Value
	default:
		r.fail(attr, fmt.Errorf("holds %T, want a string", v))
		return ""
	}
}

func (r *reader) int(attr string) int64 {
	switch v := r.item[attr].(type) {
	case nil:
		return 0
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			r.fail(attr, err)
		}
		return n
	default:
		r.fail(attr, fmt.Errorf("holds %T, want a number", v))
		return 0
	}
}

func (r *reader) has(attr string) bool { return r.item[attr] != nil }

func (r *reader) time(attr string) time.Time {
	if !r.has(attr) {
		return time.Time{}
	}
	n := r.int(attr)
	return state.FromNanos(&n)
}

// timeMap reads an M of times; nil when absent or empty.
func (r *reader) timeMap(attr string) map[string]time.Time {
	switch v := r.item[attr].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberM:
		if len(v.Value) == 0 {
			return nil
		}
		out := make(map[string]time.Time, len(v.Value))
		for key, av := range v.Value {
			n, ok := av.(*types.AttributeValueMemberN)
			if !ok {
				r.fail(attr, fmt.Errorf("key %q holds %T, want a number", key, av))
				return nil
			}
			ns, err := strconv.ParseInt(n.Value, 10, 64)
			if err != nil {
				r.fail(attr, fmt.Errorf("key %q: %w", key, err))
				return nil
			}
			out[key] = state.FromNanos(&ns)
		}
		return out
	default:
		r.fail(attr, fmt.Errorf("holds %T, want a map", v))
		return nil
	}
}

func (r *reader) bool(attr string) bool {
	switch v := r.item[attr].(type) {
	case nil:
		return false
	case *types.AttributeValueMemberBOOL:
		return v.Value
	default:
		r.fail(attr, fmt.Errorf("holds %T, want a boolean", v))
		return false
	}
}

func decodeConnection(it map[string]types.AttributeValue) (state.ConnectionState, error) {
	r := &reader{item: it}
	c := state.ConnectionState{
		Connection:     r.string(attrListID),
		Watermark:      r.time(attrWatermark),
		FirstAttempt:   r.time(attrFirstAttempt),
		LastAttempt:    r.time(attrLastAttempt),
		LastSuccess:    r.time(attrLastSuccess),
		LastError:      r.string(attrLastError),
		LastErrorAt:    r.time(attrLastErrorAt),
		LastRead:       r.int(attrLastRead),
		LastDelivered:  r.int(attrLastDelivered),
		TotalDelivered: r.int(attrTotalDelivered),
		Alerts:         r.timeMap(attrAlerts),
		Roster:         decodeRosterState(r),
		Rejected:       decodeRejected(r),
	}
	if !r.has(attrWatermark) && r.has(attrLastImportTime) {
		// Written by the original importer, never by a completed run of
		// ours: its progress is the starting watermark.
		t, err := parseLegacyTime(it[attrLastImportTime])
		if err != nil {
			r.fail(attrLastImportTime, err)
		}
		c.Watermark = t
	}
	if cp := r.string(attrCheckpoint); cp != "" && r.err == nil {
		var err error
		if c.Checkpoint, err = state.DecodeCheckpoint(cp); err != nil {
			r.fail(attrCheckpoint, err)
		}
	}
	return c, r.err
}

// isoMirror formats the watermark for LastImportTime the way Python's
// datetime.isoformat() does (six fraction digits, "+00:00"), which every
// Python 3 fromisoformat() reads back: should anyone run the original
// importer again, it resumes from here. Truncating to microseconds errs
// towards the past, which only re-reads a little.
func isoMirror(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

// legacyLayouts are the forms an ISO 8601 LastImportTime may take. Go
// accepts a fraction of any length after the seconds in every one of them,
// and reads a time without a zone as UTC, which the original importer ran
// in.
var legacyLayouts = []string{
	time.RFC3339, // "Z" or "+00:00"
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z07:00", // Python's str(datetime)
	"2006-01-02 15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

// parseLegacyTime reads the original importer's LastImportTime: nobody
// remembers whether it wrote an ISO 8601 string or epoch seconds, so both
// are accepted, as are epoch seconds in a string.
func parseLegacyTime(av types.AttributeValue) (time.Time, error) {
	switch v := av.(type) {
	case *types.AttributeValueMemberN:
		return parseEpochSeconds(v.Value)
	case *types.AttributeValueMemberS:
		s := strings.TrimSpace(v.Value)
		for _, layout := range legacyLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), nil
			}
		}
		if t, err := parseEpochSeconds(s); err == nil {
			return t, nil
		}
		return time.Time{}, fmt.Errorf("%q is neither an ISO 8601 time nor epoch seconds", v.Value)
	default:
		return time.Time{}, fmt.Errorf("holds %T, want a string or a number", av)
	}
}

// parseEpochSeconds reads decimal seconds since the epoch, exactly (a
// float64 would round nanoseconds).
func parseEpochSeconds(s string) (time.Time, error) {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not a number", s)
	}
	ns := new(big.Int).Quo(new(big.Int).Mul(r.Num(), big.NewInt(1e9)), r.Denom())
	if !ns.IsInt64() {
		return time.Time{}, fmt.Errorf("%s seconds is outside the storable range", s)
	}
	return time.Unix(0, ns.Int64()).UTC(), nil
}

func encodeFailure(f state.Failure, key int64) (item, error) {
	it := item{attrListID: str(f.Connection), attrFailureKey: num(key), attrPageOffset: num(int64(f.Offset))}
	it.setString(attrView, f.View)
	it.setString(attrError, f.Error)
	for attr, t := range map[string]time.Time{attrWindowStart: f.WindowStart, attrWindowEnd: f.WindowEnd, attrFailedAt: f.At} {
		if err := it.setTime(attr, t); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func decodeFailure(it map[string]types.AttributeValue) (state.Failure, error) {
	r := &reader{item: it}
	f := state.Failure{
		Connection:  r.string(attrListID),
		WindowStart: r.time(attrWindowStart),
		WindowEnd:   r.time(attrWindowEnd),
		View:        r.string(attrView),
		Error:       r.string(attrError),
		At:          r.time(attrFailedAt),
	}
	if r.has(attrPageOffset) {
		f.Offset = int(r.int(attrPageOffset))
	} else {
		// The original importer's item: its range key was the page offset.
		// Without a window it predates every window, so the next completed
		// run resolves it.
		f.Offset = int(r.int(attrFailureKey))
	}
	return f, r.err
}

// failureKey is the range key of a new failure. The original table's range
// key is `offset`, but a page offset is not unique once failures also have
// a view and a window, so chimport stores the page offset in PageOffset and
// makes the key the failure's time in unix nanoseconds (0 for the zero
// time), one higher on each collision (AddFailure puts conditionally). The
// key then orders failures by time, which is what Failures returns.
func failureKey(f state.Failure) (int64, error) {
	n, err := state.Nanos(f.At)
	if err != nil || n == nil {
		return 0, err
	}
	return *n, nil
}

func encodeRun(r state.Run, id string) (item, error) {
	it := item{
		attrListID: str(r.Connection), attrRunID: str(id), attrFull: &types.AttributeValueMemberBOOL{Value: r.Full},
		attrRead: num(r.Read), attrDelivered: num(r.Delivered), attrRequests: num(r.Requests),
	}
	it.setString(attrResult, r.Result)
	it.setString(attrError, r.Error)
	for attr, t := range map[string]time.Time{attrStarted: r.Started, attrFinished: r.Finished,
		attrWindowStart: r.WindowStart, attrWindowEnd: r.WindowEnd} {
		if err := it.setTime(attr, t); err != nil {
			return nil, err
		}
	}
	return it, nil
}

func decodeRun(it map[string]types.AttributeValue) (state.Run, error) {
	r := &reader{item: it}
	run := state.Run{
		Connection:  r.string(attrListID),
		Started:     r.time(attrStarted),
		Finished:    r.time(attrFinished),
		WindowStart: r.time(attrWindowStart),
		WindowEnd:   r.time(attrWindowEnd),
		Full:        r.bool(attrFull),
		Result:      r.string(attrResult),
		Read:        r.int(attrRead),
		Delivered:   r.int(attrDelivered),
		Requests:    r.int(attrRequests),
		Error:       r.string(attrError),
	}
	return run, r.err
}

// runID is a run's range key: the time it was recorded (Finished, else
// Started), then a sequence number of this handle, then this handle's
// random id. It sorts as strings in time order, so a descending query is
// newest first, and runs recorded by one handle at the same instant keep
// their order. The time (unix nanoseconds, the zero time lowest) is shifted
// by 2^63 so times before 1970 sort first too, and zero-padded to 20
// digits.
func (s *Store) runID(r state.Run) (string, error) {
	t := r.Finished
	if t.IsZero() {
		t = r.Started
	}
	n, err := state.Nanos(t)
	if err != nil {
		return "", err
	}
	key := uint64(0)
	if n != nil {
		key = uint64(*n) ^ (1 << 63)
	}
	return fmt.Sprintf("%020d-%016x-%016x", key, s.runSeq.Add(1), s.handle), nil
}
