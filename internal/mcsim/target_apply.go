package mcsim

import (
	"context"
	"fmt"
	"net/http"

	"github.com/chimport/chimport/internal/target"
)

// Apply is the target's in-process door, for the sync engine's unit tests:
// it applies a batch of operations as a POST of the same records would,
// from the same store of records and with the same injected failures, but
// without HTTP. Upserts replace the record with their id; a delete removes
// the record with its id (the HTTP door has no deletes yet). A batch is
// checked whole before anything is stored.
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
	t.mu.Unlock()
	if status, _ := t.injectedFailure(""); status != 0 {
		t.count(status)
		return &target.Error{Method: http.MethodPost, URL: "mcsim", Status: status, Body: `{"error":"injected failure"}`, Attempts: 1}
	}
	upserts := make([]batchRecord, 0, len(ops))
	var deletes []string
	for i, op := range ops {
		switch op.Kind {
		case target.OpUpsert:
			recs, err := parseBatch(append(append([]byte{'['}, op.Record...), ']'))
			if err != nil {
				t.count(http.StatusBadRequest)
				return &target.Error{Method: http.MethodPost, URL: "mcsim", Status: http.StatusBadRequest,
					Body: fmt.Sprintf("operation %d: %v", i, err), Attempts: 1}
			}
			upserts = append(upserts, recs...)
		case target.OpDelete:
			deletes = append(deletes, op.ID)
		default:
			return fmt.Errorf("mcsim: operation %d has no kind", i)
		}
	}
	t.mu.Lock()
	for _, rec := range upserts {
		t.store(rec)
	}
	for _, id := range deletes {
		t.remove(id)
	}
	t.stats.Batches++
	t.stats.RecordsReceived += len(upserts)
	t.stats.ByStatus[http.StatusOK]++
	t.mu.Unlock()
	return nil
}
