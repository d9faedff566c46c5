package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/retry"
)

// webhookToken is the secret in the webhook URL, as Slack puts it.
const webhookToken = "xoxbSecretT0kenAbc123"

// hook is a webhook receiver that answers each POST with the next status.
type hook struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	headers  []http.Header
	srv      *httptest.Server
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{statuses: statuses}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.headers = append(h.headers, r.Header.Clone())
		status := http.StatusOK
		if len(h.statuses) > 0 {
			status, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
		if status >= 400 {
			// Express and friends quote the path they could not serve.
			io.WriteString(w, "Cannot POST "+r.URL.RequestURI())
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) url() string {
	return h.srv.URL + "/services/T0001/B0002/" + webhookToken + "?token=" + webhookToken
}

func (h *hook) requests() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

// fakeWebhook is a Webhook whose retries wait on a fake clock, without
// jitter.
func fakeWebhook(url string) (*Webhook, *clock.Fake) {
	w := NewWebhook(url, nil)
	fake := clock.NewFake(at)
	w.Retry.Clock = fake
	w.Retry.Rand = func() float64 { return 0 }
	return w, fake
}

func lagAlert() alert.Alert {
	return alert.Alert{
		Kind: alert.KindLag, Connection: "shop",
		Subject:   "chimport: shop is 3h12m behind (threshold 3h)",
		Problem:   "Mailchimp changes since 2026-03-04 01:54 UTC have not reached the target.",
		Action:    "Runs keep failing with the error below.",
		Error:     "mailchimp: 503 <html><body>Bad & gateway</body></html>\nsecond view: timeout",
		ErrorAt:   at.Add(-20 * time.Minute),
		Lag:       3*time.Hour + 12*time.Minute,
		Threshold: 3 * time.Hour,
		At:        at.In(time.FixedZone("CET", 3600)),
	}
}

func TestWebhookBody(t *testing.T) {
	h := newHook(t)
	w, _ := fakeWebhook(h.url())
	if err := w.Notify(context.Background(), lagAlert()); err != nil {
		t.Fatal(err)
	}
	if err := w.Notify(context.Background(), alert.Alert{Kind: alert.KindPermanentError, Connection: "shop", Subject: "chimport: shop needs attention: Mailchimp rejected the API key (HTTP 401)",
		Problem: "Mailchimp rejected the API key.", Action: "Check mailchimp.api_key.", Error: "401 API Key Invalid", At: at}); err != nil {
		t.Fatal(err)
	}
	// Alerts from before the policy quoted lag on permanent errors still
	// have one shape: what is not known is null.
	if err := w.Notify(context.Background(), alert.Alert{Kind: alert.KindPermanentError, Connection: "shop", Subject: "s", At: at}); err != nil {
		t.Fatal(err)
	}
	if got := h.headers[0].Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var got []map[string]any
	for _, b := range h.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		got = append(got, m)
	}
	want := []map[string]any{{
		"text": "*chimport: shop is 3h12m behind (threshold 3h)* Mailchimp changes since 2026-03-04 01:54 UTC have not reached the target. " +
			"Last error (2026-03-04 04:46 UTC): mailchimp: 503 &lt;html&gt;&lt;body&gt;Bad &amp; gateway&lt;/body&gt;&lt;/html&gt; second view: timeout " +
			"Runs keep failing with the error below.",
		"connection":        "shop",
		"kind":              "lag",
		"subject":           "chimport: shop is 3h12m behind (threshold 3h)",
		"lag_seconds":       float64(3*3600 + 12*60),
		"threshold_seconds": float64(3 * 3600),
		"last_error":        "mailchimp: 503 <html><body>Bad & gateway</body></html>\nsecond view: timeout",
		"last_error_at":     "2026-03-04T04:46:07Z",
		"action":            "Runs keep failing with the error below.",
		"rejected":          nil,
		"rejected_sample":   nil,
		"at":                "2026-03-04T05:06:07Z",
	}, {
		"text":              "*chimport: shop needs attention: Mailchimp rejected the API key (HTTP 401)* Mailchimp rejected the API key. Last error: 401 API Key Invalid Check mailchimp.api_key.",
		"connection":        "shop",
		"kind":              "permanent_error",
		"subject":           "chimport: shop needs attention: Mailchimp rejected the API key (HTTP 401)",
		"lag_seconds":       nil,
		"threshold_seconds": nil,
		"last_error":        "401 API Key Invalid",
		"last_error_at":     nil,
		"action":            "Check mailchimp.api_key.",
		"rejected":          nil,
		"rejected_sample":   nil,
		"at":                "2026-03-04T05:06:07Z",
	}, {
		"text":              "*s*",
		"connection":        "shop",
		"kind":              "permanent_error",
		"subject":           "s",
		"lag_seconds":       nil,
		"threshold_seconds": nil,
		"last_error":        nil,
		"last_error_at":     nil,
		"action":            nil,
		"rejected":          nil,
		"rejected_sample":   nil,
		"at":                "2026-03-04T05:06:07Z",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

func TestWebhookRecoveredBody(t *testing.T) {
	b := newWebhookBody(alert.Alert{Kind: alert.KindRecovered, Resolves: alert.KindLag, Connection: "shop", Subject: "chimport: shop is fresh again (lag 0s)", Threshold: time.Hour, At: at})
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	// A recovery right at the watermark still says its lag: 0, not null.
	for _, field := range []string{`"kind":"recovered"`, `"resolves":"lag"`, `"lag_seconds":0`, `"threshold_seconds":3600`, `"last_error":null`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("body %s lacks %s", raw, field)
		}
	}
}

func TestWebhookRetries(t *testing.T) {
	h := newHook(t, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusOK)
	w, fake := fakeWebhook(h.url())
	if err := w.Notify(context.Background(), lagAlert()); err != nil {
		t.Fatalf("Notify = %v, want success on the third attempt", err)
	}
	if n := h.requests(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	// Backoff(1) without jitter is half the base delay; the 429 named 7 s.
	if diff := cmp.Diff([]time.Duration{500 * time.Millisecond, 7 * time.Second}, fake.Slept()); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if string(h.bodies[0]) != string(h.bodies[2]) {
		t.Errorf("a retry sent a different body:\n%s\n%s", h.bodies[0], h.bodies[2])
	}
}

func TestWebhookGivesUp(t *testing.T) {
	h := newHook(t, 502, 502, 502, 502, 502, 502)
	w, _ := fakeWebhook(h.url())
	err := w.Notify(context.Background(), lagAlert())
	var ex *retry.ExhaustedError
	var we *WebhookError
	if !errors.As(err, &ex) || ex.Attempts != 4 || !errors.As(err, &we) || we.Status != 502 {
		t.Fatalf("Notify = %v, want 4 attempts ending in HTTP 502", err)
	}
	assertNoSecret(t, err)
}

func TestWebhookClientErrorNamesStatusNotToken(t *testing.T) {
	h := newHook(t, http.StatusNotFound)
	w, fake := fakeWebhook(h.url())
	err := w.Notify(context.Background(), lagAlert())
	var we *WebhookError
	if !errors.As(err, &we) || we.Status != http.StatusNotFound || we.Retryable() {
		t.Fatalf("Notify = %v, want a non-retryable 404", err)
	}
	if n := h.requests(); n != 1 || len(fake.Slept()) != 0 {
		t.Errorf("%d requests, %d waits; a 404 is not retried", n, len(fake.Slept()))
	}
	if !strings.Contains(err.Error(), "HTTP 404 Not Found") || !strings.Contains(err.Error(), h.srv.URL+"/[redacted]") {
		t.Errorf("error %q should name the status and the host", err)
	}
	if !strings.Contains(err.Error(), "Cannot POST [redacted]") {
		t.Errorf("error %q should quote the response with the path blanked", err)
	}
	assertNoSecret(t, err)
}

func TestWebhookTransportErrorHidesURL(t *testing.T) {
	h := newHook(t)
	url := h.url()
	h.srv.Close()
	w, fake := fakeWebhook(url)
	err := w.Notify(context.Background(), lagAlert())
	var we *WebhookError
	if !errors.As(err, &we) || we.Status != 0 || len(fake.Slept()) != 3 {
		t.Fatalf("Notify = %v after %d waits, want a transport error retried 3 times", err, len(fake.Slept()))
	}
	assertNoSecret(t, err)
}

func TestWebhookInvalidURL(t *testing.T) {
	for _, raw := range []string{"hooks.slack.com/services/" + webhookToken, "ftp://x/" + webhookToken, "http://[::1/" + webhookToken} {
		err := NewWebhook(raw, nil).Notify(context.Background(), lagAlert())
		if err == nil || ValidateWebhookURL(raw) == nil {
			t.Errorf("%q: Notify = %v, want an error", raw, err)
			continue
		}
		assertNoSecret(t, err)
	}
	if err := ValidateWebhookURL("https://hooks.slack.com/services/T/B/" + webhookToken); err != nil {
		t.Errorf("ValidateWebhookURL = %v", err)
	}
}

func TestWebhookCancelled(t *testing.T) {
	h := newHook(t, 503, 503, 503, 503)
	w, _ := fakeWebhook(h.url())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Notify(ctx, lagAlert()); !errors.Is(err, context.Canceled) {
		t.Errorf("Notify = %v, want context.Canceled", err)
	}
	if n := h.requests(); n != 0 {
		t.Errorf("%d requests after cancellation", n)
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	if s := err.Error(); strings.Contains(s, webhookToken) || strings.Contains(s, "T0001") || strings.Contains(s, "/services") {
		t.Errorf("error leaks the webhook URL: %s", s)
	}
}
