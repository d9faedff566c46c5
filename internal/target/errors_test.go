package target

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseRetryAfter(t *testing.T) {
	date := func(d time.Duration) string { return start.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"absent", nil, 0},
		{"seconds", map[string]string{"Retry-After": " 7 "}, 7 * time.Second},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"seconds capped", map[string]string{"Retry-After": "86400"}, MaxRetryAfter},
		{"seconds beyond int64 capped", map[string]string{"Retry-After": "99999999999999999999"}, MaxRetryAfter},
		{"date from our clock", map[string]string{"Retry-After": date(30 * time.Second)}, 30 * time.Second},
		{"date from the response's Date", map[string]string{"Retry-After": date(30 * time.Second), "Date": date(20 * time.Second)}, 10 * time.Second},
		{"date in the past", map[string]string{"Retry-After": date(-time.Minute)}, 0},
		{"date capped", map[string]string{"Retry-After": date(24 * time.Hour)}, MaxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := parseRetryAfter(h, start); got != tt.want {
				t.Errorf("parseRetryAfter(%v) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

func TestExcerpt(t *testing.T) {
	redact := strings.NewReplacer("s3cr3t-token", "[redacted]").Replace
	tests := []struct {
		name, raw, want string
	}{
		{"trimmed", "\n  {\"error\": \"bad\"}\r\n", `{"error": "bad"}`},
		{"cut at 200 bytes", strings.Repeat("a", 250), strings.Repeat("a", 200)},
		{"cut inside a rune drops it", strings.Repeat("a", 199) + "é and more", strings.Repeat("a", 199)},
		{"invalid UTF-8 dropped", "bad \xff\xfe bytes", "bad  bytes"},
		{"secret redacted, even across the cut", strings.Repeat("a", 190) + "s3cr3t-token", strings.Repeat("a", 190) + "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := excerpt([]byte(tt.raw), redact); got != tt.want {
				t.Errorf("excerpt(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestErrorKinds(t *testing.T) {
	type kind struct {
		Retryable, NeedsPerson bool
		Hint                   string // substring
	}
	unavailable := kind{true, false, "the target is unavailable; the next run will retry"}
	tests := []struct {
		err  *Error
		want kind
	}{
		{&Error{Status: 400}, kind{false, true, "check the mapping of this connection against what the target's API accepts"}},
		{&Error{Status: 422}, kind{false, true, "the target rejected the records"}},
		{&Error{Status: 401}, kind{false, true, "the target rejected the credentials: check target.headers"}},
		{&Error{Status: 403}, kind{false, true, "check target.headers"}},
		{&Error{Status: 404}, kind{false, true, "check target.url"}},
		{&Error{Status: 405}, kind{false, true, "check target.url"}},
		{&Error{Status: 409}, kind{false, true, "the target refused the request"}},
		{&Error{Status: 413}, kind{false, true, "lower target.batch_size"}},
		{&Error{Status: 308}, kind{false, true, "redirect"}},
		{&Error{Status: 408}, unavailable},
		{&Error{Status: 429}, unavailable},
		{&Error{Status: 500}, unavailable},
		{&Error{Status: 502}, unavailable},
		{&Error{Err: errors.New("connection reset by peer")}, unavailable},
		{&Error{Method: http.MethodDelete, Status: 409}, kind{false, true, "the target refused to delete a record: check target.delete_url"}},
		{&Error{Method: http.MethodDelete, Status: 400}, kind{false, true, "check target.delete_url"}},
		{&Error{Method: http.MethodDelete, Status: 401}, kind{false, true, "check target.headers"}},
		{&Error{Method: http.MethodDelete, Status: 405}, kind{false, true, "set target.deletes to tombstone"}},
		{&Error{Method: http.MethodDelete, Status: 307}, kind{false, true, "set target.delete_url to the final address"}},
		{&Error{Method: http.MethodDelete, Status: 503}, unavailable},
		{&Error{Method: http.MethodDelete, Status: 429}, unavailable},
	}
	for _, tt := range tests {
		got := kind{tt.err.Retryable(), tt.err.NeedsPerson(), tt.err.hint()}
		if !strings.Contains(got.Hint, tt.want.Hint) {
			t.Errorf("status %d: hint %q, want it to contain %q", tt.err.Status, got.Hint, tt.want.Hint)
		}
		got.Hint = tt.want.Hint
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("status %d (-want +got):\n%s", tt.err.Status, diff)
		}
	}
}

func TestRefusedAndTooLarge(t *testing.T) {
	tests := []struct {
		status            int
		refused, tooLarge bool
	}{
		{400, true, false},
		{422, true, false},
		{413, false, true},
		{401, false, false},
		{404, false, false},
		{503, false, false},
		{0, false, false},
	}
	for _, tt := range tests {
		e := &Error{Status: tt.status}
		if got := e.Refused(); got != tt.refused {
			t.Errorf("status %d: Refused() = %v, want %v", tt.status, got, tt.refused)
		}
		if got := e.TooLarge(); got != tt.tooLarge {
			t.Errorf("status %d: TooLarge() = %v, want %v", tt.status, got, tt.tooLarge)
		}
	}
}
