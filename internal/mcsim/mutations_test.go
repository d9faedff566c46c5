package mcsim

import (
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

func TestChangeEmailChangesID(t *testing.T) {
	s := newSimServer(t, Options{Members: 3})
	old := s.sim.Members(DefaultListID)[1]
	if err := s.sim.Change(DefaultListID, old.ID, func(m *Member) { m.EmailAddress = "New.Address@example.com" }); err != nil {
		t.Fatal(err)
	}
	got := s.sim.Members(DefaultListID)[1] // same place in the natural order
	if got.ID != MemberID("new.address@example.com") {
		t.Errorf("id %s is not the MD5 of the new address", got.ID)
	}
	if err := s.sim.Change(DefaultListID, old.ID, func(*Member) {}); !errors.Is(err, ErrMemberNotFound) {
		t.Errorf("the old id still resolves: %v", err)
	}
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
	if distinct := len(slices.Compact(slices.Sorted(slices.Values(touched1)))); distinct != len(touched1) || distinct == 0 || distinct > 50 {
		t.Errorf("Churn(50) returned %d ids, %d distinct; want 1..50, each once", len(touched1), distinct)
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
