package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/discover"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/shard"
	"github.com/chimport/chimport/internal/state"
)

// expansion is what a process syncs: the connections of its shard, with
// every list_id "*" replaced by the audiences its account has now.
type expansion struct {
	conns []config.Connection
	// failed are the "*" connections of this shard whose audiences could
	// not be listed, as the outcomes `run` reports and alerts on.
	failed []outcome
	// vanished are this shard's sub-connections whose audience is gone.
	vanished []discover.Vanished
}

// vanishedNote is the last error a vanished audience's sub-connection
// shows in status until its audience comes back (its next completed run
// clears it).
const vanishedNote = "the audience is no longer in the Mailchimp account (GET /lists does not list it): chimport no longer syncs it and keeps its state, in case it comes back"

// expandConnections selects the connections named (all when names is
// empty), discovers the audiences of those with list_id "*" and keeps the
// ones shard sh holds. A nil store skips looking for vanished audiences. Every shard lists every account's audiences (one
// request per account), because an account's audiences are spread over
// the shards; a listing that fails is reported only by the shard that
// holds the "*" connection's own name, so that it alerts once.
func expandConnections(ctx context.Context, cfg *config.Config, store state.Store, names []string, sh shard.Shard,
	shared clientOptions, parallel int, now time.Time) (expansion, error) {
	selected, err := cfg.Select(names)
	if err != nil {
		return expansion{}, usageError{err}
	}
	var known []state.ConnectionState
	for _, c := range selected {
		if c.Discovers() && store != nil {
			if known, err = store.Connections(ctx); err != nil {
				return expansion{}, err
			}
			break
		}
	}
	knownNames := make([]string, len(known))
	for i, st := range known {
		knownNames[i] = st.Connection
	}
	res := discover.Expand(ctx, selected, discover.Options{
		Lister:   func(c config.Connection) (discover.Lister, error) { return newMailchimp(c, shared) },
		Known:    knownNames,
		Names:    names,
		Parallel: parallel,
	})

	var out expansion
	for _, c := range res.Connections {
		if sh.Holds(c.Name) {
			out.conns = append(out.conns, c)
		}
	}
	for _, f := range res.Failed {
		if sh.Holds(f.Connection.Name) {
			out.failed = append(out.failed, outcome{
				summary: engine.Summary{Connection: f.Connection.Name, Result: state.ResultFailed},
				err:     fmt.Errorf("connection %s: %w", f.Connection.Name, f.Err),
			})
		}
	}
	lastError := make(map[string]string, len(known))
	for _, st := range known {
		lastError[st.Connection] = st.LastError
	}
	for _, v := range res.Vanished {
		if !sh.Holds(v.Name) {
			continue
		}
		out.vanished = append(out.vanished, v)
		shared.logger.Warn("audience no longer in the Mailchimp account; its state is kept", "connection", v.Name, "list_id", v.ListID, "parent", v.Parent)
		if lastError[v.Name] == vanishedNote {
			continue // said already: no write per run
		}
		if err := store.NoteError(ctx, v.Name, vanishedNote, now); err != nil {
			shared.logger.Warn("recording a vanished audience failed", "connection", v.Name, "error", err)
		}
	}
	return out, nil
}

// logExpansion says what discovery and the shard made of the config, for
// the log: with thousands of connections this line is how a person sees
// which share a process took.
func logExpansion(logger *slog.Logger, cfg *config.Config, x expansion, sh shard.Shard, source string) {
	discovering := 0
	for _, c := range cfg.Connections {
		if c.Discovers() {
			discovering++
		}
	}
	attrs := []any{"connections", len(x.conns), "configured", len(cfg.Connections)}
	if discovering > 0 {
		attrs = append(attrs, "discovering", discovering, "listing_failed", len(x.failed), "vanished", len(x.vanished))
	}
	if !sh.All() {
		attrs = append(attrs, "shard", sh.String(), "shard_from", source)
	}
	logger.Info("connections to sync", attrs...)
}
