package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFullSync measures the design's yardstick end to end: a full sync
// of 200,000 members from `chimport sim`, a separate process answering each
// Mailchimp request after 250 ms, by a separate `chimport run` process. The
// physical bound for one key is 10 requests in flight x 1000 members per
// page latency. It prints a line for each of three runs of the connection:
// its first sync; a reconcile right after it (`run --reconcile`: every
// member id scanned, measured in members scanned per second against the
// same bound); and a --full re-sync, which reconciles too. Each line gives
// the wall time, the ratio to the bound, the Mailchimp requests, the
// state-store calls and the run's peak RSS. It runs at 200,000 members and
// again at 1,000,000, where the peak RSS shows that memory stays flat in
// audience size. Run it with `make bench` (the loop runs once: -benchtime
// 1x).
//
// The reconcile finds nothing to delete: `chimport sim` offers no way to
// delete a member for good once it serves (no flag, no endpoint), so
// nothing changes between the first sync and the reconcile, and the
// reconcile's cost is its scan.
func BenchmarkFullSync(b *testing.B) {
	for _, members := range []int{200000, 1000000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchmarkFullSync(b, members) })
	}
}

// storeCallsRE finds the state-store figures in run's "all runs finished"
// log line (--log-format json).
var storeCallsRE = regexp.MustCompile(`"state_store_calls":(\d+),"state_store_mean_ms":([0-9.e+-]+)`)

func benchmarkFullSync(b *testing.B, members int) {
	const (
		latency = 250 * time.Millisecond
		key     = "0123456789abcdef0123456789abcdef-us6"
	)
	dir := b.TempDir()
	bin := filepath.Join(dir, "chimport")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}

	sim := exec.Command(bin, "sim", "--listen", "127.0.0.1:0", "--target-listen", "127.0.0.1:0",
		"--members", fmt.Sprint(members), "--latency", latency.String(), "--api-key", key, "--log-format", "json")
	simOut, err := sim.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	addrs := map[string]string{}
	re := regexp.MustCompile(`^  (mailchimp base_url|target url): +(\S+)`)
	sc := bufio.NewScanner(simOut)
	for len(addrs) < 2 && sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			addrs[m[1]] = m[2]
		}
	}
	if len(addrs) < 2 {
		b.Fatalf("sim did not print its addresses: %v", sc.Err())
	}
	go func() { // keep draining so the simulator never blocks on stdout
		for sc.Scan() {
		}
	}()
	cfg := filepath.Join(dir, "chimport.yaml")
	err = os.WriteFile(cfg, []byte(fmt.Sprintf(`state: sqlite://%s
connections:
  - name: bench
    mailchimp: {api_key: %q, list_id: a1b2c3d4e5, base_url: %q, settle: 0s}
    target: {url: %q}
`, filepath.Join(dir, "state.db"), key, addrs["mailchimp base_url"], addrs["target url"])), 0o600)
	if err != nil {
		b.Fatal(err)
	}

	b.StopTimer()
	bound := 10 * 1000 / latency.Seconds()
	// The first sync of a fresh connection reads everything without
	// --full (which would reconcile too) and waits for its first page
	// before it asks for more (a wrong key must cost at most 2 requests).
	// The reconcile follows with nothing changed. A --full re-sync of a
	// connection whose key is proven good asks for its first pages at
	// once, and reconciles after its window.
	for _, r := range []struct {
		kind, label string
		flag        string
		reconcile   string // the reconcile_reason the run must report, "" for none
	}{
		{"first sync", "first sync", "", ""},
		{"reconcile", "reconcile after the first sync (nothing changed)", "--reconcile", "asked"},
		{"full re-sync", "--full re-sync (reconciles too)", "--full", "full"},
	} {
		args := []string{"run", "--json", "--config", cfg, "--log-format", "json"}
		if r.flag != "" {
			args = append(args, r.flag)
		}
		run := exec.Command(bin, args...)
		var stdout, stderr strings.Builder
		run.Stdout, run.Stderr = &stdout, &stderr
		start := time.Now()
		if err := run.Run(); err != nil {
			b.Fatalf("chimport %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		elapsed := time.Since(start)
		var sums []runJSON
		if err := json.Unmarshal([]byte(stdout.String()), &sums); err != nil || len(sums) != 1 {
			b.Fatalf("run output: %v\n%s", err, stdout.String())
		}
		s := sums[0]
		if s.Reconciled != (r.reconcile != "") || s.ReconcileReason != r.reconcile {
			b.Fatalf("%s: reconciled %v (reason %q), want reason %q", r.kind, s.Reconciled, s.ReconcileReason, r.reconcile)
		}
		store := storeCallsRE.FindStringSubmatch(stderr.String())
		if store == nil {
			b.Fatalf("%s: no state-store figures in the log:\n%.2000s", r.kind, stderr.String())
		}
		calls, _ := strconv.Atoi(store[1])
		rssMiB := float64(run.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB on Linux
		work, what := s.Delivered, fmt.Sprintf("%d members delivered (%d read)", s.Delivered, s.Read)
		if r.kind == "reconcile" {
			// The scan pages every member id: the audience's members.
			work, what = s.Members, fmt.Sprintf("%d members scanned, %d tombstoned", s.Members, s.Tombstoned)
		}
		rate := float64(work) / elapsed.Seconds()
		unit := strings.ReplaceAll(r.kind, " ", "-")
		b.ReportMetric(elapsed.Seconds(), unit+"-wall-s")
		b.ReportMetric(rate, unit+"-members/s")
		b.ReportMetric(rate/bound, unit+"-ratio")
		b.ReportMetric(float64(s.Requests), unit+"-requests")
		b.ReportMetric(float64(calls), unit+"-store-calls")
		b.ReportMetric(rssMiB, unit+"-peak-RSS-MiB")
		fmt.Printf("%d members, %s: %s in %s = %.0f members/s; bound %.0f/s; ratio %.3f; %d Mailchimp requests; %d state-store calls (%s ms each on average); peak RSS %.1f MiB\n",
			members, r.label, what, elapsed.Round(time.Millisecond), rate, bound, rate/bound, s.Requests, calls, store[2], rssMiB)
	}
}
