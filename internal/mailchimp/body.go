package mailchimp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxDrain bounds how much of an unread body is discarded to keep its
// connection reusable; past that, closing the connection is cheaper.
const maxDrain = 256 << 10

func drainAndClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	_ = body.Close()
}

// isBadJSON reports whether a decode error means the body itself was
// wrong (truncated, not JSON, wrong shape) rather than the connection.
func isBadJSON(err error) bool {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.As(err, &syn) || errors.As(err, &typ)
}

// transportError classifies a failure to get or read a response.
func (c *Client) transportError(ctx context.Context, method, endpoint string, status int, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The caller stopped us; that is not a fault of the network.
		return ctxErr
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL adds nothing the Error does not say
	}
	if status == 0 && errors.Is(err, io.EOF) {
		err = fmt.Errorf("connection closed before a response: %w", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The HTTP client's per-attempt timeout, not the caller's context:
		// flatten it so neither retry.Do nor the caller mistakes it for
		// their own deadline.
		err = errors.New("attempt timed out: " + err.Error())
	}
	return c.newError(KindTransport, method, endpoint, status, err)
}

// decodeJSON decodes one JSON document from a 2xx body as a stream, with
// numbers kept as json.Number.
func decodeJSON(resp *http.Response, v any) error {
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	return dec.Decode(v)
}

// serverTime reads the Date header; zero when absent or malformed.
func serverTime(resp *http.Response) time.Time {
	t, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}
