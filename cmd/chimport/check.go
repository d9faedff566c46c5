package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/target"
)

type checkOptions struct {
	connections []string
}

func newCheckCmd(e env, global *globalOptions) *cobra.Command {
	opts := checkOptions{}
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate the config and check that every connection's Mailchimp list and target answer",
		Long: `check validates the config file and the state store as run will use it,
creating nothing (for SQLite, the file's directory exists and is writable; for
DynamoDB, the tables exist). A problem with either exits 2, as run would. Then
for each connection it pings Mailchimp, confirms the list exists and reports its
member count, and confirms the target answers as run will find it (a HEAD
request with the configured headers, through the same client, which does not
follow redirects; no data is sent).
It prints one line per connection and exits 1 if any connection fails.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runCheck(cmd.Context(), e, global, cfg, opts)
		},
	}
	cmd.Flags().StringArrayVar(&opts.connections, "connection", nil, "check only this connection (repeatable)")
	return cmd
}

// checkResult is the outcome of checking one connection.
type checkResult struct {
	name     string
	problems []string // what is wrong and what to do, one entry per part
	notes    []string // what was found when things work
}

func runCheck(ctx context.Context, e env, global *globalOptions, cfg *config.Config, opts checkOptions) error {
	conns, err := cfg.Select(opts.connections)
	if err != nil {
		return usageError{err}
	}
	// The store comes first: run stops there too, before any connection.
	if err := state.Check(ctx, cfg.State); err != nil {
		return fmt.Errorf("state %s: %w", state.RedactPassword(cfg.State), err) // as openStore words it
	}
	// One limiter for the whole process: connections sharing an API key
	// share its 10 request slots.
	limiter, datacenters := mailchimp.NewLimiter(mailchimp.DefaultPerKey), mailchimp.NewDatacenters()
	results := make([]checkResult, len(conns))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, conn := range conns {
		g.Go(func() error {
			results[i] = checkConnection(gctx, global, limiter, datacenters, conn)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}

	for _, w := range cfg.Warnings() {
		fmt.Fprintf(e.stdout, "WARN  %s\n", w)
	}
	failed := 0
	for _, r := range results {
		if len(r.problems) > 0 {
			failed++
			fmt.Fprintf(e.stdout, "FAIL  %s: %s\n", r.name, strings.Join(r.problems, "; "))
			continue
		}
		fmt.Fprintf(e.stdout, "OK    %s: %s\n", r.name, strings.Join(r.notes, "; "))
	}
	if failed > 0 {
		fmt.Fprintf(e.stdout, "%d of %d connections failed the check\n", failed, len(results))
		return errFailed
	}
	return nil
}

// audiencesNote says what list_id "*" finds: the sub-connections a run
// will sync, by name, the first few of them.
func audiencesNote(name string, lists []mailchimp.ListSummary) string {
	if len(lists) == 0 {
		return `list_id "*": the account has no audience, so runs have nothing to sync`
	}
	const show = 5
	var b strings.Builder
	fmt.Fprintf(&b, `list_id "*": the account has %d audiences, synced as`, len(lists))
	for i, l := range lists[:min(show, len(lists))] {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s (%q)", config.SubName(name, l.ID), l.Name)
	}
	if len(lists) > show {
		fmt.Fprintf(&b, " and %d more", len(lists)-show)
	}
	return b.String()
}

// checkConnection pings Mailchimp, looks up the list and probes the target,
// with the clients run and serve would use. A failed ping skips the list
// lookup: it would fail for the same reason.
func checkConnection(ctx context.Context, global *globalOptions, limiter *mailchimp.Limiter, datacenters *mailchimp.Datacenters, conn config.Connection) checkResult {
	res := checkResult{name: conn.Name}
	mc, sink, err := newClients(conn, clientOptions{
		limiter: limiter, datacenters: datacenters, logger: global.logger,
		// A check is interactive: give up after a few quick tries.
		mailchimpRetry: retry.Policy{MaxAttempts: 3},
	})
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return res
	}
	if err = mc.Ping(ctx); err == nil && conn.Discovers() {
		var lists []mailchimp.ListSummary
		if lists, err = mc.Lists(ctx); err == nil {
			res.notes = append(res.notes, audiencesNote(conn.Name, lists))
		}
	} else if err == nil {
		var list *mailchimp.List
		if list, err = mc.List(ctx, conn.Mailchimp.ListID); err == nil {
			res.notes = append(res.notes, fmt.Sprintf("list %s %q has %d subscribed, %d unsubscribed, %d cleaned members",
				list.ID, list.Name, list.Stats.MemberCount, list.Stats.UnsubscribeCount, list.Stats.CleanedCount))
		}
	}
	if err != nil {
		res.problems = append(res.problems, err.Error())
	}

	probe, err := sink.Probe(ctx)
	if err != nil {
		res.problems = append(res.problems, err.Error())
	} else {
		res.notes = append(res.notes, fmt.Sprintf("target %s reachable (HEAD answered %d)", target.RedactURL(conn.Target.URL), probe.Status))
	}
	return res
}
