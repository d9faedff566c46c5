package mcsim

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMemberJSONShape(t *testing.T) {
	s := newSimServer(t, Options{})
	const list = "shape"
	s.sim.AddList(list, 0, 1)
	id, err := s.sim.Add(list, Member{
		EmailAddress:  "Zoë.Ørsted@Example.com",
		UniqueEmailID: "3eb8a920e9",
		ContactID:     "2339939832d39de535220d2188836484",
		WebID:         440689824,
		Status:        StatusSubscribed,
		MergeFields:   map[string]any{"FNAME": "Zoë", "LNAME": `O"Ørsted`, "ADDRESS": "", "SCORE": 42, "ZZ_EXTRA": "x"},
		Interests:     map[string]bool{"b2": false, "a1": true},
		Stats:         MemberStats{AvgOpenRate: 0.5, AvgClickRate: 0.25},
		IPOpt:         "192.0.2.1",
		MemberRating:  4,
		Location:      Location{Latitude: 1.5, Longitude: -2, GMTOff: 1, DSTOff: 2, CountryCode: "DK", Timezone: "Europe/Copenhagen"},
		Source:        "Import",
		Tags:          []Tag{{ID: 7, Name: "vip"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.get("/3.0/lists/"+list+"/members", nil)
	var p membersPage
	decodeJSON(t, r.body, &p)
	now := "2025-03-01T12:00:00+00:00"
	want := map[string]any{
		"id": id, "email_address": "Zoë.Ørsted@Example.com", "unique_email_id": "3eb8a920e9",
		"contact_id": "2339939832d39de535220d2188836484", "full_name": `Zoë O"Ørsted`,
		"web_id": json.Number("440689824"), "email_type": "html", "status": "subscribed",
		"merge_fields": map[string]any{"FNAME": "Zoë", "LNAME": `O"Ørsted`, "ADDRESS": "", "SCORE": json.Number("42"), "ZZ_EXTRA": "x"},
		"interests":    map[string]any{"a1": true, "b2": false},
		"stats":        map[string]any{"avg_open_rate": json.Number("0.5"), "avg_click_rate": json.Number("0.25")},
		"ip_signup":    "", "timestamp_signup": now, "ip_opt": "192.0.2.1", "timestamp_opt": now,
		"member_rating": json.Number("4"), "last_changed": now, "language": "", "vip": false, "email_client": "",
		"location": map[string]any{
			"latitude": json.Number("1.5"), "longitude": json.Number("-2"), "gmtoff": json.Number("1"),
			"dstoff": json.Number("2"), "country_code": "DK", "timezone": "Europe/Copenhagen",
		},
		"source": "Import", "tags_count": json.Number("1"),
		"tags":    []any{map[string]any{"id": json.Number("7"), "name": "vip"}},
		"list_id": list,
	}
	if len(p.Members) != 1 {
		t.Fatalf("got %d members", len(p.Members))
	}
	if diff := cmp.Diff(want, p.Members[0]); diff != "" {
		t.Errorf("member (-want +got):\n%s", diff)
	}
	if id != MemberID("zoë.ørsted@example.com") {
		t.Errorf("id %s is not the MD5 of the lower-cased email", id)
	}
	// MarshalJSON gives the same encoding as the endpoint.
	enc, err := json.Marshal(s.sim.Members(list)[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.body), string(enc)) {
		t.Errorf("MarshalJSON differs from the served member:\n%s", enc)
	}
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{"", "plain", `quo"te\back`, "tab\tnl\ncr\r", "\x00\x1f", "Zoë 山田 Łukasz", "bad\xffutf8", "line\u2028sep\u2029"} {
		var got string
		if err := json.Unmarshal(appendString(nil, in), &got); err != nil {
			t.Errorf("appendString(%q) is not valid JSON: %v", in, err)
			continue
		}
		want := strings.ToValidUTF8(in, "\uFFFD")
		if got != want {
			t.Errorf("round trip of %q = %q, want %q", in, got, want)
		}
	}
}
