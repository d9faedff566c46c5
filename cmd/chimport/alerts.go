package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/alert/notify"
	"github.com/chimport/chimport/internal/config"
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

// alertIfNeeded tells a person about a failed run at once when only a
// person can fix it (a rejected key, a missing list, a target refusing the
// credentials). Transient failures are retried by the next run instead.
func alertIfNeeded(ctx context.Context, n alert.Notifier, logger *slog.Logger, connection string, runErr error, now time.Time) {
	if n == nil || runErr == nil {
		return
	}
	a, ok := alert.NeedsPerson(connection, runErr, now)
	if !ok {
		return
	}
	// Send even when the run was interrupted: the alert is about the
	// failure, which already happened.
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := n.Notify(nctx, a); err != nil {
		logger.Warn("sending an alert failed", "connection", connection, "error", err)
	}
}
