package mcsim

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/chimport/chimport/internal/target"
)

// Apply is the target's in-process door, for the sync engine's unit tests:
// it applies a batch of operations as a POST of the same records would,
// from the same store of records and with the same injected failures, but
// without HTTP. Upserts replace the record with their id; a delete removes
// the record with its id, as DELETE .../{id} does over HTTP (counted in
// Deletes and RecordsDeleted; a delete of an id with no record is no
// error). A batch is checked whole before anything is stored.
//
// With a composite TargetOptions.Key a delete names every key field: in
// its Record (a JSON object holding them, e.g. {"id":..,"list_id":..}) or,
// when that is empty, in its ID as Records' map key does ("<id>|<list_id>").
//
// The refusal rules judge it as a POST with tombstones would be judged:
// every upsert's record, and the record of its key fields ({"id": id}) for
// every delete. A
// batch with a refused operation applies nothing and fails with a
// *target.Error whose Status is the refuse status and whose Body names the
// operation's index; its Method is DELETE when that operation is a
// delete. A batch of more than SetMaxBatch operations fails with 413.
//
// As with the Mailchimp simulator's Source there are no retries in between:
// an injected failure fails the batch with the *target.Error the sink
// returns once its retries gave up.
func (t *Target) Apply(ctx context.Context, ops []target.Op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t.mu.Lock()
	t.stats.Requests++
	t.stats.Posts++
	t.mu.Unlock()
	if status, _ := t.injectedFailure(""); status != 0 {
		t.count(status)
		return &target.Error{Method: http.MethodPost, URL: "mcsim", Status: status, Body: `{"error":"injected failure"}`, Attempts: 1}
	}
	// Checked whole first, then applied in order: an upsert and a delete of
	// the same id in one batch end as the later of the two says.
	applied := make([]appliedOp, 0, len(ops))
	judged := make([]batchRecord, 0, len(ops)) // what the rules judge, a delete with no raw
	opOf := make([]int, 0, len(ops))           // the operation of each of judged
	upserts := 0
	for i, op := range ops {
		switch op.Kind {
		case target.OpUpsert:
			recs, err := parseBatch(append(append([]byte{'['}, op.Record...), ']'), t.opts.Key)
			if err != nil {
				t.count(http.StatusBadRequest)
				return &target.Error{Method: http.MethodPost, URL: "mcsim", Status: http.StatusBadRequest,
					Body: fmt.Sprintf("operation %d: %v", i, err), Attempts: 1}
			}
			for _, rec := range recs {
				applied = append(applied, appliedOp{upsert: rec})
				judged = append(judged, rec)
				opOf = append(opOf, i)
			}
			upserts += len(recs)
		case target.OpDelete:
			rec, err := t.deleteKey(op)
			if err != nil {
				t.count(http.StatusBadRequest)
				return &target.Error{Method: http.MethodDelete, URL: "mcsim", Status: http.StatusBadRequest,
					Body: fmt.Sprintf("operation %d: %v", i, err), Attempts: 1}
			}
			applied = append(applied, appliedOp{deleteKey: rec.mapKey(), isDelete: true})
			judged = append(judged, rec)
			opOf = append(opOf, i)
		default:
			return fmt.Errorf("mcsim: operation %d has no kind", i)
		}
	}
	if limit, over := t.tooLarge(len(ops)); over {
		t.mu.Lock()
		t.stats.TooLarge++
		t.stats.ByStatus[http.StatusRequestEntityTooLarge]++
		t.mu.Unlock()
		return &target.Error{Method: http.MethodPost, URL: "mcsim", Status: http.StatusRequestEntityTooLarge,
			Body: tooLargeBody(len(ops), limit), Attempts: 1}
	}
	if ref, refused := t.judge(judged); refused {
		method := http.MethodPost
		if judged[ref.index].raw == nil {
			method = http.MethodDelete
		}
		ref.index = opOf[ref.index]
		t.mu.Lock()
		t.stats.Refused++
		t.stats.ByStatus[ref.status]++
		t.mu.Unlock()
		return &target.Error{Method: method, URL: "mcsim", Status: ref.status, Body: ref.body(), Attempts: 1}
	}
	t.mu.Lock()
	for _, op := range applied {
		if op.isDelete {
			t.remove(op.deleteKey)
		} else {
			t.store(op.upsert)
		}
	}
	t.stats.Batches++
	t.stats.RecordsReceived += upserts
	t.stats.ByStatus[http.StatusOK]++
	t.mu.Unlock()
	return nil
}

// appliedOp is one checked operation of a batch.
type appliedOp struct {
	upsert    batchRecord
	deleteKey string // a mapKey
	isDelete  bool
}

// deleteKey is the key an Apply delete names, as a record without raw.
func (t *Target) deleteKey(op target.Op) (batchRecord, error) {
	keyFields := t.opts.Key
	var key []string
	switch {
	case len(op.Record) > 0:
		var isObject bool
		if key, isObject = recordKey(op.Record, keyFields); !isObject {
			return batchRecord{}, fmt.Errorf("a delete's record must be a JSON object of its key fields")
		}
	case len(keyFields) == 1:
		key = []string{op.ID}
	default:
		key = strings.Split(op.ID, keySep)
		if len(key) != len(keyFields) {
			return batchRecord{}, fmt.Errorf("a delete needs %s, as a record or as an id joined with %q", strings.Join(keyFields, ", "), keySep)
		}
	}
	for f, v := range key {
		if v == "" {
			return batchRecord{}, fmt.Errorf("a delete needs a record %s", keyFields[f])
		}
	}
	return batchRecord{id: key[0], key: key}, nil
}
