package mcsim

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestWebhookRegistryOverHTTP: create, list, get and delete, with the URL
// checked by a GET first, the same URL allowed twice (Mailchimp allows it:
// not duplicating is the client's job), and the API's auth and errors.
func TestWebhookRegistryOverHTTP(t *testing.T) {
	s := newHookSim(t, Options{Members: 3, Seed: 1})
	rc := newReceiver(t)
	path := "/3.0/lists/" + DefaultListID + "/webhooks"

	first := s.addHook(DefaultListID, rc.url())
	if rc.getCount() != 1 {
		t.Errorf("the URL was checked %d times, want once", rc.getCount())
	}
	if !regexp.MustCompile(`^[0-9a-f]{10}$`).MatchString(first.ID) {
		t.Errorf("id %q, want 10 hex digits", first.ID)
	}
	want := Webhook{
		ID: first.ID, URL: rc.url(), ListID: DefaultListID,
		Events:  WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true},
		Sources: WebhookSources{User: true, Admin: true, API: true},
	}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("created webhook (-want +got):\n%s", diff)
	}
	second := s.addHookWith(DefaultListID, rc.url(), `{"subscribe":true}`, `{"api":false}`)
	if second.ID == first.ID {
		t.Fatal("two webhooks got the same id")
	}
	wantSecond := Webhook{
		ID: second.ID, URL: rc.url(), ListID: DefaultListID,
		Events:  WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true},
		Sources: WebhookSources{User: true, Admin: true},
	}
	if diff := cmp.Diff(wantSecond, second); diff != "" {
		t.Errorf("webhook with omitted keys (-want +got):\n%s", diff)
	}

	r := s.get(path, nil)
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var doc struct {
		Webhooks []Webhook `json:"webhooks"`
		ListID   string    `json:"list_id"`
		Total    int       `json:"total_items"`
	}
	decodeJSON(t, r.body, &doc)
	if diff := cmp.Diff([]Webhook{want, wantSecond}, doc.Webhooks); diff != "" || doc.ListID != DefaultListID || doc.Total != 2 {
		t.Errorf("list: list_id %q, total_items %d, webhooks (-want +got):\n%s", doc.ListID, doc.Total, diff)
	}
	if diff := cmp.Diff([]Webhook{want, wantSecond}, s.sim.Webhooks(DefaultListID)); diff != "" {
		t.Errorf("Webhooks (-want +got):\n%s", diff)
	}
	var raw map[string]any
	decodeJSON(t, s.get(path+"/"+first.ID, nil).body, &raw)
	if diff := cmp.Diff([]string{"_links", "events", "id", "list_id", "sources", "url"}, keysOf(raw)); diff != "" {
		t.Errorf("one webhook's keys (-want +got):\n%s", diff)
	}

	if r := s.do(http.MethodDelete, path+"/"+first.ID, ""); r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Errorf("DELETE: %d %q, want 204 and no body", r.status, r.body)
	}
	for _, r := range []response{s.do(http.MethodDelete, path+"/"+first.ID, ""), s.get(path+"/"+first.ID, nil)} {
		if r.status != http.StatusNotFound || decodeProblem(t, r).Title != "Resource Not Found" {
			t.Errorf("a deleted webhook: %d %s, want 404 Resource Not Found", r.status, r.body)
		}
	}
	if diff := cmp.Diff([]Webhook{wantSecond}, s.sim.Webhooks(DefaultListID)); diff != "" {
		t.Errorf("after DELETE (-want +got):\n%s", diff)
	}

	// The API's usual answers: unknown list, wrong key, wrong method.
	if r := s.get("/3.0/lists/nosuchlist/webhooks", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown list: %d", r.status)
	}
	if r := s.do(http.MethodPost, "/3.0/lists/nosuchlist/webhooks", `{"url":"`+rc.url()+`"}`); r.status != http.StatusNotFound {
		t.Errorf("POST to an unknown list: %d", r.status)
	}
	if r := s.request("wrong-us1", path, nil); r.status != http.StatusUnauthorized {
		t.Errorf("wrong key: %d", r.status)
	}
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodPut, path, "GET, POST"},
		{http.MethodPatch, path + "/" + second.ID, "GET, DELETE"},
	} {
		r := s.do(tc.method, tc.path, "")
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", tc.method, tc.path, r.status, r.header.Get("Allow"), tc.allow)
		}
	}
	if got := s.sim.Webhooks("nosuchlist"); got != nil {
		t.Errorf("Webhooks of an unknown list: %v", got)
	}
}

// TestWebhookCreationRefused: a URL that does not answer its GET check
// with 200 (or is no URL, or the body no JSON) is refused with a 400 that
// names the field, as Mailchimp refuses it, and nothing is registered.
func TestWebhookCreationRefused(t *testing.T) {
	s := newHookSim(t, Options{Members: 1, Seed: 2})
	rc := newReceiver(t)
	gone := newReceiver(t)
	gone.srv.Close()
	path := "/3.0/lists/" + DefaultListID + "/webhooks"
	tests := []struct {
		name, body string
		getStatus  int
		status     int
		title      string
		field      string
	}{
		{"GET check answers 404", `{"url":"` + rc.url() + `"}`, http.StatusNotFound, 400, "Invalid Resource", "url"},
		{"GET check answers 500", `{"url":"` + rc.url() + `"}`, http.StatusInternalServerError, 400, "Invalid Resource", "url"},
		{"GET check answers 204", `{"url":"` + rc.url() + `"}`, http.StatusNoContent, 400, "Invalid Resource", "url"},
		{"nobody listening", `{"url":"` + gone.url() + `"}`, 0, 400, "Invalid Resource", "url"},
		{"no URL", `{"events":{"subscribe":true}}`, 0, 400, "Invalid Resource", "url"},
		{"not http", `{"url":"ftp://example.com/hook"}`, 0, 400, "Invalid Resource", "url"},
		{"no host", `{"url":"https:///hook"}`, 0, 400, "Invalid Resource", "url"},
		{"not JSON", `{"url":`, 0, 400, "JSON Schema Error", ""},
		{"too large", `{"url":"` + strings.Repeat("a", 70<<10) + `"}`, 0, 413, "Request Entity Too Large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc.mu.Lock()
			rc.getStatus = tc.getStatus
			rc.mu.Unlock()
			r := s.do(http.MethodPost, path, tc.body)
			p := decodeProblem(t, r)
			if r.status != tc.status || p.Status != tc.status || p.Title != tc.title {
				t.Fatalf("status %d, problem %+v; want %d %s", r.status, p, tc.status, tc.title)
			}
			if tc.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.field || p.Errors[0].Message == "") {
				t.Errorf("errors %+v, want one about %s", p.Errors, tc.field)
			}
		})
	}
	if got := s.sim.Webhooks(DefaultListID); len(got) != 0 {
		t.Errorf("refused webhooks were registered: %v", got)
	}
	if rc.getCount() != 3 {
		t.Errorf("the receiver was checked %d times, want 3", rc.getCount())
	}
}

// TestWebhookPayloads: each kind of change fires the events Mailchimp
// would, with DESIGN.md's payload fields exactly, form-encoded, fired_at
// from the simulator's clock; archiving and members added unsubscribed
// fire nothing.
func TestWebhookPayloads(t *testing.T) {
	s := newHookSim(t, Options{Members: 2, Seed: 3, Webhooks: WebhookOptions{Delay: -1}})
	rc := newReceiver(t)
	s.addHook(DefaultListID, rc.url())
	const list = DefaultListID
	var id string // the member's id as it is now

	firedAt := func() string { return s.clock.Now().UTC().Format("2006-01-02 15:04:05") }
	member := func(typ, email, fname string, extra ...string) url.Values {
		v := url.Values{
			"type": {typ}, "fired_at": {firedAt()},
			"data[id]": {"8a25ff1d98"}, "data[list_id]": {list}, "data[email]": {email}, "data[email_type]": {"html"},
			"data[ip_opt]": {"198.51.100.7"}, "data[ip_signup]": {"198.51.100.9"}, "data[web_id]": {"3375995"},
			"data[merges][EMAIL]": {email}, "data[merges][FNAME]": {fname}, "data[merges][LNAME]": {"Lima"},
			"data[merges][SCORE]": {"7"}, "data[merges][RATIO]": {"0.25"}, "data[merges][ADDRESS][city]": {"Porto"},
		}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	setStatus := func(status string) func() error {
		return func() error { return s.sim.Change(list, id, func(m *Member) { m.Status = status }) }
	}
	tests := []struct {
		name   string
		mutate func() error
		want   func() []url.Values
	}{
		{"sign-up", func() error {
			var err error
			id, err = s.sim.Add(list, Member{
				EmailAddress: "Ana.Lima@Example.com", UniqueEmailID: "8a25ff1d98", WebID: 3375995,
				IPOpt: "198.51.100.7", IPSignup: "198.51.100.9",
				MergeFields: map[string]any{"FNAME": "Ana", "LNAME": "Lima", "SCORE": 7, "RATIO": 0.25, "ADDRESS": map[string]any{"city": "Porto"}},
			})
			return err
		}, func() []url.Values { return []url.Values{member("subscribe", "Ana.Lima@Example.com", "Ana")} }},
		{"merge field edit", func() error {
			return s.sim.Change(list, id, func(m *Member) { m.MergeFields["FNAME"] = "Zoë" })
		}, func() []url.Values { return []url.Values{member("profile", "Ana.Lima@Example.com", "Zoë")} }},
		{"edit that changes nothing", func() error { return s.sim.Change(list, id, func(*Member) {}) },
			func() []url.Values { return []url.Values{member("profile", "Ana.Lima@Example.com", "Zoë")} }},
		{"other edit", func() error { return s.sim.Change(list, id, func(m *Member) { m.Language = "pt" }) },
			func() []url.Values { return []url.Values{member("profile", "Ana.Lima@Example.com", "Zoë")} }},
		{"unsubscribe", func() error { return s.sim.Unsubscribe(list, id) }, func() []url.Values {
			return []url.Values{member("unsubscribe", "Ana.Lima@Example.com", "Zoë",
				"data[action]", "unsub", "data[reason]", "manual", "data[campaign_id]", "")}
		}},
		{"resubscribe", setStatus(StatusSubscribed),
			func() []url.Values { return []url.Values{member("subscribe", "Ana.Lima@Example.com", "Zoë")} }},
		{"cleaned", setStatus(StatusCleaned), func() []url.Values {
			return []url.Values{{
				"type": {"cleaned"}, "fired_at": {firedAt()}, "data[list_id]": {list},
				"data[email]": {"Ana.Lima@Example.com"}, "data[reason]": {"hard"}, "data[campaign_id]": {""},
			}}
		}},
		{"cleaned to subscribed", setStatus(StatusSubscribed),
			func() []url.Values { return []url.Values{member("subscribe", "Ana.Lima@Example.com", "Zoë")} }},
		{"to pending", setStatus(StatusPending),
			func() []url.Values { return []url.Values{member("profile", "Ana.Lima@Example.com", "Zoë")} }},
		{"pending to subscribed", setStatus(StatusSubscribed),
			func() []url.Values { return []url.Values{member("subscribe", "Ana.Lima@Example.com", "Zoë")} }},
		{"address change", func() error {
			var err error
			id, err = s.sim.ChangeAddress(list, id, "ana@example.org")
			return err
		}, func() []url.Values {
			return []url.Values{{
				"type": {"upemail"}, "fired_at": {firedAt()}, "data[list_id]": {list},
				"data[new_id]": {"8a25ff1d98"}, "data[new_email]": {"ana@example.org"}, "data[old_email]": {"Ana.Lima@Example.com"},
			}}
		}},
		{"address and name at once", func() error {
			err := s.sim.Change(list, id, func(m *Member) { m.EmailAddress, m.MergeFields["FNAME"] = "ana@example.net", "Ana" })
			id = MemberID("ana@example.net")
			return err
		}, func() []url.Values {
			return []url.Values{{
				"type": {"upemail"}, "fired_at": {firedAt()}, "data[list_id]": {list},
				"data[new_id]": {"8a25ff1d98"}, "data[new_email]": {"ana@example.net"}, "data[old_email]": {"ana@example.org"},
			}, member("profile", "ana@example.net", "Ana")}
		}},
		{"archive fires nothing", func() error { return s.sim.Archive(list, id) }, func() []url.Values { return nil }},
		{"unarchive", setStatus(StatusSubscribed),
			func() []url.Values { return []url.Values{member("subscribe", "ana@example.net", "Ana")} }},
		{"deleted for good", func() error { return s.sim.Delete(list, id) }, func() []url.Values {
			return []url.Values{member("unsubscribe", "ana@example.net", "Ana",
				"data[action]", "delete", "data[reason]", "manual", "data[campaign_id]", "")}
		}},
		{"added unsubscribed fires nothing", func() error {
			_, err := s.sim.Add(list, Member{EmailAddress: "gone@example.com", Status: StatusUnsubscribed})
			return err
		}, func() []url.Values { return nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.clock.Advance(time.Minute + 300*time.Millisecond)
			if err := tc.mutate(); err != nil {
				t.Fatal(err)
			}
			s.flush()
			got := rc.take()
			var forms []url.Values
			for _, p := range got {
				forms = append(forms, p.form)
				if p.contentType != "application/x-www-form-urlencoded" {
					t.Errorf("Content-Type %q", p.contentType)
				}
			}
			if diff := cmp.Diff(tc.want(), forms); diff != "" {
				t.Errorf("payloads (-want +got):\n%s", diff)
			}
		})
	}
	st := s.sim.WebhookStats()
	checkBalance(t, st)
	wantTypes := map[string]int{"subscribe": 5, "profile": 5, "unsubscribe": 2, "cleaned": 1, "upemail": 2}
	if diff := cmp.Diff(wantTypes, st.ByType); diff != "" || st.Failed != 0 || st.Sent != 15 {
		t.Errorf("stats %+v; ByType (-want +got):\n%s", st, diff)
	}
}

// TestWebhookHintFindsTheMember: what a receiver takes from each payload
// (the MD5 of data[email], data[old_email], data[new_email], as chimport's
// receiver does when data[id] is not a member id) leads the single-member
// GET to the member's current state, or to a 404 once it is gone.
func TestWebhookHintFindsTheMember(t *testing.T) {
	s := newHookSim(t, Options{Members: 20, Seed: 4, Webhooks: WebhookOptions{Delay: -1}})
	rc := newReceiver(t)
	s.addHook(DefaultListID, rc.url())
	members := s.sim.Members(DefaultListID)
	edited, moved, deleted := members[1].ID, members[2].ID, members[3].ID
	if err := s.sim.Change(DefaultListID, edited, func(m *Member) { m.MergeFields["FNAME"] = "Björk" }); err != nil {
		t.Fatal(err)
	}
	newID, err := s.sim.ChangeAddress(DefaultListID, moved, "moved@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.sim.Delete(DefaultListID, deleted); err != nil {
		t.Fatal(err)
	}
	s.flush()
	fetch := func(email string) (int, map[string]any) {
		r := s.get("/3.0/lists/"+DefaultListID+"/members/"+MemberID(email),
			vals("fields", "id,email_address,status,merge_fields.FNAME,last_changed"))
		var m map[string]any
		if r.status == http.StatusOK {
			decodeJSON(t, r.body, &m)
		}
		return r.status, m
	}
	forms := rc.forms()
	if len(forms) != 3 {
		t.Fatalf("%d events, want 3: %v", len(forms), forms)
	}
	if status, m := fetch(forms[0].Get("data[email]")); status != 200 || m["id"] != edited || m["merge_fields"].(map[string]any)["FNAME"] != "Björk" {
		t.Errorf("profile's member: %d %v", status, m)
	}
	if status, _ := fetch(forms[1].Get("data[old_email]")); status != http.StatusNotFound {
		t.Errorf("upemail's old address: %d, want 404", status)
	}
	if status, m := fetch(forms[1].Get("data[new_email]")); status != 200 || m["id"] != newID {
		t.Errorf("upemail's new address: %d %v, want member %s", status, m, newID)
	}
	if status, _ := fetch(forms[2].Get("data[email]")); forms[2].Get("data[action]") != "delete" || status != http.StatusNotFound {
		t.Errorf("deleted member: action %q, %d; want delete, 404", forms[2].Get("data[action]"), status)
	}
}

// TestWebhookFilters: a webhook hears only the event types and sources it
// asked for (the mutation methods are API calls; churn comes from users
// and admins); every webhook of a list gets its own copy, even two at the
// same URL; other lists' webhooks hear nothing.
func TestWebhookFilters(t *testing.T) {
	s := newHookSim(t, Options{Members: 30, Seed: 5, Webhooks: WebhookOptions{Delay: -1}})
	s.sim.AddList("otherlist0", 5, 9)
	subsOnly, noAPI, twiceA, twiceB, other := newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t), newReceiver(t)
	s.addHookWith(DefaultListID, subsOnly.url(), `{"subscribe":true,"unsubscribe":false,"profile":false,"cleaned":false,"upemail":false}`, `{"user":true,"admin":true,"api":true}`)
	s.addHookWith(DefaultListID, noAPI.url(), allEvents, `{"user":true,"admin":true,"api":false}`)
	s.addHook(DefaultListID, twiceA.url())
	s.addHook(DefaultListID, twiceA.url())
	s.addHook(DefaultListID, twiceB.url())
	s.addHook("otherlist0", other.url())

	m := s.sim.Members(DefaultListID)[0]
	if err := s.sim.Change(DefaultListID, m.ID, func(m *Member) { m.MergeFields["FNAME"] = "Wei" }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.sim.Add(DefaultListID, Member{EmailAddress: "new@example.com"}); err != nil {
		t.Fatal(err)
	}
	s.flush()
	types := func(rc *receiver) []string {
		var out []string
		for _, f := range rc.forms() {
			out = append(out, f.Get("type"))
		}
		return out
	}
	if diff := cmp.Diff([]string{"subscribe"}, types(subsOnly)); diff != "" {
		t.Errorf("subscribe-only webhook (-want +got):\n%s", diff)
	}
	if got := types(noAPI); len(got) != 0 {
		t.Errorf("a webhook without the api source heard API calls: %v", got)
	}
	if diff := cmp.Diff([]string{"profile", "profile", "subscribe", "subscribe"}, sorted(types(twiceA))); diff != "" {
		t.Errorf("two webhooks at one URL (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"profile", "subscribe"}, types(twiceB)); diff != "" {
		t.Errorf("one webhook (-want +got):\n%s", diff)
	}

	// Churn is made by people, not the API: the webhook without api hears
	// it, and every event names a member Churn touched.
	touched := s.sim.Churn(DefaultListID, 40)
	s.flush()
	heard := noAPI.forms()
	if len(heard) == 0 {
		t.Fatal("churn fired no event")
	}
	for _, f := range heard {
		var emails []string
		switch f.Get("type") {
		case "upemail":
			emails = []string{f.Get("data[old_email]"), f.Get("data[new_email]")}
		default:
			emails = []string{f.Get("data[email]")}
		}
		for _, e := range emails {
			if !slices.Contains(touched, MemberID(e)) {
				t.Errorf("a %s event names %s, which Churn did not touch", f.Get("type"), e)
			}
		}
	}
	if got := other.forms(); len(got) != 0 {
		t.Errorf("another list's webhook heard %d events", len(got))
	}
	checkBalance(t, s.sim.WebhookStats())
}

func sorted(s []string) []string { slices.Sort(s); return s }

// TestWebhookDelay: events go out after the delay on the wall clock, while
// the simulator's fake clock stands still and is never moved by sending.
func TestWebhookDelay(t *testing.T) {
	for _, delay := range []time.Duration{0, 80 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			s := newHookSim(t, Options{Members: 5, Seed: 6})
			s.sim.SetWebhookDelay(delay)
			rc := newReceiver(t)
			s.addHook(DefaultListID, rc.url())
			before := s.clock.Now()
			changed := time.Now()
			for _, m := range s.sim.Members(DefaultListID) {
				if err := s.sim.Change(DefaultListID, m.ID, func(m *Member) { m.MergeFields["FNAME"] = "Mia" }); err != nil {
					t.Fatal(err)
				}
			}
			s.flush()
			got := rc.take()
			if len(got) != 5 {
				t.Fatalf("%d events, want 5", len(got))
			}
			for _, p := range got {
				if waited := p.at.Sub(changed); waited < delay {
					t.Errorf("an event arrived %v after its change, before the delay %v", waited, delay)
				}
			}
			if !s.clock.Now().Equal(before) {
				t.Errorf("sending moved the fake clock from %v to %v", before, s.clock.Now())
			}
		})
	}
	t.Run("default", func(t *testing.T) {
		if got := newWebhookHub(WebhookOptions{}, 0).delay; got != DefaultWebhookDelay {
			t.Errorf("default delay %v, want %v", got, DefaultWebhookDelay)
		}
	})
}

// TestWebhookOrderWithoutFaults: without faults one webhook gets events in
// the order of the changes, each once.
func TestWebhookOrderWithoutFaults(t *testing.T) {
	s := newHookSim(t, Options{Members: 1, Seed: 7, Webhooks: WebhookOptions{Delay: time.Millisecond}})
	rc := newReceiver(t)
	s.addHook(DefaultListID, rc.url())
	id := s.sim.Members(DefaultListID)[0].ID
	var want []string
	for i := range 50 {
		name := fmt.Sprintf("n%02d", i)
		want = append(want, name)
		if err := s.sim.Change(DefaultListID, id, func(m *Member) { m.MergeFields["FNAME"] = name }); err != nil {
			t.Fatal(err)
		}
	}
	s.flush()
	if diff := cmp.Diff(want, fnames(rc.forms())); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func fnames(forms []url.Values) []string {
	var out []string
	for _, f := range forms {
		out = append(out, f.Get("data[merges][FNAME]"))
	}
	return out
}

// TestWebhookFaults: duplicates, out-of-order delivery and lost events,
// counted in the stats and drawn from the seed.
func TestWebhookFaults(t *testing.T) {
	// edits makes n edits of one member, each with its own FNAME, and
	// returns the names in order.
	edits := func(t *testing.T, s *simServer, n int) []string {
		t.Helper()
		id := s.sim.Members(DefaultListID)[0].ID
		var names []string
		for i := range n {
			name := fmt.Sprintf("n%03d", i)
			names = append(names, name)
			if err := s.sim.Change(DefaultListID, id, func(m *Member) { m.MergeFields["FNAME"] = name }); err != nil {
				t.Fatal(err)
			}
		}
		return names
	}
	counts := func(names []string) map[string]int {
		c := map[string]int{}
		for _, n := range names {
			c[n]++
		}
		return c
	}
	run := func(t *testing.T, f WebhookFaults, n int) (sent []string, names []string, st WebhookStats) {
		t.Helper()
		s := newHookSim(t, Options{Members: 1, Seed: 8, Webhooks: WebhookOptions{Delay: -1, Faults: f}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		names = edits(t, s, n)
		s.flush()
		st = s.sim.WebhookStats()
		checkBalance(t, st)
		return fnames(rc.forms()), names, st
	}

	t.Run("duplicate", func(t *testing.T) {
		got, names, st := run(t, WebhookFaults{Duplicate: 0.2}, 200)
		if st.Duplicated < 20 || st.Duplicated > 70 || len(got) != 200+st.Duplicated || st.Sent != len(got) {
			t.Errorf("%d duplicated of 200, %d received, stats %+v", st.Duplicated, len(got), st)
		}
		for name, c := range counts(got) {
			if c > 2 {
				t.Errorf("%s received %d times", name, c)
			}
		}
		if len(counts(got)) != len(names) {
			t.Errorf("%d distinct events received, want %d", len(counts(got)), len(names))
		}
		// The same seed and the same changes duplicate the same events.
		again, _, _ := run(t, WebhookFaults{Duplicate: 0.2}, 200)
		if diff := cmp.Diff(counts(got), counts(again)); diff != "" {
			t.Errorf("not deterministic (-first +second):\n%s", diff)
		}
		all, _, st := run(t, WebhookFaults{Duplicate: 1}, 10)
		if len(all) != 20 || st.Duplicated != 10 {
			t.Errorf("Duplicate 1: %d received, %d duplicated; want 20, 10", len(all), st.Duplicated)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		got, names, st := run(t, WebhookFaults{Reorder: true, HoldBack: 50 * time.Millisecond}, 40)
		if slices.Equal(got, names) {
			t.Error("40 events held back at random arrived in order")
		}
		if diff := cmp.Diff(names, sorted(slices.Clone(got))); diff != "" || st.Sent != 40 {
			t.Errorf("reordering lost or added events (sent %d) (-want +got):\n%s", st.Sent, diff)
		}
	})
	t.Run("drop", func(t *testing.T) {
		got, _, st := run(t, WebhookFaults{Drop: 0.3}, 200)
		if st.Dropped < 30 || st.Dropped > 90 || len(got)+st.Dropped != 200 || st.Events != 200 {
			t.Errorf("%d received, stats %+v", len(got), st)
		}
		again, _, _ := run(t, WebhookFaults{Drop: 0.3}, 200)
		if diff := cmp.Diff(got, again); diff != "" {
			t.Errorf("not deterministic (-first +second):\n%s", diff)
		}
		none, _, st := run(t, WebhookFaults{Drop: 1}, 10)
		if len(none) != 0 || st.Dropped != 10 {
			t.Errorf("Drop 1: %d received, %d dropped", len(none), st.Dropped)
		}
	})
	t.Run("all at once, set on a running simulator", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 1, Seed: 9, Webhooks: WebhookOptions{Delay: -1}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		s.sim.SetWebhookFaults(WebhookFaults{Duplicate: 0.2, Drop: 0.1, Reorder: true, HoldBack: 20 * time.Millisecond})
		edits(t, s, 100)
		s.flush()
		st := s.sim.WebhookStats()
		checkBalance(t, st)
		if got := len(rc.forms()); got != st.Sent || st.Sent != 100-st.Dropped+st.Duplicated || st.Dropped == 0 || st.Duplicated == 0 {
			t.Errorf("%d received, stats %+v", got, st)
		}
		s.sim.SetWebhookFaults(WebhookFaults{})
		before := s.sim.WebhookStats()
		edits(t, s, 10)
		s.flush()
		if after := s.sim.WebhookStats(); after.Sent-before.Sent != 10 || after.Dropped != before.Dropped || after.Duplicated != before.Duplicated {
			t.Errorf("faults off: before %+v, after %+v", before, after)
		}
	})
}

// TestWebhookRetries: a failed delivery (an answer other than 2xx, or no
// answer within the timeout) is tried again a few times, then counted as
// failed; the others to the same webhook are not held up for good.
func TestWebhookRetries(t *testing.T) {
	t.Run("succeeds on the third attempt", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 1, Seed: 10, Webhooks: WebhookOptions{Delay: -1, RetryBackoff: time.Millisecond}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		rc.mu.Lock()
		rc.answer = func(n int) int {
			if n < 2 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		}
		rc.mu.Unlock()
		if err := s.sim.Unsubscribe(DefaultListID, s.sim.Members(DefaultListID)[0].ID); err != nil {
			t.Fatal(err)
		}
		s.flush()
		got := rc.forms()
		st := s.sim.WebhookStats()
		if len(got) != 3 || st.Sent != 1 || st.Retried != 2 || st.Failed != 0 {
			t.Errorf("%d attempts, stats %+v; want 3 attempts, 1 sent, 2 retried", len(got), st)
		}
		checkBalance(t, st)
	})
	t.Run("gives up", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 2, Seed: 11, Webhooks: WebhookOptions{Delay: -1, Retries: 2, RetryBackoff: time.Millisecond}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		rc.mu.Lock()
		rc.answer = func(int) int { return http.StatusInternalServerError }
		rc.mu.Unlock()
		for _, m := range s.sim.Members(DefaultListID) {
			if err := s.sim.Delete(DefaultListID, m.ID); err != nil {
				t.Fatal(err)
			}
		}
		s.flush()
		st := s.sim.WebhookStats()
		if got := len(rc.forms()); got != 6 || st.Failed != 2 || st.Retried != 4 || st.Sent != 0 {
			t.Errorf("%d attempts, stats %+v; want 6 attempts, 2 failed, 4 retried", got, st)
		}
		checkBalance(t, st)
	})
	t.Run("timeout", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 1, Seed: 12, Webhooks: WebhookOptions{Delay: -1, Retries: -1, Timeout: 50 * time.Millisecond}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		rc.holdPosts()
		if err := s.sim.Change(DefaultListID, s.sim.Members(DefaultListID)[0].ID, func(m *Member) { m.VIP = true }); err != nil {
			t.Fatal(err)
		}
		s.flush()
		if st := s.sim.WebhookStats(); st.Failed != 1 || st.Retried != 0 || st.Sent != 0 {
			t.Errorf("stats %+v; want 1 failed, no retry", st)
		}
	})
}

// TestWebhookSendingNeverHoldsTheSimulator: a receiver that does not answer
// holds up neither mutations nor API requests: sending happens outside
// every lock.
func TestWebhookSendingNeverHoldsTheSimulator(t *testing.T) {
	s := newHookSim(t, Options{Members: 50, Seed: 13, Webhooks: WebhookOptions{Delay: -1}})
	rc := newReceiver(t)
	s.addHook(DefaultListID, rc.url())
	rc.holdPosts()
	members := s.sim.Members(DefaultListID)
	if err := s.sim.Change(DefaultListID, members[0].ID, func(m *Member) { m.VIP = true }); err != nil {
		t.Fatal(err)
	}
	rc.waitArrived(1) // one call in flight, held
	for _, m := range members[1:] {
		if err := s.sim.Change(DefaultListID, m.ID, func(m *Member) { m.MergeFields["FNAME"] = "Ava" }); err != nil {
			t.Fatal(err)
		}
	}
	s.sim.Churn(DefaultListID, 100)
	if p := s.members(vals("count", "1000")); p.Total == 0 {
		t.Error("no members served")
	}
	if st := s.sim.WebhookStats(); st.Pending < 50 || st.Sent != 0 {
		t.Errorf("stats while the receiver holds: %+v", st)
	}
	rc.letGo()
	s.flush()
	st := s.sim.WebhookStats()
	checkBalance(t, st)
	if st.Sent < 50 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestWebhookDeleteDiscardsPending: deleting a webhook stops its events,
// pending ones included, and its sender goroutine ends.
func TestWebhookDeleteDiscardsPending(t *testing.T) {
	s := newHookSim(t, Options{Members: 5, Seed: 14, Webhooks: WebhookOptions{Delay: time.Hour}})
	rc := newReceiver(t)
	w := s.addHook(DefaultListID, rc.url())
	for _, m := range s.sim.Members(DefaultListID) {
		if err := s.sim.Unsubscribe(DefaultListID, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.sim.WebhookStats(); st.Pending != 5 {
		t.Fatalf("pending %d, want 5", st.Pending)
	}
	if r := s.do(http.MethodDelete, "/3.0/lists/"+DefaultListID+"/webhooks/"+w.ID, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d", r.status)
	}
	s.flush()
	waitSendersEnded(t, s.sim)
	st := s.sim.WebhookStats()
	if st.Discarded != 5 || st.Pending != 0 || st.Sent != 0 || len(rc.forms()) != 0 {
		t.Errorf("stats %+v", st)
	}
	checkBalance(t, st)
}

// senderFrames are the frames of the goroutines webhooks start: the
// simulator's senders and its HTTP client's connections.
var senderFrames = []string{"mcsim.(*webhookHub)", "net/http.(*persistConn)"}

// TestWebhookNoGoroutineLeak: senders end once their queues are empty, and
// Close ends everything, in-flight calls and waits included, and discards
// what was pending. Later changes fire nothing.
func TestWebhookNoGoroutineLeak(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 10, Seed: 15, Webhooks: WebhookOptions{Delay: -1}})
		rc := newReceiver(t)
		s.addHook(DefaultListID, rc.url())
		s.sim.Churn(DefaultListID, 30)
		s.flush()
		waitSendersEnded(t, s.sim)
	})
	t.Run("close", func(t *testing.T) {
		s := newHookSim(t, Options{Members: 10, Seed: 16, Webhooks: WebhookOptions{Delay: -1}})
		held, waiting := newReceiver(t), newReceiver(t)
		s.addHook(DefaultListID, held.url())
		s.addHook(DefaultListID, waiting.url())
		held.holdPosts()
		members := s.sim.Members(DefaultListID)
		if err := s.sim.Change(DefaultListID, members[0].ID, func(m *Member) { m.VIP = true }); err != nil {
			t.Fatal(err)
		}
		held.waitArrived(1) // a call in flight, held
		waitFor(t, "the other webhook's event sent", func() bool { return s.sim.WebhookStats().Sent == 1 })
		s.sim.SetWebhookDelay(time.Hour)
		if err := s.sim.Change(DefaultListID, members[1].ID, func(m *Member) { m.VIP = true }); err != nil {
			t.Fatal(err)
		}
		if st := s.sim.WebhookStats(); st.Pending != 3 {
			t.Fatalf("pending %d, want 3 (one in flight, two waiting for their delay)", st.Pending)
		}

		if err := s.sim.Close(); err != nil {
			t.Fatal(err)
		}
		s.srv.Client().CloseIdleConnections() // the test's own connections to the API
		waitGoroutinesGone(t, senderFrames...)
		st := s.sim.WebhookStats()
		if st.Pending != 0 || st.Discarded != 3 || st.Sent != 1 {
			t.Errorf("after Close: %+v; want 3 discarded, 1 sent, none pending", st)
		}
		checkBalance(t, st)
		if err := s.sim.Unsubscribe(DefaultListID, members[2].ID); err != nil {
			t.Fatal(err)
		}
		s.flush()
		if after := s.sim.WebhookStats(); after.Events != st.Events {
			t.Errorf("a change after Close fired %d events", after.Events-st.Events)
		}
		if err := s.sim.Close(); err != nil { // twice is fine
			t.Fatal(err)
		}
	})
}

// TestWebhookConcurrentUse: webhooks created and deleted over HTTP while
// the list churns and requests page it; run under -race. Every event ends
// one way or another.
func TestWebhookConcurrentUse(t *testing.T) {
	s := newHookSim(t, Options{Members: 200, Seed: 17, Webhooks: WebhookOptions{Delay: time.Millisecond,
		Faults: WebhookFaults{Duplicate: 0.1, Reorder: true, HoldBack: 5 * time.Millisecond}}})
	rc := newReceiver(t)
	s.addHook(DefaultListID, rc.url())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			s.sim.Churn(DefaultListID, 5)
			if i%10 == 0 {
				s.sim.SetWebhookFaults(WebhookFaults{Drop: 0.05, Duplicate: 0.1})
			}
		}
	})
	wg.Go(func() {
		for range 20 {
			s.members(vals("count", "100", "sort_field", "last_changed"))
			_ = s.sim.WebhookStats()
		}
	})
	for range 10 {
		w := s.addHook(DefaultListID, rc.url())
		if r := s.do(http.MethodDelete, "/3.0/lists/"+DefaultListID+"/webhooks/"+w.ID, ""); r.status != http.StatusNoContent {
			t.Errorf("DELETE: %d", r.status)
		}
	}
	close(done)
	wg.Wait()
	s.flush()
	st := s.sim.WebhookStats()
	checkBalance(t, st)
	if st.Sent == 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}
