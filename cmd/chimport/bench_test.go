package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFullSync measures the design's yardstick end to end: a full sync
// of 200,000 members from `chimport sim`, a separate process answering each
// Mailchimp request after 250 ms, by a separate `chimport run` process. The
// physical bound for one key is 10 requests in flight x 1000 members per
// page latency; the benchmark prints the ratio achieved and the run's peak
// RSS, for the first sync of the connection and for a --full re-sync. It
// runs at 200,000 members and again at 1,000,000, where the peak RSS shows
// that memory stays flat in audience size. Run it with `make bench` (the
// loop runs once: -benchtime 1x).
func BenchmarkFullSync(b *testing.B) {
	for _, members := range []int{200000, 1000000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) { benchmarkFullSync(b, members) })
	}
}

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
	// The first sync of a connection waits for its first page before it
	// asks for more (a wrong key must cost at most 2 requests); a --full
	// re-sync of a connection whose key is proven good does not.
	for _, kind := range []string{"first sync", "full re-sync"} {
		run := exec.Command(bin, "run", "--full", "--json", "--config", cfg, "--log-format", "json")
		var stdout, stderr strings.Builder
		run.Stdout, run.Stderr = &stdout, &stderr
		start := time.Now()
		if err := run.Run(); err != nil {
			b.Fatalf("chimport run: %v\n%s", err, stderr.String())
		}
		elapsed := time.Since(start)
		var sums []runJSON
		if err := json.Unmarshal([]byte(stdout.String()), &sums); err != nil || len(sums) != 1 {
			b.Fatalf("run output: %v\n%s", err, stdout.String())
		}
		s := sums[0]
		rssMiB := float64(run.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB on Linux
		rate := float64(s.Delivered) / elapsed.Seconds()
		bound := 10 * 1000 / latency.Seconds()
		unit := strings.ReplaceAll(kind, " ", "-")
		b.ReportMetric(rate, unit+"-members/s")
		b.ReportMetric(rate/bound, unit+"-ratio")
		b.ReportMetric(rssMiB, unit+"-peak-RSS-MiB")
		fmt.Printf("%d members, %s: %d members delivered (%d read, %d requests) in %s = %.0f members/s; bound %.0f/s; ratio %.3f; peak RSS %.1f MiB\n",
			members, kind, s.Delivered, s.Read, s.Requests, elapsed.Round(time.Millisecond), rate, bound, rate/bound, rssMiB)
	}
}
