package main

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/alert/notify"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/config"
	"github.com/chimport/chimport/internal/state"
)

// newNotifier builds the notifiers the config asks for. Alerts always go
// to the log; alerts.sns_topic_arn adds SNS and alerts.webhook_url a
// webhook.
func newNotifier(ctx context.Context, cfg *config.Config, logger *slog.Logger) (alert.Notifier, error) {
	n := notify.Multi{notify.Log{Logger: logger}}
	if u := cfg.Alerts.WebhookURL; u != "" {
		n = append(n, notify.NewWebhook(u.Reveal(), nil))
	}
	if arn := cfg.Alerts.SNSTopicARN; arn != "" {
		sns, err := notify.NewSNSFromEnv(ctx, arn)
		if err != nil {
			return nil, err
		}
		n = append(n, sns)
	}
	return n, nil
}

// lagPolicyOf is a connection's lag policy: its own lag_threshold, or the
// alerts' one; 0 turns lag alerts off.
func lagPolicyOf(cfg *config.Config, c config.Connection) alert.LagPolicy {
	threshold := cfg.Alerts.LagThreshold.D()
	if c.LagThreshold > 0 {
		threshold = c.LagThreshold.D()
	}
	return alert.LagPolicy{Threshold: threshold}
}

// alertGrace bounds what `run` does to alert once a connection's run has
// ended, even if the run was interrupted: the failure already happened.
const alertGrace = 30 * time.Second

// runAlerts is what `chimport run` tells a person once a connection's run
// has ended. An error only a person can fix alerts at once, every run (no
// process stays to remember it was sent). Lag follows the policy serve
// applies, on the same incident record in the state store: one alert when
// the lag passes the threshold, one recovery notice when the connection is
// fresh again, and none twice however many runs and serve workers share
// the store. Records the target refused alert the same way: once when the
// rejected log fills, once when it is empty again.
//
// The audiences of one connection (list_id "*" or a list of ids) share its
// credentials, so one revoked token or key fails them all the same way:
// their alerts go through alert.Coalesced, and a person hears once.
type runAlerts struct {
	store  alert.Store
	notify alert.Notifier
	lag    map[string]alert.LagPolicy
	clock  clock.Clock
	logger *slog.Logger
}

// newRunAlerts alerts for the connections conns of a run (sub-connections
// included) and for the configured connections themselves, whose audiences
// may fail to be listed.
func newRunAlerts(cfg *config.Config, conns []config.Connection, store alert.Store, n alert.Notifier, clk clock.Clock, logger *slog.Logger) *runAlerts {
	lag := make(map[string]alert.LagPolicy, len(cfg.Connections)+len(conns))
	for _, c := range slices.Concat(cfg.Connections, conns) {
		lag[c.Name] = lagPolicyOf(cfg, c)
	}
	return &runAlerts{store: store, notify: coalesced(n, conns, logger), lag: lag, clock: clk, logger: logger}
}

// coalesced is n telling a person once about the audiences of one
// connection that fail alike (alert.Coalesced).
func coalesced(n alert.Notifier, conns []config.Connection, logger *slog.Logger) alert.Notifier {
	parent := map[string]string{}
	for _, c := range conns {
		if c.Parent != "" {
			parent[c.Name] = c.Parent
		}
	}
	if len(parent) == 0 {
		return n
	}
	return &alert.Coalesced{Next: n, Group: func(conn string) string { return parent[conn] }, Logger: logger}
}

// afterRun alerts on connection's run, which ended with runErr (nil on
// success). The store is read after the run, so the lag is the one the
// run left.
func (r *runAlerts) afterRun(ctx context.Context, connection string, runErr error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertGrace)
	defer cancel()
	policy := r.lag[connection]
	st, err := r.store.Connection(ctx, connection)
	now := r.clock.Now()
	var f *alert.Freshness
	if err != nil {
		r.logger.Warn("reading the connection's state for its alerts failed", "connection", connection, "error", err)
	} else {
		fresh := alert.FreshnessOf(st)
		f = &fresh
	}
	a, failed := policy.PermanentAlert(connection, runErr, f, now)
	if failed {
		if err := r.notify.Notify(ctx, a); err != nil {
			r.logger.Warn("sending an alert failed", "connection", connection, "error", err)
		}
	}
	if f == nil {
		return
	}
	// CheckRejected writes nothing when the incident agrees with the log,
	// as for nearly every connection on nearly every run. After an error
	// that needs a person, which run alerts on every run rather than once,
	// it waits for a run without one: a target refusing records
	// wholesale leaves some in the log, and one cause pages once.
	if !failed {
		if err := alert.CheckRejected(ctx, r.store, r.notify, connection, st, now); err != nil {
			r.logger.Warn("rejected records alert failed", "connection", connection, "error", err)
		}
	}
	r.checkLag(ctx, connection, st, *f, now)
}

// checkLag applies the lag policy to connection, whose state st (with
// freshness f) was just read.
func (r *runAlerts) checkLag(ctx context.Context, connection string, st state.ConnectionState, f alert.Freshness, now time.Time) {
	policy := r.lag[connection]
	// The state just read says whether the incident is open: when the
	// policy agrees, there is nothing to flip, and no write to make for
	// each of thousands of healthy connections.
	if _, open := st.Alerts[string(alert.KindLag)]; policy.Lagging(f, now) == open {
		return
	}
	if err := policy.CheckConfirmed(ctx, r.store, r.notify, connection, alert.ReadFreshness(r.store, connection, st), now); err != nil {
		r.logger.Warn("lag alert failed", "connection", connection, "error", err)
	}
}

// afterStalled judges the lag of an audience that did not run because its
// account's audiences could not be listed: the listing's own failure is
// the account's alert, and this audience falls behind like any other.
func (r *runAlerts) afterStalled(ctx context.Context, connection string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertGrace)
	defer cancel()
	st, err := r.store.Connection(ctx, connection)
	if err != nil {
		r.logger.Warn("reading the connection's state for its alerts failed", "connection", connection, "error", err)
		return
	}
	r.checkLag(ctx, connection, st, alert.FreshnessOf(st), r.clock.Now())
}

// listedAgain closes the incidents a "*" connection opened under its own
// name while its account's audiences could not be listed, now that they
// are, with a recovery notice for each.
func (r *runAlerts) listedAgain(ctx context.Context, connection string, st state.ConnectionState) {
	now := r.clock.Now()
	for kind := range st.Alerts {
		changed, err := r.store.SetAlert(ctx, connection, kind, false, now)
		if err != nil {
			r.logger.Warn("closing the incident failed", "connection", connection, "kind", kind, "error", err)
			continue
		}
		if !changed {
			continue
		}
		a := alert.Alert{Kind: alert.KindRecovered, Resolves: alert.Kind(kind), Connection: connection, At: now,
			Subject: "chimport: " + connection + " is working again",
			Problem: "Mailchimp lists the account's audiences again; each is synced as a connection of its own."}
		if err := r.notify.Notify(ctx, a); err != nil {
			r.logger.Warn("sending an alert failed", "connection", connection, "error", err)
		}
	}
}
