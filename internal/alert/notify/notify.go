package notify

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/chimport/chimport/internal/alert"
)

var (
	_ alert.Notifier = Log{}
	_ alert.Notifier = Multi{}
	_ alert.Notifier = (*SNS)(nil)
	_ alert.Notifier = (*Webhook)(nil)
)

// Log writes alerts to a logger. It is the notifier every deployment has, so
// an alert is on record even when no other notifier is configured or one
// fails.
type Log struct {
	Logger *slog.Logger // nil means slog.Default()
}

// Notify logs a at error level, or at info level for a recovery.
func (l Log) Notify(ctx context.Context, a alert.Alert) error {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	level := slog.LevelError
	if a.Kind == alert.KindRecovered {
		level = slog.LevelInfo
	}
	attrs := []slog.Attr{slog.String("alert", string(a.Kind)), slog.String("connection", a.Connection)}
	add := func(key, value string) {
		if value != "" {
			attrs = append(attrs, slog.String(key, value))
		}
	}
	add("problem", a.Problem)
	if a.Status != 0 {
		attrs = append(attrs, slog.Int("status", a.Status))
	}
	if a.Lag > 0 {
		attrs = append(attrs, slog.Duration("lag", a.Lag))
	}
	if a.Threshold > 0 {
		attrs = append(attrs, slog.Duration("threshold", a.Threshold))
	}
	if a.Kind == alert.KindRejected {
		attrs = append(attrs, slog.Int64("rejected", a.Rejected))
	}
	if s := a.Sample; s != nil {
		add("member_id", s.MemberID)
		add("reason", s.Reason)
	}
	add("resolves", string(a.Resolves))
	add("action", a.Action)
	add("error", a.Error)
	if !a.ErrorAt.IsZero() {
		attrs = append(attrs, slog.Time("error_at", a.ErrorAt))
	}
	logger.LogAttrs(ctx, level, a.Subject, attrs...)
	return nil
}

// Multi sends each alert to every notifier in turn, so one failing (SNS
// unreachable) does not keep the alert from the others.
type Multi []alert.Notifier

// Notify calls every notifier and joins their errors.
func (m Multi) Notify(ctx context.Context, a alert.Alert) error {
	var errs []error
	for _, n := range m {
		errs = append(errs, n.Notify(ctx, a))
	}
	return errors.Join(errs...)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}

// humanTime is t in UTC to the minute, for sentences a person reads.
func humanTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }
