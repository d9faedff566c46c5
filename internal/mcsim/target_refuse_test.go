package mcsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/target"
)

// TestTargetRefusesWholeBatch: one refused record refuses its whole POST,
// nothing of it stored, with a 422 naming the first refused record; the
// rest goes through alone, and the record once accepted (AcceptIDs) too.
func TestTargetRefusesWholeBatch(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	ts.target.RefuseIDs("b", "d")

	status, h, body := ts.send("POST", "", `[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]`)
	if want := `{"error":"invalid record","index":1,"id":"b","reason":"refused id"}`; status != 422 || body != want {
		t.Errorf("a batch with refused records: %d %s; want 422 %s", status, body, want)
	}
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if ts.target.Len() != 0 {
		t.Errorf("a refused batch stored %d records", ts.target.Len())
	}
	if status, _, _ := ts.send("POST", "", `[{"id":"a"},{"id":"c"}]`); status != 200 {
		t.Errorf("the accepted records alone: %d", status)
	}
	ts.target.AcceptIDs("b", "never-refused")
	if status, _, _ := ts.send("POST", "", `[{"id":"b"}]`); status != 200 {
		t.Errorf("after AcceptIDs(b): %d", status)
	}
	if status, _, body := ts.send("POST", "", `[{"id":"d","v":1}]`); status != 422 || !strings.Contains(body, `"index":0,"id":"d"`) {
		t.Errorf("d, still refused: %d %s", status, body)
	}
	want := map[string]map[string]any{"a": {"id": "a"}, "b": {"id": "b"}, "c": {"id": "c"}}
	if diff := cmp.Diff(want, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	wantStats := TargetStats{Requests: 4, Posts: 4, Batches: 2, RecordsReceived: 3, Refused: 2,
		ByStatus: map[int]int{200: 2, 422: 2}, MaxInFlight: 1}
	if diff := cmp.Diff(wantStats, ts.target.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestTargetRefuseRule: a rule sees each record decoded (numbers as
// json.Number), tombstones included; the first refused record is the one
// named, whichever rule refused it; nil, RefuseAll and AcceptAll do what
// they say.
func TestTargetRefuseRule(t *testing.T) {
	noEmail := func(rec map[string]any) string {
		if _, ok := rec["email"]; !ok {
			return "email is required"
		}
		if n, ok := rec["score"].(json.Number); ok && n.String() == "1e3" {
			return "score out of range"
		}
		if rec["status"] == "deleted" {
			return "cannot delete " + rec["id"].(string)
		}
		return ""
	}
	tests := []struct {
		name   string
		setup  func(*Target)
		batch  string
		status int
		body   string // "" for the 200 of an accepted batch
	}{
		{"accepted", func(t *Target) { t.SetRefuseRule(noEmail) },
			`[{"id":"a","email":"a@x"},{"id":"b","email":"b@x","score":1000}]`, 200, ""},
		{"the first of two refused", func(t *Target) { t.SetRefuseRule(noEmail) },
			`[{"id":"a","email":"a@x"},{"id":"b"},{"id":"c"}]`, 422,
			`{"error":"invalid record","index":1,"id":"b","reason":"email is required"}`},
		{"a number as sent", func(t *Target) { t.SetRefuseRule(noEmail) },
			`[{"id":"a","email":"a@x","score":1e3}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"score out of range"}`},
		{"a tombstone", func(t *Target) { t.SetRefuseRule(noEmail) },
			`[{"id":"a","email":"a@x"},{"id":"gone","email":"","status":"deleted"}]`, 422,
			`{"error":"invalid record","index":1,"id":"gone","reason":"cannot delete gone"}`},
		{"the id set before the rule", func(t *Target) { t.SetRefuseRule(noEmail); t.RefuseIDs("a") },
			`[{"id":"a","email":"a@x"},{"id":"b"}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"refused id"}`},
		{"the rule before the id set", func(t *Target) { t.SetRefuseRule(noEmail); t.RefuseIDs("b") },
			`[{"id":"a"},{"id":"b","email":"b@x"}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"email is required"}`},
		{"nil removes the rule, not the ids", func(t *Target) { t.SetRefuseRule(noEmail); t.RefuseIDs("b"); t.SetRefuseRule(nil) },
			`[{"id":"a"},{"id":"b"}]`, 422,
			`{"error":"invalid record","index":1,"id":"b","reason":"refused id"}`},
		{"RefuseAll", func(t *Target) { t.RefuseAll("maintenance") },
			`[{"id":"a","email":"a@x"}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"maintenance"}`},
		{"RefuseAll without a reason", func(t *Target) { t.RefuseAll("") },
			`[{"id":"a"}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"record refused"}`},
		{"RefuseAll and an empty batch", func(t *Target) { t.RefuseAll("x") }, `[]`, 200, ""},
		{"AcceptAll", func(t *Target) { t.RefuseAll("x"); t.RefuseIDs("a"); t.AcceptAll() },
			`[{"id":"a"}]`, 200, ""},
		{"status 400", func(t *Target) { t.RefuseIDs("a"); t.SetRefuseStatus(400) },
			`[{"id":"a"}]`, 400,
			`{"error":"invalid record","index":0,"id":"a","reason":"refused id"}`},
		{"status 0 is 422 again", func(t *Target) { t.RefuseIDs("a"); t.SetRefuseStatus(400); t.SetRefuseStatus(0) },
			`[{"id":"a"}]`, 422,
			`{"error":"invalid record","index":0,"id":"a","reason":"refused id"}`},
		{"a malformed batch is a 400 the rules never see", func(t *Target) { t.RefuseAll("x"); t.SetRefuseStatus(409) },
			`[{"id":"a"},{"name":"b"}]`, 400, `{"error":"record 1 has no string id"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTargetServer(t, TargetOptions{})
			tc.setup(ts.target)
			status, _, body := ts.send("POST", "", tc.batch)
			if status != tc.status || (tc.body != "" && body != tc.body) {
				t.Fatalf("got %d %s; want %d %s", status, body, tc.status, tc.body)
			}
			st := ts.target.Stats()
			if status == 200 {
				if st.Batches != 1 || st.Refused != 0 {
					t.Errorf("accepted, yet stats %+v", st)
				}
				return
			}
			if ts.target.Len() != 0 || st.Batches != 0 {
				t.Errorf("refused, yet %d records stored, stats %+v", ts.target.Len(), st)
			}
			wantRefused := 0 // a malformed batch is not refused by the rules
			if strings.HasPrefix(tc.body, `{"error":"invalid record"`) {
				wantRefused = 1
			}
			if st.Refused != wantRefused {
				t.Errorf("Refused = %d, want %d", st.Refused, wantRefused)
			}
		})
	}
}

// TestTargetRefuseRuleMayCallTheTarget: the rule runs without the target's
// lock, so it may ask the target what it holds (here: refuse a second
// write of an id).
func TestTargetRefuseRuleMayCallTheTarget(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	ts.target.SetRefuseRule(func(rec map[string]any) string {
		if _, ok := ts.target.Records()[rec["id"].(string)]; ok {
			return "already exists"
		}
		return ""
	})
	if status, _, _ := ts.send("POST", "", `[{"id":"a"}]`); status != 200 {
		t.Fatalf("first write: %d", status)
	}
	if status, _, body := ts.send("POST", "", `[{"id":"b"},{"id":"a"}]`); status != 422 || !strings.Contains(body, `"reason":"already exists"`) {
		t.Errorf("second write: %d %s", status, body)
	}
}

func TestSetRefuseStatusPanicsOnNonRefusals(t *testing.T) {
	for _, status := range []int{200, 302, 413, 500, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetRefuseStatus(%d) did not panic", status)
				}
			}()
			NewTarget(TargetOptions{}).SetRefuseStatus(status)
		}()
	}
}

// TestTargetMaxBatch: a POST of more records than SetMaxBatch allows is a
// 413 before its records are judged, with nothing applied; 0 removes the
// limit.
func TestTargetMaxBatch(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	ts.target.SetMaxBatch(2)
	ts.target.RefuseIDs("c")
	status, _, body := ts.send("POST", "", `[{"id":"a"},{"id":"b"},{"id":"c"}]`)
	if want := `{"error":"batch too large","records":3,"max":2}`; status != 413 || body != want {
		t.Errorf("3 records, max 2: %d %s; want 413 %s", status, body, want)
	}
	if status, _, _ := ts.send("POST", "", `[{"id":"a"},{"id":"b"}]`); status != 200 {
		t.Errorf("2 records, max 2: %d", status)
	}
	if status, _, _ := ts.send("POST", "", `[{"id":"a"},{"id":"c"}]`); status != 422 {
		t.Errorf("2 records, one refused: %d", status)
	}
	ts.target.AcceptAll()
	ts.target.SetMaxBatch(0)
	if status, _, _ := ts.send("POST", "", `[{"id":"c"},{"id":"d"},{"id":"e"}]`); status != 200 {
		t.Errorf("3 records, no limit: %d", status)
	}
	if ts.target.Len() != 5 {
		t.Errorf("Len = %d, want 5 (a to e)", ts.target.Len())
	}
	wantStats := TargetStats{Requests: 4, Posts: 4, Batches: 2, RecordsReceived: 5, Refused: 1, TooLarge: 1,
		ByStatus: map[int]int{200: 2, 413: 1, 422: 1}, MaxInFlight: 1}
	if diff := cmp.Diff(wantStats, ts.target.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestTargetFaultsBeforeRules: an injected failure answers first, the
// batch neither applied nor judged; the rules judge the next one.
func TestTargetFaultsBeforeRules(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Seed: 1})
	ts.target.RefuseIDs("a")
	ts.target.SetMaxBatch(1)
	ts.target.FailNext(503, 2)
	var got []int
	for _, batch := range []string{`[{"id":"a"}]`, `[{"id":"b"},{"id":"c"}]`, `[{"id":"a"}]`, `[{"id":"b"},{"id":"c"}]`, `[{"id":"b"}]`} {
		status, _, _ := ts.send("POST", "", batch)
		got = append(got, status)
	}
	if diff := cmp.Diff([]int{503, 503, 422, 413, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	ts.target.SetFailRate(1, 500)
	if status, _, _ := ts.send("POST", "", `[{"id":"a"}]`); status != 500 {
		t.Errorf("fail rate 1 and a refused record: %d, want 500", status)
	}
	if status, _, _ := ts.sendTo("DELETE", "/records/a", ""); status != 500 {
		t.Errorf("fail rate 1 and a refused DELETE: %d, want 500", status)
	}
	st := ts.target.Stats()
	if st.Refused != 1 || st.TooLarge != 1 || st.ByStatus[503] != 2 || st.ByStatus[500] != 2 || st.Posts != 6 || st.Requests != 7 {
		t.Errorf("stats %+v; want 1 refused, 1 too large, 2×503, 2×500, 6 POSTs, 7 requests", st)
	}
	if diff := cmp.Diff(map[string]map[string]any{"b": {"id": "b"}}, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestTargetRefusesDeletes: a DELETE is judged as the record {"id": id},
// before the record is looked for; refused, it removes nothing and its
// body names no index.
func TestTargetRefusesDeletes(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	ts.send("POST", "", `[{"id":"a"},{"id":"b"},{"id":"c","status":"deleted"}]`)
	ts.target.ResetStats()
	ts.target.RefuseIDs("a", "nobody")
	// Refuses tombstones only: a DELETE's record has no status.
	ts.target.SetRefuseRule(func(rec map[string]any) string {
		if rec["status"] == "deleted" {
			return "no tombstones"
		}
		return ""
	})

	status, _, body := ts.sendTo("DELETE", "/records/a", "")
	if want := `{"error":"invalid record","id":"a","reason":"refused id"}`; status != 422 || body != want {
		t.Errorf("DELETE of a refused id: %d %s; want 422 %s", status, body, want)
	}
	if status, _, _ := ts.sendTo("DELETE", "/records/nobody", ""); status != 422 {
		t.Errorf("DELETE of a refused id with no record: %d, want 422", status)
	}
	if status, _, _ := ts.sendTo("DELETE", "/records/c", ""); status != 204 {
		t.Errorf("DELETE that a tombstone rule does not refuse: %d, want 204", status)
	}
	ts.target.SetRefuseStatus(400)
	if status, _, _ := ts.sendTo("DELETE", "/records/a", ""); status != 400 {
		t.Errorf("DELETE with refuse status 400: %d", status)
	}
	ts.target.AcceptIDs("a")
	if status, _, _ := ts.sendTo("DELETE", "/records/a", ""); status != 204 {
		t.Errorf("DELETE after AcceptIDs: %d, want 204", status)
	}
	if diff := cmp.Diff(map[string]map[string]any{"b": {"id": "b"}}, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	want := TargetStats{Requests: 5, Deletes: 2, RecordsDeleted: 2, Refused: 3, MaxInFlight: 1,
		ByStatus:        map[int]int{204: 2, 422: 2, 400: 1},
		DeletesByStatus: map[int]int{204: 2, 422: 2, 400: 1}}
	if diff := cmp.Diff(want, ts.target.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestApplyRefuses: the in-process door judges a batch as a POST with
// tombstones is judged, answering with the *target.Error the sink would
// return, and applies nothing of a refused or too large batch.
func TestApplyRefuses(t *testing.T) {
	ctx := context.Background()
	tgt := NewTarget(TargetOptions{})
	must(t, tgt.Apply(ctx, []target.Op{target.Upsert([]byte(`{"id":"old"}`))}))
	tgt.ResetStats()
	tgt.RefuseIDs("b", "gone")
	tgt.SetMaxBatch(3)

	tests := []struct {
		name     string
		ops      []target.Op
		status   int
		method   string
		body     string
		failNext int
	}{
		{"a refused upsert", []target.Op{target.Upsert([]byte(`{"id":"a"}`)), target.Upsert([]byte(`{"id":"b"}`))},
			422, "POST", `{"error":"invalid record","index":1,"id":"b","reason":"refused id"}`, 0},
		{"a refused delete", []target.Op{target.Upsert([]byte(`{"id":"a"}`)), target.Delete("old"), target.Delete("gone")},
			422, "DELETE", `{"error":"invalid record","index":2,"id":"gone","reason":"refused id"}`, 0},
		{"too large", []target.Op{target.Upsert([]byte(`{"id":"a"}`)), target.Delete("old"), target.Delete("x"), target.Delete("y")},
			413, "POST", `{"error":"batch too large","records":4,"max":3}`, 0},
		{"an injected failure first", []target.Op{target.Upsert([]byte(`{"id":"b"}`))},
			503, "POST", `{"error":"injected failure"}`, 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.failNext != 0 {
				tgt.FailNext(tc.failNext, 1)
			}
			err := tgt.Apply(ctx, tc.ops)
			var terr *target.Error
			if !errors.As(err, &terr) {
				t.Fatalf("Apply = %v, want a *target.Error", err)
			}
			if terr.Status != tc.status || terr.Method != tc.method || terr.Body != tc.body {
				t.Errorf("got %d %s %s; want %d %s %s", terr.Status, terr.Method, terr.Body, tc.status, tc.method, tc.body)
			}
			if terr.Refused() != (tc.status == 422) || terr.TooLarge() != (tc.status == 413) {
				t.Errorf("Refused %v TooLarge %v for %d", terr.Refused(), terr.TooLarge(), tc.status)
			}
		})
	}
	if diff := cmp.Diff(map[string]map[string]any{"old": {"id": "old"}}, tgt.Records()); diff != "" {
		t.Errorf("records after refused batches (-want +got):\n%s", diff)
	}
	must(t, tgt.Apply(ctx, []target.Op{target.Upsert([]byte(`{"id":"a"}`)), target.Delete("old")}))
	want := TargetStats{Requests: 5, Posts: 5, Batches: 1, RecordsReceived: 1, Deletes: 1, RecordsDeleted: 1,
		Refused: 2, TooLarge: 1, ByStatus: map[int]int{200: 1, 413: 1, 422: 2, 503: 1}}
	if diff := cmp.Diff(want, tgt.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestTargetRulesConcurrently: batches POSTed and applied at once, while
// other goroutines change the rules, are each applied whole or not at
// all, and the counters add up. Run it with -race.
func TestTargetRulesConcurrently(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	ts.target.RefuseIDs("bad")
	const workers, batches, size = 8, 24, 4
	done := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() { // rules that never refuse what the workers send
		defer churn.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			ts.target.RefuseIDs(fmt.Sprint("other-", i%5))
			ts.target.AcceptIDs(fmt.Sprint("other-", (i+2)%5))
			ts.target.SetRefuseRule(func(rec map[string]any) string {
				if rec["bad"] == true {
					return "bad field"
				}
				return ""
			})
			ts.target.SetMaxBatch(size + 1 + i%3)
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				recs := make([]string, size)
				ops := make([]target.Op, size)
				for i := range recs {
					recs[i] = fmt.Sprintf(`{"id":"w%d-b%d-r%d"}`, w, b, i)
					ops[i] = target.Upsert([]byte(recs[i]))
				}
				refused := b%3 == 0
				if refused {
					recs[size-1] = `{"id":"bad"}`
					ops[size-1] = target.Delete("bad")
				}
				if w%2 == 0 {
					status, _, body := ts.send("POST", "", "["+strings.Join(recs, ",")+"]")
					if want := map[bool]int{true: 422, false: 200}[refused]; status != want {
						t.Errorf("worker %d batch %d: %d %s, want %d", w, b, status, body, want)
					}
					continue
				}
				err := ts.target.Apply(context.Background(), ops)
				var terr *target.Error
				if refused != (errors.As(err, &terr) && terr.Refused()) {
					t.Errorf("worker %d batch %d: Apply = %v", w, b, err)
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	churn.Wait()

	records := ts.target.Records()
	// Every third batch (b%3 == 0) holds a refused record.
	if wantLen := workers * (batches - batches/3) * size; len(records) != wantLen {
		t.Errorf("%d records stored, want %d", len(records), wantLen)
	}
	for id := range records {
		var w, b, r int
		if _, err := fmt.Sscanf(id, "w%d-b%d-r%d", &w, &b, &r); err != nil || b%3 == 0 {
			t.Errorf("record %q of a refused batch stored", id)
		}
	}
	st := ts.target.Stats()
	if st.Posts != workers*batches || st.Refused != workers*batches/3 || st.Batches != workers*batches*2/3 || st.TooLarge != 0 {
		t.Errorf("stats %+v; want %d posts, %d refused, %d batches", st, workers*batches, workers*batches/3, workers*batches*2/3)
	}
}
