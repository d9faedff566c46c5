package worker

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/alert"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/engine"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
	"github.com/chimport/chimport/internal/target"
)

func refused(ids []state.MemberID, reason string, at time.Time) []state.Rejection {
	out := make([]state.Rejection, len(ids))
	for i, id := range ids {
		out[i] = state.Rejection{Member: id, Key: id.String(), Status: 422, Reason: reason, LastAttempt: at}
	}
	return out
}

// A connection whose target starts refusing records pages once, however
// many runs and beats follow while the log holds records, and sends one
// recovery notice once the log is empty; the gauge follows the log.
func TestRejectedRecordsAlertOncePerIncident(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "shop")
	ids := memberIDs(0, 2)
	var gauges []float64
	run := func() {
		t.Helper()
		clk.Advance(time.Hour)
		must(t, w.runConnection(ctx, "shop", fakeLease()))
		w.checkLag(ctx)
		v, ok := gauge(t, w.Metrics(), "chimport_records_rejected", "shop")
		if !ok {
			t.Fatal("no chimport_records_rejected series for shop")
		}
		gauges = append(gauges, v)
	}
	run() // nothing refused
	must(t, store.RecordRejections(ctx, "shop", refused(ids, `{"error":"invalid email"}`, clk.Now())))
	run()
	run() // still refused: no second alert
	must(t, store.ClearRejections(ctx, "shop", ids[:1]))
	run()
	must(t, store.ClearRejections(ctx, "shop", ids[1:]))
	run()
	run()

	if diff := cmp.Diff([]string{"rejected shop", "recovered rejected shop"}, rec.kinds()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{0, 2, 2, 1, 0, 0}, gauges); diff != "" {
		t.Errorf("chimport_records_rejected after each run (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.Rejected != 2 || a.Sample == nil || a.Sample.Reason != `{"error":"invalid email"}` || a.Status != 422 {
		t.Errorf("rejected alert = %+v, want 2 records, one sample with the target's answer", a)
	}
}

// The lag beat alerts too: a log another process filled (a `chimport run`
// on the same store that died before it could alert) is noticed without a
// run of this worker.
func TestLagBeatAlertsOnRejectedRecords(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
	must(t, store.RecordRejections(ctx, "shop", refused(memberIDs(0, 1), "no", start)))
	w.checkLag(ctx)
	w.checkLag(ctx)
	if diff := cmp.Diff([]string{"rejected shop"}, rec.kinds()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
	if v, _ := gauge(t, w.Metrics(), "chimport_records_rejected", "shop"); v != 1 {
		t.Errorf("gauge = %v, want 1", v)
	}
}

// The status page's rows carry the count and one record, on one line.
func TestStatusRowsShowRejectedRecords(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop", "clean")
	ids := memberIDs(0, 3)
	must(t, store.RecordRejections(ctx, "shop", refused(ids[:2], "old", start.Add(-time.Hour))))
	must(t, store.RecordRejections(ctx, "shop", refused(ids[2:], "bad\nemail", start)))
	rows, err := w.StatusRows(ctx)
	must(t, err)
	type rejected struct {
		Count  int64
		Sample string
	}
	got := []rejected{{rows[0].Rejected, rows[0].RejectedSample}, {rows[1].Rejected, rows[1].RejectedSample}}
	want := []rejected{{3, "member " + ids[2].String() + `: HTTP 422: bad\nemail`}, {0, ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rejected records on the rows (-want +got):\n%s", diff)
	}
}

// While a run retries, the store holds the error it retries (the engine
// notes it); a lag alert that comes meanwhile quotes it, dated when it
// was noted, and the status page shows it.
func TestLagAlertQuotesTheErrorARunIsRetrying(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop")
	must(t, store.StartRun(ctx, "shop", start.Add(-4*time.Hour))) // never completed: lagging
	noted := start.Add(-30 * time.Second)
	const retrying = "mailchimp: GET /lists/l1/members: 503 Service Unavailable (retrying)"
	must(t, store.NoteError(ctx, "shop", retrying, noted))

	w.checkLag(ctx)
	if diff := cmp.Diff([]string{"lag shop"}, rec.kinds()); diff != "" {
		t.Fatalf("alerts (-want +got):\n%s", diff)
	}
	if a := rec.got[0]; a.Error != retrying || !a.ErrorAt.Equal(noted) {
		t.Errorf("lag alert error = %q at %v, want %q at %v", a.Error, a.ErrorAt, retrying, noted)
	}
	rows, err := w.StatusRows(ctx)
	must(t, err)
	if rows[0].LastError != retrying {
		t.Errorf("status row error = %q, want %q", rows[0].LastError, retrying)
	}
}

var _ alert.Store = Store(nil)

// A worker that starts sets every connection's rejected gauge from the
// store before anything runs, 0 for an empty log.
func TestStartupSetsTheRejectedGauge(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	must(t, store.RecordRejections(ctx, "shop", refused(memberIDs(0, 2), "no", start)))
	must(t, store.StartRun(ctx, "news", start))
	w := newTestWorker(t, store, clk, rec, &fakeEngine{store: store, clk: clk}, "shop", "news")
	w.setGauges(ctx)
	for name, want := range map[string]float64{"shop": 2, "news": 0} {
		if v, ok := gauge(t, w.Metrics(), "chimport_records_rejected", name); !ok || v != want {
			t.Errorf("%s: chimport_records_rejected = %v, %v; want %v", name, v, ok, want)
		}
	}
}

// A run that stops because the target refuses records wholesale pages
// once, as an error that needs a person, although its other batches left
// records in the log: the rejected alert waits until the error is over.
func TestARunStoppedByRefusalsPagesOnce(t *testing.T) {
	ctx := context.Background()
	store, clk, rec := memory.New(), clock.NewManual(start), &recorder{}
	eng := &fakeEngine{store: store, clk: clk}
	w := newTestWorker(t, store, clk, rec, eng, "shop")
	eng.outcomes = map[string]error{"shop": &engine.RefusalsError{Connection: "shop", Systematic: true, Tried: 4,
		Err: &target.Error{Connection: "shop", Status: 422, Body: "unknown field"}}}
	eng.onRun = func(name string) {
		must(t, store.RecordRejections(ctx, name, refused(memberIDs(0, 3), "unknown field", clk.Now())))
	}
	clk.Advance(time.Hour)
	must(t, w.runConnection(ctx, "shop", fakeLease())) // a failure it logged
	w.checkLag(ctx)
	if diff := cmp.Diff([]string{"permanent_error shop"}, rec.kinds()); diff != "" {
		t.Errorf("alerts (-want +got):\n%s", diff)
	}
}
