package target

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkSend measures delivery of 1000-record batches to a local target
// that reads and discards them: the sink's own overhead (encoding, hashing,
// one HTTP round trip per batch), not any real target's speed.
func BenchmarkSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	sink, _ := newTestSink(b, srv.URL+"/records", nil)
	records := make([]json.RawMessage, 1000)
	size := 0
	for i := range records {
		records[i] = json.RawMessage(fmt.Sprintf(
			`{"id":"%032x","firstname":"Firstname%d","lastname":"Lastname%d","email":"member%d@example.com","status":"subscribed"}`,
			i, i, i, i))
		size += len(records[i]) + 1
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if err := sink.Send(context.Background(), records); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sink.Stats().Records)/b.Elapsed().Seconds(), "records/s")
}
