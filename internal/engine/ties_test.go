package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chimport/chimport/internal/mcsim"
)

// shuffledTies stands in front of the simulator and serves members sorted
// by last_changed with every group of equal last_changed values in a new
// random order on every request: what a database may do for ORDER BY
// last_changed LIMIT n OFFSET m. The set of members is exactly the
// simulator's; only ties move. The natural order (no sort_field) passes
// through untouched, stable as a primary key.
type shuffledTies struct {
	sim      http.Handler
	requests atomic.Int64
}

func (s *shuffledTies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !strings.HasSuffix(r.URL.Path, "/members") || q.Get("sort_field") != "last_changed" {
		s.sim.ServeHTTP(w, r)
		return
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	count, _ := strconv.Atoi(q.Get("count"))
	// Read the whole sorted set from the simulator, page by page.
	var all []map[string]any
	var last *httptest.ResponseRecorder
	for inner := 0; ; inner += 1000 {
		q.Set("offset", strconv.Itoa(inner))
		q.Set("count", "1000")
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = q.Encode()
		last = httptest.NewRecorder()
		s.sim.ServeHTTP(last, r2)
		if last.Code != http.StatusOK {
			for k, v := range last.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(last.Code)
			_, _ = w.Write(last.Body.Bytes())
			return
		}
		var body struct{ Members []map[string]any }
		dec := json.NewDecoder(bytes.NewReader(last.Body.Bytes()))
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		all = append(all, body.Members...)
		if len(body.Members) < 1000 {
			break
		}
	}
	rng := rand.New(rand.NewPCG(uint64(s.requests.Add(1)), 7))
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j]["last_changed"] == all[i]["last_changed"] {
			j++
		}
		group := all[i:j]
		rng.Shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		i = j
	}
	lo, hi := min(offset, len(all)), min(offset+count, len(all))
	w.Header().Set("Date", last.Header().Get("Date"))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"members": all[lo:hi], "total_items": len(all), "list_id": testList})
}

// TestUnstableTieOrderLosesNothing: bulk imports stamp thousands of members
// with the same second, and the server orders ties differently on every
// request. Overlapping pages alone would miss members here; paging the
// straddling tie groups on their own must not.
func TestUnstableTieOrderLosesNothing(t *testing.T) {
	for _, inclusive := range []bool{false, true} {
		t.Run(fmt.Sprintf("inclusive=%v", inclusive), func(t *testing.T) {
			w := newWorld(t, worldOptions{members: 300, seed: 11, inclusive: inclusive})
			ctx := context.Background()
			if _, err := w.run(t, ctx, false); err != nil {
				t.Fatal(err)
			}
			// Two bulk imports of 2,500 members, each within one second,
			// and 300 members spread over the seconds around them.
			add := func(name string, i int) {
				t.Helper()
				_, err := w.sim.Add(testList, mcsim.Member{EmailAddress: fmt.Sprintf("%s%d@example.com", name, i), Status: "subscribed",
					MergeFields: map[string]any{"FNAME": name, "LNAME": strconv.Itoa(i)}})
				must(t, err)
			}
			for i := range 300 {
				if i%30 == 0 {
					w.clk.Advance(time.Second)
				}
				add("spread", i)
				if i == 100 || i == 200 {
					for j := range 2500 {
						add(fmt.Sprintf("bulk%d-", i), j)
					}
				}
			}
			w.pass()
			srv := httptest.NewServer(&shuffledTies{sim: w.sim})
			t.Cleanup(srv.Close)
			w.mcURL = srv.URL + "/3.0"
			sum, err := w.run(t, ctx, false)
			if err != nil || !sum.Completed {
				t.Fatalf("run: completed %v, err %v", sum.Completed, err)
			}
			t.Logf("read %d, delivered %d for 5,300 changes in %d requests", sum.Read, sum.Delivered, sum.MailchimpStats.Requests)
			w.checkInSync(t)
			w.checkWatermarkHonest(t)
		})
	}
}

// dedupingTarget honours Idempotency-Key as many APIs do: a request with
// a key it has seen is answered 2xx and not applied again.
type dedupingTarget struct {
	next http.Handler
	mu   sync.Mutex
	seen map[string]bool
}

func (t *dedupingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if k := r.Header.Get("Idempotency-Key"); k != "" && r.Method == http.MethodPost {
		t.mu.Lock()
		replay := t.seen[k]
		t.seen[k] = true
		t.mu.Unlock()
		if replay {
			_, _ = w.Write([]byte(`{"received":0}`))
			return
		}
	}
	t.next.ServeHTTP(w, r)
}

// TestRevertedChangeReachesAnIdempotentTarget: a member changed A -> B -> A
// sends the same bytes in the first and the third run. A target that
// deduplicates on Idempotency-Key must still apply the third write.
func TestRevertedChangeReachesAnIdempotentTarget(t *testing.T) {
	w := newWorld(t, worldOptions{members: 1, seed: 12})
	srv := httptest.NewServer(&dedupingTarget{next: w.target, seen: map[string]bool{}})
	t.Cleanup(srv.Close)
	w.tgtURL = srv.URL + "/records"
	id := memberIDs(w)[0]
	ctx := context.Background()
	for _, name := range []string{"Ann", "Bea", "Ann"} {
		must(t, w.sim.Change(testList, id, func(m *mcsim.Member) { m.MergeFields["FNAME"] = name }))
		w.pass()
		if _, err := w.run(t, ctx, false); err != nil {
			t.Fatal(err)
		}
		if got := w.target.Records()[id]["firstname"]; got != name {
			t.Fatalf("after the change to %s the target holds %v", name, got)
		}
	}
}
