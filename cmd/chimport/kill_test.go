package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/awstest"
	"github.com/chimport/chimport/internal/pgtest"
	"github.com/chimport/chimport/internal/state"
	"github.com/chimport/chimport/internal/state/sqlite"
)

// TestMain lets a test run this test binary as the chimport command, so a
// test can kill a real process with SIGKILL in the middle of a run.
func TestMain(m *testing.M) {
	if os.Getenv("CHIMPORT_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	code := m.Run()
	awstest.Stop()
	pgtest.Stop()
	os.Exit(code)
}

// TestKillDuringRunLosesNothing kills `chimport run` with SIGKILL at random
// points of a first sync, again and again while members change. Each run
// resumes from the checkpoint the killed one left. Once a run completes
// without --full, every member changed before the new watermark must be in
// the target as it is now: no kill lost anything.
func TestKillDuringRunLosesNothing(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		f := newFixture(t, 20000)
		cfgPath := f.runConfig(t, "")
		killTest(t, f, cfgPath, "newsletter", openFixtureState(t, cfgPath))
	})
	t.Run("dynamodb", func(t *testing.T) {
		awstest.Env(t, map[string]string{"DYNAMODB": awstest.DynamoDB(t)})
		f := newFixture(t, 20000)
		cfgPath := f.dynamoConfig(t, "killed", "")
		url := "dynamodb://?history_table=killed-history&failures_table=killed-failures&runs_table=killed-runs"
		killTest(t, f, cfgPath, "a1b2c3d4e5", initStore(t, url))
	})
	t.Run("postgres", func(t *testing.T) {
		f := newFixture(t, 20000)
		url := pgtest.URL(t)
		cfgPath := f.configWithState(t, url, "")
		killTest(t, f, cfgPath, "newsletter", initStore(t, url))
	})
}

// initStore makes the store's tables at url, as `chimport init` does,
// and opens it for the test to read.
func initStore(t *testing.T, url string) state.Store {
	t.Helper()
	if _, err := state.Init(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func killTest(t *testing.T, f *fixture, cfgPath, connection string, store state.Store) {
	f.sim.SetChurnPerRequest("a1b2c3d4e5", 3)
	env := append(os.Environ(), "MAILCHIMP_API_KEY="+f.sim.APIKey(), "TARGET_API_KEY="+targetAuth, "CHIMPORT_TEST_RUN_MAIN=1")
	rng := rand.New(rand.NewPCG(7, 7))

	kills := 0
	for trial := 0; ; trial++ {
		if trial == 30 {
			t.Fatal("no run completed in 30 tries")
		}
		before := f.target.Stats().RecordsReceived
		killAt := before + 1 + rng.IntN(6000)
		cmd := exec.Command(os.Args[0], "run", "--config", cfgPath, "--log-format", "json")
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if !killWhen(t, cmd, exited, func() bool { return f.target.Stats().RecordsReceived >= killAt }) {
			if err := <-exited; err != nil {
				t.Fatalf("run %d failed on its own: %v", trial, err)
			}
			break // this run completed
		}
		kills++
		t.Logf("run %d: killed after %d records", trial, f.target.Stats().RecordsReceived-before)
		// Whatever the kill interrupted, the stored watermark must keep its
		// promise. A kill that lands after the run completed (between its
		// last write and its exit) leaves a watermark; that is the end.
		checkWatermarkHonest(t, f, store, connection)
		st, err := store.Connection(context.Background(), connection)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Watermark.IsZero() {
			break
		}
	}
	if kills < 3 {
		t.Fatalf("only %d runs were killed; the test proves little", kills)
	}
	checkWatermarkHonest(t, f, store, connection)
}

// killWhen polls cond until it holds, then kills the process with SIGKILL
// and reports true; it reports false if the process exits first.
func killWhen(t *testing.T, cmd *exec.Cmd, exited chan error, cond func() bool) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return false
		default:
		}
		if cond() {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-exited
			return true
		}
		if time.Now().After(deadline) {
			t.Fatal("the run neither finished nor reached the kill point")
		}
		time.Sleep(time.Millisecond) // polling a condition, with a deadline
	}
}

// openFixtureState opens the SQLite file named in the config's state line.
func openFixtureState(t *testing.T, cfgPath string) state.Store {
	t.Helper()
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var path string
	if _, err := fmt.Sscanf(string(data), "state: sqlite://%s", &path); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// checkWatermarkHonest: every member changed before the stored watermark
// is in the target with its current email and status.
func checkWatermarkHonest(t *testing.T, f *fixture, store state.Store, connection string) {
	t.Helper()
	st, err := store.Connection(context.Background(), connection)
	if err != nil {
		t.Fatal(err)
	}
	records := f.target.Records()
	bad := 0
	for _, m := range f.sim.Members("a1b2c3d4e5") {
		if !m.LastChanged.Before(st.Watermark) {
			continue
		}
		rec, ok := records[m.ID]
		if !ok || rec["email"] != m.EmailAddress || rec["status"] != m.Status || rec["firstname"] != fmt.Sprint(m.MergeFields["FNAME"]) {
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d members changed before the watermark %s are missing or stale in the target", bad, st.Watermark)
	}
}
