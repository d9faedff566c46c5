package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/discover"
	"github.com/chimport/chimport/internal/human"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/shard"
	"github.com/chimport/chimport/internal/webhook"
)

// The webhook chimport registers: every event about a member (campaign
// events are not), whoever made the change.
var webhooksEvents = mailchimp.WebhookEvents{Subscribe: true, Unsubscribe: true, Profile: true, Cleaned: true, Upemail: true}
var webhooksSources = mailchimp.WebhookSources{User: true, Admin: true, API: true}

// webhooksAction is what `chimport webhooks` does to each connection.
type webhooksAction string

const (
	webhooksInstall webhooksAction = "install"
	webhooksList    webhooksAction = "list"
	webhooksRemove  webhooksAction = "remove"
)

type webhooksOptions struct {
	connections []string
	json        bool
	// publicURL (remove only) removes chimport's webhooks under this base
	// URL instead of webhooks.public_url: those left behind by a change
	// of public_url.
	publicURL string
}

func newWebhooksCmd(e env, global *globalOptions) *cobra.Command {
	parent := &cobra.Command{
		Use:   "webhooks",
		Short: "Install, list or remove the Mailchimp webhooks that send chimport real-time hints",
		Long: `webhooks registers, lists and deletes the list webhooks through which Mailchimp
tells chimport serve --webhook-listen of each change as it happens. Each connection
with webhooks on has one, at webhooks.public_url + /webhooks/mailchimp/<name>/<token>,
the token derived from webhooks.secret. Its URL is the credential, so it is printed
with the token masked, and other people's webhook URLs with only their scheme and host.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown webhooks command %q; want install, list or remove", args[0])
			}
			return usageErrorf("webhooks needs a command: install, list or remove")
		},
		RunE: func(cmd *cobra.Command, args []string) error { return nil },
	}
	sub := func(action webhooksAction, short, long string) *cobra.Command {
		opts := webhooksOptions{}
		cmd := &cobra.Command{
			Use:   string(action),
			Short: short,
			Long:  long,
			Args:  noArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				cfg, err := loadConfig(cmd.Context(), e, global)
				if err != nil {
					return err
				}
				return runWebhooks(cmd.Context(), e, global, cfg, action, opts)
			},
		}
		f := cmd.Flags()
		f.StringArrayVar(&opts.connections, "connection", nil, "only this connection (repeatable)")
		f.BoolVar(&opts.json, "json", false, "print a JSON array")
		if action == webhooksRemove {
			f.StringVar(&opts.publicURL, "public-url", "", "remove chimport's webhooks under this base URL instead of webhooks.public_url (after changing it)")
		}
		return cmd
	}
	parent.AddCommand(
		sub(webhooksInstall, "Register each connection's webhook; keeps one already there",
			`install registers one webhook per connection with webhooks on, at its URL, for the
events subscribe, unsubscribe, profile, cleaned and upemail from the sources user, admin
and api. Mailchimp checks the URL with a GET when it registers it, so chimport serve
--webhook-listen must be running and reachable at webhooks.public_url.

It is idempotent: a webhook already at the URL is kept, never duplicated (extra copies
are deleted). chimport's webhooks for the connection under webhooks.public_url with
another token (an earlier secret) are deleted once the new one is in place. Webhooks at
chimport's route under another base URL (an earlier public_url, or another deployment)
are left alone and named: remove --public-url OLD removes them. A connection with
webhooks: false is skipped.`),
		sub(webhooksList, "List each connection's list webhooks, marking chimport's own",
			`list prints every webhook of each connection's list: its id, whether it is chimport's
(yes: at the connection's URL; old token: chimport's under webhooks.public_url with
another token; other base: chimport's route under another base URL; no), its events,
sources and URL. chimport's URLs are printed with the token masked; other webhooks'
URLs only with their scheme and host, since their path or query may hold a secret.`),
		sub(webhooksRemove, "Delete chimport's webhooks, and only those",
			`remove deletes each connection's webhooks that are chimport's: those under
webhooks.public_url (or --public-url) at the connection's route, whatever their token.
Every other webhook of the list is left alone. It acts on connections with webhooks:
false too, to clear what an earlier install left.`),
	)
	return parent
}

// hookKind says whose a webhook is, as list shows it.
type hookKind string

const (
	hookCurrent   hookKind = "yes"             // at the connection's URL exactly
	hookOldToken  hookKind = "old token"       // chimport's, under public_url, another token
	hookOtherBase hookKind = "other base"      // chimport's route, under another base URL
	hookOtherConn hookKind = "no (connection)" // another configured connection's, under public_url
	hookOther     hookKind = "no"
)

// kindJSON is the kind in JSON output.
var kindJSON = map[hookKind]string{hookCurrent: "current", hookOldToken: "old_token", hookOtherBase: "other_base",
	hookOtherConn: "other_connection", hookOther: "other"}

// hookView is a webhook as chimport prints it: never its token.
type hookView struct {
	ID   string `json:"id"`
	URL  string `json:"url"`  // masked
	Kind string `json:"kind"` // current, old_token, other_base, other_connection or other
	Ours bool   `json:"ours"` // current or old_token: what remove deletes
	// Of names the configured connection whose webhook this is, when it is
	// another's (kind other_connection).
	Of      string   `json:"of,omitempty"`
	Events  []string `json:"events"`
	Sources []string `json:"sources"`
	// Action is what install or remove did: created, kept, deleted,
	// already_gone or left; empty for list.
	Action string `json:"action,omitempty"`

	kind hookKind
}

// hooksReport is one connection's outcome, a JSON array element.
type hooksReport struct {
	Connection string `json:"connection"`
	ListID     string `json:"list_id"`
	WebhooksOn bool   `json:"webhooks_on"`
	// Result: install: installed, kept, skipped or failed; list: ok or
	// failed; remove: removed, none or failed.
	Result   string     `json:"result"`
	Webhooks []hookView `json:"webhooks"`
	Notes    []string   `json:"notes,omitempty"`
	Error    string     `json:"error,omitempty"`
}

// errWebhooksOff is returned when the config has no webhooks block: there
// is no URL to install, list or remove.
var errWebhooksOff = errors.New("webhooks are not configured: set webhooks.secret (at least 16 characters) and webhooks.public_url, " +
	"the base URL at which Mailchimp reaches chimport serve --webhook-listen")

func runWebhooks(ctx context.Context, e env, global *globalOptions, cfg *config.Config, action webhooksAction, opts webhooksOptions) error {
	if !cfg.Webhooks.Enabled() {
		return setupError{errWebhooksOff}
	}
	base := cfg.Webhooks.PublicURL
	if opts.publicURL != "" {
		if msg := checkBaseURL(opts.publicURL); msg != "" {
			return usageErrorf("--public-url %s", msg)
		}
		base = opts.publicURL
	}
	if _, err := cfg.Select(opts.connections); err != nil {
		return usageError{err}
	}
	shared := clientOptions{
		limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey), datacenters: mailchimp.NewDatacenters(),
		logger: global.logger, retryClock: e.clock,
		// A person is waiting: give up after a few quick tries.
		mailchimpRetry: retry.Policy{MaxAttempts: 3},
	}
	// Every audience of a "*" connection has a webhook of its own; all of
	// them are listed, so a webhook of another connection's audience is
	// recognised as such.
	x, err := expandConnections(ctx, cfg, nil, nil, shard.Shard{}, shared, 8, e.clock.Now())
	if err != nil {
		return err
	}
	selected := discover.Selector(opts.connections)
	var conns []config.Connection
	for _, c := range x.conns {
		if selected(c.Name, c.Parent) {
			conns = append(conns, c)
		}
	}
	reports := make([]hooksReport, len(conns))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, conn := range conns {
		g.Go(func() error {
			w := hooksWorker{
				conn: conn, on: conn.WebhooksOn(cfg.Webhooks), base: base, all: x.conns,
				url: webhook.URL(cfg.Webhooks.PublicURL, cfg.Webhooks.Secret.Reveal(), conn.Name),
				log: global.logger,
			}
			reports[i] = w.run(gctx, action, shared)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, o := range x.failed {
		if selected(o.summary.Connection, "") {
			reports = append(reports, hooksReport{Connection: o.summary.Connection, ListID: config.AllLists, Result: "failed", Error: o.err.Error()})
		}
	}
	if opts.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(reports); err != nil {
			return err
		}
	} else if err := printHooks(e.stdout, action, reports); err != nil {
		return err
	}
	for _, r := range reports {
		if r.Result == "failed" {
			return errFailed
		}
	}
	return nil
}

// checkBaseURL is what --public-url must be, as config checks
// webhooks.public_url.
func checkBaseURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "must be an absolute http or https URL without query, fragment or user info"
	}
	return ""
}

// hooksWorker does one action for one connection.
type hooksWorker struct {
	conn config.Connection
	on   bool   // webhooks on for this connection
	base string // the public URL whose chimport webhooks are ours
	url  string // the connection's webhook URL: a credential
	all  []config.Connection
	log  *slog.Logger
}

func (w hooksWorker) run(ctx context.Context, action webhooksAction, copts clientOptions) hooksReport {
	r := hooksReport{Connection: w.conn.Name, ListID: w.conn.Mailchimp.ListID, WebhooksOn: w.on, Webhooks: []hookView{}}
	if action == webhooksInstall && !w.on {
		r.Result = "skipped"
		r.Notes = append(r.Notes, "webhooks: false in the config")
		return r
	}
	if !w.on {
		r.Notes = append(r.Notes, "webhooks: false in the config; the receiver takes no events for it")
	}
	mc, _, err := newClients(w.conn, copts)
	if err == nil {
		switch action {
		case webhooksInstall:
			err = w.install(ctx, mc, &r)
		case webhooksList:
			err = w.list(ctx, mc, &r)
		case webhooksRemove:
			err = w.remove(ctx, mc, &r)
		}
	}
	if err != nil {
		r.Result = "failed"
		r.Error = err.Error()
	}
	return r
}

// kind says whose u is, for this connection, and of which other
// connection it is when it is another's. Under --public-url OLD the
// connection's current URL is under another base, so remove leaves it.
func (w hooksWorker) kind(u string) (hookKind, string) {
	switch ours := webhook.Ours(u, w.base, w.conn.Name); {
	case ours && u == w.url:
		return hookCurrent, ""
	case ours:
		return hookOldToken, ""
	case chimportRoute(u, w.conn.Name):
		return hookOtherBase, ""
	}
	// Connections may share a list: each has its own webhook there.
	for _, c := range w.all {
		if c.Name != w.conn.Name && webhook.Ours(u, w.base, c.Name) {
			return hookOtherConn, c.Name
		}
	}
	return hookOther, ""
}

func (w hooksWorker) view(h mailchimp.Webhook) hookView {
	k, of := w.kind(h.URL)
	return hookView{
		ID: h.ID, URL: displayURL(h.URL, k), Kind: kindJSON[k], Ours: k == hookCurrent || k == hookOldToken, Of: of,
		Events: eventNames(h.Events), Sources: sourceNames(h.Sources), kind: k,
	}
}

func (w hooksWorker) list(ctx context.Context, mc *mailchimp.Client, r *hooksReport) error {
	hooks, err := mc.ListWebhooks(ctx, w.conn.Mailchimp.ListID)
	if err != nil {
		return err
	}
	r.Result = "ok"
	for _, h := range hooks {
		r.Webhooks = append(r.Webhooks, w.view(h))
	}
	return nil
}

// install keeps or creates the webhook at the connection's URL, deletes
// copies of it and chimport's webhooks with another token once it is in
// place, and names, without touching, chimport's routes elsewhere.
func (w hooksWorker) install(ctx context.Context, mc *mailchimp.Client, r *hooksReport) error {
	listID := w.conn.Mailchimp.ListID
	hooks, err := mc.ListWebhooks(ctx, listID)
	if err != nil {
		return err
	}
	var current *hookView
	var toDelete []hookView
	var elsewhere []hookView
	for _, h := range hooks {
		v := w.view(h)
		switch v.kind {
		case hookCurrent:
			if current == nil {
				v.Action = "kept"
				current = &v
				if h.Events != webhooksEvents || h.Sources != webhooksSources {
					r.Notes = append(r.Notes, fmt.Sprintf("webhook %s has other events or sources than chimport registers (events %s; sources %s); "+
						"remove and install again to reset them", h.ID, strings.Join(v.Events, ","), strings.Join(v.Sources, ",")))
				}
				continue
			}
			r.Notes = append(r.Notes, fmt.Sprintf("webhook %s was a second copy at the same URL: deleted", h.ID))
			toDelete = append(toDelete, v)
		case hookOldToken:
			r.Notes = append(r.Notes, fmt.Sprintf("webhook %s was chimport's with another token (an earlier webhooks.secret): deleted once the new one was in place", h.ID))
			toDelete = append(toDelete, v)
		case hookOtherBase:
			v.Action = "left"
			elsewhere = append(elsewhere, v)
			r.Notes = append(r.Notes, fmt.Sprintf("webhook %s is at chimport's route for this connection under another base URL (%s): left alone; "+
				"if it is an earlier public_url of this deployment, chimport webhooks remove --public-url <that URL> removes it", h.ID, v.URL))
		}
	}
	r.Result = "kept"
	if current == nil {
		created, err := mc.CreateWebhook(ctx, listID, mailchimp.WebhookSpec{URL: w.url, Events: webhooksEvents, Sources: webhooksSources})
		if err != nil {
			return err // the old webhooks stay: they may still work
		}
		v := w.view(created)
		v.Action = "created"
		current = &v
		r.Result = "installed"
		w.log.Info("webhook created", "connection", w.conn.Name, "list_id", listID, "webhook_id", created.ID, "url", v.URL)
	}
	r.Webhooks = append(r.Webhooks, *current)
	deleted, err := w.deleteAll(ctx, mc, toDelete)
	r.Webhooks = append(r.Webhooks, deleted...)
	r.Webhooks = append(r.Webhooks, elsewhere...)
	return err
}

// remove deletes chimport's webhooks for the connection under the base
// URL, whatever their token, and leaves every other one alone.
func (w hooksWorker) remove(ctx context.Context, mc *mailchimp.Client, r *hooksReport) error {
	hooks, err := mc.ListWebhooks(ctx, w.conn.Mailchimp.ListID)
	if err != nil {
		return err
	}
	var ours, left []hookView
	for _, h := range hooks {
		v := w.view(h)
		if v.Ours {
			ours = append(ours, v)
			continue
		}
		v.Action = "left"
		left = append(left, v)
		if v.kind == hookOtherBase && h.URL != w.url { // not the current one, under --public-url
			r.Notes = append(r.Notes, fmt.Sprintf("webhook %s is at chimport's route for this connection under another base URL (%s): left alone; "+
				"--public-url <that URL> removes it", h.ID, v.URL))
		}
	}
	deleted, err := w.deleteAll(ctx, mc, ours)
	r.Webhooks = append(deleted, left...)
	r.Result = "none"
	if len(ours) > 0 {
		r.Result = "removed"
	}
	return err
}

// deleteAll deletes hooks, one after the other, and returns them with
// what happened; it stops at the first failure, returning the ones done.
func (w hooksWorker) deleteAll(ctx context.Context, mc *mailchimp.Client, hooks []hookView) ([]hookView, error) {
	var done []hookView
	for _, v := range hooks {
		err := mc.DeleteWebhook(ctx, w.conn.Mailchimp.ListID, v.ID)
		switch {
		case errors.Is(err, mailchimp.ErrWebhookNotFound):
			v.Action = "already_gone" // deleted since it was listed
		case err != nil:
			return done, err
		default:
			v.Action = "deleted"
			w.log.Info("webhook deleted", "connection", w.conn.Name, "list_id", w.conn.Mailchimp.ListID, "webhook_id", v.ID, "url", v.URL)
		}
		done = append(done, v)
	}
	return done, nil
}

// chimportRoute reports whether u is at chimport's route for connection
// under any base URL: .../webhooks/mailchimp/<connection>/<64 hex>.
func chimportRoute(u, connection string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	path := p.EscapedPath()
	i := strings.LastIndex(path, webhook.PathPrefix)
	if i < 0 {
		return false
	}
	name, token, ok := strings.Cut(path[i+len(webhook.PathPrefix):], "/")
	return ok && name == url.PathEscape(connection) && len(token) == 64 &&
		strings.Trim(token, "0123456789abcdef") == ""
}

// displayURL is how a webhook URL is printed. chimport's own show their
// route with the token masked (webhook.Masked); one under another base
// loses any user info, query and fragment first. Anyone else's URL may
// carry its own secret anywhere in its path or query (a Zapier hook id,
// a ?key=), so only its scheme and host are shown.
func displayURL(u string, k hookKind) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(not a URL)"
	}
	switch k {
	case hookCurrent, hookOldToken, hookOtherConn:
		return webhook.Masked(u)
	case hookOtherBase:
		p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
		return webhook.Masked(p.String())
	}
	shown := p.Scheme + "://" + p.Host
	if (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
		shown += "/****"
	}
	return shown
}

func eventNames(ev mailchimp.WebhookEvents) []string {
	return names([]bool{ev.Subscribe, ev.Unsubscribe, ev.Profile, ev.Cleaned, ev.Upemail, ev.Campaign},
		"subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign")
}

func sourceNames(src mailchimp.WebhookSources) []string {
	return names([]bool{src.User, src.Admin, src.API}, "user", "admin", "api")
}

func names(on []bool, all ...string) []string {
	out := []string{}
	for i, n := range all {
		if on[i] {
			out = append(out, n)
		}
	}
	return out
}

// printHooks prints the table of an action, then the notes and errors
// under it, each on one line.
func printHooks(w io.Writer, action webhooksAction, reports []hooksReport) error {
	if len(reports) == 0 {
		_, err := fmt.Fprintln(w, "No connections.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if action == webhooksList {
		fmt.Fprintln(tw, "CONNECTION\tLIST\tWEBHOOK\tOURS\tEVENTS\tSOURCES\tURL")
	} else {
		fmt.Fprintln(tw, "CONNECTION\tLIST\tACTION\tWEBHOOK\tURL")
	}
	counts := map[string]int{}
	leftAlone := map[string]bool{} // list/id of other people's webhooks remove left
	for _, r := range reports {
		counts[r.Result]++
		rows := 0
		for _, v := range r.Webhooks {
			switch {
			case action == webhooksList:
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Connection, r.ListID, human.Printable(v.ID), v.ours(),
					orDash(strings.Join(v.Events, ",")), orDash(strings.Join(v.Sources, ",")), human.Printable(v.URL))
			case v.Action == "left":
				if v.kind == hookOther {
					leftAlone[r.ListID+"/"+v.ID] = true
				}
				continue
			default:
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Connection, r.ListID, strings.ReplaceAll(v.Action, "_", " "),
					human.Printable(v.ID), human.Printable(v.URL))
			}
			rows++
		}
		if rows > 0 {
			continue
		}
		switch what := r.Result; action {
		case webhooksList:
			if what == "ok" {
				what = "none"
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t-\t-\t-\n", r.Connection, r.ListID, what)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\n", r.Connection, r.ListID, what)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var lines []string
	for _, r := range reports {
		for _, n := range r.Notes {
			lines = append(lines, fmt.Sprintf("  %s: %s", r.Connection, oneLine(n, 400)))
		}
		if r.Error != "" {
			lines = append(lines, fmt.Sprintf("FAIL  %s: %s", r.Connection, oneLine(r.Error, 1000)))
		}
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	var summary string
	switch action {
	case webhooksInstall:
		summary = fmt.Sprintf("%d installed, %d kept, %d skipped, %d failed.", counts["installed"], counts["kept"], counts["skipped"], counts["failed"])
	case webhooksRemove:
		summary = fmt.Sprintf("%d with webhooks removed, %d with none, %d failed.", counts["removed"], counts["none"], counts["failed"])
		if n := len(leftAlone); n > 0 {
			summary += fmt.Sprintf(" %d %s not chimport's left alone.", n, plural(n, "webhook", "webhooks"))
		}
	case webhooksList:
		summary = "URLs are masked: chimport's tokens, and other webhooks' paths and queries, show as ****."
		if counts["failed"] > 0 {
			summary = fmt.Sprintf("%d failed. %s", counts["failed"], summary)
		}
	}
	_, err := fmt.Fprintln(w, "\n"+summary)
	return err
}

// ours is the OURS column: whose the webhook is.
func (v hookView) ours() string {
	if v.kind == hookOtherConn {
		return "no (" + v.Of + ")"
	}
	return string(v.kind)
}
