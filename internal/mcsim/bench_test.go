package mcsim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkMembersPage measures how fast the simulator serves 1000-member
// pages with the default fields over real HTTP, ten requests at a time as a
// sync at Mailchimp's connection limit would make them. The figure it exists
// for is members/s: it must stay far above 10 x 1000 / page latency, or the
// simulator, not the engine, would bound end-to-end benchmarks.
func BenchmarkMembersPage(b *testing.B) {
	const members, pageSize = 200_000, 1000
	sim := New(Options{Members: members, Seed: 1, Clock: newFakeAtStart()})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: 10}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	base := srv.URL + "/3.0/lists/" + DefaultListID + "/members?count=" + strconv.Itoa(pageSize) + "&offset="
	pages := (members + pageSize - 1) / pageSize
	var next atomic.Int64

	b.SetParallelism(5) // 10 goroutines on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			offset := int(next.Add(1)-1) % pages * pageSize
			req, _ := http.NewRequest(http.MethodGet, base+strconv.Itoa(offset), nil)
			req.SetBasicAuth("bench", sim.APIKey())
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	st := sim.Stats()
	b.ReportMetric(float64(st.MembersServed)/b.Elapsed().Seconds(), "members/s")
	b.ReportMetric(float64(st.BytesServed)/float64(max(st.MemberPages, 1)), "bytes/page")
}
