package mailchimp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// referenceBody decodes data as the client did before it had a decoder of
// its own: encoding/json with UseNumber.
func referenceBody(data []byte) (membersBody, error) {
	var body membersBody
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := dec.Decode(&body)
	return body, err
}

// checkAgainstReference is the decoder's one promise: whenever the fast
// path accepts a document, encoding/json accepts it too and builds the same
// page; and parseMembersBody, fast or not, gives encoding/json's answer.
func checkAgainstReference(t *testing.T, data []byte) (fast bool) {
	t.Helper()
	want, wantErr := referenceBody(data)
	d := newMembersDecoder(data)
	if got, ok := d.page(); ok {
		if wantErr != nil {
			t.Fatalf("fast path accepted %q, which encoding/json refuses: %v", clipDoc(data), wantErr)
		}
		// reflect.DeepEqual first: cmp.Diff is slow on a document nested
		// thousands deep, and only needed to show a difference.
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("fast path decoded %q differently (-encoding/json +fast):\n%s", clipDoc(data), cmp.Diff(want, got))
		}
		fast = true
	}
	got, err := parseMembersBody(data)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("parseMembersBody(%q) error = %v, want %v", clipDoc(data), err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("parseMembersBody(%q) (-encoding/json +got):\n%s", clipDoc(data), cmp.Diff(want, got))
	}
	return fast
}

func clipDoc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

// tricky strings: escapes, control characters, non-ASCII, surrogate pairs
// and invalid UTF-8, as Mailchimp or a proxy might send them.
var tricky = []string{
	"", "plain", `quote " and backslash \`, "tab\tnew\nline\r", "\x01\x1f", "Zoë Ünal", "山田 太郎",
	"emoji 😀", "\u2028\u2029", "\xff\xfe invalid", "a\u0000b", "</script>", "ſ and K",
}

// randomMember builds a member document with every kind of JSON value.
func randomMember(r *rand.Rand, i int) map[string]any {
	s := func() string { return tricky[r.IntN(len(tricky))] }
	return map[string]any{
		"id":            fmt.Sprintf("%032x", i),
		"email_address": fmt.Sprintf("user%d@example.com", i),
		"status":        "subscribed",
		"merge_fields":  map[string]any{"FNAME": s(), "LNAME": s(), "AGE": r.IntN(100), "SCORE": r.Float64() * 1e6, "EMPTY": ""},
		"interests":     map[string]any{"a1": r.IntN(2) == 0, "b2": true},
		"stats":         map[string]any{"avg_open_rate": r.Float64(), "avg_click_rate": -r.Float64() / 1e9},
		"vip":           r.IntN(2) == 0,
		"tags":          []any{map[string]any{"id": r.Int64(), "name": s()}, map[string]any{}},
		"location":      map[string]any{"latitude": 0, "longitude": -122.4194155, "gmtoff": -8},
		"last_changed":  "2024-03-01T12:00:00+00:00",
		"nothing":       nil,
		"list":          []any{},
		s():             s(),
	}
}

func TestDecoderMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 40 {
		members := make([]any, n*7)
		for i := range members {
			members[i] = randomMember(r, i)
		}
		doc, err := json.Marshal(map[string]any{"members": members, "list_id": "abc123", "total_items": n * 100, "_links": []any{map[string]any{"rel": "self"}}})
		if err != nil {
			t.Fatal(err)
		}
		if !checkAgainstReference(t, doc) {
			t.Errorf("a plain page of %d members took the slow path", len(members))
		}
	}
	// Escapes json.Marshal never writes, and white space everywhere.
	hand := " \n{ \"members\" : [ { \"id\" : \"\\u0041\\ud83d\\ude00\\/\\b\\f\" , \"n\" : -0.5e+10 } , null ] ,\"total_items\":\t7 } "
	if !checkAgainstReference(t, []byte(hand)) {
		t.Error("hand-written page took the slow path")
	}
}

// edgeDocs are documents at the edges of what a page is: each must decode
// (or fail) exactly as encoding/json decodes it.
var edgeDocs = []string{
	``, `{}`, `null`, `[]`, `"x"`, `{"members":null}`, `{"members":[null]}`, `{"members":[]}`, `{"members":[1]}`,
	`{"members":["x"]}`, `{"members":{}}`, `{"Members":[{"id":"a"}]}`, `{"TOTAL_ITEMS":3}`, `{"list_ID":"x"}`,
	`{"\u006dembers":[{"id":"a"}]}`, `{"memberſ":[]}`, `{"total_items":"5"}`, `{"total_items":5.0}`,
	`{"total_items":1e2}`, `{"total_items":-3}`, `{"total_items":99999999999999999999}`, `{"total_items":null}`,
	`{"total_items":true}`, `{"list_id":null}`, `{"list_id":5}`, `{"list_id":"a","list_id":null}`,
	`{"members":[{"id":"a"}],"members":null}`, `{"members":[{"id":"a"}],"members":[{"id":"b"}]}`,
	`{"members":[]} trailing garbage`, `{"members":[]}{"members":[1]}`, `{"members":[{"id":"a"`,
	`{"members":[{"id":"\x"}]}`, `{"members":[{"id":"\ud800"}]}`, `{"members":[{"id":"\ud800\u0041"}]}`,
	`{"members":[{"id":"\udc00\ud800"}]}`, `{"members":[{"id":"\u12"}]}`, "{\"members\":[{\"id\":\"a\x01b\"}]}",
	"{\"members\":[{\"id\":\"\xc3\"}]}", `{"members":[{"n":01}]}`, `{"members":[{"n":-}]}`, `{"members":[{"n":1.}]}`,
	`{"members":[{"n":.5}]}`, `{"members":[{"n":1e}]}`, `{"members":[{"n":+1}]}`, `{"members":[{"n":-0}]}`,
	`{"members":[{"n":1E-7}]}`, `{"members":[{"a":1,}]}`, `{"members":[{"a":[1,]}]}`, `{"members":[{"a":[1 2]}]}`,
	`{"members":[{},]}`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a":tru}`, `{"a":nul}`, `{"a":falsey}`, `{1:2}`,
	`{"members":[{"a":"b"}]`, `{"members":[{"a":{"b":{"c":[[[]]]}}}]}`, `{"members":[{"":""}]}`,
	`{"members":[{"a":"\"\\\/"}]}`, "\ufeff{}", `{"members":[{"id":"a"}] , "x":[{"y":null}], "list_id":"l"}`,
	`<html>hello</html>`, `{"members":[{"k":"v"}]}` + strings.Repeat(" ", 100),
}

func TestDecoderEdges(t *testing.T) {
	for _, doc := range edgeDocs {
		checkAgainstReference(t, []byte(doc))
	}
	deep := strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1)
	checkAgainstReference(t, []byte(`{"members":[`+deep+`]}`))
	// The page, the members array and the member make three levels: 3 +
	// (maxDepth-3) arrays is the deepest encoding/json takes.
	for _, arrays := range []int{maxDepth - 3, maxDepth - 2} {
		nested := strings.Repeat("[", arrays) + strings.Repeat("]", arrays)
		checkAgainstReference(t, []byte(`{"members":[{"a":`+nested+`}]}`))
	}
}

func FuzzDecoder(f *testing.F) {
	for _, doc := range edgeDocs {
		f.Add([]byte(doc))
	}
	r := rand.New(rand.NewPCG(3, 4))
	page, _ := json.Marshal(map[string]any{"members": []any{randomMember(r, 1), randomMember(r, 2)}, "total_items": 2})
	f.Add(page)
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstReference(t, data) })
}

// BenchmarkDecodeMembersPage decodes a 1000-member page with the default
// mapping's fields, the page a sync reads most. The figure it exists for is
// members/s, against encoding/json's on the same page.
func BenchmarkDecodeMembersPage(b *testing.B) {
	members := make([]any, 1000)
	for i := range members {
		members[i] = map[string]any{
			"id": fmt.Sprintf("%032x", i), "email_address": fmt.Sprintf("user%d@example.com", i), "status": "subscribed",
			"merge_fields": map[string]any{"FNAME": "Zoë", "LNAME": "Ünal"}, "last_changed": "2024-03-01T12:00:00+00:00",
		}
	}
	page, _ := json.Marshal(map[string]any{"members": members, "total_items": 200000})
	for _, c := range []struct {
		name   string
		decode func([]byte) (membersBody, error)
	}{{"chimport", parseMembersBody}, {"encoding-json", referenceBody}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				if body, err := c.decode(page); err != nil || len(body.Members) != 1000 {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "members/s")
		})
	}
}
