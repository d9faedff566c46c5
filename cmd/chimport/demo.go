package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/alert/notify"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/state/sqlite"
	"github.com/chimport/chimport/internal/webhook"
	"github.com/chimport/chimport/internal/worker"
)

type demoOptions struct {
	members int
}

func newDemoCmd(e env, global *globalOptions) *cobra.Command {
	opts := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a full and an incremental sync against built-in simulators; needs no config or network",
		Long: `demo starts a Mailchimp simulator and a target simulator on free loopback ports,
syncs 25,000 members into a temporary SQLite state file, changes some members in
Mailchimp (edits, sign-ups, unsubscribes, an archival, two members deleted for good and
two address changes), syncs again (only the changes move, and the members who left
leave the target as tombstones), and checks that the target agrees with Mailchimp
member by member and holds no record of a member who is gone. Last, with the webhook
receiver running as under serve --webhook-listen, it registers a webhook with the
simulator, changes one member and shows the change reaching the target through the
webhook, without a run.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.members < 1 {
				return usageErrorf("--members must be at least 1, got %d", opts.members)
			}
			return runDemo(cmd.Context(), e, global, opts)
		},
	}
	cmd.Flags().IntVar(&opts.members, "members", 25000, "members in the simulated audience")
	return cmd
}

func runDemo(ctx context.Context, e env, global *globalOptions, opts demoOptions) error {
	// The demo's clock is the wall clock, moved forward between runs so
	// that the changes fall inside the next window without waiting.
	clk := &clock.Offset{}
	const listID = "d3m0l1st00"
	sim := mcsim.New(mcsim.Options{APIKey: "0000000000000000000000000000demo-us1", ListID: listID, Members: opts.members, Seed: 1, Clock: clk})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: "Bearer demo-target-token"})
	simURL, stopSim, err := serveLoopback(sim)
	if err != nil {
		return err
	}
	defer stopSim()
	defer sim.Close() // its webhook deliveries, before its server
	targetURL, stopTarget, err := serveLoopback(target)
	if err != nil {
		return err
	}
	defer stopTarget()

	dir, err := os.MkdirTemp("", "chimport-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	defer store.Close()

	conn := config.Connection{Name: "demo"}.WithDefaults()
	conn.Mailchimp.APIKey = config.Secret(sim.APIKey())
	conn.Mailchimp.ListID = listID
	conn.Mailchimp.BaseURL = simURL + "/3.0"
	conn.Mailchimp.Settle = 0
	conn.Target.URL = targetURL + "/records"
	conn.Target.Headers = map[string]config.Secret{"Authorization": "Bearer demo-target-token"}
	eng := &engine.Engine{Store: store, Clock: clk, Logger: global.logger}

	fmt.Fprintf(e.stdout, "Mailchimp simulator at %s/3.0 with %d members; target simulator at %s/records.\n\n", simURL, opts.members, targetURL)

	sync := func(title string) error {
		fmt.Fprintf(e.stdout, "%s\n", title)
		var bars *progressBars
		if isTerminal(e.stdout) {
			bars = newProgressBars(ctx, e.stdout)
		}
		outcomes := syncAll(ctx, eng, []config.Connection{conn}, runMode{}, 1, clientOptions{limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey), logger: global.logger}, nil, bars.attacher())
		bars.wait()
		if err := printRunTable(e.stdout, outcomes); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout)
		if err := outcomes[0].err; err != nil {
			return err
		}
		// The demo's target refuses nothing; if it did, the demo would
		// end as run does (exit 3), before a comparison that must fail.
		return syncResult(outcomes)
	}
	if err := sync("1. First run: a full sync of the audience."); err != nil {
		return err
	}

	changed, err := mutateDemo(sim, listID)
	if err != nil {
		return err
	}
	clk.Advance(5 * time.Second)
	fmt.Fprintf(e.stdout, "Meanwhile in Mailchimp: %s.\n\n", changed)
	if err := sync("2. Second run: only what changed moves, and the members who left leave the target."); err != nil {
		return err
	}

	if err := checkAgreement(e, sim, listID, target, conn); err != nil {
		return err
	}
	return demoWebhook(ctx, e, global, sim, target, conn, store, eng, clk)
}

// mutateDemo changes members the ways a real audience changes: edits,
// sign-ups, unsubscribes, an archival, deletions for good and address
// changes (a new id, so the old one must leave the target).
func mutateDemo(sim *mcsim.Mailchimp, listID string) (string, error) {
	members := sim.Members(listID)
	var live []string
	for _, m := range members {
		if m.Status == mcsim.StatusSubscribed {
			live = append(live, m.ID)
		}
	}
	if len(live) < 20 {
		return "", errors.New("demo: the audience is too small to change; use --members 100 or more")
	}
	var errs []error
	for i := range 12 {
		errs = append(errs, sim.Change(listID, live[i], func(m *mcsim.Member) {
			m.MergeFields["FNAME"] = fmt.Sprintf("Renamed %d", i)
		}))
	}
	for i := range 5 {
		_, err := sim.Add(listID, mcsim.Member{
			EmailAddress: fmt.Sprintf("new.signup.%d@example.com", i),
			Status:       mcsim.StatusSubscribed,
			MergeFields:  map[string]any{"FNAME": "Nouvelle", "LNAME": fmt.Sprintf("Inscrite %d", i)},
		})
		errs = append(errs, err)
	}
	for i := 12; i < 15; i++ {
		errs = append(errs, sim.Unsubscribe(listID, live[i]))
	}
	errs = append(errs, sim.Archive(listID, live[15]))
	for i := 16; i < 18; i++ {
		errs = append(errs, sim.Delete(listID, live[i]))
	}
	for i := 18; i < 20; i++ {
		_, err := sim.ChangeAddress(listID, live[i], fmt.Sprintf("moved.%d@example.org", i))
		errs = append(errs, err)
	}
	return "12 members edited, 5 signed up, 3 unsubscribed, 1 archived, 2 deleted for good, 2 changed address (25 changes)", errors.Join(errs...)
}

// checkAgreement compares the target with Mailchimp member by member,
// and checks that it holds no record of a member who is gone other than
// a tombstone.
func checkAgreement(e env, sim *mcsim.Mailchimp, listID string, target *mcsim.Target, conn config.Connection) error {
	rep, err := mirrorOf(sim, listID, target, conn)
	if err != nil {
		return err
	}
	switch {
	case len(rep.Wrong) > 0:
		fmt.Fprintf(e.stdout, "3. Target and Mailchimp DISAGREE on %d of %d members, e.g. %s.\n", len(rep.Wrong), rep.Live, rep.Wrong[0].ID)
		return errFailed
	case rep.Stale > 0:
		fmt.Fprintf(e.stdout, "3. The target still holds %d records of members who are gone, e.g. %s.\n", rep.Stale, rep.StaleRecords[0].ID)
		return errFailed
	}
	fmt.Fprintf(e.stdout, "3. Target and Mailchimp agree: all %d members (archived included) match their records in the target,\n"+
		"   and of the members who are gone it holds only %d tombstones (%s).\n\n", rep.Live, rep.Tombstones, tombstoneText(conn))
	return nil
}

// mirrorOf is the strict comparison of the target with the audience, as
// the connection's mapping and tombstones make it.
func mirrorOf(sim *mcsim.Mailchimp, listID string, target *mcsim.Target, conn config.Connection) (mcsim.MirrorReport, error) {
	mp, err := mappingOf(conn)
	if err != nil {
		return mcsim.MirrorReport{}, err
	}
	idKey, _ := mp.IDKey()
	return mcsim.Mirror(sim, listID, target, mcsim.MirrorOptions{
		Record: func(member map[string]any) (map[string]any, error) {
			body, err := mp.Append(nil, member)
			if err != nil {
				return nil, err
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var rec map[string]any
			return rec, dec.Decode(&rec)
		},
		Statuses:  conn.Mailchimp.Statuses,
		Tombstone: conn.Target.Tombstone,
		IDKey:     idKey,
	})
}

// demoWebhookSecret is the demo's webhooks.secret; it is never printed.
const demoWebhookSecret = "demo-webhook-secret-never-shown"

// demoWebhook is the live step: the webhook receiver and its queue run in
// process, refreshing through a worker under the connection's lease, as
// serve --webhook-listen does; the webhook is registered with the
// simulator through the Mailchimp client (the simulator checks the URL
// with a GET first, as Mailchimp does); one member is edited, and the
// demo waits for the edit to reach the target through the webhook, then
// checks the target is still a strict mirror.
func demoWebhook(ctx context.Context, e env, global *globalOptions, sim *mcsim.Mailchimp, target *mcsim.Target,
	conn config.Connection, store *sqlite.Store, eng *engine.Engine, clk clock.Clock) error {
	listID := conn.Mailchimp.ListID
	cfg := &config.Config{Connections: []config.Connection{conn}}
	shared := clientOptions{limiter: mailchimp.NewLimiter(mailchimp.DefaultPerKey), logger: global.logger}
	w, err := worker.New(worker.Config{
		Connections: workerConnections(cfg),
		Store:       store,
		Run:         connectionRunner(cfg, eng, shared), // never started: no scheduler runs here
		Refresh:     connectionRefresher(cfg, eng, shared),
		Notifier:    notify.Log{Logger: global.logger},
		Clock:       clk,
		Owner:       "demo",
		Logger:      global.logger,
	})
	if err != nil {
		return err
	}
	// The queue's hooks are serve's, and they tell the demo when the
	// profile event it waits for was delivered.
	delivered := make(chan struct{}, 1)
	hooks := w.WebhookHooks()
	event := hooks.Event
	hooks.Event = func(connection, eventType, outcome string) {
		event(connection, eventType, outcome)
		if eventType == webhook.TypeProfile && outcome == engine.RefreshDelivered {
			select {
			case delivered <- struct{}{}:
			default:
			}
		}
	}
	q := webhook.NewQueue(webhook.QueueConfig{Refresher: w, Clock: clk, Hooks: hooks, Logger: global.logger})
	qctx, stopQueue := context.WithCancel(ctx)
	var queue sync.WaitGroup
	queue.Go(func() { q.Run(qctx) })
	defer queue.Wait()
	defer stopQueue()
	recv := webhook.NewReceiver(demoWebhookSecret, map[string]string{conn.Name: listID}, q, hooks, global.logger)
	hookBase, stopHooks, err := serveLoopback(recv)
	if err != nil {
		return err
	}
	defer stopHooks()

	mc, _, err := newClients(conn, shared)
	if err != nil {
		return err
	}
	created, err := mc.CreateWebhook(ctx, listID, mailchimp.WebhookSpec{
		URL: webhook.URL(hookBase, demoWebhookSecret, conn.Name), Events: webhooksEvents, Sources: webhooksSources,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "4. Live: a webhook registered with Mailchimp calls %s (token masked).\n", webhook.Masked(created.URL))

	var member mcsim.Member
	for _, m := range sim.Members(listID) {
		if m.Status == mcsim.StatusSubscribed {
			member = m
			break
		}
	}
	const name = "Live"
	mcBefore, targetBefore := sim.Stats(), target.Stats()
	changed := time.Now()
	if err := sim.Change(listID, member.ID, func(m *mcsim.Member) { m.MergeFields["FNAME"] = name }); err != nil {
		return err
	}
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(e.stdout, "   The edit of %s did not reach the target through the webhook within 10 s.\n", member.EmailAddress)
		return errFailed
	case <-ctx.Done():
		return ctx.Err()
	}
	took := time.Since(changed)
	if got := target.Records()[member.ID]["firstname"]; got != name {
		fmt.Fprintf(e.stdout, "   The webhook was delivered, but the target holds first name %q for %s, not %q.\n", got, member.EmailAddress, name)
		return errFailed
	}
	mcRequests, targetRequests := sim.Stats().Requests-mcBefore.Requests, target.Stats().Requests-targetBefore.Requests
	fmt.Fprintf(e.stdout, "   %s's first name changed to %q in Mailchimp; it reached the target through the webhook\n"+
		"   in %d ms (%d Mailchimp %s, %d target %s, no run).\n", member.EmailAddress, name, took.Milliseconds(),
		mcRequests, plural(mcRequests, "request", "requests"), targetRequests, plural(targetRequests, "request", "requests"))

	rep, err := mirrorOf(sim, listID, target, conn)
	if err != nil {
		return err
	}
	if !rep.OK() {
		fmt.Fprintf(e.stdout, "   The target is no longer a mirror of Mailchimp: %s.\n", rep)
		return errFailed
	}
	fmt.Fprintf(e.stdout, "   Target and Mailchimp still agree: all %d members match, and it holds %d tombstones and no other record.\n", rep.Live, rep.Tombstones)
	return nil
}

// tombstoneText shows what a tombstone record holds besides the id.
func tombstoneText(conn config.Connection) string {
	b, err := json.Marshal(map[string]any(conn.Target.Tombstone))
	if err != nil {
		return "tombstone records"
	}
	return string(b)
}

// serveLoopback serves h on a free loopback port.
func serveLoopback(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
