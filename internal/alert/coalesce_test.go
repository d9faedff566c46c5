package alert

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type sent struct {
	mu  sync.Mutex
	got []string
}

func (s *sent) Notify(_ context.Context, a Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := string(a.Kind)
	if a.Kind == KindRecovered {
		k += "/" + string(a.Resolves)
	}
	s.got = append(s.got, a.Connection+" "+k)
	return nil
}

func parentOf(conn string) string {
	if p, _, ok := strings.Cut(conn, "."); ok {
		return p
	}
	return ""
}

func TestCoalescedSendsOncePerGroupAndProblem(t *testing.T) {
	s := &sent{}
	c := &Coalesced{Next: s, Group: parentOf}
	revoked := func(conn string) Alert {
		return Alert{Kind: KindPermanentError, Connection: conn, Status: 401, Problem: "Mailchimp refused the OAuth access token."}
	}
	recovered := func(conn string, k Kind) Alert { return Alert{Kind: KindRecovered, Resolves: k, Connection: conn} }
	for _, a := range []Alert{
		revoked("acme.a1"), revoked("acme.a2"), revoked("acme.a3"), // one token, three audiences
		revoked("beta.b1"),                 // another account
		revoked("plain"), revoked("other"), // no group: every one
		{Kind: KindLag, Connection: "acme.a1"},                                                       // another kind: its own
		{Kind: KindLag, Connection: "acme.a2"},                                                       // quiet
		{Kind: KindRejected, Connection: "acme.a2"},                                                  // each audience's own records
		{Kind: KindPermanentError, Connection: "acme.a2", Status: 404, Problem: "The list is gone."}, // another problem
		recovered("acme.a2", KindPermanentError),                                                     // was quiet about the 401 and alerted on the 404
		recovered("acme.a3", KindPermanentError),                                                     // quiet
		recovered("acme.a1", KindPermanentError),                                                     // the one that alerted
		revoked("acme.a3"),                                                                           // a new incident: sent again
		recovered("acme.a2", KindLag),                                                                // quiet
		recovered("acme.a1", KindLag),
	} {
		if err := c.Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"acme.a1 permanent_error", "beta.b1 permanent_error", "plain permanent_error", "other permanent_error",
		"acme.a1 lag", "acme.a2 rejected", "acme.a2 permanent_error", "acme.a2 recovered/permanent_error",
		"acme.a1 recovered/permanent_error", "acme.a3 permanent_error", "acme.a1 recovered/lag",
	}
	if diff := cmp.Diff(want, s.got); diff != "" {
		t.Errorf("alerts sent (-want +got):\n%s", diff)
	}
}

// A process that did not see the incidents open (`run` is one process per
// run) sends one recovery per group and kind.
func TestCoalescedRecoveriesOfIncidentsItDidNotSee(t *testing.T) {
	s := &sent{}
	c := &Coalesced{Next: s, Group: parentOf}
	for _, a := range []Alert{
		{Kind: KindRecovered, Resolves: KindLag, Connection: "acme.a1"},
		{Kind: KindRecovered, Resolves: KindLag, Connection: "acme.a2"},
		{Kind: KindRecovered, Resolves: KindPermanentError, Connection: "acme.a2"}, // another kind
		{Kind: KindRecovered, Resolves: KindLag, Connection: "beta.b1"},            // another group
		{Kind: KindLag, Connection: "acme.a3"},                                     // a new incident
		{Kind: KindRecovered, Resolves: KindLag, Connection: "acme.a3"},
	} {
		if err := c.Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"acme.a1 recovered/lag", "acme.a2 recovered/permanent_error", "beta.b1 recovered/lag", "acme.a3 lag", "acme.a3 recovered/lag"}
	if diff := cmp.Diff(want, s.got); diff != "" {
		t.Errorf("alerts sent (-want +got):\n%s", diff)
	}
}
