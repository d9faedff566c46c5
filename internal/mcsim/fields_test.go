package mcsim

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// allMemberKeys is every key of a member served with the default fields.
var allMemberKeys = func() []string {
	keys := slices.Clone(memberFieldNames[:])
	slices.Sort(keys)
	return keys
}()

func without(keys []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return slices.Contains(drop, k) })
}

func TestFieldsAndExcludeFields(t *testing.T) {
	s := newSimServer(t, Options{})
	const list = "fields"
	s.sim.AddList(list, 0, 1)
	if _, err := s.sim.Add(list, Member{
		EmailAddress: "ana@example.com",
		MergeFields:  map[string]any{"FNAME": "Ana", "LNAME": "Nowak", "PHONE": ""},
		Location:     Location{CountryCode: "PL", Timezone: "Europe/Warsaw"},
		Tags:         []Tag{{ID: 1, Name: "a"}, {ID: 2, Name: "b"}},
	}); err != nil {
		t.Fatal(err)
	}
	allLocation := []string{"country_code", "dstoff", "gmtoff", "latitude", "longitude", "timezone"}

	// want maps a path in the decoded response ("", "member", "member.x")
	// to the keys expected there; "member" is members[0].
	tests := []struct {
		name           string
		fields, expect string
		want           map[string][]string
	}{
		{
			name: "defaults", want: map[string][]string{
				"":                    {"_links", "list_id", "members", "total_items"},
				"member":              allMemberKeys,
				"member.merge_fields": {"FNAME", "LNAME", "PHONE"},
				"member.location":     allLocation,
			},
		},
		{
			name: "what the sync engine asks for", fields: "members.id,members.email_address,members.status,members.merge_fields.FNAME,members.merge_fields.LNAME,total_items",
			want: map[string][]string{
				"":                    {"members", "total_items"},
				"member":              {"email_address", "id", "merge_fields", "status"},
				"member.merge_fields": {"FNAME", "LNAME"},
			},
		},
		{
			name: "total_items only", fields: "total_items",
			want: map[string][]string{"": {"total_items"}},
		},
		{
			name: "a whole nested object", fields: "members.location",
			want: map[string][]string{"": {"members"}, "member": {"location"}, "member.location": allLocation},
		},
		{
			name: "through an array", fields: "members.tags.name",
			want: map[string][]string{"": {"members"}, "member": {"tags"}, "member.tags.0": {"name"}},
		},
		{
			name: "descendants of a scalar do not select it", fields: "members.id,total_items.x",
			want: map[string][]string{"": {"members"}, "member": {"id"}},
		},
		{
			name: "exclude top-level and nested", expect: "_links,members.merge_fields,members.location.timezone, members.tags",
			want: map[string][]string{
				"":                {"list_id", "members", "total_items"},
				"member":          without(allMemberKeys, "merge_fields", "tags"),
				"member.location": without(allLocation, "timezone"),
			},
		},
		{
			name: "exclude within fields", fields: "members.merge_fields,members.id", expect: "members.merge_fields.LNAME",
			want: map[string][]string{
				"":                    {"members"},
				"member":              {"id", "merge_fields"},
				"member.merge_fields": {"FNAME", "PHONE"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.get("/3.0/lists/"+list+"/members", vals("fields", tc.fields, "exclude_fields", tc.expect))
			var body map[string]any
			decodeJSON(t, r.body, &body)
			got := map[string][]string{"": keysOf(body)}
			if ms, ok := body["members"].([]any); ok && len(ms) == 1 {
				m := ms[0]
				got["member"] = keysOf(m)
				for path := range tc.want {
					switch path {
					case "member.merge_fields", "member.location":
						got[path] = keysOf(m.(map[string]any)[path[len("member."):]])
					case "member.tags.0":
						got[path] = keysOf(m.(map[string]any)["tags"].([]any)[0])
					}
				}
			}
			for path := range got {
				if _, asked := tc.want[path]; !asked {
					delete(got, path)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFieldsCutBytes(t *testing.T) {
	s := newSimServer(t, Options{Members: 1000, Seed: 2})
	full := s.get("/3.0/lists/"+DefaultListID+"/members", vals("count", "1000"))
	narrow := s.get("/3.0/lists/"+DefaultListID+"/members", vals("count", "1000",
		"fields", "members.id,members.email_address,members.status,members.merge_fields.FNAME,members.merge_fields.LNAME,total_items"))
	if ratio := float64(len(full.body)) / float64(len(narrow.body)); ratio < 3 {
		t.Errorf("fields= cut the page from %d to %d bytes only (%.1fx)", len(full.body), len(narrow.body), ratio)
	}
	if st := s.sim.Stats(); st.BytesServed != int64(len(full.body)+len(narrow.body)) {
		t.Errorf("BytesServed = %d, want %d", st.BytesServed, len(full.body)+len(narrow.body))
	}
}
