package mcsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConnectionLimitPerKey(t *testing.T) {
	s := newSimServer(t, Options{Members: 5})
	s.sim.AddAPIKey("other-us1")
	arrived := make(chan struct{})
	release := make(chan struct{})
	// Requests with the first key wait here, holding their slot, until the
	// test lets them go: ten in flight, deterministically.
	s.sim.testHookAcquired = func(key string) {
		if key == s.sim.APIKey() {
			arrived <- struct{}{}
			<-release
		}
	}
	results := make(chan int, 10)
	for range 10 {
		go func() {
			req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/3.0/ping", nil)
			req.SetBasicAuth("u", s.sim.APIKey())
			resp, err := s.srv.Client().Do(req)
			if err != nil {
				results <- -1
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	for range 10 {
		<-arrived
	}

	eleventh := s.get("/3.0/ping", nil)
	if eleventh.status != http.StatusTooManyRequests {
		t.Errorf("11th concurrent request: status %d, want 429", eleventh.status)
	}
	if p := decodeProblem(t, eleventh); p.Title != "Too Many Requests" || p.Status != 429 {
		t.Errorf("problem = %+v", p)
	}
	if ra := eleventh.header.Get("Retry-After"); ra != "" {
		t.Errorf("Retry-After = %q; Mailchimp sends none", ra)
	}
	if other := s.request("other-us1", "/3.0/ping", nil); other.status != http.StatusOK {
		t.Errorf("another key has its own limit, got status %d", other.status)
	}

	close(release)
	for range 10 {
		if status := <-results; status != http.StatusOK {
			t.Errorf("held request: status %d, want 200", status)
		}
	}
	st := s.sim.Stats()
	want := Stats{
		Requests:      12,
		OtherRequests: 12, // pings
		ByStatus:      map[int]int{200: 11, 429: 1},
		MaxInFlight:   11, // the refused attempt counts: it shows the client tried
		LimitRejected: 1,
		BytesServed:   st.BytesServed,
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	// Slots are released: the next request goes through.
	s.sim.testHookAcquired = nil
	if r := s.get("/3.0/ping", nil); r.status != http.StatusOK {
		t.Errorf("after the burst: status %d", r.status)
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		fault Fault
		check func(t *testing.T, resp *http.Response, err error)
	}{
		{FaultServerHTML, func(t *testing.T, resp *http.Response, err error) {
			body := mustRead(t, resp, err)
			if resp.StatusCode != 502 && resp.StatusCode != 503 {
				t.Errorf("status %d, want 502 or 503", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/html" || !strings.HasPrefix(body, "<html>") {
				t.Errorf("Content-Type %q, body %q: want HTML", ct, body)
			}
		}},
		{FaultRateLimit, func(t *testing.T, resp *http.Response, err error) {
			body := mustRead(t, resp, err)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
				t.Errorf("status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if !strings.Contains(body, `"title":"Too Many Requests"`) {
				t.Errorf("body %s", body)
			}
		}},
		{FaultForbiddenNoBody, func(t *testing.T, resp *http.Response, err error) {
			body := mustRead(t, resp, err)
			if resp.StatusCode != 403 || body != "" {
				t.Errorf("status %d, body %q: want 403 and nothing", resp.StatusCode, body)
			}
		}},
		{FaultDrop, func(t *testing.T, resp *http.Response, err error) {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got status %d, want a transport error", resp.StatusCode)
			}
		}},
		{FaultTruncate, func(t *testing.T, resp *http.Response, err error) {
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength <= 0 {
				t.Errorf("status %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
			}
			var page membersPage
			if err := json.NewDecoder(resp.Body).Decode(&page); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("decoding a truncated body: err = %v, want io.ErrUnexpectedEOF", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			s := newSimServer(t, Options{Members: 300, Seed: 9})
			// A fresh connection per request: Go's Transport would silently
			// retry a GET dropped on a reused connection.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			s.sim.FailNext(tc.fault)
			req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/3.0/lists/"+DefaultListID+"/members?count=300", nil)
			req.SetBasicAuth("u", s.sim.APIKey())
			resp, err := client.Do(req)
			tc.check(t, resp, err)

			// The queue is used up: the next request is served normally.
			if r := s.get("/3.0/ping", nil); r.status != http.StatusOK {
				t.Errorf("after the fault: status %d", r.status)
			}
			st := s.sim.Stats()
			if st.Faults != 1 || st.Requests != 2 || st.MemberPages != 0 {
				t.Errorf("Faults %d, Requests %d, MemberPages %d; want 1, 2, 0", st.Faults, st.Requests, st.MemberPages)
			}
			if tc.fault == FaultDrop && st.ByStatus[0] != 1 {
				t.Errorf("a dropped connection counts under status 0: %v", st.ByStatus)
			}
		})
	}
}

func mustRead(t *testing.T, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFaultsComeAfterAuthAndInOrder(t *testing.T) {
	s := newSimServer(t, Options{})
	s.sim.FailNext(FaultForbiddenNoBody, FaultNone, FaultRateLimit)
	var got []int
	got = append(got, s.request("wrong", "/3.0/ping", nil).status) // 401 uses no fault
	for range 4 {
		got = append(got, s.get("/3.0/ping", nil).status)
	}
	if diff := cmp.Diff([]int{401, 403, 200, 429, 200}, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestFaultRate(t *testing.T) {
	statuses := func(seed int64, rate float64) []int {
		s := newSimServer(t, Options{Seed: seed})
		s.sim.SetFaultRate(rate, FaultRateLimit, FaultForbiddenNoBody, FaultServerHTML)
		var out []int
		for range 40 {
			out = append(out, s.get("/3.0/ping", nil).status)
		}
		return out
	}
	a, b := statuses(4, 0.5), statuses(4, 0.5)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different faults (-a +b):\n%s", diff)
	}
	failed := 0
	for _, st := range a {
		if st != 200 {
			failed++
		}
	}
	if failed < 8 || failed > 32 {
		t.Errorf("%d of 40 failed at rate 0.5", failed)
	}
	if off := statuses(4, 0); countOf(off, 200) != 40 {
		t.Errorf("rate 0 still injected faults: %v", off)
	}
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestLatency(t *testing.T) {
	const latency = 30 * time.Millisecond
	s := newSimServer(t, Options{Latency: latency})
	began := time.Now()
	if r := s.get("/3.0/ping", nil); r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	// A lower bound only: it cannot flake.
	if took := time.Since(began); took < latency {
		t.Errorf("request took %v, want at least the latency %v", took, latency)
	}
}

func TestFaultString(t *testing.T) {
	got := []string{FaultNone.String(), FaultServerHTML.String(), FaultRateLimit.String(),
		FaultForbiddenNoBody.String(), FaultDrop.String(), FaultTruncate.String(), Fault(99).String()}
	want := []string{"none", "server-html", "rate-limit", "forbidden-no-body", "drop", "truncate", "Fault(99)"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
