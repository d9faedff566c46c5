package dynamodb

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chimport/chimport/internal/state"
)

func ids(bytes ...byte) []state.MemberID {
	out := make([]state.MemberID, len(bytes))
	for i, b := range bytes {
		out[i] = state.MemberID{b}
	}
	return out
}

// TestOpsApply: groups apply in order, each its adds and then its
// removes, and the result is sorted and distinct.
func TestOpsApply(t *testing.T) {
	tests := []struct {
		name   string
		base   []state.MemberID
		groups []*deltaGroup
		want   []state.MemberID
	}{
		{"adds into empty", nil, []*deltaGroup{{add: ids(3, 1, 2, 1)}}, ids(1, 2, 3)},
		{"adds present and new", ids(1, 3), []*deltaGroup{{add: ids(3, 2, 4)}}, ids(1, 2, 3, 4)},
		{"removes present and absent", ids(1, 2, 3), []*deltaGroup{{remove: ids(2, 9)}}, ids(1, 3)},
		{"an id in both is out", ids(1), []*deltaGroup{{add: ids(2, 1), remove: ids(1, 2)}}, nil},
		{"a later group wins", ids(1), []*deltaGroup{{remove: ids(1)}, {add: ids(1)}, {add: ids(2)}, {remove: ids(2)}}, ids(1)},
		{"before, between and after", ids(2, 4, 6), []*deltaGroup{{add: ids(1, 3, 5, 7), remove: ids(4)}}, ids(1, 2, 3, 5, 6, 7)},
	}
	for _, tt := range tests {
		got := apply(tt.base, opsOf(tt.groups))
		if d := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, d)
		}
	}
}

func TestBuckets(t *testing.T) {
	id := state.MemberID{0xab, 0xcd}
	for bits, want := range map[uint]int{0: 0, 1: 1, 4: 0xa, 8: 0xab, 12: 0xabc, 14: 0xabc<<2 | 0x3} {
		if got := bucketOf(id, bits); got != want {
			t.Errorf("bucketOf(abcd..., %d) = %#x, want %#x", bits, got, want)
		}
	}
	for size, want := range map[int64]uint{0: 0, 256: 0, 257: 1, 512: 1, 513: 2, 200_000: 10, 1_000_000: 12, 1e9: maxBits} {
		if got := bitsFor(size); got != want {
			t.Errorf("bitsFor(%d) = %d, want %d", size, got, want)
		}
	}
	// In bucket order, the buckets hold ascending ids.
	var all []state.MemberID
	for b := range 256 {
		all = append(all, state.MemberID{byte(b)}, state.MemberID{byte(b), 0xff})
	}
	ranges := bucketRanges(opsOf([]*deltaGroup{{add: all}}), 3)
	if len(ranges) != 8 || ranges[7].to != len(all) {
		t.Errorf("ranges at 3 bits: %v", ranges)
	}
}

// TestDeltaKeysSort: delta keys sort in the order of the groups' times
// (before 1970 too), then by handle; one handle's keys keep the order of
// its changes when its clock steps back; every key sorts above every run
// id, below rosterPrefix's end, and parses back to its group.
func TestDeltaKeysSort(t *testing.T) {
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	clock := []time.Time{time.Unix(0, -5), time.Unix(0, 0), at, at, at.Add(-time.Hour), at.Add(time.Second)}
	s := &Store{handle: 0xfeed, now: func() time.Time { t := clock[0]; clock = clock[1:]; return t }}
	var keys []string
	for range len(clock) {
		g := s.nextGroup()
		k := deltaKey(g, 0)
		back, err := parseDeltaKey(k)
		if err != nil || back != g {
			t.Errorf("%s parses to %x, %v; want %x", k, back, err, g)
		}
		keys = append(keys, k)
	}
	if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Errorf("keys out of order or repeated:\n%s", strings.Join(keys, "\n"))
	}
	other := deltaKey(newGroupID(uint64(at.UnixNano())^1<<63, 0xfeee), 0)
	if !(keys[2] < other && other < keys[5]) {
		t.Errorf("another handle's key %s at the same time sorts wrong", other)
	}
	run, err := (&Store{}).runID(state.Run{Finished: time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keys[0], metaKey, bucketKey(0, 1)} {
		if !(run < rosterPrefix && rosterPrefix < k && strings.HasPrefix(k, rosterPrefix)) {
			t.Errorf("run id %s, %s and roster key %s sort wrong", run, rosterPrefix, k)
		}
	}
	for _, bad := range []string{"roster/d/zz/0000", "roster/d/" + strings.Repeat("z", 32) + "/0000", "roster/d/00/0000", "roster/b/0000/01", deltaPrefix} {
		if _, err := parseDeltaKey(bad); err == nil {
			t.Errorf("parseDeltaKey(%q): no error", bad)
		}
	}
}

// TestDeltaItems: a change splits into parts of at most maxItemIDs ids,
// which group back into the change.
func TestDeltaItems(t *testing.T) {
	g := newGroupID(1, 2)
	if parts := deltaItems("news", g, state.RosterChange{}); len(parts) != 0 {
		t.Errorf("an empty change has %d parts", len(parts))
	}
	add := make([]state.MemberID, maxItemIDs+5)
	for i := range add {
		add[i] = state.MemberID{byte(i >> 8), byte(i)}
	}
	remove := add[:maxItemIDs]
	parts := deltaItems("news", g, state.RosterChange{Add: add, Remove: remove})
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3", len(parts))
	}
	var raw []map[string]types.AttributeValue
	for _, p := range parts {
		raw = append(raw, p)
	}
	groups, err := groupDeltas(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || !groups[0].complete() || groups[0].id != g ||
		!slices.Equal(groups[0].add, add) || !slices.Equal(groups[0].remove, remove) {
		t.Errorf("the parts group back into %d groups, the first %d of %d parts", len(groups), len(groups[0].keys), groups[0].parts)
	}
	groups, err = groupDeltas(raw[1:])
	if err != nil || groups[0].complete() {
		t.Errorf("a group missing its first part reads as complete (%v)", err)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	m := rosterMeta{exists: true, version: 7, bits: 2, size: 1000, gens: []uint64{0, 5, 1 << 63, 9},
		folded: []groupID{newGroupID(1, 2), newGroupID(3, 4)}}
	back, err := decodeMeta(m.encode("news"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(m, back, cmp.AllowUnexported(rosterMeta{})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if m, err := decodeMeta(nil); err != nil || m.exists || len(m.gens) != 1 {
		t.Errorf("no meta item: %+v, %v", m, err)
	}
	bad := rosterMeta{exists: true, bits: 3, gens: []uint64{1}}.encode("news")
	if _, err := decodeMeta(bad); err == nil {
		t.Error("a meta item with 3 bits and 1 generation decodes")
	}
	if _, err := encodeBucket("news", 0, 1, make([]state.MemberID, maxItemIDs*2)); err == nil {
		t.Error("a bucket beyond an item's size encodes")
	}
}
