package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
)

// BenchmarkScale measures one `chimport run` over 10,000 connections:
// 1,000 API keys with 10 audiences each (5 members apiece, all to sync) on
// a simulator answering every request after 100 ms. It prints the wall
// time, the Mailchimp requests, the peak RSS of the chimport process and
// the time spent in the state store. Goal: under 60 s and 256 MiB on 2
// cores. The simulator runs in the benchmark's process, chimport in its own.
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

	dir := b.TempDir()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "state: sqlite://%s\ndefaults:\n  mailchimp: {base_url: %q, settle: 0s}\n  target: {url: %q}\nconnections:\n",
		filepath.Join(dir, "state.db"), simSrv.URL+"/3.0", targetSrv.URL+"/records")
	for k := range keys {
		for l := range listsPerKey {
			fmt.Fprintf(&cfg, "  - {name: c%s, mailchimp: {api_key: %q, list_id: %s}}\n", list(k, l), key(k), list(k, l))
		}
	}
	cfgPath := filepath.Join(dir, "chimport.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "chimport")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	b.ResetTimer()
	for range b.N {
		sim.ResetStats()
		run := exec.Command(bin, "run", "--config", cfgPath, "--json", "--parallel", fmt.Sprint(parallel), "--log-format", "json", "--full")
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
		delivered := int64(0)
		for _, s := range sums {
			if !s.Completed {
				b.Fatalf("connection %s did not complete: %s", s.Connection, s.Error)
			}
			delivered += s.Delivered
		}
		storeSecs := regexp.MustCompile(`"state_store_calls":(\d+),"state_store_mean_ms":([0-9.e+-]+)`).FindStringSubmatch(stderr.String())
		if storeSecs == nil {
			b.Fatalf("no state store time in the log:\n%.2000s", stderr.String())
		}
		rssMiB := float64(run.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
		st := sim.Stats()
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(float64(st.Requests), "requests")
		b.ReportMetric(rssMiB, "peak-RSS-MiB")
		fmt.Printf("scale: %d connections (%d keys x %d lists), %d members delivered, in %s; %d Mailchimp requests (peak %d in flight per key, %d refused); peak RSS %.1f MiB; state store: %s calls, %s ms each on average (with %d runs in parallel)\n",
			len(sums), keys, listsPerKey, delivered, wall.Round(time.Millisecond), st.Requests, st.MaxInFlight, st.LimitRejected, rssMiB, storeSecs[1], storeSecs[2], parallel)
	}
}
