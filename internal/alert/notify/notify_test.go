package notify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/alert"
)

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	a := alert.Alert{Kind: alert.KindPermanentError, Connection: "newsletter", Subject: "chimport: newsletter needs attention: x (HTTP 401)",
		Problem: "X.", Status: 401, Action: "Fix it.", Error: "boom", At: at}
	if err := (Log{Logger: logger}).Notify(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if err := (Log{Logger: logger}).Notify(context.Background(), alert.Alert{Kind: alert.KindRecovered, Connection: "newsletter", Subject: "recovered"}); err != nil {
		t.Fatal(err)
	}
	rejected := alert.Alert{Kind: alert.KindRejected, Connection: "newsletter", Subject: "refused", Status: 422, Rejected: 2,
		Sample: &alert.RejectedRecord{MemberID: "abcd", Status: 422, Reason: `bad\nemail`}}
	if err := (Log{Logger: logger}).Notify(context.Background(), rejected); err != nil {
		t.Fatal(err)
	}
	want := `level=ERROR msg="chimport: newsletter needs attention: x (HTTP 401)" alert=permanent_error connection=newsletter problem=X. status=401 action="Fix it." error=boom
level=INFO msg=recovered alert=recovered connection=newsletter
level=ERROR msg=refused alert=rejected connection=newsletter status=422 rejected=2 member_id=abcd reason=bad\nemail
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

type recorder struct {
	got []alert.Alert
	err error
}

func (r *recorder) Notify(_ context.Context, a alert.Alert) error {
	r.got = append(r.got, a)
	return r.err
}

func TestMultiNotifiesAllAndJoinsErrors(t *testing.T) {
	errA, errC := errors.New("a down"), errors.New("c down")
	a, b, c := &recorder{err: errA}, &recorder{}, &recorder{err: errC}
	alert := alert.Alert{Connection: "x"}
	err := Multi{a, b, c}.Notify(context.Background(), alert)
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("Notify = %v, want both errors", err)
	}
	for i, r := range []*recorder{a, b, c} {
		if len(r.got) != 1 {
			t.Errorf("notifier %d got %d alerts, want 1", i, len(r.got))
		}
	}
	if err := (Multi{b}).Notify(context.Background(), alert); err != nil {
		t.Errorf("Notify = %v, want nil", err)
	}
}

func TestSNSSubject(t *testing.T) {
	tests := []struct{ in, want string }{
		{"chimport: newsletter needs attention: Mailchimp rejected the API key (HTTP 401)", "chimport: newsletter needs attention: Mailchimp rejected the API key (HTTP 401)"},
		{"  line\r\nbreaks\tand\x00controls ", "line breaks and controls"},
		{"Zürich — café…", "Z?rich ? caf?."},
		{"", ""},
		{strings.Repeat("abcdefghij", 12), strings.Repeat("abcdefghij", 9) + "abcdef..."},
		{strings.Repeat("x", 95) + "    yyyy", strings.Repeat("x", 95) + "..."},
	}
	for _, tt := range tests {
		got := snsSubject(tt.in)
		if got != tt.want {
			t.Errorf("snsSubject(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if len(got) >= 100 {
			t.Errorf("snsSubject(%q) is %d characters, SNS needs fewer than 100", tt.in, len(got))
		}
	}
}

var at = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
