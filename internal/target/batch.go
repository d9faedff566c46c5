package target

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A batch, from what the engine hands over (operations) to what goes on the
// wire (one JSON array, encoded once, with one Idempotency-Key).

// OpKind says what an Op does to the target.
type OpKind uint8

const (
	// OpUpsert writes a record: inserted, or replacing the record with its
	// id (the target is idempotent by id).
	OpUpsert OpKind = iota + 1
	// OpDelete removes the record with an id.
	OpDelete
)

// Op is one change to the target: the upsert of a record or the delete of
// a record id. The zero Op is invalid, so a forgotten Kind cannot pass for
// either.
type Op struct {
	Kind   OpKind
	Record json.RawMessage // OpUpsert: the record, a JSON object
	ID     string          // OpDelete: the id of the record to remove
}

// Upsert is the operation that writes record.
func Upsert(record json.RawMessage) Op { return Op{Kind: OpUpsert, Record: record} }

// Delete is the operation that removes the record with id.
func Delete(id string) Op { return Op{Kind: OpDelete, ID: id} }

// Apply sends ops to the target and returns nil once the target has all
// of them: the upserts as one POSTed batch, like Send, and the deletes as
// the sink's DeleteMode says:
//
//   - DeletesTombstone: each delete is a tombstone record in that same
//     batch, in op order; one request for the lot.
//   - DeletesRequest: the upserts are POSTed first, then each delete is a
//     DELETE, up to DeleteConcurrency at once. Upserts and deletes do not
//     keep their order between each other, so a batch must not hold both
//     for one id. The first failure is the result, and the batch failed:
//     applying it again is safe (upserts are idempotent by id, a DELETE of
//     a record already gone is answered 404).
//   - DeletesOff: deletes are dropped without a request.
//
// Without a DeleteMode a batch that holds a delete is refused whole, before
// anything is sent, with a *DeletesNotConfiguredError. So is (with another
// error) a batch with an operation without a kind or a delete without an
// id: bugs upstream that no target should see.
func (s *HTTP) Apply(ctx context.Context, ops []Op) error {
	mode := s.deletes.mode
	records := make([]json.RawMessage, 0, len(ops))
	var ids []string
	deletes := 0
	for i, op := range ops {
		switch op.Kind {
		case OpUpsert:
			records = append(records, op.Record)
		case OpDelete:
			if op.ID == "" {
				return fmt.Errorf("target connection %q: operation %d of the batch deletes an empty id (a bug upstream)", s.connection, i)
			}
			deletes++
			switch mode {
			case DeletesTombstone:
				records = append(records, s.deletes.tombstone(op.ID))
			case DeletesRequest:
				ids = append(ids, op.ID)
			}
		default:
			return fmt.Errorf("target connection %q: operation %d of the batch has no kind (a bug upstream)", s.connection, i)
		}
	}
	if deletes > 0 && mode == "" {
		return &DeletesNotConfiguredError{Connection: s.connection, Deletes: deletes}
	}
	tombstones := 0
	if mode == DeletesTombstone {
		tombstones = deletes
	}
	if err := s.post(ctx, records, tombstones); err != nil {
		return err
	}
	switch {
	case len(ids) > 0:
		return s.deleteAll(ctx, ids)
	case mode == DeletesOff && deletes > 0:
		s.count(func(st *Stats) { st.DeletesDropped += int64(deletes) })
	}
	return nil
}

// newIdempotencyKey returns a fresh random key for one request: a batch's
// POST or one DELETE. Every retry of it carries the key, so a target that
// deduplicates on it applies the batch once. It is deliberately not derived from the body: a member
// changed A -> B -> A produces the same bytes twice, and a target that
// remembered the first key would drop the third write and keep B.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux and panics rather than return short
	return hex.EncodeToString(b[:])
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// batch is a request body encoded once and shared by every attempt of one
// Send.
//
// The transport may still be reading a request body after Client.Do has
// returned (a target that answers before reading it all), so the buffer
// goes back to the pool only through release, which first stops every
// reader: a late Read fails instead of sending the next batch's bytes.
type batch struct {
	size int // bytes in the body, fixed once encoded

	mu  sync.Mutex
	buf *bytes.Buffer // nil once released
}

// encodeBatch writes records as a JSON array into a pooled buffer.
//
// Each record must look like a JSON object: a nil, empty or cut-off record
// is a bug upstream, and sending it would make the target reject the whole
// batch and the error blame the customer's mapping. The check only looks at
// the first and last bytes: records come from json.Marshal, and a full
// json.Valid pass cost as much CPU as everything else in Send together.
func encodeBatch(records []json.RawMessage) (*batch, error) {
	size := len(records) + 1 // brackets and commas
	for _, r := range records {
		size += len(r)
	}
	buf := bufferPool.Get().(*bytes.Buffer)
	buf.Reset()
	buf.Grow(size)
	buf.WriteByte('[')
	for i, r := range records {
		if !isJSONObject(r) {
			putBuffer(buf)
			return nil, fmt.Errorf("record %d of the batch is not a JSON object", i)
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r)
	}
	buf.WriteByte(']')
	return &batch{size: buf.Len(), buf: buf}, nil
}

func isJSONObject(r json.RawMessage) bool {
	t := bytes.TrimSpace(r)
	return len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}'
}

func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuffer {
		bufferPool.Put(buf)
	}
}

// reader returns a fresh reader over the whole body, for one attempt.
func (b *batch) reader() io.ReadCloser { return &batchReader{b: b} }

func (b *batch) release() {
	b.mu.Lock()
	buf := b.buf
	b.buf = nil
	b.mu.Unlock()
	if buf != nil {
		putBuffer(buf)
	}
}

var errReleased = errors.New("target: request body read after its Send returned")

type batchReader struct {
	b   *batch
	off int
}

func (r *batchReader) Read(p []byte) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.b.buf == nil {
		return 0, errReleased
	}
	data := r.b.buf.Bytes()
	if r.off >= len(data) {
		return 0, io.EOF
	}
	n := copy(p, data[r.off:])
	r.off += n
	return n, nil
}

// Close is a no-op: the buffer belongs to the batch, not to one attempt.
func (r *batchReader) Close() error { return nil }
