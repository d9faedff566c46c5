package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/human"
	"github.com/chimport/chimport/internal/schedule"
	"github.com/chimport/chimport/internal/state"
)

type statusOptions struct {
	json bool
}

func newStatusCmd(e env, global *globalOptions) *cobra.Command {
	opts := statusOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show how fresh every connection is",
		Long: `status prints, per configured connection, the watermark (everything Mailchimp
changed before it has been delivered), the lag (now minus the watermark), the last
success, the last error (a failed run's, or the one a run under way is retrying) and the
failed pages waiting for the next run to repair them; then the members in the target, the
members that left it over the connection's life (deleted for good, changed address or out
of the status filter), the records the target refused (each run retries them; chimport
rejected lists them) and when a run last reconciled the target with Mailchimp.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runStatus(cmd.Context(), e, cfg, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print a JSON array")
	return cmd
}

// connectionStatus is one connection in `status --json`.
type connectionStatus struct {
	Name string `json:"name"`
	// Parent is, for one audience of a connection with several (list_id
	// "*" or a list of ids), the connection's name as configured.
	Parent          string     `json:"parent,omitempty"`
	Watermark       *time.Time `json:"watermark"`   // null: never completed
	LagSeconds      *float64   `json:"lag_seconds"` // null: never completed
	LastSuccess     *time.Time `json:"last_success"`
	LastAttempt     *time.Time `json:"last_attempt"`
	LastError       string     `json:"last_error"`
	PendingFailures int        `json:"pending_failures"`
	NextRun         *time.Time `json:"next_run"`  // when `chimport serve` runs it next
	Resumable       bool       `json:"resumable"` // a checkpoint lets the next run continue
	// Members is the roster's size, the members in the target; null while
	// the connection keeps no roster (never ran, or state from a release
	// without rosters), which its next run builds.
	Members         *int64     `json:"members"`
	LastReconcile   *time.Time `json:"last_reconcile"`   // null: never reconciled
	TombstonesTotal int64      `json:"tombstones_total"` // members that left the target, over the connection's life
	// Rejected is the number of records in the rejected log, and
	// RejectedSample one of them (the latest refused); null when none.
	Rejected       int64          `json:"rejected"`
	RejectedSample *rejectionJSON `json:"rejected_sample"`

	// sample is RejectedSample as the store has it, for the table.
	sample *state.Rejection

	// rosterToBuild: no roster, though members were delivered (state from
	// a release without rosters, or a watermark taken over from the Python
	// importer); the next run builds it with a scan of member ids.
	rosterToBuild bool
}

func runStatus(ctx context.Context, e env, cfg *config.Config, opts statusOptions) error {
	store, err := openStore(ctx, cfg)
	if err != nil {
		return usageError{err}
	}
	defer store.Close()
	now := e.clock.Now()
	rows, err := statusRows(ctx, store, cfg)
	if err != nil {
		return err
	}
	out := make([]connectionStatus, 0, len(rows))
	for _, row := range rows {
		conn := row.conn
		s, err := statusOf(ctx, store, row.name, now)
		if err != nil {
			return err
		}
		s.Parent = row.parent
		if s.LastAttempt != nil {
			next, err := schedule.NextRun(schedule.Connection{Name: row.name, Every: conn.Every.D(), Cron: conn.Cron}, *s.LastAttempt, now)
			if err == nil {
				s.NextRun = &next
			}
		}
		out = append(out, s)
	}
	if opts.json {
		return printStatusJSON(e.stdout, out)
	}
	return printStatusTable(e.stdout, out)
}

// statusRow is one row of status: a connection, or one audience of a
// connection with list_id "*".
type statusRow struct {
	name, parent string
	conn         config.Connection // the configured one, for its schedule
}

// statusRows are the configured connections, each list_id "*" replaced by
// the audiences the state store has state for (status asks Mailchimp
// nothing): those of the runs so far, including any that left the account
// since, whose last error says so. A "*" connection that never ran is one
// row of its own name.
func statusRows(ctx context.Context, store state.Store, cfg *config.Config) ([]statusRow, error) {
	var known []state.ConnectionState
	for _, c := range cfg.Connections {
		if c.Discovers() {
			var err error
			if known, err = store.Connections(ctx); err != nil {
				return nil, err
			}
			break
		}
	}
	var rows []statusRow
	for _, c := range cfg.Connections {
		if !c.Discovers() {
			rows = append(rows, statusRow{name: c.Name, parent: c.Parent, conn: c})
			continue
		}
		n := len(rows)
		for _, st := range known { // sorted by name
			if strings.HasPrefix(st.Connection, c.Name+".") {
				rows = append(rows, statusRow{name: st.Connection, parent: c.Name, conn: c})
			}
		}
		if len(rows) == n {
			rows = append(rows, statusRow{name: c.Name, conn: c})
		}
	}
	return rows, nil
}

func printStatusJSON(w io.Writer, rows []connectionStatus) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}

func statusOf(ctx context.Context, store state.Store, name string, now time.Time) (connectionStatus, error) {
	st, err := store.Connection(ctx, name)
	if err != nil {
		return connectionStatus{}, err
	}
	failures, err := store.Failures(ctx, name)
	if err != nil {
		return connectionStatus{}, err
	}
	s := connectionStatus{
		Name: name, Watermark: timeOrNil(st.Watermark), LastSuccess: timeOrNil(st.LastSuccess),
		LastAttempt: timeOrNil(st.LastAttempt), LastError: st.LastError,
		PendingFailures: len(failures), Resumable: st.Checkpoint.Resumes(),
		LastReconcile: timeOrNil(st.Roster.LastReconcile), TombstonesTotal: st.Roster.Left,
		Rejected: st.Rejected.Count, RejectedSample: rejectionOf(st.Rejected.Sample), sample: st.Rejected.Sample,
	}
	if st.Roster.Complete() {
		members := st.Roster.Members
		s.Members = &members
	} else {
		s.rosterToBuild = !st.Watermark.IsZero() || st.Checkpoint != nil || st.TotalDelivered > 0 || !st.LastSuccess.IsZero()
	}
	if !st.Watermark.IsZero() {
		lag := now.Sub(st.Watermark).Seconds()
		s.LagSeconds = &lag
	}
	return s, nil
}

func printStatusTable(w io.Writer, rows []connectionStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tWATERMARK\tLAG\tLAST SUCCESS\tNEXT RUN\tMEMBERS\tLEFT\tREJECTED\tLAST RECONCILE\tFAILED PAGES\tLAST ERROR")
	var unbuilt []string
	var rejected []rejectedLine
	for _, r := range rows {
		lag := "never synced"
		if r.LagSeconds != nil {
			lag = (time.Duration(*r.LagSeconds) * time.Second).Round(time.Second).String()
		}
		lastErr := oneLine(r.LastError, 160)
		next := "with the first run"
		if r.NextRun != nil {
			next = formatTime(*r.NextRun)
		}
		members := "-"
		switch {
		case r.Members != nil:
			members = fmt.Sprint(*r.Members)
		case r.rosterToBuild:
			// A connection that never delivered says "never synced"
			// already; this one needs a word on what its next run does.
			members = "-*"
			unbuilt = append(unbuilt, r.Name)
		}
		if r.Rejected > 0 {
			rejected = append(rejected, rejectedLine{r.Name, r.Rejected, r.sample})
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", r.Name, formatTimePtr(r.Watermark), lag, formatTimePtr(r.LastSuccess), next,
			members, r.TombstonesTotal, r.Rejected, formatTimePtr(r.LastReconcile), r.PendingFailures, lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printRejectedLines(w, rejected)
	if len(unbuilt) > 0 {
		_, err := fmt.Fprintf(w, "\n* no roster yet (state from an older release): the next run of %s builds it with one scan of member ids.\n", strings.Join(unbuilt, ", "))
		return err
	}
	return nil
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return formatTime(*t)
}

// oneLine fits a message on one table row: newlines become "; ", other
// control characters escapes (an error may quote anything a server sent),
// and a long message is cut (status --json has it whole).
func oneLine(s string, limit int) string {
	if s == "" {
		return "-"
	}
	s = human.Printable(strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " "))
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit-1]) + "…"
	}
	return s
}
