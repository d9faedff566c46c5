package mcsim

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/target"
)

// mirrorRecord is a connection's mapping in these tests.
func mirrorRecord(m map[string]any) (map[string]any, error) {
	return map[string]any{"id": m["id"], "email": m["email_address"], "status": m["status"]}, nil
}

// upsertMembers writes the records of members (by id) to tgt.
func upsertMembers(t *testing.T, sim *Mailchimp, tgt *Target, ids ...string) {
	t.Helper()
	var ops []target.Op
	for _, id := range ids {
		m, ok := sim.member(DefaultListID, id)
		if !ok {
			t.Fatalf("no member %s", id)
		}
		doc, err := memberDoc(*m)
		must(t, err)
		rec, _ := mirrorRecord(doc)
		b, err := json.Marshal(rec)
		must(t, err)
		ops = append(ops, target.Upsert(b))
	}
	must(t, tgt.Apply(context.Background(), ops))
}

func applyOps(t *testing.T, tgt *Target, ops ...target.Op) {
	t.Helper()
	must(t, tgt.Apply(context.Background(), ops))
}

// staleIDs and wrongIDs are a report's problems, by id.
func staleIDs(r MirrorReport) []string {
	var out []string
	for _, s := range r.StaleRecords {
		out = append(out, s.ID)
	}
	return out
}

func wrongIDs(r MirrorReport) []string {
	var out []string
	for _, d := range r.Wrong {
		out = append(out, d.ID)
	}
	return out
}

func sortedIDs(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }

// TestMirror: the strict check finds live members missing or wrong, and
// records of members deleted, moved or filtered out, unless they are
// tombstones of exactly the configured shape.
func TestMirror(t *testing.T) {
	clk := newFakeAtStart()
	sim := New(Options{Members: 60, Seed: 23, Clock: clk})
	tgt := NewTarget(TargetOptions{})
	subscribed := memberIDs(sim.Members(DefaultListID), func(m Member) bool { return m.Status == StatusSubscribed })
	upsertMembers(t, sim, tgt, subscribed...)
	tomb := map[string]any{"deleted": true, "version": 1} // an int: compared as JSON
	opts := MirrorOptions{Record: mirrorRecord, Statuses: []string{StatusSubscribed}, Tombstone: tomb}
	mirror := func() MirrorReport {
		t.Helper()
		r, err := Mirror(sim, DefaultListID, tgt, opts)
		must(t, err)
		if r.Records != tgt.Len() || r.Records != r.Live-len(missing(r))+r.Tombstones+r.Stale || r.Stale != len(r.StaleRecords) {
			t.Errorf("counts do not add up: %+v", r)
		}
		return r
	}
	if r := mirror(); !r.OK() || r.Live != len(subscribed) || r.Records != len(subscribed) {
		t.Fatalf("a fresh copy: %v", r)
	}

	deleted, moved, unsubscribed, edited := subscribed[0], subscribed[1], subscribed[2], subscribed[3]
	must(t, sim.Delete(DefaultListID, deleted))
	movedTo, err := sim.ChangeAddress(DefaultListID, moved, "moved@example.com")
	must(t, err)
	must(t, sim.Unsubscribe(DefaultListID, unsubscribed))
	must(t, sim.Change(DefaultListID, edited, func(m *Member) { m.Status = StatusPending }))
	added, err := sim.Add(DefaultListID, Member{EmailAddress: "new@example.com"})
	must(t, err)
	r := mirror()
	if diff := cmp.Diff(sortedIDs(movedTo, added), wrongIDs(r)); diff != "" || r.OK() {
		t.Errorf("missing live members (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(sortedIDs(deleted, moved, unsubscribed, edited), staleIDs(r)); diff != "" {
		t.Errorf("stale records (-want +got):\n%s", diff)
	}
	if r.Live != len(subscribed)-4+2 || r.Tombstones != 0 {
		t.Errorf("live %d, tombstones %d", r.Live, r.Tombstones)
	}
	if s := r.String(); !strings.Contains(s, "4 stale") || !strings.Contains(s, deleted) {
		t.Errorf("String() = %q", s)
	}

	// Repair it: tombstones, a DELETE, the new records. A tombstone with a
	// key too many, or another value, is no tombstone.
	upsertMembers(t, sim, tgt, movedTo, added)
	applyOps(t, tgt,
		target.Upsert([]byte(`{"id":"`+deleted+`","deleted":true,"version":1}`)),
		target.Delete(moved),
		target.Upsert([]byte(`{"id":"`+unsubscribed+`","deleted":true,"version":1,"status":"unsubscribed"}`)),
		target.Upsert([]byte(`{"id":"`+edited+`","deleted":true,"version":2}`)))
	r = mirror()
	if diff := cmp.Diff(sortedIDs(unsubscribed, edited), staleIDs(r)); diff != "" || len(r.Wrong) > 0 || r.Tombstones != 1 {
		t.Errorf("after a partial repair: %v; stale (-want +got):\n%s", r, diff)
	}
	applyOps(t, tgt, target.Upsert([]byte(`{"id":"`+unsubscribed+`","deleted":true,"version":1.0}`)), target.Delete(edited))
	if r = mirror(); !r.OK() || r.Tombstones != 2 {
		t.Errorf("after the repair: %v", r)
	}

	// A tombstone in place of a live member's record is wrong, not a
	// tombstone; without a Tombstone shape every tombstone is stale.
	live := subscribed[4]
	applyOps(t, tgt, target.Upsert([]byte(`{"id":"`+live+`","deleted":true,"version":1}`)))
	if r = mirror(); !slices.Equal(wrongIDs(r), []string{live}) || r.Wrong[0].Got["deleted"] != true || r.Tombstones != 2 {
		t.Errorf("a live member's tombstone: %v", r)
	}
	upsertMembers(t, sim, tgt, live)
	opts.Tombstone = nil
	if r = mirror(); !slices.Equal(staleIDs(r), sortedIDs(deleted, unsubscribed)) || r.Tombstones != 0 {
		t.Errorf("without a tombstone shape: %v", r)
	}

	// No statuses: every member is live, archived ones included.
	opts = MirrorOptions{Record: mirrorRecord}
	r = mirror()
	if r.Live != len(sim.Members(DefaultListID)) || !slices.Contains(wrongIDs(r), unsubscribed) || !slices.Contains(wrongIDs(r), edited) {
		t.Errorf("every status: %v", r)
	}
}

// missing are the live members a report finds without a record.
func missing(r MirrorReport) []string {
	var out []string
	for _, d := range r.Wrong {
		if d.Got == nil {
			out = append(out, d.ID)
		}
	}
	return out
}

func TestMirrorErrors(t *testing.T) {
	sim := New(Options{Members: 5, Seed: 1, Clock: newFakeAtStart()})
	tgt := NewTarget(TargetOptions{})
	noID := func(m map[string]any) (map[string]any, error) {
		return map[string]any{"email": m["email_address"]}, nil
	}
	failing := func(map[string]any) (map[string]any, error) { return nil, errors.New("mapping failed") }
	tests := []struct {
		name   string
		listID string
		opts   MirrorOptions
	}{
		{"no Record", DefaultListID, MirrorOptions{}},
		{"unknown status", DefaultListID, MirrorOptions{Record: mirrorRecord, Statuses: []string{"active"}}},
		{"unknown list", "nope", MirrorOptions{Record: mirrorRecord}},
		{"a record without an id", DefaultListID, MirrorOptions{Record: noID}},
		{"a record under another id key", DefaultListID, MirrorOptions{Record: mirrorRecord, IDKey: "member_id"}},
		{"a failing mapping", DefaultListID, MirrorOptions{Record: failing}},
	}
	for _, tc := range tests {
		if _, err := Mirror(sim, tc.listID, tgt, tc.opts); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestMirrorComparesNumbersByValue: a Record giving Go numbers matches the
// target's JSON numbers of the same value.
func TestMirrorComparesNumbersByValue(t *testing.T) {
	sim := New(Options{Members: 0, Seed: 1, Clock: newFakeAtStart()})
	id, err := sim.Add(DefaultListID, Member{EmailAddress: "n@example.com"})
	must(t, err)
	tgt := NewTarget(TargetOptions{})
	applyOps(t, tgt, target.Upsert([]byte(`{"id":"`+id+`","score":1.0,"tags":[2]}`)))
	record := func(m map[string]any) (map[string]any, error) {
		return map[string]any{"id": m["id"], "score": 1, "tags": []int{2}}, nil
	}
	if r, err := Mirror(sim, DefaultListID, tgt, MirrorOptions{Record: record}); err != nil || !r.OK() {
		t.Errorf("Mirror = %v, %v; want OK", r, err)
	}
	record = func(m map[string]any) (map[string]any, error) {
		return map[string]any{"id": m["id"], "score": 1.5, "tags": []int{2}}, nil
	}
	if r, err := Mirror(sim, DefaultListID, tgt, MirrorOptions{Record: record}); err != nil || r.OK() {
		t.Errorf("Mirror = %v, %v; want a wrong record", r, err)
	}
}
