package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/discover"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/human"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/shard"
	"github.com/chimport/chimport/internal/state"
)

type runOptions struct {
	connections []string
	shard       shard.Choice
	full        bool
	reconcile   bool
	json        bool
	parallel    int
}

func newRunCmd(e env, global *globalOptions) *cobra.Command {
	opts := runOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Sync every configured connection (or the named ones) once",
		Long: `run syncs each connection once, connections in parallel: it reads the members that
changed since the watermark, delivers them to the target, removes from the target the
members that left the audience (deleted for good, moved to a new address, out of the
status filter) and moves the watermark.
It prints a summary per connection and exits 0 only if every connection completed; 3
if every connection completed but the target refused records, which wait in the rejected
log (chimport rejected lists them) and are retried by every run; 1 if a connection failed.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.parallel < 1 {
				return usageErrorf("--parallel must be at least 1, got %d", opts.parallel)
			}
			if _, _, err := shard.Resolve(opts.shard, e.lookupEnv); err != nil {
				return usageError{err} // before the config: a wrong flag is the first thing to fix
			}
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runRun(cmd.Context(), e, global, cfg, opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.connections, "connection", nil, "run only this connection (repeatable)")
	f.BoolVar(&opts.full, "full", false, "ignore the watermark and read every member again (and reconcile)")
	f.BoolVar(&opts.reconcile, "reconcile", false, "reconcile the roster with Mailchimp after the window, whatever the counts say")
	f.BoolVar(&opts.json, "json", false, "print the summary as JSON")
	f.IntVar(&opts.parallel, "parallel", 64, "connections synced at once")
	f.StringVar(&opts.shard.Shard, "shard", "", "run only shard I of N (e.g. 2/4) of the connections, split by a hash of their names (default $"+shard.EnvShard+")")
	f.IntVar(&opts.shard.Shards, "shards", 0, "run one of N shards, the one $"+shard.EnvJobCompletionIndex+" (Kubernetes Indexed Job) or $"+shard.EnvBatchArrayIndex+" (AWS Batch array job) says, counting from 0")
	return cmd
}

func runRun(ctx context.Context, e env, global *globalOptions, cfg *config.Config, opts runOptions) error {
	sh, shardFrom, err := shard.Resolve(opts.shard, e.lookupEnv)
	if err != nil {
		return usageError{err}
	}
	if _, err := cfg.Select(opts.connections); err != nil {
		return usageError{err} // before the store: an unknown name is a typo to fix first
	}
	opened, err := openStore(ctx, cfg)
	if err != nil {
		return usageError{err}
	}
	defer opened.Close()
	store := &timedStore{Store: opened, now: e.clock.Now}
	// The runs, their retries and the lag policy all read the process
	// clock: watermarks and lag are measured on the same one.
	eng := &engine.Engine{Store: store, Logger: global.logger, Clock: e.clock}
	started := e.clock.Now()
	notify, err := newNotifier(ctx, cfg, global.logger)
	if err != nil {
		return err
	}
	// A shard takes its share of each key's slots: shards side by side
	// then stay within Mailchimp's limit together (shard.PerKey).
	shared := clientOptions{limiter: mailchimp.NewLimiter(sh.PerKey(mailchimp.DefaultPerKey)), datacenters: mailchimp.NewDatacenters(),
		logger: global.logger, retryClock: e.clock}
	x, err := expandConnections(ctx, cfg, store, opts.connections, sh, shared, opts.parallel, started)
	if err != nil {
		return err
	}
	logExpansion(global.logger, cfg, x, sh, shardFrom)
	if sh.Count > mailchimp.DefaultPerKey {
		global.logger.Warn("more shards than a Mailchimp key's request slots: each shard keeps to 1 request at a time per key, and shards run side by side may together pass Mailchimp's limit of 10",
			"shard", sh.String(), "slots_per_key", mailchimp.DefaultPerKey)
	}
	conns := x.conns
	// Only the connections of this run are checked: a connection another
	// schedule or shard runs is that one's to judge.
	alerts := newRunAlerts(cfg, slices.Concat(conns, x.stalledConns), store, notify, e.clock, global.logger)
	recordListing(ctx, store, alerts, x, started, global.logger)

	var bars *progressBars
	if !opts.json && isTerminal(e.stdout) {
		bars = newProgressBars(ctx, e.stdout)
	}
	mode := runMode{full: opts.full, reconcile: opts.reconcile, retryClock: e.clock}
	outcomes := syncAll(ctx, eng, conns, mode, opts.parallel, shared, alerts.afterRun, bars.attacher())
	bars.wait()
	outcomes = slices.Concat(x.failed, x.stalled, outcomes)
	failed, rejected := 0, 0
	for _, o := range outcomes {
		if o.summary.Result != state.ResultOK {
			failed++
		}
		if o.summary.Rejected > 0 {
			rejected++
		}
	}
	spent, calls := store.Spent()
	mean := time.Duration(0)
	if calls > 0 {
		mean = spent / time.Duration(calls)
	}
	global.logger.Info("all runs finished", "connections", len(outcomes), "failed", failed, "with_rejected_records", rejected,
		"duration", e.clock.Now().Sub(started).Round(time.Millisecond).String(),
		"state_store_calls", calls, "state_store_mean_ms", float64(mean.Microseconds())/1000)
	byMethod := make([]any, 0, 2*len(store.ByMethod()))
	for _, m := range store.ByMethod() {
		byMethod = append(byMethod, m.Method, fmt.Sprintf("%d calls, %.3f ms mean", m.Calls, float64(m.Spent.Microseconds())/1000/float64(max(m.Calls, 1))))
	}
	global.logger.Debug("state store calls by method", byMethod...)

	switch {
	case opts.json:
		err = printRunJSON(e.stdout, outcomes)
	case len(outcomes) == 0 && !sh.All():
		// A shard may hold none of a few connections: that is a success.
		_, err = fmt.Fprintf(e.stdout, "No connection in shard %s: nothing to do.\n", sh)
		printVanished(e.stdout, x.vanished)
	case len(outcomes) == 0:
		// list_id "*" on an account without audiences, say.
		_, err = fmt.Fprintln(e.stdout, "No connection to sync: nothing to do.")
		printVanished(e.stdout, x.vanished)
	default:
		err = printRunTable(e.stdout, outcomes)
		printVanished(e.stdout, x.vanished)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err // interrupted: exit 1, whatever the connections that finished say
	}
	return syncResult(outcomes)
}

// runJSON is one connection in `run --json` output.
type runJSON struct {
	Connection string `json:"connection"`
	Result     string `json:"result"` // ok, failed or cancelled
	Completed  bool   `json:"completed"`
	Full       bool   `json:"full"`
	Resumed    bool   `json:"resumed"`
	Read       int64  `json:"read"`
	Delivered  int64  `json:"delivered"`
	// Tombstoned counts the members that left the target in this run
	// (tombstones or DELETEs it acknowledged, or, with deletes off, members
	// dropped from the roster); Members is the roster's size at the end of
	// the run, the members in the target.
	Tombstoned int64 `json:"tombstoned"`
	Members    int64 `json:"members"`
	// Rejected is the size of the rejected log at the end of the run (the
	// records the target refused, in this run or before, and has not
	// accepted since), RejectedSample one of them (null when none), and
	// Refused the refusals of this run, retries refused again included.
	Rejected       int64          `json:"rejected"`
	RejectedSample *rejectionJSON `json:"rejected_sample"`
	Refused        int64          `json:"refused"`
	// Reconciled says the run compared the roster with Mailchimp, and
	// ReconcileReason why: build, full, asked, due, counts or learn (see engine.Summary).
	Reconciled      bool       `json:"reconciled"`
	ReconcileReason string     `json:"reconcile_reason,omitempty"`
	Requests        int64      `json:"requests"`
	DurationSec     float64    `json:"duration_seconds"`
	WindowStart     *time.Time `json:"window_start"` // null: from the beginning
	Watermark       *time.Time `json:"watermark"`    // null: not completed
	Error           string     `json:"error,omitempty"`
}

func printRunJSON(w io.Writer, outcomes []outcome) error {
	out := make([]runJSON, len(outcomes))
	for i, o := range outcomes {
		s := o.summary
		ok := s.Result == state.ResultOK
		out[i] = runJSON{
			Connection: s.Connection, Result: s.Result, Completed: ok, Full: s.Full, Resumed: s.Resumed,
			Read: s.Read, Delivered: s.Delivered, Tombstoned: s.Tombstoned, Members: s.Members,
			Rejected: s.Rejected, RejectedSample: rejectionOf(s.RejectedSample), Refused: s.Refused,
			Reconciled: s.Reconciled, ReconcileReason: s.ReconcileReason,
			Requests: s.MailchimpStats.Requests, DurationSec: s.Duration.Seconds(),
			WindowStart: timeOrNil(s.WindowStart),
		}
		if ok {
			out[i].Watermark = timeOrNil(s.WindowEnd)
		}
		if o.err != nil {
			out[i].Error = o.err.Error()
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func printRunTable(w io.Writer, outcomes []outcome) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tRESULT\tREAD\tDELIVERED\tLEFT\tREJECTED\tREQUESTS\tDURATION\tWATERMARK")
	for _, o := range outcomes {
		s := o.summary
		result, watermark := "ok", formatTime(s.WindowEnd)
		switch {
		case s.Result == state.ResultCancelled:
			result, watermark = "cancelled", "unchanged"
		case s.Result != state.ResultOK:
			result, watermark = "FAILED", "unchanged"
		case s.Resumed:
			result = "ok (resumed)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Connection, result, s.Read, s.Delivered, s.Tombstoned, s.Rejected,
			s.MailchimpStats.Requests, s.Duration.Round(time.Millisecond), watermark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var rejected []rejectedLine
	for _, o := range outcomes {
		if s := o.summary; s.Rejected > 0 {
			rejected = append(rejected, rejectedLine{s.Connection, s.Rejected, s.RejectedSample})
		}
	}
	printRejectedLines(w, rejected)
	for _, o := range outcomes {
		if o.err != nil {
			fmt.Fprintf(w, "\n%s: %s\n", o.summary.Connection, printableLines(o.err.Error()))
		}
	}
	return nil
}

// recordListing records what listing the audiences of "*" connections
// found, before the runs: an account that could not be listed fails under
// its own name (with its own state, so that status shows it and its lag
// counts, while no audience of it is known yet), and each of its known
// audiences records the error and is judged for lag, since it cannot run;
// an account listed again after such a failure closes what it opened.
func recordListing(ctx context.Context, store state.Store, alerts *runAlerts, x expansion, now time.Time, logger *slog.Logger) {
	for _, o := range x.failed {
		name := o.summary.Connection
		logger.Error("listing the audiences failed", "connection", name, "error", o.err)
		if x.unlisted[name] {
			if err := errors.Join(store.StartRun(ctx, name, now), store.NoteError(ctx, name, o.err.Error(), now)); err != nil {
				logger.Warn("recording the failed listing failed", "connection", name, "error", err)
			}
		}
		alerts.afterRun(ctx, name, o.err)
	}
	for _, o := range x.stalled {
		if err := store.NoteError(ctx, o.summary.Connection, o.err.Error(), now); err != nil {
			logger.Warn("recording the failed listing failed", "connection", o.summary.Connection, "error", err)
		}
		alerts.afterStalled(ctx, o.summary.Connection)
	}
	for _, st := range x.recovered {
		alerts.listedAgain(ctx, st.Connection, st)
	}
}

// printVanished lists the audiences that left their accounts, under the
// run's table.
func printVanished(w io.Writer, vanished []discover.Vanished) {
	if len(vanished) == 0 {
		return
	}
	fmt.Fprintf(w, "\nNo longer in their Mailchimp accounts (not synced; state kept):\n")
	for _, v := range vanished {
		fmt.Fprintf(w, "  %s (list %s of %s)\n", v.Name, v.ListID, v.Parent)
	}
}

// printableLines is s with every line made safe for a terminal: an error
// may quote what a server sent (a refusal's body), escape sequences
// included. The lines errors.Join makes stay lines.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = human.Printable(l)
	}
	return strings.Join(lines, "\n")
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// progressBars shows a bar per connection while `run` works on a
// terminal. A nil *progressBars does nothing, so callers need not check.
type progressBars struct {
	p    *mpb.Progress
	mu   sync.Mutex // attach runs on each connection's goroutine
	bars []*mpb.Bar
}

func newProgressBars(ctx context.Context, w io.Writer) *progressBars {
	return &progressBars{p: mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(40))}
}

// attacher returns attach, or nil when there are no bars.
func (b *progressBars) attacher() func(string, *engine.Job) {
	if b == nil {
		return nil
	}
	return b.attach
}

// attach gives the job a bar: members delivered out of the window's
// estimated size.
func (b *progressBars) attach(name string, job *engine.Job) {
	bar := b.p.AddBar(0,
		mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersNoUnit("%d / %d", decor.WCSyncSpace)),
		mpb.AppendDecorators(decor.Percentage(decor.WCSyncSpace)),
	)
	job.Progress = func(p engine.Progress) {
		if p.Estimate > 0 {
			bar.SetTotal(max(p.Estimate, p.Delivered), false)
		}
		bar.SetCurrent(p.Delivered)
	}
	b.mu.Lock()
	b.bars = append(b.bars, bar)
	b.mu.Unlock()
}

func (b *progressBars) wait() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bar := range b.bars {
		bar.SetTotal(-1, true) // mark complete, whatever the estimate said
	}
	b.p.Wait()
}
