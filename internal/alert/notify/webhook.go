package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/retry"
)

// Webhook POSTs alerts as JSON to a URL: Slack and Mattermost incoming
// webhooks, or anything else that takes JSON. Such URLs carry their secret
// in the path (https://hooks.slack.com/services/T…/B…/<token>), so errors
// show only the scheme and host.
type Webhook struct {
	url    *url.URL
	urlErr error
	shown  string   // the URL as errors show it
	hidden []string // parts of the URL a response body must not echo back
	client *http.Client
	// Retry governs the retries of 429, 5xx and transport errors. Tests set
	// Retry.Clock to a fake clock.
	Retry retry.Policy
}

// webhookTimeout bounds each attempt of the default client.
const webhookTimeout = 10 * time.Second

// NewWebhook returns a notifier that posts to rawURL through client. A nil
// client means one with a 10 s timeout that does not follow redirects: a
// webhook that moved should be reconfigured, not chased with a POST the
// redirect turns into a GET. An invalid rawURL is reported by every Notify;
// ValidateWebhookURL reports it up front.
func NewWebhook(rawURL string, client *http.Client) *Webhook {
	if client == nil {
		client = &http.Client{
			Timeout:       webhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	w := &Webhook{client: client, Retry: retry.Policy{MaxAttempts: 4, BaseDelay: time.Second, MaxDelay: 10 * time.Second}}
	w.url, w.urlErr = parseWebhookURL(rawURL)
	if w.urlErr != nil {
		return w
	}
	w.shown = redactURL(w.url)
	w.hidden = secretParts(w.url)
	return w
}

// ValidateWebhookURL checks that rawURL is an absolute http or https URL.
// Its error never quotes the URL, which holds a token.
func ValidateWebhookURL(rawURL string) error {
	_, err := parseWebhookURL(rawURL)
	return err
}

func parseWebhookURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("alert: the webhook URL is not an absolute http or https URL")
	}
	return u, nil
}

// redactURL keeps the scheme and host: enough to tell which service failed.
func redactURL(u *url.URL) string {
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/[redacted]"
	}
	return s
}

// secretParts lists what a server might echo of the URL ("Cannot POST
// /services/T0/B0/token"), longest first so a part is never left half
// replaced.
func secretParts(u *url.URL) []string {
	parts := []string{u.String(), u.EscapedPath(), u.Path, u.RawQuery}
	if p, ok := u.User.Password(); ok {
		parts = append(parts, p)
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 6 { // short segments ("hooks", "v1") hide nothing and would mangle the text
			parts = append(parts, seg)
		}
	}
	sort.Slice(parts, func(i, j int) bool { return len(parts[i]) > len(parts[j]) })
	var out []string
	for _, p := range parts {
		if len(p) > 1 {
			out = append(out, p)
		}
	}
	return out
}

// webhookBody is the JSON posted. Slack and Mattermost show text and ignore
// the rest; other receivers route on the structured fields. Fields that do
// not apply are null rather than absent, so every message has one shape.
type webhookBody struct {
	Text             string     `json:"text"`
	Connection       string     `json:"connection"`
	Kind             alert.Kind `json:"kind"`
	Resolves         alert.Kind `json:"resolves,omitempty"`
	Subject          string     `json:"subject"`
	LagSeconds       *int64     `json:"lag_seconds"`
	ThresholdSeconds *int64     `json:"threshold_seconds"`
	LastError        *string    `json:"last_error"`
	LastErrorAt      *time.Time `json:"last_error_at"`
	Action           *string    `json:"action"`
	// Rejected is the number of records in the rejected log, for a
	// rejected alert and the recovery that ends one (0); RejectedSample
	// one of those records, for a rejected alert.
	Rejected       *int64         `json:"rejected"`
	RejectedSample *webhookRecord `json:"rejected_sample"`
	At             time.Time      `json:"at"`
}

// webhookRecord is a record the target refused: the member and the
// target's answer (its status and the start of its body, on one line).
type webhookRecord struct {
	MemberID string `json:"member_id"`
	Status   int    `json:"status"`
	Reason   string `json:"reason"`
}

func newWebhookBody(a alert.Alert) webhookBody {
	b := webhookBody{Text: slackText(a), Connection: a.Connection, Kind: a.Kind, Resolves: a.Resolves, Subject: a.Subject, At: a.At.UTC()}
	seconds := func(d time.Duration) *int64 { s := int64(d.Round(time.Second) / time.Second); return &s }
	if a.LagKnown || a.Kind == alert.KindLag || (a.Kind == alert.KindRecovered && a.Resolves == alert.KindLag) || a.Lag > 0 {
		b.LagSeconds = seconds(a.Lag)
	}
	if a.Threshold > 0 {
		b.ThresholdSeconds = seconds(a.Threshold)
	}
	if a.Error != "" {
		b.LastError = &a.Error
	}
	if !a.ErrorAt.IsZero() {
		t := a.ErrorAt.UTC()
		b.LastErrorAt = &t
	}
	if a.Action != "" {
		b.Action = &a.Action
	}
	if a.Kind == alert.KindRejected || a.Resolves == alert.KindRejected {
		n := a.Rejected
		b.Rejected = &n
	}
	if s := a.Sample; s != nil {
		b.RejectedSample = &webhookRecord{MemberID: s.MemberID, Status: s.Status, Reason: s.Reason}
	}
	return b
}

// slackTextError bounds the error quoted in text; last_error has it whole.
const slackTextError = 300

// slackText is a one-paragraph message in Slack's mrkdwn: the subject in
// bold, then the problem, the error and what to do. Line breaks are folded
// (errors.Join puts one error per line) and &, <, > escaped, since Slack
// reads <...> as a link or mention.
func slackText(a alert.Alert) string {
	parts := []string{"*" + oneLine(a.Subject) + "*", oneLine(a.Problem)}
	if a.Error != "" {
		label := "Last error"
		if !a.ErrorAt.IsZero() {
			label += " (" + humanTime(a.ErrorAt) + ")"
		}
		parts = append(parts, label+": "+oneLine(clip(a.Error, slackTextError)))
	}
	if s := a.Sample; s != nil {
		parts = append(parts, fmt.Sprintf("For example member %s: HTTP %d: %s", s.MemberID, s.Status, oneLine(clip(s.Reason, slackTextError))))
	}
	parts = append(parts, oneLine(a.Action))
	var kept []string
	for _, p := range parts {
		if p != "" && p != "**" {
			kept = append(kept, p)
		}
	}
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(strings.Join(kept, " "))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Notify posts a, retrying 429, 5xx and transport errors under w.Retry. Any
// other status is an error naming it.
func (w *Webhook) Notify(ctx context.Context, a alert.Alert) error {
	if w.urlErr != nil {
		return w.urlErr
	}
	body, err := json.Marshal(newWebhookBody(a))
	if err != nil {
		return fmt.Errorf("alert: encoding the webhook body: %w", err)
	}
	return w.Retry.Do(ctx, func(ctx context.Context, _ int) error { return w.post(ctx, body) })
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return w.errorf(false, 0, "building the request: %s", w.scrub(err.Error()))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chimport")
	resp, err := w.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL; keep only what went wrong. The
		// error must not wrap a client timeout's context.DeadlineExceeded,
		// or retry.Do would take it for the caller's deadline.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return w.errorf(true, 0, "%s", w.scrub(err.Error()))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	msg := strings.TrimSpace(fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	if s := oneLine(w.scrub(strings.ToValidUTF8(string(snippet), ""))); s != "" {
		msg += ": " + clip(s, 200)
	}
	retryable := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500
	e := w.errorf(retryable, resp.StatusCode, "%s", msg)
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		e.retryAfter = time.Duration(secs) * time.Second
	}
	return e
}

func (w *Webhook) scrub(s string) string {
	for _, p := range w.hidden {
		s = strings.ReplaceAll(s, p, "[redacted]")
	}
	return s
}

func (w *Webhook) errorf(retryable bool, status int, format string, args ...any) *WebhookError {
	return &WebhookError{URL: w.shown, Status: status, msg: fmt.Sprintf(format, args...), retryable: retryable}
}

// WebhookError is a failed webhook POST. It carries the URL only redacted.
type WebhookError struct {
	URL        string // scheme and host only
	Status     int    // HTTP status; 0 if there was no response
	msg        string
	retryable  bool
	retryAfter time.Duration
}

func (e *WebhookError) Error() string {
	return fmt.Sprintf("alert: webhook %s: %s", e.URL, e.msg)
}

// Retryable tells retry.Do whether to try again: 429, 5xx, no response.
func (e *WebhookError) Retryable() bool { return e.retryable }

// RetryAfter is the wait a 429 or 503 asked for, if any.
func (e *WebhookError) RetryAfter() time.Duration { return e.retryAfter }
