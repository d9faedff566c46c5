package mcsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/target"
)

type targetServer struct {
	t      *testing.T
	target *Target
	srv    *httptest.Server
}

func newTargetServer(t *testing.T, opts TargetOptions) *targetServer {
	t.Helper()
	target := NewTarget(opts)
	srv := httptest.NewServer(target)
	t.Cleanup(srv.Close)
	return &targetServer{t: t, target: target, srv: srv}
}

// send makes one request and returns its status, headers and body.
func (ts *targetServer) send(method, auth, body string, header ...string) (int, http.Header, string) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+"/records", strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const targetAuth = "Bearer s3cret"

func TestTargetUpsert(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Auth: targetAuth})
	status, _, body := ts.send("POST", targetAuth,
		`[{"id":"a","firstname":"Zoë","score":42},{"id":"b","firstname":"Ana"}]`, "Idempotency-Key", "k1")
	if status != 200 || body != `{"received":2}` {
		t.Fatalf("status %d body %s", status, body)
	}
	// Last write wins, also within one batch.
	ts.send("POST", targetAuth, `[{"id":"a","firstname":"Zoe"},{"id":"a","firstname":"Zoë","score":1.5}]`, "Idempotency-Key", "k2")
	ts.send("POST", targetAuth, `[]`, "Idempotency-Key", "k2")

	want := map[string]map[string]any{
		"a": {"id": "a", "firstname": "Zoë", "score": json.Number("1.5")},
		"b": {"id": "b", "firstname": "Ana"},
	}
	if diff := cmp.Diff(want, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if ts.target.Len() != 2 {
		t.Errorf("Len = %d", ts.target.Len())
	}
	wantStats := TargetStats{Requests: 3, Posts: 3, Batches: 3, RecordsReceived: 4, ByStatus: map[int]int{200: 3}, MaxInFlight: 1, IdempotencyKeys: 2}
	if diff := cmp.Diff(wantStats, ts.target.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	ts.target.ResetStats()
	if diff := cmp.Diff(TargetStats{ByStatus: map[int]int{}}, ts.target.Stats()); diff != "" {
		t.Errorf("after ResetStats (-want +got):\n%s", diff)
	}
	// Records returns a copy.
	ts.target.Records()["a"]["firstname"] = "changed"
	if ts.target.Records()["a"]["firstname"] != "Zoë" {
		t.Errorf("Records exposes the stored record")
	}
}

func TestTargetAuthAndProbe(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Auth: targetAuth})
	tests := []struct {
		method, auth string
		want         int
	}{
		{"HEAD", targetAuth, 200},
		{"GET", targetAuth, 200},
		{"HEAD", "", 401},
		{"GET", "Bearer wrong", 401},
		{"POST", "", 401},
		{"DELETE", "", 401},
		{"PUT", targetAuth, 405},
	}
	for _, tc := range tests {
		body := ""
		if tc.method == "POST" {
			body = `[{"id":"x"}]`
		}
		if status, _, _ := ts.send(tc.method, tc.auth, body); status != tc.want {
			t.Errorf("%s with auth %q: status %d, want %d", tc.method, tc.auth, status, tc.want)
		}
	}
	if ts.target.Len() != 0 {
		t.Errorf("an unauthorised POST stored records")
	}
	open := newTargetServer(t, TargetOptions{})
	if status, _, _ := open.send("POST", "", `[{"id":"x"}]`); status != 200 {
		t.Errorf("without Auth configured, status %d", status)
	}
}

func TestTargetRejectsBadBatches(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{})
	tests := []struct{ name, body string }{
		{"not JSON", `{"id":`},
		{"an object, not an array", `{"id":"a"}`},
		{"null", `null`},
		{"an element that is not an object", `[{"id":"a"},3]`},
		{"missing id", `[{"id":"a"},{"name":"b"}]`},
		{"numeric id", `[{"id":1}]`},
		{"empty id", `[{"id":""}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := ts.send("POST", "", tc.body)
			var msg struct{ Error string }
			if status != 400 || json.Unmarshal([]byte(body), &msg) != nil || msg.Error == "" {
				t.Errorf("status %d body %s: want 400 with a JSON error", status, body)
			}
		})
	}
	if ts.target.Len() != 0 || ts.target.Stats().Batches != 0 {
		t.Errorf("a rejected batch stored records: %d", ts.target.Len())
	}
}

func TestTargetInjectedFailures(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Seed: 1})
	ts.target.FailNext(503, 2)
	ts.target.SetRetryAfter(1500 * time.Millisecond) // rounds up to 2 s
	var got []int
	for range 3 {
		status, h, _ := ts.send("POST", "", `[{"id":"a"}]`)
		got = append(got, status)
		if status == 503 && h.Get("Retry-After") != "2" {
			t.Errorf("Retry-After = %q, want 2", h.Get("Retry-After"))
		}
	}
	if diff := cmp.Diff([]int{503, 503, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if st := ts.target.Stats(); st.Batches != 1 || st.RecordsReceived != 1 || st.ByStatus[503] != 2 {
		t.Errorf("stats %+v", st)
	}

	ts.target.SetFailRate(1, 429)
	if status, h, _ := ts.send("POST", "", `[{"id":"b"}]`); status != 429 || h.Get("Retry-After") != "2" {
		t.Errorf("fail rate 1: status %d Retry-After %q", status, h.Get("Retry-After"))
	}
	ts.target.SetFailRate(0, 429)
	ts.target.SetRetryAfter(0)
	ts.target.FailNext(500, 1)
	if status, h, _ := ts.send("POST", "", `[{"id":"b"}]`); status != 500 || h.Get("Retry-After") != "" {
		t.Errorf("status %d Retry-After %q", status, h.Get("Retry-After"))
	}
	if ts.target.Len() != 1 {
		t.Errorf("failed POSTs stored records: Len = %d", ts.target.Len())
	}
}

// TestRecordIDMatchesMapDecode: the one-pass id lookup agrees with
// decoding each record into a map, the obvious way, on every shape of
// record the target may get.
func TestRecordIDMatchesMapDecode(t *testing.T) {
	byMap := func(raw []byte) (string, bool) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return "", false
		}
		var id string
		_ = json.Unmarshal(fields["id"], &id)
		return id, true
	}
	records := []string{
		`{"id":"a"}`, ` { "id" : "a b" , "x" : 1 } `, `{"x":{"id":"inner"},"id":"outer"}`, `{"x":["id","y"],"id":"z"}`,
		`{"id":"first","id":"last"}`, `{"id":"a","id":2}`, `{"\u0069d":"escaped key"}`, `{"ID":"upper"}`, `{"id":""}`,
		`{"id":1}`, `{"id":null}`, `{"id":["a"]}`, `{}`, `null`, `[]`, `"id"`, `3`, `{"id":"\"quoted\" \\ \u00e9"}`,
		`{"a":"}","id":"after brace in a string"}`, `{"a":"\\","id":"after an escaped backslash"}`, `{"n":-1.5e3,"id":"n"}`,
		`{"t":true,"f":false,"z":null,"id":"lits"}`, `{"deep":[[{"id":"no"}],{}],"id":"yes"}`,
	}
	for _, rec := range records {
		wantID, wantObject := byMap([]byte(rec))
		gotKey, gotObject := recordKey([]byte(rec), []string{"id"})
		if gotKey[0] != wantID || gotObject != wantObject {
			t.Errorf("recordKey(%s) = %q, %v; want %q, %v", rec, gotKey[0], gotObject, wantID, wantObject)
		}
	}
}

// sendTo is send on another path.
func (ts *targetServer) sendTo(method, path, auth string) (int, http.Header, string) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.srv.URL+path, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := ts.srv.Client().Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestTargetDelete: DELETE .../{id} removes one record (204), or finds
// none (404); the id is the last path segment, unescaped; auth and
// injected failures apply as to POSTs, and TargetStats counts it all.
func TestTargetDelete(t *testing.T) {
	ts := newTargetServer(t, TargetOptions{Auth: targetAuth, Seed: 3})
	ts.send("POST", targetAuth, `[{"id":"a"},{"id":"b/c"},{"id":"é d"},{"id":"e"}]`)
	ts.target.ResetStats()

	tests := []struct {
		path, auth string
		want       int
	}{
		{"/records/a", targetAuth, 204},
		{"/records/a", targetAuth, 404}, // gone already
		{"/api/v1/contacts/b%2Fc?soft=false", targetAuth, 204},
		{"/%C3%A9%20d", targetAuth, 204},
		{"/records/e", "", 401},
		{"/records/e", "Bearer wrong", 401},
		{"/records/", targetAuth, 400},
	}
	for _, tc := range tests {
		status, _, body := ts.sendTo("DELETE", tc.path, tc.auth)
		if status != tc.want {
			t.Errorf("DELETE %s with auth %q: status %d, want %d (%s)", tc.path, tc.auth, status, tc.want, body)
		}
		if status == 204 && body != "" {
			t.Errorf("DELETE %s: 204 with a body %q", tc.path, body)
		}
	}
	if diff := cmp.Diff(map[string]map[string]any{"e": {"id": "e"}}, ts.target.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}

	ts.target.FailNext(503, 1)
	ts.target.SetRetryAfter(time.Second)
	if status, h, _ := ts.sendTo("DELETE", "/records/e", targetAuth); status != 503 || h.Get("Retry-After") != "1" {
		t.Errorf("injected failure: status %d, Retry-After %q", status, h.Get("Retry-After"))
	}
	ts.target.SetFailRate(1, 500)
	if status, _, _ := ts.sendTo("DELETE", "/records/e", targetAuth); status != 500 {
		t.Errorf("fail rate 1: status %d", status)
	}
	ts.target.SetFailRate(0, 500)
	if ts.target.Len() != 1 {
		t.Errorf("failed DELETEs removed a record")
	}
	want := TargetStats{Requests: 9, Deletes: 4, RecordsDeleted: 3, MaxInFlight: 1,
		ByStatus:        map[int]int{204: 3, 404: 1, 401: 2, 400: 1, 503: 1, 500: 1},
		DeletesByStatus: map[int]int{204: 3, 404: 1, 401: 2, 400: 1, 503: 1, 500: 1}}
	if diff := cmp.Diff(want, ts.target.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// POSTs are as before, and not counted as deletes.
	if status, _, body := ts.send("POST", targetAuth, `[{"id":"a"}]`); status != 200 || body != `{"received":1}` {
		t.Errorf("POST after DELETEs: %d %s", status, body)
	}
	if st := ts.target.Stats(); st.Deletes != 4 || st.DeletesByStatus[200] != 0 || st.Batches != 1 {
		t.Errorf("a POST counted as a delete: %+v", st)
	}
}

// TestApplyDeletesInOrder: the in-process door applies a batch's upserts
// and deletes in order, counts deletes as DELETE requests are counted, and
// refuses a delete without an id before anything is applied.
func TestApplyDeletesInOrder(t *testing.T) {
	tgt := NewTarget(TargetOptions{})
	ctx := context.Background()
	must(t, tgt.Apply(ctx, []target.Op{target.Upsert([]byte(`{"id":"a","v":1}`)), target.Upsert([]byte(`{"id":"b"}`))}))
	must(t, tgt.Apply(ctx, []target.Op{
		target.Delete("a"), target.Upsert([]byte(`{"id":"a","v":2}`)), // re-created: the later op wins
		target.Upsert([]byte(`{"id":"c"}`)), target.Delete("c"), // written, then removed
		target.Delete("b"), target.Delete("never"),
	}))
	if diff := cmp.Diff(map[string]map[string]any{"a": {"id": "a", "v": json.Number("2")}}, tgt.Records()); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if st := tgt.Stats(); st.Deletes != 4 || st.RecordsDeleted != 3 || st.RecordsReceived != 4 || st.Batches != 2 {
		t.Errorf("stats %+v; want 4 deletes, 3 records deleted, 4 received, 2 batches", st)
	}
	err := tgt.Apply(ctx, []target.Op{target.Delete("a"), target.Delete("")})
	var terr *target.Error
	if !errors.As(err, &terr) || terr.Status != 400 || tgt.Len() != 1 {
		t.Errorf("a delete without an id: %v, %d records left; want a 400 and nothing applied", err, tgt.Len())
	}
}
