package mapping

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// decode reads a member the way the Mailchimp client does: numbers stay
// json.Number.
func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

const member = `{
  "id": "b6a1d3b8f2c9e0a4d5c6b7a8f9e0d1c2",
  "email_address": "zoë.ørsted@example.com",
  "status": "subscribed",
  "merge_fields": {"FNAME": "Zoë", "LNAME": "Ørsted \"Z\"", "SCORE": 42.50, "ADDRESS": ""},
  "tags": [{"id": 7, "name": "vip"}],
  "vip": false,
  "last_changed": "2026-01-02T03:04:05+00:00"
}`

func TestAppend(t *testing.T) {
	tests := []struct {
		name   string
		fields []Field
		want   string
	}{
		{
			name:   "default shape",
			fields: DefaultFields(),
			want:   `{"id":"b6a1d3b8f2c9e0a4d5c6b7a8f9e0d1c2","firstname":"Zoë","lastname":"Ørsted \"Z\"","email":"zoë.ørsted@example.com","status":"subscribed"}`,
		},
		{
			name:   "numbers stay numbers, empty stays empty, missing is null",
			fields: []Field{{"score", "merge_fields.SCORE"}, {"address", "merge_fields.ADDRESS"}, {"phone", "merge_fields.PHONE"}, {"deep", "merge_fields.FNAME.x"}},
			want:   `{"score":42.50,"address":"","phone":null,"deep":null}`,
		},
		{
			name:   "arrays, objects and booleans",
			fields: []Field{{"first_tag", "tags.0.name"}, {"no_tag", "tags.5.name"}, {"tags", "tags"}, {"vip", "vip"}},
			want:   `{"first_tag":"vip","no_tag":null,"tags":[{"id":7,"name":"vip"}],"vip":false}`,
		},
	}
	m := decode(t, member)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, err := New(tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			got, err := mp.Append(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("record mismatch (-want +got):\n%s", diff)
			}
			if !json.Valid(got) {
				t.Errorf("record is not valid JSON: %s", got)
			}
		})
	}
}

func TestFields(t *testing.T) {
	mp, err := New([]Field{{"first", "merge_fields.FNAME"}, {"tag", "tags.0.name"}, {"all_tags", "tags"}, {"id", "id"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"members.merge_fields.FNAME", "members.tags", "members.id", "members.last_changed", "total_items"}
	if diff := cmp.Diff(want, mp.Fields()); diff != "" {
		t.Errorf("Fields() mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"first", "tag", "all_tags", "id"}, mp.Keys()); diff != "" {
		t.Errorf("Keys() mismatch (-want +got):\n%s", diff)
	}
}

func TestIDKey(t *testing.T) {
	tests := []struct {
		name    string
		fields  []Field
		wantKey string
		wantOK  bool
	}{
		{"default shape", DefaultFields(), "id", true},
		{"renamed", []Field{{"email", "email_address"}, {"member_id", "id"}}, "member_id", true},
		{"the first of two", []Field{{"a", "id"}, {"b", "id"}}, "a", true},
		{"none", []Field{{"email", "email_address"}, {"contact", "contact_id"}}, "", false},
		{"a key named id is not enough", []Field{{"id", "contact_id"}}, "", false},
		{"nested ids are not the member's", []Field{{"x", "id.x"}, {"tag", "tags.0.id"}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, err := New(tt.fields)
			if err != nil {
				t.Fatal(err)
			}
			key, ok := mp.IDKey()
			if diff := cmp.Diff([]any{tt.wantKey, tt.wantOK}, []any{key, ok}); diff != "" {
				t.Errorf("IDKey() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyOf(t *testing.T) {
	mp, err := New([]Field{{"mail", "email_address"}, {"first", "merge_fields.FNAME"}, {"again", "email_address"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"email_address": "mail", "merge_fields.FNAME": "first", "merge_fields": "", "id": ""} {
		key, ok := mp.KeyOf(path)
		if key != want || ok != (want != "") {
			t.Errorf("KeyOf(%q) = %q, %v; want %q, %v", path, key, ok, want, want != "")
		}
	}
}

func TestNewRejectsBadFields(t *testing.T) {
	tests := map[string][]Field{
		"no fields":     nil,
		"empty key":     {{"", "id"}},
		"duplicate key": {{"a", "id"}, {"a", "status"}},
		"empty segment": {{"a", "merge_fields..FNAME"}},
		"empty path":    {{"a", ""}},
		"leading index": {{"a", "0.name"}},
	}
	for name, fields := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(fields); err == nil {
				t.Errorf("New(%v) succeeded, want an error", fields)
			}
		})
	}
}

func BenchmarkAppendDefault(b *testing.B) {
	dec := json.NewDecoder(strings.NewReader(member))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		b.Fatal(err)
	}
	mp, _ := New(DefaultFields())
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = mp.Append(buf[:0], m)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
