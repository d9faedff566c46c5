package mcsim

import (
	"net"
	"net/http"
)

// countingWriter records the status and body bytes of a response for Stats,
// and holds back the latest write until finish: without that, a client that
// stops reading at a page's last '}' could start its next request while this
// one still held a connection slot, and meet a 429 it did not earn.
type countingWriter struct {
	http.ResponseWriter
	status   int
	bytes    int64
	held     []byte   // the latest write, sent by the next write or by finish
	hijacked bool     // the connection was taken over (FaultDrop)
	conn     net.Conn // the hijacked connection, closed by finish
}

func (c *countingWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if len(c.held) > 0 {
		if _, err := c.ResponseWriter.Write(c.held); err != nil {
			return 0, err
		}
	}
	c.held = append(c.held[:0], p...)
	c.bytes += int64(len(p))
	return len(p), nil
}

// writeNow sends p at once, bypassing the hold (for truncated bodies, which
// must reach the client before the connection is cut).
func (c *countingWriter) writeNow(p []byte) {
	c.finish()
	n, _ := c.ResponseWriter.Write(p)
	c.bytes += int64(n)
}

// finish sends what is held back, or closes a hijacked connection.
func (c *countingWriter) finish() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
		return
	}
	if len(c.held) > 0 && !c.hijacked {
		_, _ = c.ResponseWriter.Write(c.held)
	}
	c.held = nil
}

// Unwrap lets http.ResponseController reach Flush and Hijack.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
