package engine

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/clock"
	"github.com/chimport/chimport/internal/mailchimp"
	"github.com/chimport/chimport/internal/mapping"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/retry"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/memory"
	"github.com/chimport/chimport/internal/target"
)

// The simulators' in-process doors are what the unit tests stand in with.
var (
	_ MemberSource = (*mcsim.Source)(nil)
	_ Sink         = (*mcsim.Target)(nil)
)

const (
	testKey  = "0123456789abcdef0123456789abcdef-us6"
	testList = "a1b2c3d4e5"
)

var testStart = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// world is a Mailchimp simulator, a target simulator and a state store,
// all on one fake clock, with an engine wired to them. End-to-end tests
// reach the simulators over HTTP through the real clients; unit tests of
// the paging proof (inProcess) call them in process.
type world struct {
	clk     *clock.Fake
	sim     *mcsim.Mailchimp
	target  *mcsim.Target
	store   state.Store
	engine  *Engine
	mapping *mapping.Mapping
	mcURL   string
	tgtURL  string
	limiter *mailchimp.Limiter
	// inProcess: jobs read members from the simulator's in-process Source
	// and apply batches to the target simulator's in-process door.
	inProcess bool
}

type worldOptions struct {
	members   int
	inclusive bool
	seed      int64
	store     string // "sqlite" (the default), "dynamodb" (dynalite), "postgres" (pgtest's cluster) or "memory"
	// inProcess leaves HTTP out: the in-process source and target, and the
	// memory store unless store says otherwise.
	inProcess bool
}

// stores are the state stores the end-to-end tests run against: every
// real one. DynamoDB runs on dynalite, PostgreSQL on pgtest's throwaway
// cluster; a test fails, never skips, when either cannot start.
var stores = []string{"sqlite", "dynamodb", "postgres"}

var tableSeq atomic.Int64

// openStore opens a fresh store of the given kind for one test.
func openStore(t *testing.T, kind string) state.Store {
	t.Helper()
	ctx := context.Background()
	var url string
	switch kind {
	case "memory":
		return memory.New()
	case "", "sqlite":
		url = "sqlite://" + filepath.Join(t.TempDir(), "state.db")
	case "dynamodb":
		awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
		n := tableSeq.Add(1)
		url = fmt.Sprintf("dynamodb://?history_table=history%d&failures_table=failures%d&runs_table=runs%d", n, n, n)
		if _, err := state.Init(ctx, url); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		url = pgtest.URL(t) // a schema of its own, which init creates
		if _, err := state.Init(ctx, url); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown store %q", kind)
	}
	store, err := state.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	clk := clock.NewFake(testStart)
	sim := mcsim.New(mcsim.Options{APIKey: testKey, ListID: testList, Members: o.members, Seed: o.seed, Inclusive: o.inclusive, Clock: clk})
	tgt := mcsim.NewTarget(mcsim.TargetOptions{Seed: o.seed})
	mp, err := mapping.New(mapping.DefaultFields())
	if err != nil {
		t.Fatal(err)
	}
	if o.inProcess {
		if o.store == "" {
			o.store = "memory"
		}
		store := openStore(t, o.store)
		return &world{clk: clk, sim: sim, target: tgt, store: store, mapping: mp, inProcess: true,
			engine: &Engine{Store: store, Clock: clk}}
	}
	simSrv := httptest.NewServer(sim)
	tgtSrv := httptest.NewServer(tgt)
	t.Cleanup(simSrv.Close)
	t.Cleanup(tgtSrv.Close)
	store := openStore(t, o.store)
	return &world{
		clk: clk, sim: sim, target: tgt, store: store, mapping: mp,
		engine:  &Engine{Store: store, Clock: clk},
		mcURL:   simSrv.URL + "/3.0",
		tgtURL:  tgtSrv.URL + "/records",
		limiter: mailchimp.NewLimiter(10),
	}
}

// job builds a job with fresh clients, so their stats count one run.
func (w *world) job(t *testing.T) Job {
	t.Helper()
	if w.inProcess {
		return Job{Connection: "test", ListID: testList, Settle: 0, Mapping: w.mapping, BatchSize: 500,
			Mailchimp: w.sim.Source(testKey), Sink: w.target}
	}
	policy := retry.Policy{Clock: w.clk, MaxAttempts: 6}
	mc, err := mailchimp.New(mailchimp.Config{APIKey: testKey, BaseURL: w.mcURL, Connection: "test", Limiter: w.limiter, Retry: policy})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := target.NewHTTP(target.HTTPConfig{Connection: "test", URL: w.tgtURL, Retry: policy,
		Deletes: target.DeletesTombstone, IDKey: "id", Tombstone: map[string]any{"status": "deleted"}})
	if err != nil {
		t.Fatal(err)
	}
	return Job{Connection: "test", ListID: testList, Settle: 0, Mapping: w.mapping, BatchSize: 500, Mailchimp: mc, Sink: sink}
}

func (w *world) run(t *testing.T, ctx context.Context, full bool) (Summary, error) {
	t.Helper()
	job := w.job(t)
	job.Full = full
	return w.engine.Run(ctx, job)
}

// pass advances the clock so that what changed so far lies inside the next
// window (settle is 0, the window ends a second back).
func (w *world) pass() { w.clk.Advance(5 * time.Second) }

// want is the record the target should hold for member m under the
// default mapping, built straight from the simulator's member (the mapping
// package has its own tests; here speed matters, with 30,000 members).
func want(m mcsim.Member) map[string]any {
	return map[string]any{
		"id":        m.ID,
		"firstname": m.MergeFields["FNAME"],
		"lastname":  m.MergeFields["LNAME"],
		"email":     m.EmailAddress,
		"status":    m.Status,
	}
}

// checkWatermarkHonest proves invariants 1 and 2: every member whose
// last_changed is before the stored watermark is in the target with its
// current values.
func (w *world) checkWatermarkHonest(t *testing.T) {
	t.Helper()
	st, err := w.store.Connection(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	w.compare(t, func(m mcsim.Member) bool { return m.LastChanged.Before(st.Watermark) }, "before the watermark "+st.Watermark.String())
}

// checkInSync proves the target holds every member of the audience with
// its current values.
func (w *world) checkInSync(t *testing.T) {
	t.Helper()
	w.compare(t, func(mcsim.Member) bool { return true }, "of the audience")
}

func (w *world) compare(t *testing.T, include func(mcsim.Member) bool, what string) {
	t.Helper()
	if bad, checked, first := w.mismatches(include); bad > 0 {
		t.Fatalf("%d of %d members %s are missing or stale in the target; first: %s", bad, checked, what, first)
	}
}

// mismatches counts the members include selects that are missing or stale
// in the target, and describes the first.
func (w *world) mismatches(include func(mcsim.Member) bool) (bad, checked int, first string) {
	records := w.target.Records()
	for _, m := range w.sim.Members(testList) {
		if !include(m) {
			continue
		}
		checked++
		if got := records[m.ID]; !holds(got, m) {
			if bad == 0 {
				first = fmt.Sprintf("member %s (last_changed %s) (-want +got):\n%s", m.ID, m.LastChanged, cmp.Diff(want(m), got))
			}
			bad++
		}
	}
	return bad, checked, first
}

// holds reports whether record is want(m), field by field: the tests
// compare tens of thousands of records after every run, and building a map
// per member to compare with reflect.DeepEqual was most of their time.
func holds(record map[string]any, m mcsim.Member) bool {
	same := func(got, want any) bool {
		if w, ok := want.(string); ok {
			g, ok := got.(string)
			return ok && g == w
		}
		return reflect.DeepEqual(got, want)
	}
	return len(record) == 5 && same(record["id"], m.ID) && same(record["email"], m.EmailAddress) &&
		same(record["status"], m.Status) && same(record["firstname"], m.MergeFields["FNAME"]) &&
		same(record["lastname"], m.MergeFields["LNAME"])
}
