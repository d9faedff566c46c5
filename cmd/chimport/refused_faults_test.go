package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
)

// TestRefusalsUnderTargetFaults: the target refuses 5 members' records
// and answers 503 to 20% of all requests meanwhile. The retries and the
// bisection together lose nothing and log each refused member once, run
// after run, in SQLite, DynamoDB and PostgreSQL.
func TestRefusalsUnderTargetFaults(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		refusalsUnderFaults(t, newRefusals(t, 3000))
	})
	t.Run("dynamodb", func(t *testing.T) {
		awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
		url := "dynamodb://?history_table=refused-history&failures_table=refused-failures&runs_table=refused-runs"
		if _, err := state.Init(context.Background(), url); err != nil {
			t.Fatal(err)
		}
		refusalsUnderFaults(t, newRefusalsOn(t, 3000, url))
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.URL(t)
		initStore(t, url)
		refusalsUnderFaults(t, newRefusalsOn(t, 3000, url))
	})
}

func refusalsUnderFaults(t *testing.T, x *refusals) {
	all := x.ids(0, 3000)
	refused := []string{all[3], all[700], all[701], all[1999], all[2998]}
	x.target.RefuseIDs(refused...)
	x.target.SetFailRate(0.2, 503)

	// logged checks the rejected log holds each refused member once.
	logged := func(when string) {
		t.Helper()
		var ids []string
		for _, r := range x.rejected(t) {
			ids = append(ids, r.MemberID)
		}
		slices.Sort(ids)
		want := slices.Sorted(slices.Values(refused))
		if !slices.Equal(ids, want) {
			t.Errorf("%s: the rejected log holds %v, want each of %v once", when, ids, want)
		}
		if got := x.wrong(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
			t.Errorf("%s: %d members wrong in the target (%v), want only the %d refused", when, len(got), got, len(want))
		}
	}
	code, sum := x.run(t)
	t.Logf("first sync under faults: exit %d, %d delivered, %d refused, %d target requests (%d answered 503)",
		code, sum.Delivered, sum.Refused, x.target.Stats().Posts, x.target.Stats().ByStatus[503])
	if code != exitRejected || sum.Rejected != 5 {
		t.Fatalf("first sync under faults: exit %d, %d rejected; want exit 3, 5 rejected\n%s", code, sum.Rejected, sum.Error)
	}
	logged("after the first sync")

	// Two of the refused members change, and 100 others: all come through
	// the normal path too, and still one entry each.
	x.change(t, "Changed", append(all[1000:1100], refused[1], refused[3])...)
	if code, sum := x.run(t); code != exitRejected || sum.Rejected != 5 {
		t.Fatalf("second run under faults: exit %d, %d rejected; want exit 3, 5 rejected\n%s", code, sum.Rejected, sum.Error)
	}
	logged("after the second run")
	for _, r := range x.rejected(t) {
		if r.Attempts < 2 {
			t.Errorf("member %s: %d attempts after two runs", r.MemberID, r.Attempts)
		}
	}

	x.target.AcceptIDs(refused...)
	if code, sum := x.run(t); code != exitOK || sum.Rejected != 0 {
		t.Fatalf("run once the target accepts them: exit %d, %d rejected\n%s", code, sum.Rejected, sum.Error)
	}
	if got := x.wrong(); len(got) != 0 {
		t.Errorf("%d members wrong in the target at the end", len(got))
	}
	x.noSecrets(t)
}

// TestKillDuringBisectionLosesNothing kills `chimport run` with SIGKILL
// while it splits refused batches (the target answers slowly, so the
// bisection takes long enough to be hit), again and again. The run after
// the kills completes: every member is delivered but the refused ones,
// and those are in the rejected log once each.
func TestKillDuringBisectionLosesNothing(t *testing.T) {
	sim := mcsim.New(mcsim.Options{APIKey: "0123456789abcdef0123456789abcdef-us6", ListID: outageList, Members: 4000, Seed: 13})
	target := mcsim.NewTarget(mcsim.TargetOptions{Auth: targetAuth, Latency: 2 * time.Millisecond})
	simSrv, targetSrv := httptest.NewServer(sim), httptest.NewServer(target)
	t.Cleanup(simSrv.Close)
	t.Cleanup(targetSrv.Close)
	f := &fixture{sim: sim, target: target, baseURL: simSrv.URL + "/3.0", targetURL: targetSrv.URL + "/records"}
	// Batches of 250 with about 4 refused records each: four in flight,
	// each logging its refusals when its bisection ends, so kills land
	// before, between and after batches' writes to the log.
	cfg := f.runConfig(t, "      batch_size: 250\n")
	vars := map[string]string{"MAILCHIMP_API_KEY": sim.APIKey(), "TARGET_API_KEY": targetAuth}
	if r := runCLI(t, context.Background(), vars, "run", "--config", cfg); r.code != exitOK {
		t.Fatalf("first sync: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// 2,000 changes, 30 of them refused.
	members := sim.Members(outageList)
	var refused []string
	for i, m := range members[:2000] {
		must(t, sim.Change(outageList, m.ID, func(mm *mcsim.Member) { mm.MergeFields["FNAME"] = "Round 1" }))
		if i%67 == 5 {
			refused = append(refused, m.ID)
		}
	}
	target.RefuseIDs(refused...)
	changedAt := time.Now()
	// The window of a run ends a second before it starts, in whole seconds.
	waitUntil(t, "the clock to pass the changes", 5*time.Second, func() bool {
		return time.Now().Add(-time.Second).Truncate(time.Second).After(changedAt)
	})

	store := openFixtureState(t, cfg)
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_TEST_RUN_MAIN=1")
	rng := rand.New(rand.NewPCG(11, 11))
	kills := 0
	for trial := 0; ; trial++ {
		if trial == 20 {
			t.Fatal("no run completed in 20 tries")
		}
		st, err := store.Connection(context.Background(), "newsletter")
		must(t, err)
		// Past the retries of what is logged already, into the bisection.
		killAt := target.Stats().Refused + int(st.Rejected.Count) + 1 + rng.IntN(150)
		cmd := exec.Command(os.Args[0], "run", "--config", cfg, "--log-format", "json")
		cmd.Env = env
		must(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if kills < 4 && killWhen(t, cmd, exited, func() bool { return target.Stats().Refused >= killAt }) {
			kills++
			log := checkLogOnlyRefused(t, store, refused)
			t.Logf("run %d: killed at the target's %dth refusal; %d records in the log", trial, target.Stats().Refused, len(log))
			continue
		}
		err = <-exited
		t.Logf("run %d completed: the target refused %d requests in all", trial, target.Stats().Refused)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != exitRejected {
			t.Fatalf("the run after %d kills: %v, want exit %d", kills, err, exitRejected)
		}
		break
	}
	if kills < 3 {
		t.Fatalf("only %d runs were killed; the test proves little", kills)
	}
	log := checkLogOnlyRefused(t, store, refused)
	if len(log) != len(refused) {
		t.Errorf("the rejected log holds %d members, want the %d refused", len(log), len(refused))
	}
	records := target.Records()
	wrong := 0
	for _, m := range sim.Members(outageList) {
		if slices.Contains(refused, m.ID) {
			continue
		}
		if r, ok := records[m.ID]; !ok || r["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) || r["email"] != m.EmailAddress {
			wrong++
		}
	}
	if wrong > 0 {
		t.Errorf("%d members that the target accepts are missing or stale in it", wrong)
	}
}

// checkLogOnlyRefused checks the rejected log holds only refused members,
// each once, and returns it.
func checkLogOnlyRefused(t *testing.T, store state.Store, refused []string) []state.Rejection {
	t.Helper()
	log, err := store.RejectedLog(context.Background(), "newsletter")
	must(t, err)
	seen := map[state.MemberID]bool{}
	for _, r := range log {
		if seen[r.Member] || !slices.Contains(refused, r.Member.String()) {
			t.Errorf("the rejected log holds %s twice, or though the target accepts it", r.Member)
		}
		seen[r.Member] = true
	}
	return log
}
