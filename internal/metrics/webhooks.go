package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span a webhook event's arrival to the target's answer:
// a tenth of a second when all is well, tens of seconds behind a run.
var latencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 2, 5, 10, 30, 60, 300}

// Webhooks are the series of the webhook receiver: registered with the
// first call of Webhooks, so a serve without webhooks shows none.
type Webhooks struct {
	events  *prometheus.CounterVec
	fetches *prometheus.CounterVec
	depth   *prometheus.GaugeVec
	latency prometheus.Histogram
}

// Webhooks returns the receiver's series, registering them once.
func (m *Metrics) Webhooks() *Webhooks {
	m.webhooksOnce.Do(func() {
		w := &Webhooks{
			events: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "chimport_webhook_events_total",
				Help: "Webhook events received, by type and outcome: delivered, gone (deleted from the target), rejected (refused by the target, in the rejected log), absent (no such member), ignored (campaign events, other audiences), malformed, overflow (the queue was full; a polling run covers it) or bad_token.",
			}, []string{"type", "outcome"}),
			fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "chimport_webhook_fetches_total",
				Help: "Mailchimp requests made to fetch the members webhook events named.",
			}, []string{"connection"}),
			depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "chimport_webhook_queue_members",
				Help: "Members waiting in a connection's webhook queue to be fetched and delivered.",
			}, []string{"connection"}),
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "chimport_webhook_latency_seconds",
				Help:    "Time from a webhook event's arrival to the target's answer for the member it named.",
				Buckets: latencyBuckets,
			}),
		}
		m.reg.MustRegister(w.events, w.fetches, w.depth, w.latency)
		m.webhooks = w
	})
	return m.webhooks
}

// Event counts one event's outcome.
func (w *Webhooks) Event(eventType, outcome string) {
	w.events.WithLabelValues(eventType, outcome).Inc()
}

// Fetches counts Mailchimp requests made for a connection's events.
func (w *Webhooks) Fetches(connection string, n int64) {
	w.fetches.WithLabelValues(connection).Add(float64(max(n, 0)))
}

// Depth sets a connection's queue depth.
func (w *Webhooks) Depth(connection string, members int) {
	w.depth.WithLabelValues(connection).Set(float64(members))
}

// Latency observes one member's arrival-to-ack time.
func (w *Webhooks) Latency(d time.Duration) { w.latency.Observe(d.Seconds()) }
