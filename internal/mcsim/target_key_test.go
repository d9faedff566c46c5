package mcsim

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/target"
)

var idAndList = []string{"id", "list_id"}

// With a key of id and list_id, one person in two audiences is two
// records; upserts, tombstones and DELETEs each reach the one record
// their key names.
func TestTargetCompositeKey(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Key: idAndList})
	status, _, body := ts.send("POST", "", `[{"id":"p","list_id":"A","v":1},{"id":"p","list_id":"B","v":1},{"id":"q","list_id":"A"}]`)
	if status != http.StatusOK {
		t.Fatalf("POST: %d %s", status, body)
	}
	// A tombstone is a record like any other: it replaces A's record of p.
	if status, _, body := ts.send("POST", "", `[{"id":"p","list_id":"A","deleted":true}]`); status != http.StatusOK {
		t.Fatalf("tombstone POST: %d %s", status, body)
	}
	if status, _, body := ts.sendTo("DELETE", "/records/q?list_id=A", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE q of A: %d %s", status, body)
	}
	want := map[string]map[string]any{
		"p|A": {"id": "p", "list_id": "A", "deleted": true},
		"p|B": {"id": "p", "list_id": "B", "v": json.Number("1")},
	}
	if diff := cmp.Diff(want, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ name, path, body string }{
		{"DELETE without list_id", "/records/p", ""},
		{"DELETE of a record not there", "/records/p?list_id=C", ""},
	} {
		status, _, body := ts.sendTo("DELETE", tt.path, "")
		if status != http.StatusBadRequest && status != http.StatusNotFound || ts.target.Len() != 2 {
			t.Errorf("%s: %d %s, %d records; want a 400 or 404 and both records kept", tt.name, status, body, ts.target.Len())
		}
	}
	if status, _, body := ts.sendTo("DELETE", "/records/p", ""); status != http.StatusBadRequest || !strings.Contains(body, "list_id") {
		t.Errorf("DELETE without list_id: %d %s, want a 400 naming list_id", status, body)
	}
	if status, _, body := ts.send("POST", "", `[{"id":"r"}]`); status != http.StatusBadRequest || !strings.Contains(body, "list_id") || ts.target.Len() != 2 {
		t.Errorf("a record without list_id: %d %s, want a 400 naming list_id, nothing stored", status, body)
	}
}

// Apply deletes name a composite key in their Record or as a joined id;
// the refusal rules see the key fields of a delete.
func TestApplyCompositeKey(t *testing.T) {
	tgt := NewTarget(TargetOptions{Key: idAndList})
	ctx := context.Background()
	must(t, tgt.Apply(ctx, []target.Op{
		target.Upsert([]byte(`{"id":"p","list_id":"A"}`)), target.Upsert([]byte(`{"id":"p","list_id":"B"}`)),
		target.Upsert([]byte(`{"id":"q","list_id":"A"}`)),
	}))
	must(t, tgt.Apply(ctx, []target.Op{
		{Kind: target.OpDelete, ID: "p", Record: []byte(`{"id":"p","list_id":"A"}`)},
		target.Delete("q|A"),
	}))
	if diff := cmp.Diff([]string{"p|B"}, sortedKeys(tgt.Records())); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	var terr *target.Error
	if err := tgt.Apply(ctx, []target.Op{target.Delete("p")}); !errors.As(err, &terr) || terr.Status != 400 || tgt.Len() != 1 {
		t.Errorf("a delete of id alone: %v, %d records; want a 400 and nothing removed", err, tgt.Len())
	}

	var seen map[string]any
	tgt.SetRefuseRule(func(rec map[string]any) string { seen = rec; return "no" })
	if err := tgt.Apply(ctx, []target.Op{target.Delete("p|B")}); !errors.As(err, &terr) || terr.Status != 422 {
		t.Fatalf("refused delete: %v", err)
	}
	if diff := cmp.Diff(map[string]any{"id": "p", "list_id": "B"}, seen); diff != "" {
		t.Errorf("the rule saw (-want +got):\n%s", diff)
	}
}

// Agreement and Mirror check each audience of a target two audiences
// share, by the composite key.
func TestMirrorSharedTarget(t *testing.T) {
	sim := New(Options{ListID: "A", Members: 4, Seed: 3, Clock: newFakeAtStart()})
	sim.AddList("B", 3, 4)
	// The same person in both audiences.
	shared := sim.Members("A")[0]
	shared.ID, shared.ListID = "", ""
	if _, err := sim.Add("B", shared); err != nil {
		t.Fatal(err)
	}
	tgt := NewTarget(TargetOptions{Key: idAndList})
	record := func(m map[string]any) (map[string]any, error) {
		return map[string]any{"id": m["id"], "list_id": m["list_id"], "email": m["email_address"]}, nil
	}
	for _, listID := range []string{"A", "B"} {
		var ops []target.Op
		for _, m := range sim.Members(listID) {
			doc, _ := memberDoc(m)
			rec, _ := record(doc)
			b, _ := json.Marshal(rec)
			ops = append(ops, target.Upsert(b))
		}
		must(t, tgt.Apply(context.Background(), ops))
	}
	if tgt.Len() != 4+3+1 {
		t.Fatalf("target holds %d records, want 8 (the shared person twice)", tgt.Len())
	}
	for _, listID := range []string{"A", "B"} {
		if checked, bad, err := Agreement(sim, listID, tgt, record); err != nil || len(bad) != 0 || checked == 0 {
			t.Errorf("Agreement %s: %d checked, %v, %v", listID, checked, bad, err)
		}
		rep, err := Mirror(sim, listID, tgt, MirrorOptions{Record: record, ListIDKey: "list_id", Tombstone: map[string]any{"deleted": true}})
		if err != nil || !rep.OK() {
			t.Errorf("Mirror %s: %v, %v", listID, rep, err)
		}
	}
	// A tombstone carrying list_id is one, not a stale record.
	must(t, tgt.Apply(context.Background(), []target.Op{target.Upsert([]byte(`{"id":"gone","list_id":"A","deleted":true}`))}))
	rep, err := Mirror(sim, "A", tgt, MirrorOptions{Record: record, ListIDKey: "list_id", Tombstone: map[string]any{"deleted": true}})
	if err != nil || !rep.OK() || rep.Tombstones != 1 || rep.Records != 5 {
		t.Errorf("Mirror A with a tombstone: %v, %v; want OK, 1 tombstone of 5 records", rep, err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
