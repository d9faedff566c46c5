package mcsim

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	// Key names the record fields whose string values together identify
	// a record; empty means ["id"]. With ["id", "list_id"] one person in
	// two audiences is two records. Every record must carry every key
	// field (400 otherwise), and a DELETE names them: the first as the
	// path's last segment, the others as query parameters of their own
	// names (DELETE /records/{id}?list_id=...).
	Key []string
}

// DefaultTargetKey is the record key of a Target without TargetOptions.Key.
var DefaultTargetKey = []string{"id"}

// Target simulates the customer's API: POST a JSON array of records, each
// with a string "id", and it upserts them by id (last write wins); DELETE
// .../{id} removes the record with that id (204, or 404 when there is none).
// TargetOptions.Key may make the identity a tuple of fields (id and
// list_id), which upserts and DELETEs then go by.
// It is the idempotent sink the sync engine assumes. Create it with
// NewTarget.
//
// Like a real API it can refuse records (RefuseIDs, SetRefuseRule: 422 and
// nothing of the batch applied) and batches too large (SetMaxBatch: 413),
// and fail requests on demand (FailNext, SetFailRate); an injected failure
// answers before the rules judge anything.
type Target struct {
	opts TargetOptions

	mu      sync.Mutex                 // guards everything below
	records map[string]json.RawMessage // by batchRecord.mapKey
	// decoded caches Records' decoding of each stored record until the
	// record is written again: tests compare the target with the audience
	// after every run, and decoding every record each time was most of
	// what those tests spent.
	decoded    map[string]map[string]any
	rng        *rand.Rand
	failQueue  []int // statuses for the next POSTs and DELETEs
	failRate   float64
	failStatus int
	retryAfter time.Duration
	inFlight   int
	stats      TargetStats
	idemKeys   map[string]bool

	// The rules of target_refuse.go.
	refuseRule   RefuseRule
	refusedIDs   map[string]bool
	refuseStatus int // 0 means 422
	maxBatch     int // 0 means no limit
}

// TargetStats counts what a Target received since NewTarget or ResetStats.
type TargetStats struct {
	Requests int // every request, all methods and outcomes, and every Apply
	// Posts counts POST requests and Apply calls, whatever their answer:
	// applied, refused, too large, malformed, failed by injection or
	// unauthorised. DELETE requests are in DeletesByStatus.
	Posts           int
	Batches         int         // POSTs whose records were stored (and batches Apply applied)
	RecordsReceived int         // records stored, duplicates included
	ByStatus        map[int]int // responses by status code, DELETEs included
	MaxInFlight     int         // most requests in flight at once
	IdempotencyKeys int         // distinct Idempotency-Key headers seen on POSTs
	// Deletes counts deletes carried out: DELETE requests answered 204 or
	// 404, and delete operations Apply applied. RecordsDeleted counts those
	// that removed a record; the rest found none.
	Deletes        int
	RecordsDeleted int
	// DeletesByStatus counts DELETE responses by status code, refused and
	// injected failures included (nil until the first DELETE). ByStatus
	// counts them too.
	DeletesByStatus map[int]int
	// Refused counts the POSTs, DELETEs and Apply calls refused by the
	// rules (RefuseIDs, SetRefuseRule): answered with the refuse status,
	// nothing applied. A malformed batch's 400 is not among them.
	Refused int
	// TooLarge counts the POSTs and Apply calls answered 413: over
	// SetMaxBatch's limit, or a body over 64 MiB.
	TooLarge int
}

var _ http.Handler = (*Target)(nil)

// maxBatchBytes bounds a request body, so a runaway client fails loudly.
const maxBatchBytes = 64 << 20

// NewTarget returns an empty Target.
func NewTarget(opts TargetOptions) *Target {
	if len(opts.Key) == 0 {
		opts.Key = DefaultTargetKey
	}
	opts.Key = slices.Clone(opts.Key)
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
	k := rec.mapKey()
	t.records[k] = rec.raw
	delete(t.decoded, k)
}

// remove deletes the record with key (a mapKey) and says whether there was
// one; t.mu must be held.
func (t *Target) remove(key string) bool {
	_, ok := t.records[key]
	delete(t.records, key)
	delete(t.decoded, key)
	t.stats.Deletes++
	if ok {
		t.stats.RecordsDeleted++
	}
	return ok
}

// Records returns a copy of every stored record by id, or with a composite
// TargetOptions.Key by its key fields' values joined with "|" in Key's
// order ("<id>|<list_id>"). Numbers come back as json.Number, so values
// survive exactly as sent.
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

// keyOf is the Records map key of a decoded record: its key fields' string
// values joined with "|" ("" for a field it lacks).
func (t *Target) keyOf(rec map[string]any) string {
	parts := make([]string, len(t.opts.Key))
	for f, field := range t.opts.Key {
		parts[f], _ = rec[field].(string)
	}
	return strings.Join(parts, keySep)
}

// Len returns how many distinct records (by key) are stored.
func (t *Target) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.records)
}

// FailNext makes the next n POSTs or DELETEs fail with status, changing
// nothing.
func (t *Target) FailNext(status int, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for range n {
		t.failQueue = append(t.failQueue, status)
	}
}

// SetFailRate makes each POST or DELETE fail with status with probability rate
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
	st.DeletesByStatus = maps.Clone(t.stats.DeletesByStatus)
	return st
}

// ResetStats zeroes the counters, including the Idempotency-Key set. Stored
// records, the refusal rules and pending injected failures stay.
func (t *Target) ResetStats() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stats = TargetStats{ByStatus: make(map[int]int)}
	t.idemKeys = make(map[string]bool)
}

// ServeHTTP accepts batches (POST) on any path, and deletes of one record
// (DELETE) on any path whose last segment is the record's id. HEAD and GET
// answer 200 when auth passes, so `chimport check` can probe the target
// without writing.
func (t *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		// Counted here, so that every DELETE answer, 401 included, is in
		// DeletesByStatus.
		w = &deleteCounter{ResponseWriter: w, t: t}
	}
	t.mu.Lock()
	t.stats.Requests++
	if r.Method == http.MethodPost {
		t.stats.Posts++
	}
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
			if d, ok := w.(*deleteCounter); ok {
				d.note(StatusClientClosed)
			}
			return
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		t.reply(w, http.StatusOK, `{"status":"ok"}`)
	case http.MethodPost:
		t.servePost(w, r)
	case http.MethodDelete:
		t.serveDelete(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST, DELETE")
		t.reply(w, http.StatusMethodNotAllowed, `{"error":"method not allowed"}`)
	}
}

func (t *Target) servePost(w http.ResponseWriter, r *http.Request) {
	if t.failed(w, r.Header.Get("Idempotency-Key")) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBatchBytes+1))
	if err != nil {
		t.reply(w, http.StatusBadRequest, `{"error":"reading body failed"}`)
		return
	}
	if len(body) > maxBatchBytes {
		t.mu.Lock()
		t.stats.TooLarge++
		t.mu.Unlock()
		t.reply(w, http.StatusRequestEntityTooLarge, `{"error":"batch too large"}`)
		return
	}
	batch, err := parseBatch(body, t.opts.Key)
	if err != nil {
		msg, _ := json.Marshal(map[string]string{"error": err.Error()})
		t.reply(w, http.StatusBadRequest, string(msg))
		return
	}
	if limit, over := t.tooLarge(len(batch)); over {
		t.replyTooLarge(w, len(batch), limit)
		return
	}
	if ref, refused := t.judge(batch); refused {
		t.refuse(w, ref)
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

// failed answers the request with an injected failure, if FailNext or
// SetFailRate make it fail, and says whether it did.
func (t *Target) failed(w http.ResponseWriter, idempotencyKey string) bool {
	status, retryAfter := t.injectedFailure(idempotencyKey)
	if status == 0 {
		return false
	}
	if retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
		secs := max(1, int((retryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	t.reply(w, status, `{"error":"injected failure"}`)
	return true
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
