package discover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/mailchimp"
)

// account is a Lister with fixed audiences, or a fixed error.
type account struct {
	ids   []string
	err   error
	calls int
}

func (a *account) Lists(context.Context) ([]mailchimp.ListSummary, error) {
	a.calls++
	if a.err != nil {
		return nil, a.err
	}
	out := make([]mailchimp.ListSummary, len(a.ids))
	for i, id := range a.ids {
		out[i] = mailchimp.ListSummary{ID: id, Name: "Audience " + id}
	}
	return out, nil
}

func conn(name, list string) config.Connection {
	c := config.Connection{Name: name}.WithDefaults()
	c.Mailchimp.ListID = list
	return c
}

func names(cs []config.Connection) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func expand(t *testing.T, conns []config.Connection, accounts map[string]*account, opts Options) Result {
	t.Helper()
	opts.Lister = func(c config.Connection) (Lister, error) {
		a, ok := accounts[c.Name]
		if !ok {
			t.Fatalf("listed %q, which does not discover", c.Name)
		}
		return a, nil
	}
	return Expand(context.Background(), conns, opts)
}

func TestExpandReplacesStarBySubConnections(t *testing.T) {
	acme := &account{ids: []string{"ccc", "aaa", "bbb", "aaa"}}
	res := expand(t, []config.Connection{conn("first", "l1"), conn("acme", "*"), conn("last", "l2")},
		map[string]*account{"acme": acme}, Options{})
	want := []string{"first", "acme.aaa", "acme.bbb", "acme.ccc", "last"}
	if diff := cmp.Diff(want, names(res.Connections)); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	for _, c := range res.Connections[1:4] {
		if c.Parent != "acme" || "acme."+c.Mailchimp.ListID != c.Name {
			t.Errorf("%s: parent %q, list %q", c.Name, c.Parent, c.Mailchimp.ListID)
		}
	}
	if acme.calls != 1 || len(res.Failed) != 0 || len(res.Vanished) != 0 {
		t.Errorf("calls %d, failed %v, vanished %v", acme.calls, res.Failed, res.Vanished)
	}
}

func TestExpandReportsVanishedAudiencesOfItsOwnConnections(t *testing.T) {
	acme := &account{ids: []string{"aaa"}}
	known := []string{"acme.aaa", "acme.gone", "acmeco.zzz", "other.bbb", "first"}
	res := expand(t, []config.Connection{conn("first", "l1"), conn("acme", "*")}, map[string]*account{"acme": acme},
		Options{Known: known})
	want := []Vanished{{Name: "acme.gone", Parent: "acme", ListID: "gone"}}
	if diff := cmp.Diff(want, res.Vanished); diff != "" {
		t.Errorf("vanished (-want +got):\n%s", diff)
	}
}

func TestExpandFailureKeepsTheOthers(t *testing.T) {
	refused := errors.New("mailchimp: token refused")
	res := expand(t, []config.Connection{conn("bad", "*"), conn("good", "*"), conn("plain", "l1")},
		map[string]*account{"bad": {err: refused}, "good": {ids: []string{"x1"}}},
		Options{Known: []string{"bad.old"}})
	if diff := cmp.Diff([]string{"good.x1", "plain"}, names(res.Connections)); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	if len(res.Failed) != 1 || res.Failed[0].Connection.Name != "bad" || !errors.Is(res.Failed[0].Err, refused) {
		t.Fatalf("failed = %+v", res.Failed)
	}
	if !strings.Contains(res.Failed[0].Err.Error(), `list_id "*"`) {
		t.Errorf("the error should say what was being done: %v", res.Failed[0].Err)
	}
	// Without the list, nothing can be said about what vanished.
	if len(res.Vanished) != 0 {
		t.Errorf("vanished = %v", res.Vanished)
	}
}

func TestExpandNamesSelect(t *testing.T) {
	accounts := map[string]*account{"acme": {ids: []string{"a", "b"}}, "beta": {ids: []string{"c"}}, "gamma": {err: errors.New("down")}}
	conns := []config.Connection{conn("acme", "*"), conn("beta", "*"), conn("gamma", "*"), conn("plain", "l1")}
	tests := []struct {
		names      []string
		want       []string
		wantFailed int
	}{
		{[]string{"acme"}, []string{"acme.a", "acme.b"}, 0},
		{[]string{"acme.b", "plain"}, []string{"acme.b", "plain"}, 0},
		{[]string{"beta.c", "gamma.x"}, []string{"beta.c"}, 1},
		{[]string{"gamma"}, nil, 1},
		{nil, []string{"acme.a", "acme.b", "beta.c", "plain"}, 1},
	}
	for _, tt := range tests {
		res := expand(t, conns, accounts, Options{Names: tt.names})
		if diff := cmp.Diff(tt.want, names(res.Connections), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("names %v (-want +got):\n%s", tt.names, diff)
		}
		if len(res.Failed) != tt.wantFailed {
			t.Errorf("names %v: %d failed, want %d", tt.names, len(res.Failed), tt.wantFailed)
		}
	}
}

func TestExpandLeavesOutAnIDThatCannotNameAConnection(t *testing.T) {
	long := strings.Repeat("x", 100)
	res := expand(t, []config.Connection{conn("acme", "*")}, map[string]*account{"acme": {ids: []string{"ok", "a/b", long}}}, Options{})
	if diff := cmp.Diff([]string{"acme.ok"}, names(res.Connections)); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	want := []Vanished{{Parent: "acme", ListID: `"a/b"`}, {Parent: "acme", ListID: fmt.Sprintf("%q", long[:64])}}
	if diff := cmp.Diff(want, res.Unusable); diff != "" || len(res.Failed) != 0 {
		t.Errorf("unusable (-want +got):\n%s\nfailed %v", diff, res.Failed)
	}
}

// An audience the listing missed is vanished only once Confirm says so;
// while it says no, or cannot say, the audience keeps syncing.
func TestExpandConfirmsWhatVanished(t *testing.T) {
	acme := &account{ids: []string{"a"}}
	asked := map[string]int{}
	answers := map[string]error{"gone": nil, "missed": nil, "unknown": errors.New("mailchimp: 503")}
	res := expand(t, []config.Connection{conn("acme", "*")}, map[string]*account{"acme": acme}, Options{
		Known: []string{"acme.a", "acme.gone", "acme.missed", "acme.unknown"},
		Confirm: func(c config.Connection, id string) (bool, error) {
			asked[id]++
			return id == "gone", answers[id]
		},
	})
	if diff := cmp.Diff([]string{"acme.a", "acme.missed", "acme.unknown"}, names(res.Connections)); diff != "" {
		t.Errorf("connections (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Vanished{{Name: "acme.gone", Parent: "acme", ListID: "gone"}}, res.Vanished); diff != "" {
		t.Errorf("vanished (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"gone": 1, "missed": 1, "unknown": 1}, asked); diff != "" {
		t.Errorf("asked (-want +got):\n%s", diff)
	}
}
