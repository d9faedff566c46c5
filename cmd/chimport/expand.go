package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/discover"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/mailchimp"
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
	// unlisted are those of them with no audience in the state store
	// yet: only their own state can show the failure and measure lag.
	unlisted map[string]bool
	// stalled are this shard's audiences (known from the state store)
	// of the accounts that could not be listed: they do not run, and
	// fall behind like any connection that cannot sync. stalledConns are
	// their sub-connections, for their lag policy and alert group.
	stalled      []outcome
	stalledConns []config.Connection
	// recovered are the states of this shard's "*" connections that
	// opened incidents under their own name while their listing failed,
	// and list again.
	recovered []state.ConnectionState
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
		Confirm:  func(c config.Connection, listID string) (bool, error) { return audienceGone(ctx, c, listID, shared) },
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
	byName := make(map[string]state.ConnectionState, len(known))
	for _, st := range known {
		byName[st.Connection] = st
	}
	failed := map[string]bool{}
	selectedName := discover.Selector(names)
	for _, f := range res.Failed {
		parent := f.Connection.Name
		failed[parent] = true
		err := fmt.Errorf("connection %s: %w", parent, f.Err)
		subs := 0
		for _, st := range known {
			if !strings.HasPrefix(st.Connection, parent+".") {
				continue
			}
			subs++
			if sh.Holds(st.Connection) && selectedName(st.Connection, parent) {
				out.stalledConns = append(out.stalledConns, f.Connection.Sub(strings.TrimPrefix(st.Connection, parent+".")))
				out.stalled = append(out.stalled, outcome{
					summary: engine.Summary{Connection: st.Connection, Result: state.ResultFailed},
					err:     fmt.Errorf("not synced: %w", err),
				})
			}
		}
		if sh.Holds(parent) {
			out.failed = append(out.failed, outcome{summary: engine.Summary{Connection: parent, Result: state.ResultFailed}, err: err})
			if subs == 0 {
				if out.unlisted == nil {
					out.unlisted = map[string]bool{}
				}
				out.unlisted[parent] = true
			}
		}
	}
	for _, c := range selected {
		if st, ok := byName[c.Name]; ok && c.Discovers() && !failed[c.Name] && len(st.Alerts) > 0 && sh.Holds(c.Name) {
			out.recovered = append(out.recovered, st)
		}
	}
	for _, u := range res.Unusable {
		if sh.Holds(u.Parent) {
			shared.logger.Warn("audience not synced: its id cannot name a connection; list the audiences you want in list_id instead",
				"connection", u.Parent, "list_id", u.ListID)
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

// audienceGone asks Mailchimp whether an audience the listing left out is
// really gone (GET /lists/{id} answers 404), before its sub-connection is
// reported as vanished: a listing that pages while audiences come and go
// can miss one.
func audienceGone(ctx context.Context, c config.Connection, listID string, shared clientOptions) (bool, error) {
	mc, err := newMailchimp(c, shared)
	if err != nil {
		return false, err
	}
	_, err = mc.List(ctx, listID)
	var mcErr *mailchimp.Error
	if errors.As(err, &mcErr) && mcErr.Kind == mailchimp.KindNotFound {
		return true, nil
	}
	return false, err
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
