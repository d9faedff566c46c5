package mcsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/mailchimp"
)

func TestMutationsStampLastChanged(t *testing.T) {
	s := newSimServer(t, Options{Members: 50, Seed: 8})
	members := s.sim.Members(DefaultListID)
	target := members[3]
	other := members[4]

	// The stamp is the clock's now, to the second.
	s.clock.Set(start.Add(time.Hour + 700*time.Millisecond))
	stamp := start.Add(time.Hour)
	if err := s.sim.Change(DefaultListID, target.ID, func(m *Member) {
		m.MergeFields["FNAME"] = "Łukasz"
		m.LastChanged = time.Time{} // ignored: the simulator stamps it
	}); err != nil {
		t.Fatal(err)
	}
	got := s.sim.Members(DefaultListID)[3]
	if got.MergeFields["FNAME"] != "Łukasz" || !got.LastChanged.Equal(stamp) {
		t.Errorf("after Change: FNAME %v, last_changed %v; want Łukasz, %v", got.MergeFields["FNAME"], got.LastChanged, stamp)
	}
	if untouched := s.sim.Members(DefaultListID)[4]; !untouched.LastChanged.Equal(other.LastChanged) {
		t.Errorf("Change touched another member")
	}

	// The endpoint sees the change: since_last_changed just before the
	// stamp finds exactly this member.
	p := s.members(vals("since_last_changed", stamp.Add(-time.Second).Format(time.RFC3339)))
	if diff := cmp.Diff([]string{target.ID}, ids(p.Members)); diff != "" {
		t.Errorf("changed since (-want +got):\n%s", diff)
	}

	tests := []struct {
		name       string
		mutate     func(id string) error
		wantStatus string
	}{
		{"unsubscribe", func(id string) error { return s.sim.Unsubscribe(DefaultListID, id) }, StatusUnsubscribed},
		{"archive", func(id string) error { return s.sim.Archive(DefaultListID, id) }, StatusArchived},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.clock.Advance(time.Minute)
			id := members[10+i].ID
			if err := tc.mutate(id); err != nil {
				t.Fatal(err)
			}
			m := findMember(t, s.sim.Members(DefaultListID), id)
			if m.Status != tc.wantStatus || !m.LastChanged.Equal(s.clock.Now().Truncate(time.Second)) {
				t.Errorf("status %s, last_changed %v", m.Status, m.LastChanged)
			}
		})
	}

	archived := members[11].ID
	inDefault := slices.Contains(ids(s.members(vals("count", "1000")).Members), archived)
	inArchived := slices.Contains(ids(s.members(vals("count", "1000", "status", "archived")).Members), archived)
	if inDefault || !inArchived {
		t.Errorf("an archived member: in the default view %v (want false), in status=archived %v (want true)", inDefault, inArchived)
	}
}

func findMember(t *testing.T, ms []Member, id string) Member {
	t.Helper()
	for _, m := range ms {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("member %s not found", id)
	return Member{}
}

func TestDeleteRemovesFromEveryView(t *testing.T) {
	s := newSimServer(t, Options{Members: 40, Seed: 12})
	members := s.sim.Members(DefaultListID)
	var victims []string
	for _, status := range []string{StatusSubscribed, StatusArchived} {
		for _, m := range members {
			if m.Status == status {
				victims = append(victims, m.ID)
				break
			}
		}
	}
	for _, id := range victims {
		if err := s.sim.Delete(DefaultListID, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(s.sim.Members(DefaultListID)); got != 38 {
		t.Errorf("%d members left, want 38", got)
	}
	for _, status := range []string{"", StatusSubscribed, StatusArchived} {
		for _, id := range ids(s.members(vals("count", "1000", "status", status)).Members) {
			if slices.Contains(victims, id) {
				t.Errorf("deleted member %s still served with status=%q", id, status)
			}
		}
	}
	if err := s.sim.Delete(DefaultListID, victims[0]); !errors.Is(err, ErrMemberNotFound) {
		t.Errorf("deleting twice: %v, want ErrMemberNotFound", err)
	}
}

// TestDeletedMemberGone: after a permanent delete the one-member endpoint
// answers 404, over HTTP and in process, and every total_items (sorted
// views included) has shrunk by the deleted members; an archived member
// is still there, with status archived.
func TestDeletedMemberGone(t *testing.T) {
	s := newSimServer(t, Options{Members: 60, Seed: 13})
	src := s.sim.Source(s.sim.APIKey())
	ctx := context.Background()
	all := s.sim.Members(DefaultListID)
	first := func(status string) Member {
		return all[slices.IndexFunc(all, func(m Member) bool { return m.Status == status })]
	}
	sub, arch, unsub := first(StatusSubscribed), first(StatusArchived), first(StatusUnsubscribed)
	views := []url.Values{vals(), vals("status", StatusSubscribed), vals("status", StatusUnsubscribed), vals("status", StatusArchived),
		vals("sort_field", "last_changed"), vals("sort_field", "last_changed", "status", StatusArchived), vals("sort_field", "timestamp_opt")}
	totals := func() []int {
		var out []int
		for _, v := range views {
			out = append(out, s.totalItems(v))
		}
		return out
	}
	before := totals()
	must(t, s.sim.Archive(DefaultListID, unsub.ID)) // archived, not deleted: still answers
	must(t, s.sim.Delete(DefaultListID, sub.ID))
	must(t, s.sim.Delete(DefaultListID, arch.ID))
	want := slices.Clone(before)
	// default, subscribed, unsubscribed, archived, by last_changed, archived by last_changed, by timestamp_opt
	for i, d := range []int{-2, -1, -1, 0, -2, 0, -2} {
		want[i] += d
	}
	if diff := cmp.Diff(want, totals()); diff != "" {
		t.Errorf("total_items of %v (-want +got):\n%s", views, diff)
	}
	for _, id := range []string{sub.ID, arch.ID} {
		if r := s.get("/3.0/lists/"+DefaultListID+"/members/"+id, vals("fields", "id,status")); r.status != http.StatusNotFound {
			t.Errorf("GET deleted %s: status %d", id, r.status)
		}
		if _, err := src.Member(ctx, DefaultListID, id, []string{"id", "status"}); !errors.Is(err, mailchimp.ErrMemberNotFound) {
			t.Errorf("in process, deleted %s: %v", id, err)
		}
	}
	r := s.get("/3.0/lists/"+DefaultListID+"/members/"+unsub.ID, vals("fields", "id,status"))
	var doc map[string]any
	decodeJSON(t, r.body, &doc)
	if diff := cmp.Diff(map[string]any{"id": unsub.ID, "status": StatusArchived}, doc); r.status != http.StatusOK || diff != "" {
		t.Errorf("GET an archived member: status %d (-want +got):\n%s", r.status, diff)
	}
	if m, err := src.Member(ctx, DefaultListID, unsub.ID, []string{"id", "status"}); err != nil || m["status"] != StatusArchived {
		t.Errorf("in process, an archived member: %v, %v", m, err)
	}
	if st := s.sim.Stats(); st.MemberNotFound != 4 || st.MemberRequests != 6 {
		t.Errorf("MemberRequests %d, MemberNotFound %d; want 6 and 4", st.MemberRequests, st.MemberNotFound)
	}
}

func TestMutationErrors(t *testing.T) {
	s := newSimServer(t, Options{Members: 2})
	existing := s.sim.Members(DefaultListID)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"change in unknown list", s.sim.Change("nope", existing[0].ID, func(*Member) {}), ErrListNotFound},
		{"change unknown member", s.sim.Change(DefaultListID, "nope", func(*Member) {}), ErrMemberNotFound},
		{"unsubscribe unknown member", s.sim.Unsubscribe(DefaultListID, "nope"), ErrMemberNotFound},
		{"archive in unknown list", s.sim.Archive("nope", "x"), ErrListNotFound},
		{"delete in unknown list", s.sim.Delete("nope", "x"), ErrListNotFound},
		{"invalid status", s.sim.Change(DefaultListID, existing[0].ID, func(m *Member) { m.Status = "gone" }), ErrInvalidMember},
		{"email taken", s.sim.Change(DefaultListID, existing[0].ID, func(m *Member) { m.EmailAddress = strings.ToUpper(existing[1].EmailAddress) }), ErrMemberExists},
	}
	_, addErr := s.sim.Add(DefaultListID, Member{EmailAddress: existing[0].EmailAddress})
	tests = append(tests, struct {
		name string
		err  error
		want error
	}{"add existing", addErr, ErrMemberExists})
	_, addErr = s.sim.Add("nope", Member{EmailAddress: "x@example.com"})
	tests = append(tests, struct {
		name string
		err  error
		want error
	}{"add to unknown list", addErr, ErrListNotFound})
	for _, tc := range tests {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if diff := cmp.Diff(existing, s.sim.Members(DefaultListID)); diff != "" {
		t.Errorf("failed mutations changed members (-before +after):\n%s", diff)
	}
}

// TestChangeAddress: a new address is a new id, the MD5 of the lower-cased
// address, for the same contact (contact_id, unique_email_id and web_id
// stay); the old id is gone from the one-member endpoint and every view,
// over HTTP and in process.
func TestChangeAddress(t *testing.T) {
	s := newSimServer(t, Options{Members: 40, Seed: 14})
	src := s.sim.Source(s.sim.APIKey())
	ctx := context.Background()
	all := s.sim.Members(DefaultListID)
	idx := slices.IndexFunc(all, func(m Member) bool { return m.Status == StatusSubscribed })
	old := all[idx]
	sizes := func() []int {
		return []int{s.totalItems(nil), s.totalItems(vals("status", StatusSubscribed)), s.totalItems(vals("status", StatusArchived))}
	}
	sizesBefore := sizes()

	s.clock.Advance(time.Minute)
	newID, err := s.sim.ChangeAddress(DefaultListID, old.ID, "Moved.Person@Example.org")
	must(t, err)
	if newID != MemberID("moved.person@example.org") || newID == old.ID {
		t.Fatalf("new id %s is not the MD5 of the lower-cased new address", newID)
	}
	got := s.sim.Members(DefaultListID)[idx] // same place in the natural order
	want := old.clone()
	want.ID, want.EmailAddress, want.LastChanged = newID, "Moved.Person@Example.org", start.Add(time.Minute)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the moved member (-want +got):\n%s", diff)
	}

	// The old id: 404 over HTTP and in process, and in no view.
	if r := s.get("/3.0/lists/"+DefaultListID+"/members/"+old.ID, nil); r.status != http.StatusNotFound {
		t.Errorf("GET the old id: status %d", r.status)
	}
	if _, err := src.Member(ctx, DefaultListID, old.ID, nil); !errors.Is(err, mailchimp.ErrMemberNotFound) {
		t.Errorf("in process, the old id: %v", err)
	}
	for _, q := range []url.Values{vals(), vals("status", StatusSubscribed), vals("status", StatusArchived),
		vals("sort_field", "last_changed"), vals("since_last_changed", start.Format(time.RFC3339))} {
		served, _ := s.everyID(q)
		inProcess, _ := sourceIDs(t, src, DefaultListID, mailchimp.MembersQuery{Status: q.Get("status"), SortField: q.Get("sort_field")})
		if slices.Contains(served, old.ID) || slices.Contains(inProcess, old.ID) {
			t.Errorf("%v: the old id is still served", q)
		}
		if q.Get("status") != StatusArchived && (!slices.Contains(served, newID) || !slices.Contains(inProcess, newID)) {
			t.Errorf("%v: the new id is not served", q)
		}
	}
	if changed, _ := s.everyID(vals("since_last_changed", start.Format(time.RFC3339))); !slices.Equal(changed, []string{newID}) {
		t.Errorf("changed since the move: %v, want the new id alone", changed)
	}
	if diff := cmp.Diff(sizesBefore, sizes()); diff != "" {
		t.Errorf("total_items of default, subscribed, archived views moved (-before +after):\n%s", diff)
	}

	// The new id answers, with the contact's identifiers.
	r := s.get("/3.0/lists/"+DefaultListID+"/members/"+newID, vals("fields", "id,contact_id,unique_email_id,web_id,email_address"))
	var doc map[string]any
	decodeJSON(t, r.body, &doc)
	if r.status != http.StatusOK || doc["contact_id"] != old.ContactID || doc["unique_email_id"] != old.UniqueEmailID ||
		doc["web_id"] != json.Number(itoa(int(old.WebID))) || doc["email_address"] != "Moved.Person@Example.org" {
		t.Errorf("GET the new id: status %d, %v", r.status, doc)
	}

	// Change cannot touch the contact's identifiers; a change of case keeps
	// the id; an address in use, or an unknown member, changes nothing.
	must(t, s.sim.Change(DefaultListID, newID, func(m *Member) { m.ContactID, m.UniqueEmailID, m.WebID = "x", "y", 1 }))
	if m := findMember(t, s.sim.Members(DefaultListID), newID); m.ContactID != old.ContactID || m.UniqueEmailID != old.UniqueEmailID || m.WebID != old.WebID {
		t.Errorf("Change rewrote the contact's identifiers: %+v", m)
	}
	if id, err := s.sim.ChangeAddress(DefaultListID, newID, "MOVED.PERSON@EXAMPLE.ORG"); err != nil || id != newID {
		t.Errorf("a change of case: id %s, err %v; want the same id", id, err)
	}
	before := s.sim.Members(DefaultListID)
	if id, err := s.sim.ChangeAddress(DefaultListID, newID, all[idx+1].EmailAddress); !errors.Is(err, ErrMemberExists) || id != "" {
		t.Errorf("an address in use: %q, %v; want ErrMemberExists", id, err)
	}
	if _, err := s.sim.ChangeAddress(DefaultListID, old.ID, "x@example.com"); !errors.Is(err, ErrMemberNotFound) {
		t.Errorf("the old id moved again: %v; want ErrMemberNotFound", err)
	}
	if diff := cmp.Diff(before, s.sim.Members(DefaultListID)); diff != "" {
		t.Errorf("failed address changes changed members (-before +after):\n%s", diff)
	}

	// An archived member that moves stays archived, under its new id.
	arch := all[slices.IndexFunc(all, func(m Member) bool { return m.Status == StatusArchived })]
	archNew, err := s.sim.ChangeAddress(DefaultListID, arch.ID, "archived.mover@example.net")
	must(t, err)
	if served, _ := s.everyID(vals("status", StatusArchived)); slices.Contains(served, arch.ID) || !slices.Contains(served, archNew) {
		t.Errorf("status=archived after an archived member moved: %v", served)
	}
}

// TestChurnMovesAddresses: churn changes some members' addresses, and
// Churn returns both ids of each move.
func TestChurnMovesAddresses(t *testing.T) {
	clk := newFakeAtStart()
	sim := New(Options{Members: 500, Seed: 61, Clock: clk})
	byContact := func() map[string]Member {
		out := map[string]Member{}
		for _, m := range sim.Members(DefaultListID) {
			out[m.ContactID] = m
		}
		return out
	}
	before := byContact()
	clk.Advance(time.Hour)
	const n = 300
	touched := sim.Churn(DefaultListID, n)
	after := byContact()
	if len(touched) > 2*n || len(slices.Compact(slices.Sorted(slices.Values(touched)))) != len(touched) {
		t.Errorf("Churn(%d) returned %d ids; want at most %d, each once", n, len(touched), 2*n)
	}
	moves, deletes := 0, 0
	for contact, was := range before {
		now, ok := after[contact]
		switch {
		case !ok:
			deletes++
			if !slices.Contains(touched, was.ID) {
				t.Errorf("deleted member %s is not among the touched ids", was.ID)
			}
		case now.ID != was.ID:
			moves++
			if now.ID != MemberID(now.EmailAddress) || now.UniqueEmailID != was.UniqueEmailID || now.WebID != was.WebID {
				t.Errorf("moved member %s -> %s lost its identity: %+v", was.ID, now.ID, now)
			}
			if !slices.Contains(touched, was.ID) || !slices.Contains(touched, now.ID) {
				t.Errorf("move %s -> %s: both ids must be among the touched ids", was.ID, now.ID)
			}
			if _, ok := sim.member(DefaultListID, was.ID); ok {
				t.Errorf("the old id %s still resolves", was.ID)
			}
		}
	}
	if moves == 0 || deletes == 0 {
		t.Errorf("Churn(%d) made %d address changes and %d deletions; want some of each", n, moves, deletes)
	}
	t.Logf("%d touched: %d address changes, %d deletions", len(touched), moves, deletes)
}

func TestAddFillsIn(t *testing.T) {
	s := newSimServer(t, Options{})
	id, err := s.sim.Add(DefaultListID, Member{EmailAddress: "José@Example.com", MergeFields: map[string]any{"FNAME": "José", "LNAME": "García"}})
	if err != nil {
		t.Fatal(err)
	}
	m := findMember(t, s.sim.Members(DefaultListID), id)
	if m.ID != MemberID("josé@example.com") || m.ListID != DefaultListID || m.Status != StatusSubscribed ||
		m.FullName != "José García" || m.UniqueEmailID == "" || m.ContactID == "" || m.WebID == 0 ||
		!m.LastChanged.Equal(start) || !m.TimestampOpt.Equal(start) {
		t.Errorf("Add did not fill in the member: %+v", m)
	}
}

// TestShrinkingWindowSkipsMembers shows the behaviour the sync engine must
// cope with: paging a window with offsets while a member leaves it hides a
// member that never changed.
func TestShrinkingWindowSkipsMembers(t *testing.T) {
	s := newSimServer(t, Options{Members: 30, Seed: 21})
	window := vals("before_last_changed", start.Format(time.RFC3339), "count", "10")
	before := ids(s.members(vals("before_last_changed", start.Format(time.RFC3339), "count", "1000")).Members)

	page1 := ids(s.members(withOffset(window, 0)).Members)
	s.clock.Advance(time.Minute)
	if err := s.sim.Change(DefaultListID, page1[2], func(m *Member) { m.MergeFields["PHONE"] = "+1 555-0100" }); err != nil {
		t.Fatal(err)
	}
	page2 := ids(s.members(withOffset(window, 10)).Members)
	page3 := ids(s.members(withOffset(window, 20)).Members)
	seen := slices.Concat(page1, page2, page3)

	skipped := before[10] // was first on page 2, shifted onto page 1 after we read it
	if slices.Contains(seen, skipped) {
		t.Fatalf("member %s was served; offset paging should have skipped it", skipped)
	}
	after := ids(s.members(vals("before_last_changed", start.Format(time.RFC3339), "count", "1000")).Members)
	if !slices.Contains(after, skipped) {
		t.Errorf("the skipped member left the window; it should still be in it")
	}
}

func withOffset(v url.Values, offset int) url.Values {
	out := maps.Clone(v)
	out.Set("offset", itoa(offset))
	return out
}

func TestChurnWhilePaging(t *testing.T) {
	s := newSimServer(t, Options{Members: 200, Seed: 33})
	s.clock.Advance(time.Minute) // churn stamps land after the window
	s.sim.SetChurnPerRequest(DefaultListID, 5)
	window := vals("before_last_changed", start.Format(time.RFC3339), "count", "20")
	var seen []string
	for offset := 0; ; offset += 20 {
		p := s.members(withOffset(window, offset))
		if len(p.Members) == 0 {
			break
		}
		seen = append(seen, ids(p.Members)...)
	}
	s.sim.SetChurnPerRequest(DefaultListID, 0)

	// Members still in the window never changed while we paged; some of
	// them were never served.
	var missed []string
	for _, m := range s.sim.Members(DefaultListID) {
		if m.Status != StatusArchived && m.LastChanged.Before(start) && !slices.Contains(seen, m.ID) {
			missed = append(missed, m.ID)
		}
	}
	if len(missed) == 0 {
		t.Errorf("churn while paging skipped nobody; the simulator must reproduce offset-paging skips")
	}
	t.Logf("served %d, skipped %d unchanged members", len(seen), len(missed))
}

func TestChurnIsDeterministic(t *testing.T) {
	run := func() ([]string, []Member) {
		s := newSimServer(t, Options{Members: 100, Seed: 44})
		s.clock.Advance(time.Hour)
		touched := s.sim.Churn(DefaultListID, 50)
		return touched, s.sim.Members(DefaultListID)
	}
	touched1, members1 := run()
	touched2, members2 := run()
	if diff := cmp.Diff(touched1, touched2); diff != "" {
		t.Errorf("touched ids differ (-1 +2):\n%s", diff)
	}
	if diff := cmp.Diff(members1, members2); diff != "" {
		t.Errorf("members differ (-1 +2):\n%s", diff)
	}
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(touched1)))); distinct != len(touched1) || distinct == 0 || distinct > 100 {
		t.Errorf("Churn(50) returned %d ids, %d distinct; want 1..100 (an address change touches two), each once", len(touched1), distinct)
	}
	changed := 0
	for _, m := range members1 {
		if m.LastChanged.Equal(start.Add(time.Hour)) {
			changed++
		}
	}
	if changed == 0 || changed > 50 {
		t.Errorf("%d members carry the churn stamp", changed)
	}
}

func TestGeneratorIsSeededAndRealistic(t *testing.T) {
	a := New(Options{Members: 1000, Seed: 99, Clock: newFakeAtStart()}).Members(DefaultListID)
	b := New(Options{Members: 1000, Seed: 99, Clock: newFakeAtStart()}).Members(DefaultListID)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different members (-a +b):\n%s", diff)
	}
	c := New(Options{Members: 1000, Seed: 100, Clock: newFakeAtStart()}).Members(DefaultListID)
	if cmp.Equal(a, c) {
		t.Errorf("different seeds gave the same members")
	}

	statuses := map[string]int{}
	nonASCII := 0
	for _, m := range a {
		statuses[m.Status]++
		if m.ID != MemberID(m.EmailAddress) {
			t.Errorf("id %s is not the MD5 of %s", m.ID, m.EmailAddress)
		}
		if !m.LastChanged.Before(start) || m.LastChanged.Before(start.Add(-twoYears)) || m.LastChanged.Nanosecond() != 0 {
			t.Errorf("last_changed %v is outside the two years before %v or not whole seconds", m.LastChanged, start)
		}
		if fname, _ := m.MergeFields["FNAME"].(string); !isASCII(fname) {
			nonASCII++
		}
		if _, ok := m.MergeFields["SCORE"].(int); !ok {
			t.Errorf("SCORE is %T, want a number", m.MergeFields["SCORE"])
		}
	}
	for _, st := range []string{StatusSubscribed, StatusUnsubscribed, StatusCleaned, StatusPending, StatusTransactional, StatusArchived} {
		if statuses[st] == 0 {
			t.Errorf("no %s members among 1000", st)
		}
	}
	if statuses[StatusSubscribed] < 700 {
		t.Errorf("only %d of 1000 subscribed; most members should be", statuses[StatusSubscribed])
	}
	if nonASCII < 50 {
		t.Errorf("only %d non-ASCII first names", nonASCII)
	}
}

func isASCII(s string) bool { return utf8.RuneCountInString(s) == len(s) }

// TestConcurrentMutationsAndRequests runs under -race: mutations from
// another goroutine while pages (sorted and not) are served.
func TestConcurrentMutationsAndRequests(t *testing.T) {
	s := newSimServer(t, Options{Members: 3000, Seed: 55})
	s.sim.SetChurnPerRequest(DefaultListID, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			s.clock.Advance(time.Second)
			touched := s.sim.Churn(DefaultListID, 3)
			if len(touched) > 0 && i%10 == 0 {
				_ = s.sim.Delete(DefaultListID, touched[0])
			}
			_ = s.sim.Members(DefaultListID)
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := vals("count", "500", "sort_field", []string{"", "last_changed"}[w%2])
			for offset := 0; offset < 3000; offset += 500 {
				// Not s.get: it calls t.Fatal, which only the test goroutine may.
				req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/3.0/lists/"+DefaultListID+"/members?"+withOffset(q, offset).Encode(), nil)
				req.SetBasicAuth("u", s.sim.APIKey())
				resp, err := s.srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("status %d, err %v", resp.StatusCode, err)
				}
			}
		}()
	}
	wg.Wait()
	<-done
}
