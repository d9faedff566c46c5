package statuspage

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// longError is a target's answer quoted at length, as a run's error is.
var longError = `target "shop-eu": POST https://api.example.com/v2/contacts/batch: 422 Unprocessable Entity: {"errors":[{"field":"email","message":"must be a valid address","index":17},{"field":"country","message":"unknown country code 'XX'","index":42}]}`

// crmError is what a connection whose target was never reachable fails
// with, run after run.
const crmError = `target "crm": POST https://crm.example.com/api/contacts: no response: dial tcp 10.0.4.17:443: connect: connection refused (after 3 attempts); the target is unavailable; the next run will retry`

// sampleRows are the kinds of row the page must tell apart, given in an
// order the page changes: the failing and lagging ones come last.
func sampleRows() []Row {
	return []Row{
		{Name: "blog", Lag: ptr(2 * time.Minute), LastSuccess: ptr(now.Add(-3 * time.Minute)), NextRun: ptr(now.Add(57 * time.Minute)),
			Members: ptr(int64(912)), LastReconcile: ptr(now.Add(-time.Hour))},
		{Name: "shop-eu", Lag: ptr(42 * time.Minute), LastSuccess: ptr(now.Add(-44 * time.Minute)), NextRun: ptr(now.Add(48 * time.Minute)), LastError: longError,
			Members: ptr(int64(48213)), LastReconcile: ptr(now.Add(-3 * time.Hour))},
		{Name: "loyalty", NextRun: ptr(now.Add(2 * time.Minute))},
		{Name: "newsletter", Lag: ptr(3*time.Hour + 12*time.Minute), LastSuccess: ptr(now.Add(-3*time.Hour - 15*time.Minute)), NextRun: ptr(now.Add(4 * time.Minute)),
			LastError: "mailchimp: GET /lists/a1b2c3/members: 503 Service Unavailable (gave up after 6 attempts)", Lagging: true,
			Hint: "The next run retries; a lag alert is sent if the lag passes 3h.", Members: ptr(int64(1_250_000))},
		{Name: "events", Lag: ptr(5*time.Hour + 2*time.Minute), LastSuccess: ptr(now.Add(-5*time.Hour - 4*time.Minute)), Lagging: true,
			Members: ptr(int64(3_400)), LastReconcile: ptr(now.Add(-6 * time.Hour))},
		// Never completed a run, and every attempt failed.
		{Name: "crm", NextRun: ptr(now.Add(time.Minute)), LastError: crmError,
			Hint: "The next run retries; a lag alert is sent if the lag passes 3h."},
		// Fresh, but the target refused 3 records, which wait in the log.
		{Name: "offers", Lag: ptr(3 * time.Minute), LastSuccess: ptr(now.Add(-4 * time.Minute)), NextRun: ptr(now.Add(50 * time.Minute)),
			Members: ptr(int64(7_020)), LastReconcile: ptr(now.Add(-2 * time.Hour)),
			Rejected: 3, RejectedSample: `member 0cc175b9c0f1b6a831c399e269772661: HTTP 422: {"error":"email is invalid"}`},
	}
}

func get(t *testing.T, h http.Handler, method string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
	resp := rec.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func handler(rows ...Row) http.Handler {
	return Handler(func(context.Context) ([]Row, error) { return rows, nil }, func() time.Time { return now })
}

func TestPage(t *testing.T) {
	resp, body := get(t, handler(sampleRows()...), http.MethodGet)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="30">`,
		`<title>(3 failing, 2 lagging, 1 with rejected records) chimport status</title>`,
		`<strong class="alert">7 connections, 3 failing, 2 lagging, 1 with rejected records</strong>`,
		// The lagging row: a class, and a marker in words, not colour alone.
		`<tr class="lagging" data-connection="events">`,
		`<td class="status"><span class="badge lagging"><span aria-hidden="true">▲</span> Lagging</span></td>`,
		`<td class="num lag over">5h2m</td>`,
		// Failing and lagging: both markers, the lag marked too.
		`<tr class="failing" data-connection="newsletter">`,
		`<td class="status"><span class="badge failing"><span aria-hidden="true">✕</span> Failing</span><span class="badge lagging"><span aria-hidden="true">▲</span> Lagging</span></td>`,
		`<td class="num lag over">3h12m</td>`,
		// Never completed a run and failing: flagged, with what to do shown
		// in the cell, not only the error's start.
		`<tr class="failing" data-connection="crm">`,
		`<td class="status"><span class="badge failing"><span aria-hidden="true">✕</span> Failing</span></td>`,
		`<span class="hint">The next run retries; a lag alert is sent if the lag passes 3h.</span>`,
		`<tr class="ok" data-connection="blog">`,
		`<span class="badge ok"><span aria-hidden="true">✓</span> OK</span>`,
		`<time datetime="2026-03-04T01:51:07Z" title="2026-03-04 01:51:07 UTC">01:51 UTC</time><span class="sub">3h15m ago</span>`,
		`<time datetime="2026-03-04T05:10:07Z" title="2026-03-04 05:10:07 UTC">05:10 UTC</time><span class="sub">in 4m</span>`,
		// Members in the target, and when they were last reconciled.
		`<td class="members"><span class="num">48,213</span><span class="sub">reconciled <time datetime="2026-03-04T02:06:07Z" title="2026-03-04 02:06:07 UTC">3h ago</time></span></td>`,
		`<td class="members"><span class="num">1,250,000</span><span class="sub">never reconciled</span></td>`,
		`<td class="members"><span class="muted" title="the next run counts them">not counted yet</span></td>`,
		// Records the target refused: a marker, the count under the
		// members and one of them in its title.
		`<tr class="rejected" data-connection="offers">`,
		`<td class="status"><span class="badge rejected"><span aria-hidden="true">!</span> Records rejected</span></td>`,
		`<span class="sub rejected" title="member 0cc175b9c0f1b6a831c399e269772661: HTTP 422: {&#34;error&#34;:&#34;email is invalid&#34;}">3 rejected</span></td>`,
		// Never synced.
		`<td class="num lag"><span class="muted">never synced</span></td>`,
		`<span class="badge never"><span aria-hidden="true">○</span> Not synced yet</span>`,
		`<td><span class="muted">never</span></td>`,
		// A long error: cut in the cell, whole in the title.
		`<tr class="failing" data-connection="shop-eu">`,
		`title="target &#34;shop-eu&#34;: POST https://api.example.com/v2/contacts/batch: 422 Unprocessable Entity: {&#34;errors&#34;:[{&#34;field&#34;:&#34;email&#34;,&#34;message&#34;:&#34;must be a valid address&#34;,&#34;index&#34;:17},{&#34;field&#34;:&#34;country&#34;,&#34;message&#34;:&#34;unknown country code &#39;XX&#39;&#34;,&#34;index&#34;:42}]}"`,
		`>target &#34;shop-eu&#34;: POST https://api.example.com/v2/contacts/batch: 422 Unprocessable Entity:…</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	// Failing first (failing and lagging before failing alone), then
	// lagging, then rows with rejected records, the others in the order
	// given.
	order := regexp.MustCompile(`data-connection="([^"]+)"`).FindAllStringSubmatch(body, -1)
	var names []string
	for _, m := range order {
		names = append(names, m[1])
	}
	if got, want := strings.Join(names, ","), "newsletter,shop-eu,crm,events,offers,blog,loyalty"; got != want {
		t.Errorf("row order %s, want %s", got, want)
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, `src=`) {
		t.Error("page loads something or runs script")
	}
}

// A server's error text ends up on the page verbatim; it must stay text.
func TestPageEscapesHostileError(t *testing.T) {
	hostile := `</span><script>alert(1)</script>" onmouseover="alert(2)`
	_, body := get(t, handler(Row{Name: `<b>evil</b>`, Lag: ptr(time.Minute), LastError: hostile}), http.MethodGet)
	for _, bad := range []string{"<script>", `" onmouseover=`, "<b>evil"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{
		`<th scope="row">&lt;b&gt;evil&lt;/b&gt;</th>`,
		`title="&lt;/span&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#34; onmouseover=&#34;alert(2)"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// A target's answer quoted as the rejected sample stays text too.
func TestPageEscapesHostileRejection(t *testing.T) {
	hostile := `member 01: HTTP 422: "><script>alert(1)</script>`
	_, body := get(t, handler(Row{Name: "a", Lag: ptr(time.Minute), Rejected: 1, RejectedSample: hostile}), http.MethodGet)
	if strings.Contains(body, "<script>") || !strings.Contains(body, `title="member 01: HTTP 422: &#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("the rejected sample is not escaped:\n%s", body)
	}
	if !strings.Contains(body, "<strong class=\"alert\">1 connection, 0 failing, 0 lagging, 1 with rejected records</strong>") {
		t.Error("a connection with rejected records does not count in the summary")
	}
}

func TestPageHeaders(t *testing.T) {
	resp, body := get(t, handler(sampleRows()...), http.MethodHead)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD: HTTP %d", resp.StatusCode)
	}
	_ = body
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, handler(), http.MethodPost)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: HTTP %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestPageEmptyAndSingular(t *testing.T) {
	_, body := get(t, handler(), http.MethodGet)
	if !strings.Contains(body, "0 connections, 0 failing, 0 lagging") || !strings.Contains(body, "No connections are configured.") {
		t.Errorf("empty page:\n%s", body)
	}
	_, body = get(t, handler(Row{Name: "a", Lag: ptr(time.Second), LastSuccess: ptr(now)}), http.MethodGet)
	if !strings.Contains(body, "<strong>1 connection, 0 failing, 0 lagging</strong>") || !strings.Contains(body, `<title>chimport status</title>`) {
		t.Errorf("one connection: summary or title wrong")
	}
}

// A failing connection counts in the title and summary even when it does
// not lag yet, and its hint is cut from the error text it came from, so
// the cell says it once, in full.
func TestPageFailingWithoutLag(t *testing.T) {
	hint := "Mailchimp rejected the API key. Check mailchimp.api_key for this connection."
	err := `mailchimp connection "a": GET /lists/l1/members: 401 API Key Invalid (` + hint + `)`
	_, body := get(t, handler(Row{Name: "a", LastError: err, Hint: hint}), http.MethodGet)
	for _, want := range []string{
		`<title>(1 failing) chimport status</title>`,
		`<strong class="alert">1 connection, 1 failing, 0 lagging</strong>`,
		`>mailchimp connection &#34;a&#34;: GET /lists/l1/members: 401 API Key Invalid</span><span class="hint">` + hint + `</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

func TestPageStoreError(t *testing.T) {
	h := Handler(func(context.Context) ([]Row, error) { return nil, errors.New("database is locked") }, time.Now)
	resp, body := get(t, h, http.MethodGet)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "database is locked") {
		t.Errorf("HTTP %d %q, want 503 naming the error", resp.StatusCode, body)
	}
}

func TestTimesAndTruncation(t *testing.T) {
	if got := past(ptr(now.Add(-30*time.Hour)), now); got.Text != "2026-03-02 23:06 UTC" || got.Relative != "1d6h ago" {
		t.Errorf("yesterday's time = %+v, want the date shown", got)
	}
	if got := future(ptr(now.Add(-time.Second)), now); got.Relative != "due now" {
		t.Errorf("overdue run = %+v, want due now", got)
	}
	if got := future(nil, now); got.ISO != "" || got.Text != "not scheduled" {
		t.Errorf("no next run = %+v", got)
	}
	for _, tt := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {48213, "48,213"}, {1234567, "1,234,567"}, {-12345, "-12,345"}} {
		if got := count(tt.in); got != tt.want {
			t.Errorf("count(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("word ", 30), strings.TrimSpace(strings.Repeat("word ", 19)) + "…"},
		{strings.Repeat("x", 150), strings.Repeat("x", 99) + "…"},
		{strings.Repeat("é", 150), strings.Repeat("é", 99) + "…"},
	} {
		if got := truncate(tt.in, errorChars); got != tt.want {
			t.Errorf("truncate(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A target's answer in an error may hold control characters and bidi
// overrides: they are shown as escapes, not obeyed.
func TestPageShowsControlCharactersInAnErrorAsEscapes(t *testing.T) {
	_, body := get(t, handler(Row{Name: "a", Lag: ptr(time.Minute), LastError: "HTTP 422: right\u202eto left\x1b[31m red"}), http.MethodGet)
	if strings.Contains(body, "\u202e") || strings.Contains(body, "\x1b") || !strings.Contains(body, `right\u202eto left\x1b[31m red`) {
		t.Errorf("the error's control characters are not escaped:\n%s", body)
	}
}

// The error a run under way is retrying is shown, but the connection is
// not failing: the run may yet pass.
func TestPageRetryingIsNotFailing(t *testing.T) {
	_, body := get(t, handler(Row{Name: "a", Lag: ptr(time.Minute), LastError: "still retrying: HTTP 503", Retrying: true}), http.MethodGet)
	if !strings.Contains(body, "Retrying") || strings.Contains(body, "badge failing") ||
		!strings.Contains(body, "0 failing") || !strings.Contains(body, "still retrying: HTTP 503") {
		t.Errorf("a retrying row is shown as failing, or without its error:\n%s", body)
	}
}

// A connection's last webhook event shows under its last success.
func TestPageShowsTheLastWebhookEvent(t *testing.T) {
	ago := now.Add(-2 * time.Minute)
	_, body := get(t, handler(Row{Name: "a", Lag: ptr(time.Minute), LastEvent: &ago}), http.MethodGet)
	if !strings.Contains(body, "webhook event 2m") {
		t.Errorf("the page does not show the last webhook event:\n%s", body)
	}
}
