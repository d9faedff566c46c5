package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
)

// BenchmarkScale measures one `chimport run` over 10,000 connections:
// 1,000 API keys with 10 audiences each (5 members apiece, all to sync) on
// a simulator answering every request after 100 ms. It runs the same
// 10,000 connections twice, once on SQLite and once on PostgreSQL
// (store=sqlite, then store=postgres, one after the other), and prints,
// for each, the wall time, the Mailchimp requests, the state-store calls
// and their mean latency, and the peak RSS of the chimport process; then
// the four figures of both side by side. Goal: under 60 s and 256 MiB on 2 cores. The simulator
// runs in the benchmark's process, chimport in its own (the binary built
// here), started through testdata/maxrss so that the peak RSS is the
// chimport run's alone: a child the benchmark started directly would
// report the benchmark's own peak (the simulator's 10,000 audiences, the
// target's records, the logs read back) whenever that is the larger,
// because Linux carries the parent's peak over into a vforked child at
// exec.
//
// Both stores start empty and `chimport init` prepares them before the
// timed run, so the run measures syncing, not creating tables.
//
// What the figures leave out or include:
//
//   - PostgreSQL is the throwaway cluster of internal/pgtest, on the same
//     machine, over loopback, and it runs with fsync=off,
//     synchronous_commit=off and full_page_writes=off: no commit waits for
//     its WAL to reach the disk. A production server (synchronous_commit
//     on) makes each of the run's write transactions wait for a WAL flush,
//     so there the store latency is higher by about a flush per commit
//     (group commit shares one flush among commits that arrive together),
//     and the figure here is a lower bound: the round trips and the
//     server's work, not its disk. SQLite runs as chimport runs it (WAL,
//     synchronous=NORMAL), which skips the fsync at commit too, so neither
//     row pays for one.
//   - The server's memory is its own processes': the PostgreSQL row's peak
//     RSS is chimport's without the database, while SQLite's page cache is
//     inside chimport's process and so inside its row.
//   - The store latency is timed around each store call in chimport
//     (timedStore), so it includes waiting for one of the store's
//     connections (PostgreSQL's pool of 8 by default, SQLite's queue for
//     its group commit) and, with every core busy, for the goroutine to be
//     scheduled again, not only the statements.
//   - A bound no store moves: run starts one connection of each key in
//     turn, so the 512 runs at once each have a key of their own; with one
//     request in flight per run, the requests (4 a connection with --full)
//     at 100 ms take requests x 100 ms / 512, about 7.8 s, which the
//     benchmark prints. A run's first round asks for both views at once,
//     so the true bound is lower, down to about half that.
//   - The server's CPU is taken from the same 2 cores as chimport's and the
//     simulator's.
func BenchmarkScale(b *testing.B) {
	const (
		keys        = 1000
		listsPerKey = 10
		members     = 5
		latency     = 100 * time.Millisecond
		parallel    = 512
	)
	key := func(k int) string { return fmt.Sprintf("%032x-us1", k+1) }
	list := func(k, l int) string { return fmt.Sprintf("k%04dl%02d", k, l) }
	sim := mcsim.New(mcsim.Options{APIKey: key(0), ListID: list(0, 0), Members: members, Seed: 1, Latency: latency})
	for k := range keys {
		sim.AddAPIKey(key(k))
		for l := range listsPerKey {
			if k == 0 && l == 0 {
				continue
			}
			sim.AddList(list(k, l), members, int64(k*listsPerKey+l))
		}
	}
	target := mcsim.NewTarget(mcsim.TargetOptions{})
	simSrv, targetSrv := httptest.NewServer(sim), httptest.NewServer(target)
	b.Cleanup(simSrv.Close)
	b.Cleanup(targetSrv.Close)

	// Everything but the state: line, which each store's run puts first.
	var conns strings.Builder
	fmt.Fprintf(&conns, "defaults:\n  mailchimp: {base_url: %q, settle: 0s}\n  target: {url: %q}\nconnections:\n",
		simSrv.URL+"/3.0", targetSrv.URL+"/records")
	for k := range keys {
		for l := range listsPerKey {
			fmt.Fprintf(&conns, "  - {name: c%s, mailchimp: {api_key: %q, list_id: %s}}\n", list(k, l), key(k), list(k, l))
		}
	}
	bin, maxrss := buildWithMaxRSS(b)

	type result struct {
		store     string
		wall      time.Duration
		calls     int64
		meanMS    float64
		rssMiB    float64
		requests  int64
		delivered int64
	}
	var results []result
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run("store="+store, func(b *testing.B) {
			var stateURL string
			switch store {
			case "sqlite":
				stateURL = "sqlite://" + filepath.Join(b.TempDir(), "state.db")
			case "postgres":
				stateURL = pgtest.URL(b) // a fresh schema on the throwaway cluster (fsync off: see above)
			}
			cfgPath := filepath.Join(b.TempDir(), "chimport.yaml")
			if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("state: %q\n", stateURL)+conns.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			if out, err := exec.Command(bin, "init", "--config", cfgPath).CombinedOutput(); err != nil {
				b.Fatalf("chimport init: %v\n%s", err, out)
			}

			b.ResetTimer()
			for range b.N {
				sim.ResetStats()
				// Through maxrss, which writes the run's own peak RSS to
				// rssPath: the rusage of a process the benchmark starts
				// itself would carry the benchmark's peak over (see
				// testdata/maxrss).
				rssPath := filepath.Join(b.TempDir(), "maxrss")
				run := exec.Command(maxrss, rssPath, bin, "run", "--config", cfgPath, "--json", "--parallel", fmt.Sprint(parallel), "--log-format", "json", "--full")
				var stdout, stderr strings.Builder
				run.Stdout, run.Stderr = &stdout, &stderr
				start := time.Now()
				if err := run.Run(); err != nil {
					b.Fatalf("chimport run: %v\n%.3000s", err, stderr.String())
				}
				wall := time.Since(start)
				var sums []runJSON
				if err := json.Unmarshal([]byte(stdout.String()), &sums); err != nil {
					b.Fatal(err)
				}
				if len(sums) != keys*listsPerKey {
					b.Fatalf("%d connections ran, want %d", len(sums), keys*listsPerKey)
				}
				delivered := int64(0)
				for _, s := range sums {
					if !s.Completed {
						b.Fatalf("connection %s did not complete: %s", s.Connection, s.Error)
					}
					delivered += s.Delivered
				}
				figures := storeCallsRE.FindStringSubmatch(stderr.String())
				if figures == nil {
					b.Fatalf("no state store figures in the log:\n%.2000s", stderr.String())
				}
				calls, _ := strconv.ParseInt(figures[1], 10, 64)
				meanMS, _ := strconv.ParseFloat(figures[2], 64)
				rssMiB, err := readMaxRSS(rssPath)
				if err != nil {
					b.Fatal(err)
				}
				st := sim.Stats()
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(float64(st.Requests), "requests")
				b.ReportMetric(float64(calls), "store-calls")
				b.ReportMetric(meanMS, "store-mean-ms")
				b.ReportMetric(rssMiB, "peak-RSS-MiB")
				fmt.Printf("scale, %s: %d connections (%d keys x %d lists), %d members delivered, in %s; %d Mailchimp requests (peak %d in flight per key, %d refused); peak RSS %.1f MiB; state store: %d calls, %.3f ms each on average (with %d runs in parallel)\n",
					store, len(sums), keys, listsPerKey, delivered, wall.Round(time.Millisecond), st.Requests, st.MaxInFlight, st.LimitRejected, rssMiB, calls, meanMS, parallel)
				results = append(results, result{store: store, wall: wall, calls: calls, meanMS: meanMS, rssMiB: rssMiB,
					requests: int64(st.Requests), delivered: delivered})
			}
		})
	}

	var table strings.Builder
	fmt.Fprintf(&table, "scale: %d connections, %d runs in parallel, Mailchimp at %s per request; PostgreSQL with fsync off\n",
		keys*listsPerKey, parallel, latency)
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\twall\tstore calls\tmean store latency\tpeak RSS\tMailchimp requests\tdelivered\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.1f s\t%d\t%.3f ms\t%.1f MiB\t%d\t%d\t\n",
			r.store, r.wall.Seconds(), r.calls, r.meanMS, r.rssMiB, r.requests, r.delivered)
	}
	tw.Flush()
	if len(results) > 0 {
		inFlight := parallel
		fmt.Fprintf(&table, "bound with %d runs at once: %d Mailchimp requests x %s / %d in flight = %.1f s\n",
			parallel, results[0].requests, latency, inFlight, (time.Duration(results[0].requests) * latency / time.Duration(inFlight)).Seconds())
	}
	fmt.Print(table.String())
}
