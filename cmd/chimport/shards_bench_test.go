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
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
	"github.com/chimport/chimport/internal/pgtest"
)

// BenchmarkShards measures what issue 14's platform teams run: 1,000
// Mailchimp accounts connected through OAuth, 10 audiences each, every
// account one connection with list_id "*" (10,000 sub-connections, 5
// members apiece), on a simulator answering every request after 100 ms,
// with each token's data center looked up at the simulator's OAuth
// metadata endpoint. It syncs them as 4 shards (`run --shard I/4`), first
// one after another and then side by side, each time from an empty state
// store, and prints per shard the wall time, the connections, the
// Mailchimp requests its runs made, and the peak RSS of its process; then
// the wall time of each way and the requests the simulator saw (the
// /lists and metadata calls of discovery included).
//
// The shards share a PostgreSQL store (internal/pgtest's cluster, fsync
// off, as in BenchmarkScale): processes on several machines need a shared
// one, and SQLite's is a file on one. Every shard lists every account's
// audiences, since the audiences of one account spread over the shards.
func BenchmarkShards(b *testing.B) {
	const (
		accounts    = 1000
		listsPerAcc = 10
		members     = 5
		latency     = 100 * time.Millisecond
		shards      = 4
		parallel    = 512
	)
	token := func(a int) string { return fmt.Sprintf("oauth-token-%04d-%s", a, strings.Repeat("x", 20)) }
	list := func(a, l int) string { return fmt.Sprintf("a%04dl%02d", a, l) }
	sim := mcsim.New(mcsim.Options{Members: 1, Seed: 1, Latency: latency})
	for a := range accounts {
		sim.AddAccessToken(token(a))
		for l := range listsPerAcc {
			sim.AddAccountList(token(a), list(a, l), members, int64(a*listsPerAcc+l))
		}
	}
	target := mcsim.NewTarget(mcsim.TargetOptions{Key: []string{"id", "list_id"}})
	simSrv, targetSrv := httptest.NewServer(sim), httptest.NewServer(target)
	b.Cleanup(simSrv.Close)
	b.Cleanup(targetSrv.Close)

	var conns strings.Builder
	fmt.Fprintf(&conns, "defaults:\n  mailchimp: {metadata_url: %q, settle: 0s}\n  target: {url: %q}\nconnections:\n",
		simSrv.URL+mcsim.MetadataPath, targetSrv.URL+"/records")
	for a := range accounts {
		fmt.Fprintf(&conns, "  - {name: acct%04d, mailchimp: {access_token: %q, list_id: \"*\"}}\n", a, token(a))
	}
	bin, maxrss := buildWithMaxRSS(b)

	type shardResult struct {
		way                   string
		shard                 int
		wall                  time.Duration
		connections, requests int64
		rssMiB                float64
	}
	var results []shardResult
	ways := map[string]time.Duration{}
	simRequests := map[string]int{}
	for _, way := range []string{"one after another", "side by side"} {
		cfgPath := filepath.Join(b.TempDir(), "chimport.yaml")
		if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("state: %q\n", pgtest.URL(b))+conns.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command(bin, "init", "--config", cfgPath).CombinedOutput(); err != nil {
			b.Fatalf("chimport init: %v\n%s", err, out)
		}
		sim.ResetStats()
		runShard := func(i int) shardResult {
			rssPath := filepath.Join(b.TempDir(), "maxrss")
			run := exec.Command(maxrss, rssPath, bin, "run", "--config", cfgPath, "--json", "--log-format", "json",
				"--parallel", fmt.Sprint(parallel), "--shard", fmt.Sprintf("%d/%d", i, shards))
			var stdout, stderr strings.Builder
			run.Stdout, run.Stderr = &stdout, &stderr
			start := time.Now()
			if err := run.Run(); err != nil {
				b.Errorf("shard %d/%d: %v\n%.3000s", i, shards, err, stderr.String())
				return shardResult{}
			}
			r := shardResult{way: way, shard: i, wall: time.Since(start)}
			var err error
			if r.rssMiB, err = readMaxRSS(rssPath); err != nil {
				b.Errorf("shard %d: %v", i, err)
			}
			var sums []runJSON
			if err := json.Unmarshal([]byte(stdout.String()), &sums); err != nil {
				b.Errorf("shard %d: %v", i, err)
				return r
			}
			for _, s := range sums {
				if !s.Completed {
					b.Errorf("shard %d: %s did not complete: %s", i, s.Connection, s.Error)
				}
				r.connections++
				r.requests += s.Requests
			}
			return r
		}
		start := time.Now()
		got := make([]shardResult, shards)
		if way == "side by side" {
			var wg sync.WaitGroup
			for i := range shards {
				wg.Go(func() { got[i] = runShard(i + 1) })
			}
			wg.Wait()
		} else {
			for i := range shards {
				got[i] = runShard(i + 1)
			}
		}
		ways[way] = time.Since(start)
		simRequests[way] = sim.Stats().Requests
		if b.Failed() {
			b.FailNow()
		}
		total := int64(0)
		for _, r := range got {
			total += r.connections
		}
		if total != accounts*listsPerAcc {
			b.Fatalf("%s: the shards ran %d connections, want %d, each once", way, total, accounts*listsPerAcc)
		}
		results = append(results, got...)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "shards: %d accounts (OAuth tokens) x %d audiences through list_id \"*\", as %d shards, Mailchimp at %s per request, PostgreSQL state (fsync off)\n",
		accounts, listsPerAcc, shards, latency)
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "way\tshard\twall\tconnections\tMailchimp requests\tpeak RSS\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d/%d\t%.1f s\t%d\t%d\t%.1f MiB\t\n", r.way, r.shard, shards, r.wall.Seconds(), r.connections, r.requests, r.rssMiB)
	}
	for _, way := range []string{"one after another", "side by side"} {
		fmt.Fprintf(tw, "%s\tall\t%.1f s\t%d\t%d (simulator, discovery included)\t\t\n", way, ways[way].Seconds(), accounts*listsPerAcc, simRequests[way])
	}
	tw.Flush()
	fmt.Print(table.String())
	b.ReportMetric(ways["one after another"].Seconds(), "sequential-s")
	b.ReportMetric(ways["side by side"].Seconds(), "side-by-side-s")
}

// buildWithMaxRSS builds chimport and testdata/maxrss, which runs a command
// and writes its peak RSS (see BenchmarkScale for why a helper process).
func buildWithMaxRSS(b *testing.B) (bin, maxrss string) {
	b.Helper()
	dir := b.TempDir()
	bin, maxrss = filepath.Join(dir, "chimport"), filepath.Join(dir, "maxrss")
	for _, pkg := range []struct{ out, dir string }{{bin, "."}, {maxrss, "./testdata/maxrss"}} {
		build := exec.Command("go", "build", "-o", pkg.out, pkg.dir)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", pkg.dir, err, out)
		}
	}
	return bin, maxrss
}

// readMaxRSS reads what testdata/maxrss wrote, in MiB. It reports rather
// than stops, so shards side by side can call it on their own goroutines.
func readMaxRSS(path string) (float64, error) {
	kib, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(string(kib), 64)
	if err != nil {
		return 0, fmt.Errorf("maxrss wrote %q: %v", kib, err)
	}
	return v / 1024, nil
}
