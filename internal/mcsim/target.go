package mcsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// TargetOptions configures a Target.
type TargetOptions struct {
	// Auth, when set, is the exact Authorization header every request must
	// carry; anything else gets 401.
	Auth string
	// Latency is a wall-clock delay per request, cut short if the client
	// goes away.
	Latency time.Duration
	// Seed seeds the random failures of SetFailRate.
	Seed int64
}

// Target simulates the customer's API: POST a JSON array of records, each
// with a string "id", and it upserts them by id (last write wins). It is the
// idempotent sink the sync engine assumes. Create it with NewTarget.
type Target struct {
	opts TargetOptions

	mu      sync.Mutex // guards everything below
	records map[string]json.RawMessage
	// decoded caches Records' decoding of each stored record until the
	// record is written again: tests compare the target with the audience
	// after every run, and decoding every record each time was most of
	// what those tests spent.
	decoded    map[string]map[string]any
	rng        *rand.Rand
	failQueue  []int // statuses for the next POSTs
	failRate   float64
	failStatus int
	retryAfter time.Duration
	inFlight   int
	stats      TargetStats
	idemKeys   map[string]bool
}

// TargetStats counts what a Target received since NewTarget or ResetStats.
type TargetStats struct {
	Requests        int         // every request, all methods and outcomes
	Batches         int         // POSTs whose records were stored
	RecordsReceived int         // records stored, duplicates included
	ByStatus        map[int]int // responses by status code
	MaxInFlight     int         // most requests in flight at once
	IdempotencyKeys int         // distinct Idempotency-Key headers seen on POSTs
}

var _ http.Handler = (*Target)(nil)

// maxBatchBytes bounds a request body, so a runaway client fails loudly.
const maxBatchBytes = 64 << 20

// NewTarget returns an empty Target.
func NewTarget(opts TargetOptions) *Target {
	return &Target{
		opts:     opts,
		records:  make(map[string]json.RawMessage),
		decoded:  make(map[string]map[string]any),
		rng:      newRand(opts.Seed),
		stats:    TargetStats{ByStatus: make(map[int]int)},
		idemKeys: make(map[string]bool),
	}
}

// store keeps a record; t.mu must be held.
func (t *Target) store(rec batchRecord) {
	t.records[rec.id] = rec.raw
	delete(t.decoded, rec.id)
}

// remove deletes a record; t.mu must be held.
func (t *Target) remove(id string) {
	delete(t.records, id)
	delete(t.decoded, id)
}

// Records returns a copy of every stored record by id. Numbers come back as
// json.Number, so values survive exactly as sent.
func (t *Target) Records() map[string]map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]map[string]any, len(t.records))
	for id, r := range t.records {
		rec, ok := t.decoded[id]
		if !ok {
			dec := json.NewDecoder(bytes.NewReader(r))
			dec.UseNumber()
			if err := dec.Decode(&rec); err != nil {
				panic("mcsim: stored record does not decode: " + err.Error()) // validated on receipt
			}
			t.decoded[id] = rec
		}
		out[id] = cloneJSON(rec).(map[string]any)
	}
	return out
}

// cloneJSON deep-copies a decoded JSON value, so a caller that edits what
// Records returned cannot reach the cache.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = cloneJSON(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneJSON(e)
		}
		return c
	}
	return v
}

// Len returns how many distinct ids are stored.
func (t *Target) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.records)
}

// FailNext makes the next n POSTs fail with status, storing nothing.
func (t *Target) FailNext(status int, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range n {
		t.failQueue = append(t.failQueue, status)
	}
}

// SetFailRate makes each POST fail with status with probability rate
// (seeded). A rate of 0 turns it off. FailNext takes precedence.
func (t *Target) SetFailRate(rate float64, status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failRate, t.failStatus = rate, status
}

// SetRetryAfter makes injected 429 and 503 answers carry a Retry-After of d
// (in whole seconds, at least 1) when d > 0.
func (t *Target) SetRetryAfter(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retryAfter = d
}

// Stats returns a copy of the counters.
func (t *Target) Stats() TargetStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stats
	st.ByStatus = maps.Clone(t.stats.ByStatus)
	return st
}

// ResetStats zeroes the counters, including the Idempotency-Key set. Stored
// records stay.
func (t *Target) ResetStats() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats = TargetStats{ByStatus: make(map[int]int)}
	t.idemKeys = make(map[string]bool)
}

// ServeHTTP accepts batches on any path. HEAD and GET answer 200 when auth
// passes, so `chimport check` can probe the target without writing.
func (t *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.Lock()
	t.stats.Requests++
	t.inFlight++
	t.stats.MaxInFlight = max(t.stats.MaxInFlight, t.inFlight)
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.inFlight--
		t.mu.Unlock()
	}()

	if t.opts.Auth != "" && r.Header.Get("Authorization") != t.opts.Auth {
		t.reply(w, http.StatusUnauthorized, `{"error":"unauthorized"}`)
		return
	}
	if t.opts.Latency > 0 {
		timer := time.NewTimer(t.opts.Latency)
		select {
		case <-timer.C:
		case <-r.Context().Done():
			timer.Stop()
			t.count(StatusClientClosed)
			return
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		t.reply(w, http.StatusOK, `{"status":"ok"}`)
	case http.MethodPost:
		t.servePost(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		t.reply(w, http.StatusMethodNotAllowed, `{"error":"method not allowed"}`)
	}
}

func (t *Target) servePost(w http.ResponseWriter, r *http.Request) {
	if status, retryAfter := t.injectedFailure(r.Header.Get("Idempotency-Key")); status != 0 {
		if retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
			secs := max(1, int((retryAfter+time.Second-1)/time.Second))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
		}
		t.reply(w, status, `{"error":"injected failure"}`)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBytes+1))
	if err != nil {
		t.reply(w, http.StatusBadRequest, `{"error":"reading body failed"}`)
		return
	}
	if len(body) > maxBatchBytes {
		t.reply(w, http.StatusRequestEntityTooLarge, `{"error":"batch too large"}`)
		return
	}
	batch, err := parseBatch(body)
	if err != nil {
		msg, _ := json.Marshal(map[string]string{"error": err.Error()})
		t.reply(w, http.StatusBadRequest, string(msg))
		return
	}
	t.mu.Lock()
	for _, rec := range batch {
		t.store(rec)
	}
	t.stats.Batches++
	t.stats.RecordsReceived += len(batch)
	t.mu.Unlock()
	t.reply(w, http.StatusOK, `{"received":`+strconv.Itoa(len(batch))+`}`)
}

// injectedFailure notes the request's Idempotency-Key ("" for none) and
// decides whether FailNext or SetFailRate fails it.
func (t *Target) injectedFailure(k string) (status int, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k != "" && !t.idemKeys[k] {
		t.idemKeys[k] = true
		t.stats.IdempotencyKeys++
	}
	if len(t.failQueue) > 0 {
		status = t.failQueue[0]
		t.failQueue = t.failQueue[1:]
		return status, t.retryAfter
	}
	if t.failRate > 0 && t.rng.Float64() < t.failRate {
		return t.failStatus, t.retryAfter
	}
	return 0, 0
}

type batchRecord struct {
	id  string
	raw json.RawMessage
}

// parseBatch validates a whole batch before anything is stored, so a bad
// record rejects the request and leaves the target as it was.
func parseBatch(body []byte) ([]batchRecord, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("body must be a JSON array of objects: %v", err)
	}
	if items == nil {
		return nil, fmt.Errorf("body must be a JSON array of objects, got null")
	}
	out := make([]batchRecord, 0, len(items))
	for i, raw := range items {
		id, isObject := recordID(raw)
		if !isObject {
			return nil, fmt.Errorf("record %d is not a JSON object", i)
		}
		if id == "" {
			return nil, fmt.Errorf("record %d has no string id", i)
		}
		out = append(out, batchRecord{id: id, raw: raw})
	}
	return out, nil
}

// recordID finds the string "id" at the top of raw, a JSON value already
// known to be valid, and says whether raw is an object. The last "id" wins,
// as it does when the object is decoded into a map; a missing, empty or
// non-string id is "". It reads one pass over raw instead of decoding it
// into a map: the target simulator shares the benchmark machine's cores
// with the sync it measures, so its own cost is kept down.
func recordID(raw []byte) (id string, isObject bool) {
	i := skipJSONSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipJSONSpace(raw, i)
		if i >= len(raw) || raw[i] == '}' {
			return id, true
		}
		if raw[i] == ',' {
			i = skipJSONSpace(raw, i+1)
		}
		keyEnd := skipJSONValue(raw, i)
		key := raw[i:keyEnd]
		i = skipJSONSpace(raw, keyEnd)
		i = skipJSONSpace(raw, i+1) // the colon
		valueEnd := skipJSONValue(raw, i)
		if jsonStringIs(key, "id") {
			id = ""
			if raw[i] == '"' {
				_ = json.Unmarshal(raw[i:valueEnd], &id)
			}
		}
		i = valueEnd
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONValue returns the end of the valid JSON value starting at b[i].
func skipJSONValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of the enclosing value
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i // the end of a number or literal
			}
		}
	}
	return i
}

// jsonStringIs reports whether the JSON string token tok decodes to s.
func jsonStringIs(tok []byte, s string) bool {
	if bytes.IndexByte(tok, '\\') < 0 {
		return len(tok) == len(s)+2 && string(tok[1:len(tok)-1]) == s
	}
	var decoded string
	return json.Unmarshal(tok, &decoded) == nil && decoded == s
}

// reply counts the response before writing it, so a client never sees an
// answer that Stats does not show yet.
func (t *Target) reply(w http.ResponseWriter, status int, body string) {
	t.count(status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (t *Target) count(status int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats.ByStatus[status]++
}
