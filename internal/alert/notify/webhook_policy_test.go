package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/advice"
	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
)

// keyRejected is an error that needs a person, as the Mailchimp client's
// 401 is.
type keyRejected struct{}

func (keyRejected) Error() string {
	return "mailchimp: GET /lists/a1b2c3d4e5/members: HTTP 401 API Key Invalid"
}
func (keyRejected) Advice() (advice.Advice, bool) {
	return advice.Advice{Problem: "Mailchimp rejected the API key", Action: "Check mailchimp.api_key.", Status: 401}, true
}

// Every alert the policy builds reaches the webhook with every value the
// policy knows: lag_seconds and last_error_at are null only where there is
// no such thing (a recovery has no error).
func TestWebhookBodyFromPolicy(t *testing.T) {
	p := alert.LagPolicy{Threshold: 4 * time.Second}
	failedAt := at.Add(-2 * time.Second)
	f := alert.Freshness{Watermark: at.Add(-90 * time.Second), LastError: "target: HTTP 503", LastErrorAt: failedAt}

	permanent, ok := p.PermanentAlert("shop", fmt.Errorf("run: %w", keyRejected{}), &f, at)
	if !ok {
		t.Fatal("a rejected key needs no person")
	}
	lag, _, _ := p.Evaluate("shop", f, false, at)
	recovered, _, _ := p.Evaluate("shop", alert.Freshness{Watermark: at.Add(-time.Second)}, true, at)

	type fields struct {
		Kind        string     `json:"kind"`
		LagSeconds  *int64     `json:"lag_seconds"`
		Threshold   *int64     `json:"threshold_seconds"`
		LastError   *string    `json:"last_error"`
		LastErrorAt *time.Time `json:"last_error_at"`
	}
	i64 := func(n int64) *int64 { return &n }
	str := func(s string) *string { return &s }
	tm := func(t time.Time) *time.Time { t = t.UTC(); return &t }
	want := []fields{
		{"permanent_error", i64(90), i64(4), str("run: " + keyRejected{}.Error()), tm(at)},
		{"lag", i64(90), i64(4), str("target: HTTP 503"), tm(failedAt)},
		{"recovered", i64(1), i64(4), nil, nil},
	}
	h := newHook(t)
	w, _ := fakeWebhook(h.url())
	for _, a := range []alert.Alert{permanent, lag, recovered} {
		if err := w.Notify(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	var got []fields
	for _, b := range h.bodies {
		var f fields
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		got = append(got, f)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhook fields (-want +got):\n%s", diff)
	}
}

// A permanent error on a connection whose lag is 0 (its first run failed
// at once) says 0, not null: the lag is known.
func TestWebhookPermanentZeroLag(t *testing.T) {
	f := alert.Freshness{FirstAttempt: at}
	a, _ := alert.LagPolicy{}.PermanentAlert("shop", keyRejected{}, &f, at)
	raw, err := json.Marshal(newWebhookBody(a))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["lag_seconds"] != float64(0) || m["threshold_seconds"] != nil || m["last_error_at"] != "2026-03-04T05:06:07Z" {
		t.Errorf("body %s: want lag_seconds 0, threshold_seconds null (lag alerts off), last_error_at set", raw)
	}
}

// The rejected-records alert carries the count and one record (member
// id, status and the target's answer on one line); its recovery says the
// count is 0; every other alert has both null.
func TestWebhookRejectedFromPolicy(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	h := newHook(t)
	w, _ := fakeWebhook(h.url())
	id := state.MemberID{0xab, 0xcd}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		st, err := store.Connection(ctx, "shop")
		must(err)
		must(alert.CheckRejected(ctx, store, w, "shop", st, at))
	}
	must(store.RecordRejections(ctx, "shop", []state.Rejection{{Member: id, Key: "k", Status: 422, Reason: "{\"email\":\"<invalid>\"}\nsee docs", LastAttempt: at}}))
	check()
	must(store.ClearRejections(ctx, "shop", []state.MemberID{id}))
	check()

	type fields struct {
		Kind     string         `json:"kind"`
		Resolves string         `json:"resolves"`
		Text     string         `json:"text"`
		Rejected *int64         `json:"rejected"`
		Sample   *webhookRecord `json:"rejected_sample"`
	}
	one, zero := int64(1), int64(0)
	want := []fields{
		{Kind: "rejected", Rejected: &one, Sample: &webhookRecord{MemberID: id.String(), Status: 422, Reason: `{"email":"<invalid>"}\nsee docs`},
			Text: "*chimport: shop needs attention: the target refused 1 record (HTTP 422)* The target refused 1 record. They wait in the rejected log and every run retries them; " +
				"the rest of the audience keeps syncing. For example member abcd0000000000000000000000000000: HTTP 422: {\"email\":\"&lt;invalid&gt;\"}\\nsee docs " +
				"Find out why the target refuses them (chimport rejected --connection shop lists them, with the target's answers): fix the members in Mailchimp, " +
				"or the mapping or the target. The next run retries them; a notice follows when none is left."},
		{Kind: "recovered", Resolves: "rejected", Rejected: &zero,
			Text: "*chimport: shop has no rejected records left* The rejected log is empty: the target accepted the records it had refused, or their members are gone."},
	}
	var got []fields
	for _, b := range h.bodies {
		var f fields
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		got = append(got, f)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("webhook fields (-want +got):\n%s", diff)
	}
}
