package dynamodb

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"slices"

	"github.com/chimport/chimport/internal/state"
)

// Sets of ids as sorted slices, and the changes the deltas make to them.

func compareIDs(a, b state.MemberID) int { return bytes.Compare(a[:], b[:]) }

// op is what the deltas leave of one id: in the roster or out of it.
type op struct {
	id      state.MemberID
	present bool
}

// opsOf is the net effect of groups applied in order, each its adds and
// then its removes: the last word on each id, sorted by id.
func opsOf(groups []*deltaGroup) []op {
	last := map[state.MemberID]bool{}
	for _, g := range groups {
		for _, id := range g.add {
			last[id] = true
		}
		for _, id := range g.remove {
			last[id] = false
		}
	}
	ops := make([]op, 0, len(last))
	for id, present := range last {
		ops = append(ops, op{id, present})
	}
	slices.SortFunc(ops, func(a, b op) int { return compareIDs(a.id, b.id) })
	return ops
}

// apply returns ids (sorted, distinct) with ops (sorted by id) applied, in
// a new slice.
func apply(ids []state.MemberID, ops []op) []state.MemberID {
	out := make([]state.MemberID, 0, len(ids)+len(ops))
	i := 0
	for _, o := range ops {
		for i < len(ids) && compareIDs(ids[i], o.id) < 0 {
			out = append(out, ids[i])
			i++
		}
		if i < len(ids) && ids[i] == o.id {
			i++ // o decides whether it stays
		}
		if o.present {
			out = append(out, o.id)
		}
	}
	return append(out, ids[i:]...)
}

// opRange is the ops (sorted by id) that fall in one bucket: ops[from:to].
type opRange struct{ bucket, from, to int }

func bucketRanges(ops []op, bits uint) []opRange {
	var out []opRange
	for from := 0; from < len(ops); {
		b := bucketOf(ops[from].id, bits)
		to := from + 1
		for to < len(ops) && bucketOf(ops[to].id, bits) == b {
			to++
		}
		out = append(out, opRange{b, from, to})
		from = to
	}
	return out
}

// nonEmpty lists the buckets of m that have an item.
func nonEmpty(m rosterMeta) []int {
	var out []int
	for b, g := range m.gens {
		if g != 0 {
			out = append(out, b)
		}
	}
	return out
}

func sortGroups(gs []groupID) {
	slices.SortFunc(gs, func(a, b groupID) int { return bytes.Compare(a[:], b[:]) })
}

// newGeneration names the bucket items of one fold attempt: random, so
// two folds of the same meta item, one of which will lose its commit,
// never write the same keys; never 0, which means an empty bucket.
func newGeneration() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
		if g := binary.BigEndian.Uint64(b[:]); g != 0 {
			return g
		}
	}
}
