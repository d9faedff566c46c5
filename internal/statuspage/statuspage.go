package statuspage

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/chimport/chimport/internal/advice"
	"github.com/chimport/chimport/internal/human"
)

// Row is one connection as the page shows it.
type Row struct {
	Name string
	// Lag is how far behind the connection is; nil if it never synced.
	Lag *time.Duration
	// LastSuccess is when the last completed run finished; nil if none did.
	LastSuccess *time.Time
	// Members is how many members the target holds (the size of the
	// connection's roster); nil while the connection keeps no roster,
	// which its next run builds.
	Members *int64
	// LastReconcile is when a run last compared the target with Mailchimp
	// and deleted the members that left; nil if none did.
	LastReconcile *time.Time
	// NextRun is when the scheduler will next start a run; nil if it has
	// none planned.
	NextRun *time.Time
	// LastEvent is when this worker last received a webhook event for the
	// connection; nil if none since it started.
	LastEvent *time.Time
	// LastError is the last failed run's error, "" after a success: the
	// connection is failing until a run completes. With Retrying, it is
	// the error a run under way is retrying instead, which may yet pass.
	LastError string
	Retrying  bool
	// Hint is what LastError says to do (or that the next run retries), as
	// the error ends with it; "" if it says nothing. The page shows it in
	// full beside the error, which it shortens.
	Hint string
	// Lagging is the lag policy's verdict: the row is highlighted.
	Lagging bool
	// Rejected is how many records the target refused wait in the
	// connection's rejected log, and RejectedSample one of them, on one
	// line ("member …: HTTP 422: …"); "" when there is none.
	Rejected       int64
	RejectedSample string
}

// refreshSeconds is how often the browser reloads the page: about as often
// as anything on it changes in a way a person would act on.
const refreshSeconds = 30

// errorChars is how much of an error the table shows; the title attribute
// holds the rest.
const errorChars = 100

var (
	//go:embed page.html
	pageHTML string
	//go:embed style.css
	styleCSS string

	page = template.Must(template.New("page").Parse(pageHTML))

	// The CSP names the stylesheet by its hash, so the page can have an
	// inline style without allowing inline styles in general.
	contentSecurityPolicy = func() string {
		sum := sha256.Sum256([]byte(styleCSS))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	}()
)

// Handler serves the page: it calls rows on every request and renders them
// as of now(). Failing rows come first, then lagging ones, otherwise rows
// keep the order rows returned. It answers GET and HEAD; mount it on an exact path
// (mux.Handle("GET /{$}", ...)), since it renders the same page for any.
func Handler(rows func(ctx context.Context) ([]Row, error), now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		got, err := rows(r.Context())
		if err != nil {
			// The store is the likely cause; a 503 tells a load balancer or
			// an uptime check the same thing the text tells a person.
			http.Error(w, "chimport status: reading the connections' state failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var buf bytes.Buffer
		if err := page.Execute(&buf, newPageData(got, now())); err != nil {
			http.Error(w, "chimport status: rendering the page failed: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		_, _ = buf.WriteTo(w)
	})
}

type pageData struct {
	CSS     template.CSS
	Refresh int
	Summary string
	// Attention is what needs a person, for the title and the summary's
	// highlight: "1 failing, 2 lagging", "" when nothing does.
	Attention                  string
	Failing, Lagging, Rejected int
	Now                        when
	Rows                       []rowView
}

type rowView struct {
	Name    string
	Class   string // "failing", "lagging", "never" or "ok": the row's highlight
	Badges  []badge
	Lag     string // "" if never synced
	Lagging bool   // the lag is past the threshold: the lag cell says so too
	Members string // "" if the connection keeps no roster yet
	// Rejected is "3 rejected", "" when the target refused nothing;
	// RejectedSample, for its title, one of the records and why.
	Rejected, RejectedSample string
	LastSuccess, NextRun     when
	Reconciled               when
	// LastEvent is the last webhook event's relative time ("2m ago"),
	// "" without one.
	LastEvent, LastEventFull string
	// Error is the whole error, for the title; ErrorShort is its start
	// without the hint, which Hint shows whole.
	Error, ErrorShort, Hint string
}

// badge is one status marker: a failing row that also lags has two.
type badge struct {
	Class  string // badge colour
	Icon   string // beside Status, hidden from screen readers, which read Status
	Status string
}

var (
	failingBadge  = badge{"failing", "✕", "Failing"}
	laggingBadge  = badge{"lagging", "▲", "Lagging"}
	retryingBadge = badge{"retrying", "↻", "Retrying"}
	rejectedBadge = badge{"rejected", "!", "Records rejected"}
	neverBadge    = badge{"never", "○", "Not synced yet"}
	okBadge       = badge{"ok", "✓", "OK"}
)

// when is a time as a cell shows it: absolute, and relative to now beneath.
// ISO is "" when there is no time, and Text then says why.
type when struct{ ISO, Full, Text, Relative string }

func newPageData(rows []Row, now time.Time) pageData {
	rows = slices.Clone(rows)
	// What needs a person comes first: failing (a failing row that also
	// lags first of those), then lagging, then rows whose target refused
	// records (the rest of those connections keeps syncing).
	urgency := func(r Row) int {
		u := 0
		if r.LastError != "" && !r.Retrying {
			u += 4
		}
		if r.Lagging {
			u += 2
		}
		if r.Rejected > 0 {
			u++
		}
		return u
	}
	slices.SortStableFunc(rows, func(a, b Row) int { return urgency(b) - urgency(a) })
	d := pageData{
		CSS:     template.CSS(styleCSS),
		Refresh: refreshSeconds,
		Now:     when{ISO: now.UTC().Format(time.RFC3339), Text: now.UTC().Format("15:04:05 UTC")},
	}
	for _, r := range rows {
		v := rowView{Name: r.Name, Error: human.Printable(r.LastError), Hint: advice.Capitalize(r.Hint), Lagging: r.Lagging}
		shown := v.Error
		if r.Hint != "" {
			shown = strings.TrimSuffix(shown, " ("+r.Hint+")")
		}
		v.ErrorShort = truncate(shown, errorChars)
		switch {
		case r.LastError != "" && r.Retrying:
			v.Badges = append(v.Badges, retryingBadge)
		case r.LastError != "":
			v.Badges = append(v.Badges, failingBadge)
			d.Failing++
		}
		if r.Lagging {
			v.Badges = append(v.Badges, laggingBadge)
			d.Lagging++
		}
		if r.Rejected > 0 {
			v.Badges = append(v.Badges, rejectedBadge)
			v.Rejected, v.RejectedSample = count(r.Rejected)+" rejected", r.RejectedSample
			d.Rejected++
		}
		switch {
		case len(v.Badges) > 0:
			v.Class = v.Badges[0].Class
		case r.Lag == nil:
			v.Class, v.Badges = "never", []badge{neverBadge}
		default:
			v.Class, v.Badges = "ok", []badge{okBadge}
		}
		if r.Lag != nil {
			v.Lag = human.Duration(*r.Lag)
		}
		if r.Members != nil {
			v.Members = count(*r.Members)
		}
		v.LastSuccess = past(r.LastSuccess, now)
		v.Reconciled = past(r.LastReconcile, now)
		if r.LastEvent != nil {
			e := past(r.LastEvent, now)
			v.LastEvent, v.LastEventFull = e.Relative, e.Full
		}
		v.NextRun = future(r.NextRun, now)
		d.Rows = append(d.Rows, v)
	}
	d.Summary = fmt.Sprintf("%d %s, %d failing, %d lagging", len(rows), plural(len(rows), "connection", "connections"), d.Failing, d.Lagging)
	rejected := fmt.Sprintf("%d with rejected records", d.Rejected)
	if d.Rejected > 0 {
		d.Summary += ", " + rejected
	}
	var attention []string
	if d.Failing > 0 {
		attention = append(attention, fmt.Sprintf("%d failing", d.Failing))
	}
	if d.Lagging > 0 {
		attention = append(attention, fmt.Sprintf("%d lagging", d.Lagging))
	}
	if d.Rejected > 0 {
		attention = append(attention, rejected)
	}
	d.Attention = strings.Join(attention, ", ")
	return d
}

func past(t *time.Time, now time.Time) when {
	if t == nil || t.IsZero() {
		return when{Text: "never"}
	}
	w := absolute(*t, now)
	w.Relative = human.Duration(now.Sub(*t)) + " ago"
	if t.After(now) { // a clock ahead of ours: say so rather than "0s ago"
		w.Relative = "just now"
	}
	return w
}

func future(t *time.Time, now time.Time) when {
	if t == nil || t.IsZero() {
		return when{Text: "not scheduled"}
	}
	w := absolute(*t, now)
	w.Relative = "in " + human.Duration(t.Sub(now))
	if !t.After(now) {
		w.Relative = "due now"
	}
	return w
}

// absolute leaves out the date when it is today's, which most are: the
// table stays narrow enough for the error column.
func absolute(t, now time.Time) when {
	t = t.UTC()
	layout := "2006-01-02 15:04 UTC"
	if y, m, d := t.Date(); now.UTC().Year() == y && now.UTC().Month() == m && now.UTC().Day() == d {
		layout = "15:04 UTC"
	}
	return when{ISO: t.Format(time.RFC3339), Full: t.Format("2006-01-02 15:04:05 UTC"), Text: t.Format(layout)}
}

// count writes n with a comma between thousands: a member count is read
// at a glance.
func count(n int64) string {
	digits := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, digits = "-", digits[1:]
	}
	var b strings.Builder
	for i, d := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return sign + b.String()
}

// truncate cuts s to at most n characters, marking the cut. It cuts after
// a word when one ends near the limit, so the cell does not end mid-word.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	for i := len(r) - 1; i >= len(r)-wordSlack && i > 0; i-- {
		if unicode.IsSpace(r[i]) {
			r = r[:i]
			break
		}
	}
	return strings.TrimRightFunc(string(r), unicode.IsSpace) + "…"
}

// wordSlack is how far back truncate looks for the end of a word.
const wordSlack = 20

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
