package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chimport/chimport/internal/clock"
)

// unsized hides a reader's length, so that the request goes out as a
// chunked body of unknown length (ContentLength -1).
type unsized struct{ io.Reader }

// A body over MaxBody is refused as too large whatever it claims to be:
// the limit must not depend on ParseForm, which reads only form bodies.
func TestReceiverBodyLimit(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef"
	profile := form("type", "profile", "data[id]", id, "data[list_id]", "list1")
	// A valid form padded to exactly MaxBody: the limit is inclusive.
	atLimit := profile + "&pad=" + strings.Repeat("x", MaxBody-len(profile)-len("&pad="))
	large := strings.Repeat("x", 70<<10)
	tests := []struct {
		name        string
		contentType string // "" sends no Content-Type
		body        string
		chunked     bool
		want        int
		wantQueued  int
	}{
		{name: "70 KiB, no Content-Type", body: large, want: 413},
		{name: "70 KiB form", contentType: "application/x-www-form-urlencoded", body: large, want: 413},
		{name: "70 KiB JSON", contentType: "application/json", body: large, want: 413},
		{name: "70 KiB text", contentType: "text/plain", body: large, want: 413},
		{name: "70 KiB multipart", contentType: "multipart/form-data; boundary=x", body: large, want: 413},
		{name: "70 KiB, invalid Content-Type", contentType: "no/such; =", body: large, want: 413},
		{name: "70 KiB chunked, no Content-Type", body: large, chunked: true, want: 413},
		{name: "70 KiB chunked JSON", contentType: "application/json", body: large, chunked: true, want: 413},
		{name: "70 KiB chunked form", contentType: "application/x-www-form-urlencoded", body: large, chunked: true, want: 413},
		{name: "form of exactly 64 KiB", contentType: "application/x-www-form-urlencoded", body: atLimit, want: 200, wantQueued: 1},
		{name: "chunked form of exactly 64 KiB", contentType: "application/x-www-form-urlencoded", body: atLimit, chunked: true, want: 200, wantQueued: 1},
		// Only a form-encoded body is read as a form, as before.
		{name: "small form as text", contentType: "text/plain", body: profile, want: 400},
		{name: "small JSON", contentType: "application/json", body: `{"type":"profile"}`, want: 400},
		{name: "small, no Content-Type", body: profile, want: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := NewQueue(QueueConfig{Refresher: &fakeRefresher{}, Clock: clock.NewFake(time.Now())})
			rc := NewReceiver(secret, map[string]string{"shop": "list1"}, q, Hooks{}, nil)
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = unsized{body}
			}
			req := httptest.NewRequest(http.MethodPost, PathPrefix+"shop/"+Token(secret, "shop"), body)
			if tt.chunked && req.ContentLength != -1 {
				t.Fatalf("ContentLength = %d, want -1 (unknown)", req.ContentLength)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			rc.ServeHTTP(rec, req)
			got := []int{rec.Code, q.Depths()["shop"]}
			if diff := cmp.Diff([]int{tt.want, tt.wantQueued}, got); diff != "" {
				t.Errorf("status, queued (-want +got):\n%s", diff)
			}
		})
	}
}

// A refused path is answered 404 before the body is read: a stranger's
// large body costs no reading and is not taken for a payload.
func TestReceiverRefusesBeforeReading(t *testing.T) {
	q := NewQueue(QueueConfig{Refresher: &fakeRefresher{}, Clock: clock.NewFake(time.Now())})
	rc := NewReceiver(secret, map[string]string{"shop": "list1"}, q, Hooks{}, nil)
	body := &countingReader{r: strings.NewReader(strings.Repeat("x", 70<<10))}
	req := httptest.NewRequest(http.MethodPost, PathPrefix+"shop/"+strings.Repeat("0", 64), body)
	rec := httptest.NewRecorder()
	rc.ServeHTTP(rec, req)
	if rec.Code != 404 || body.n != 0 {
		t.Errorf("a wrong token with a 70 KiB body: %d after reading %d bytes, want 404 after none", rec.Code, body.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
