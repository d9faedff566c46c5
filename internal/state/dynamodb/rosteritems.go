package dynamodb

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/chimport/chimport/internal/state"
)

// The roster's items, in the runs table under the connection's ListId (see
// the package doc for why there). Every roster item's RunId starts with
// rosterPrefix; run ids start with a digit, which sorts below it, so the
// queries of runs end below rosterPrefix and never meet a roster item.
const (
	rosterPrefix = "roster/"
	metaKey      = rosterPrefix + "meta"
	bucketPrefix = rosterPrefix + "b/" // + 4 hex digits of the bucket + "/" + 16 of the generation
	deltaPrefix  = rosterPrefix + "d/" // + 32 hex digits of the group (time, handle) + "/" + 4 of the part

	// Meta item.
	attrVersion     = "Version"     // N, one more at every fold
	attrBits        = "Bits"        // N, the buckets are the ids' first Bits bits
	attrSize        = "Size"        // N, distinct ids in the buckets
	attrGenerations = "Generations" // B, 8 bytes per bucket: its item's generation, 0 for an empty bucket
	attrFolded      = "Folded"      // B, 16 bytes per group: deltas in the buckets whose items may remain

	// Bucket item.
	attrIDs = "Ids" // B, the bucket's ids, 16 bytes each, ascending

	// Delta item: one part of a group, one UpdateRoster's ids.
	attrAdd    = "Add"    // B, 16 bytes per id
	attrRemove = "Remove" // B
	attrParts  = "Parts"  // N, how many parts the group has

	// The connection's history item: what status shows. Small attributes
	// only, as a scan of the history table reads every one.
	attrRosterKept          = "RosterKept"          // BOOL
	attrRosterMembers       = "RosterMembers"       // N, the size the last RosterSize counted
	attrRosterCounted       = "RosterCounted"       // N, the meta Version that size is of
	attrRosterLastReconcile = "RosterLastReconcile" // N, unix nanoseconds
	attrRosterLeft          = "RosterLeft"          // N, only ever added to
	attrRosterDefaultView   = "RosterDefaultView"   // N, a state.DefaultView
)

const (
	// maxBits caps the buckets at 16,384: the meta item then holds 128 KB
	// of generations, and a bucket reaches its item's 400 KB only past
	// some 390 million ids.
	maxBits = 14
	// bucketTarget is the most ids a bucket holds on average before the
	// next fold doubles the buckets (as often as needed): a changed id
	// rewrites at most about 4 KB of bucket, whatever the roster's size.
	bucketTarget = 256
	// maxItemIDs is the most ids one item holds: 288 KB, below DynamoDB's
	// 400 KB item limit with room for the keys and the other attributes.
	maxItemIDs = 18_000
)

// groupID names one UpdateRoster's delta: the time of its handle's clock
// it was written at, then the handle, big-endian. Its hex digits are in
// the delta's key, so groups sort by time, then by handle.
type groupID [16]byte

func newGroupID(at, handle uint64) groupID {
	var g groupID
	binary.BigEndian.PutUint64(g[:8], at)
	binary.BigEndian.PutUint64(g[8:], handle)
	return g
}

// time is when the group's writer made it, by its clock.
func (g groupID) time() time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(g[:8])^(1<<63)))
}

func deltaKey(g groupID, part int) string {
	return fmt.Sprintf("%s%x/%04x", deltaPrefix, g[:], part)
}

// parseDeltaKey reads a delta key's group; its part number is not needed.
func parseDeltaKey(key string) (groupID, error) {
	var g groupID
	rest, ok := strings.CutPrefix(key, deltaPrefix)
	hexGroup, _, found := strings.Cut(rest, "/")
	if !ok || !found || len(hexGroup) != 2*len(g) {
		return g, fmt.Errorf("roster delta key %q is malformed", key)
	}
	if _, err := hex.Decode(g[:], []byte(hexGroup)); err != nil {
		return g, fmt.Errorf("roster delta key %q: %w", key, err)
	}
	return g, nil
}

func bucketKey(bucket int, gen uint64) string {
	return fmt.Sprintf("%s%04x/%016x", bucketPrefix, bucket, gen)
}

// bucketOf is the bucket of id when there are 1<<bits buckets: the number
// its first bits bits make, so the buckets in order hold ascending ids.
func bucketOf(id state.MemberID, bits uint) int {
	return int(binary.BigEndian.Uint16(id[:2]) >> (16 - bits))
}

// bitsFor is how many bits of prefix a roster of size ids needs to keep
// its buckets at bucketTarget ids or fewer on average, up to maxBits.
func bitsFor(size int64) uint {
	bits := uint(0)
	for bits < maxBits && size > bucketTarget<<bits {
		bits++
	}
	return bits
}

func binAttr(b []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: b} }

// pack is ids as one binary value: 16 bytes each, in order.
func pack(ids []state.MemberID) []byte {
	out := make([]byte, 0, len(ids)*len(state.MemberID{}))
	for i := range ids {
		out = append(out, ids[i][:]...)
	}
	return out
}

func unpack(b []byte) ([]state.MemberID, error) {
	const size = len(state.MemberID{})
	if len(b)%size != 0 {
		return nil, fmt.Errorf("%d bytes of ids is not a multiple of %d", len(b), size)
	}
	out := make([]state.MemberID, len(b)/size)
	for i := range out {
		copy(out[i][:], b[i*size:])
	}
	return out, nil
}

func (r *reader) binary(attr string) []byte {
	switch v := r.item[attr].(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberB:
		return v.Value
	default:
		r.fail(attr, fmt.Errorf("holds %T, want binary", v))
		return nil
	}
}

func (r *reader) ids(attr string) []state.MemberID {
	ids, err := unpack(r.binary(attr))
	if err != nil {
		r.fail(attr, err)
	}
	return ids
}

// rosterMeta is the meta item: which bucket items hold the folded roster,
// and which deltas are in them.
type rosterMeta struct {
	exists  bool  // false: no fold has committed yet, and Version is 0
	version int64 // the condition of the next fold's commit
	bits    uint
	size    int64
	gens    []uint64  // 1<<bits of them
	folded  []groupID // sorted
}

func emptyMeta() rosterMeta { return rosterMeta{gens: make([]uint64, 1)} }

func decodeMeta(it map[string]types.AttributeValue) (rosterMeta, error) {
	if it == nil {
		return emptyMeta(), nil
	}
	r := &reader{item: it}
	m := rosterMeta{exists: true, version: r.int(attrVersion), size: r.int(attrSize)}
	bits := r.int(attrBits)
	gens, folded := r.binary(attrGenerations), r.binary(attrFolded)
	if r.err != nil {
		return m, r.err
	}
	if bits < 0 || bits > maxBits || len(gens) != 8<<bits || len(folded)%len(groupID{}) != 0 {
		return m, fmt.Errorf("roster meta item: %d bits, %d bytes of generations, %d of folded groups are inconsistent",
			bits, len(gens), len(folded))
	}
	m.bits = uint(bits)
	m.gens = make([]uint64, 1<<bits)
	for i := range m.gens {
		m.gens[i] = binary.BigEndian.Uint64(gens[8*i:])
	}
	m.folded = make([]groupID, len(folded)/len(groupID{}))
	for i := range m.folded {
		copy(m.folded[i][:], folded[i*len(groupID{}):])
	}
	return m, nil
}

func (m rosterMeta) encode(name string) item {
	gens := make([]byte, 8*len(m.gens))
	for i, g := range m.gens {
		binary.BigEndian.PutUint64(gens[8*i:], g)
	}
	folded := make([]byte, 0, len(m.folded)*len(groupID{}))
	for _, g := range m.folded {
		folded = append(folded, g[:]...)
	}
	it := item{
		attrListID: str(name), attrRunID: str(metaKey),
		attrVersion: num(m.version), attrBits: num(int64(m.bits)), attrSize: num(m.size),
		attrGenerations: binAttr(gens),
	}
	if len(folded) > 0 {
		it[attrFolded] = binAttr(folded)
	}
	return it
}

func (m rosterMeta) isFolded(g groupID) bool {
	_, found := slices.BinarySearchFunc(m.folded, g, func(a, b groupID) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// deltaGroup is one UpdateRoster's change as the table holds it: its parts
// present, and how many it has.
type deltaGroup struct {
	id          groupID
	parts       int      // as written; a group with fewer keys is incomplete
	keys        []string // the parts present
	add, remove []state.MemberID
}

func (g *deltaGroup) complete() bool { return len(g.keys) == g.parts }

func (g *deltaGroup) itemKeys(name string) []map[string]types.AttributeValue {
	keys := make([]map[string]types.AttributeValue, len(g.keys))
	for i, k := range g.keys {
		keys[i] = rosterKey(name, k)
	}
	return keys
}

// groupDeltas reads delta items, in key order, into their groups, in the
// same order.
func groupDeltas(items []map[string]types.AttributeValue) ([]*deltaGroup, error) {
	var out []*deltaGroup
	for _, it := range items {
		r := &reader{item: it}
		key := r.string(attrRunID)
		parts := r.int(attrParts)
		add, remove := r.ids(attrAdd), r.ids(attrRemove)
		if r.err != nil {
			return nil, r.err
		}
		id, err := parseDeltaKey(key)
		if err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].id != id {
			out = append(out, &deltaGroup{id: id, parts: int(parts)})
		}
		g := out[len(out)-1]
		g.keys = append(g.keys, key)
		g.add = append(g.add, add...)
		g.remove = append(g.remove, remove...)
	}
	return out, nil
}

// deltaItems splits a change into the parts of group g, at most
// maxItemIDs ids each; a change without ids has none.
func deltaItems(name string, g groupID, c state.RosterChange) []item {
	add, remove := c.Add, c.Remove
	var parts []item
	for len(add)+len(remove) > 0 {
		it := item{attrListID: str(name)}
		room := maxItemIDs
		if n := min(room, len(add)); n > 0 {
			it[attrAdd] = binAttr(pack(add[:n]))
			add, room = add[n:], room-n
		}
		if n := min(room, len(remove)); n > 0 {
			it[attrRemove] = binAttr(pack(remove[:n]))
			remove = remove[n:]
		}
		parts = append(parts, it)
	}
	for i, it := range parts {
		it[attrRunID] = str(deltaKey(g, i))
		it[attrParts] = num(int64(len(parts)))
	}
	return parts
}

// encodeBucket is the item of a bucket's ids, refused when it would not
// fit in an item.
func encodeBucket(name string, bucket int, gen uint64, ids []state.MemberID) (item, error) {
	if len(ids) > maxItemIDs*4/3 { // 384 KB
		return nil, fmt.Errorf("roster bucket %d holds %d ids, more than an item can", bucket, len(ids))
	}
	return item{attrListID: str(name), attrRunID: str(bucketKey(bucket, gen)), attrIDs: binAttr(pack(ids))}, nil
}

func rosterKey(name, key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrListID: str(name), attrRunID: str(key)}
}

// decodeRosterState reads the RosterState from a history item.
func decodeRosterState(r *reader) state.RosterState {
	return state.RosterState{
		Kept:          r.bool(attrRosterKept),
		Members:       r.int(attrRosterMembers),
		LastReconcile: r.time(attrRosterLastReconcile),
		Left:          r.int(attrRosterLeft),
		DefaultView:   state.DefaultView(r.int(attrRosterDefaultView)),
	}
}
