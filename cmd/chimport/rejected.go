package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/discover"
	"github.com/chimport/chimport/internal/human"
	"github.com/chimport/chimport/internal/state"
)

type rejectedOptions struct {
	connections []string
	json        bool
}

func newRejectedCmd(e env, global *globalOptions) *cobra.Command {
	opts := rejectedOptions{}
	cmd := &cobra.Command{
		Use:   "rejected",
		Short: "List the records the target refused, which every run retries",
		Long: `rejected lists the rejected log of every configured connection (or the named ones):
the records their target refused (HTTP 400 or 422 for the record on its own), with the
member id, the record's key, the target's last answer (its status and the start of its
body), when the record was first refused, when it was last tried and how often. Every run
fetches these members again and retries them first; a record leaves the log when the
target accepts it or its member is gone. Fix the member in Mailchimp, or the mapping or
the target, and the next run delivers it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Context(), e, global)
			if err != nil {
				return err
			}
			return runRejected(cmd.Context(), e, cfg, opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.connections, "connection", nil, "list only this connection (repeatable)")
	f.BoolVar(&opts.json, "json", false, "print a JSON array")
	return cmd
}

// rejectedEntry is one entry of a rejected log, with its connection.
type rejectedEntry struct {
	connection string
	state.Rejection
}

func runRejected(ctx context.Context, e env, cfg *config.Config, opts rejectedOptions) error {
	if _, err := cfg.Select(opts.connections); err != nil {
		return usageError{err}
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return usageError{err}
	}
	defer store.Close()
	// The audiences of a "*" connection are the ones the store knows, as
	// for status.
	rows, err := statusRows(ctx, store, cfg)
	if err != nil {
		return err
	}
	selected := discover.Selector(opts.connections)
	var names []string
	for _, r := range rows {
		if selected(r.name, r.parent) {
			names = append(names, r.name)
		}
	}
	entries, err := readRejected(ctx, store, names, len(opts.connections) > 0)
	if err != nil {
		return err
	}
	if opts.json {
		return printRejectedJSON(e.stdout, entries)
	}
	return printRejectedTable(e.stdout, entries, opts.connections)
}

// readRejected reads the rejected logs of the connections named, sorted by
// connection and then member id. Asked for every connection, it reads the
// state of all of them once and then only the logs that hold anything:
// with thousands of connections, nearly every log is empty.
func readRejected(ctx context.Context, store state.Store, names []string, named bool) ([]rejectedEntry, error) {
	names = slices.Clone(names)
	if !named {
		states, err := store.Connections(ctx)
		if err != nil {
			return nil, err
		}
		holding := map[string]bool{}
		for _, st := range states {
			holding[st.Connection] = st.Rejected.Count > 0
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !holding[n] })
	}
	slices.Sort(names)
	var out []rejectedEntry
	for _, name := range names {
		log, err := store.RejectedLog(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %w", name, err)
		}
		for _, r := range log {
			out = append(out, rejectedEntry{name, r})
		}
	}
	return out, nil
}

// rejectionJSON is an entry of the rejected log in JSON output.
type rejectionJSON struct {
	Connection  string    `json:"connection,omitempty"` // in `rejected --json`; the row says it elsewhere
	MemberID    string    `json:"member_id"`
	Key         string    `json:"key"`
	Status      int       `json:"status"`
	Reason      string    `json:"reason"`
	FirstSeen   time.Time `json:"first_seen"`
	LastAttempt time.Time `json:"last_attempt"`
	Attempts    int       `json:"attempts"`
}

// rejectionOf is r in JSON output; nil for nil.
func rejectionOf(r *state.Rejection) *rejectionJSON {
	if r == nil {
		return nil
	}
	return &rejectionJSON{MemberID: r.Member.String(), Key: r.Key, Status: r.Status, Reason: r.Reason,
		FirstSeen: r.FirstSeen.UTC(), LastAttempt: r.LastAttempt.UTC(), Attempts: r.Attempts}
}

func printRejectedJSON(w io.Writer, entries []rejectedEntry) error {
	out := make([]rejectionJSON, len(entries))
	for i, e := range entries {
		out[i] = *rejectionOf(&e.Rejection)
		out[i].Connection = e.connection
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// printRejectedTable prints one line per entry. What the target sent (the
// reason, and the key, which comes from the record) is printed with
// alert.Printable: on one line, with nothing a terminal would act on.
func printRejectedTable(w io.Writer, entries []rejectedEntry, named []string) error {
	if len(entries) == 0 {
		if len(named) > 0 {
			_, err := fmt.Fprintf(w, "No rejected records for %s: the target accepted every record it was sent.\n", strings.Join(named, ", "))
			return err
		}
		_, err := fmt.Fprintln(w, "No rejected records: every connection's target accepted every record it was sent.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONNECTION\tMEMBER\tKEY\tSTATUS\tATTEMPTS\tFIRST SEEN\tLAST ATTEMPT\tREASON")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", e.connection, e.Member, orDash(human.Printable(e.Key)), e.Status, e.Attempts,
			formatTime(e.FirstSeen), formatTime(e.LastAttempt), orDash(human.Printable(e.Reason)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d %s. Every run retries them first; one leaves the log when the target accepts it or its member is gone.\n",
		len(entries), plural(len(entries), "rejected record", "rejected records"))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural[N int | int64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// rejectedLine is a connection whose rejected log holds records, for the
// lines run and status print under their tables.
type rejectedLine struct {
	connection string
	count      int64
	sample     *state.Rejection
}

// maxRejectedLines bounds those lines: with thousands of connections the
// table is long already, and `chimport rejected` lists everything.
const maxRejectedLines = 20

// sampleChars bounds the sample quoted on a line.
const sampleChars = 160

// printRejectedLines says, under a table, which connections' targets
// refused records, with one of them each and the command that lists them.
func printRejectedLines(w io.Writer, lines []rejectedLine) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w, "\nRejected records (the target refused them; they wait in the rejected log and every run retries them):")
	for i, l := range lines {
		if i == maxRejectedLines {
			fmt.Fprintf(w, "  ... and %d more connections.\n", len(lines)-i)
			break
		}
		fmt.Fprintf(w, "  %s: %d %s", l.connection, l.count, plural(l.count, "record", "records"))
		if r := alert.RecordOf(l.sample); r != nil {
			fmt.Fprintf(w, ", e.g. %s", oneLine(r.String(), sampleChars))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "chimport rejected lists them all; chimport rejected --connection NAME one connection's.")
}
