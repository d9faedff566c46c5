package mcsim

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
)

// Fault is a failure the simulator can inject into an API request, one for
// each way Mailchimp (or a proxy in front of it) is seen to fail.
type Fault int

const (
	FaultNone Fault = iota
	// FaultServerHTML answers 502 or 503 with an HTML body, as a proxy does.
	FaultServerHTML
	// FaultRateLimit answers 429 problem+json without Retry-After.
	FaultRateLimit
	// FaultForbiddenNoBody answers 403 with an empty body, as Mailchimp does
	// under very high volume.
	FaultForbiddenNoBody
	// FaultDrop closes the connection without any response. Note that Go's
	// http.Transport silently retries a GET once when a reused keep-alive
	// connection is dropped before any response byte, so on such a
	// connection one queued FaultDrop may never reach the caller: queue two,
	// or use a fresh connection, to be sure of seeing it.
	FaultDrop
	// FaultTruncate answers 200 with the real response's full Content-Length
	// but writes only the first half of the body before closing the
	// connection: decoding fails with io.ErrUnexpectedEOF.
	FaultTruncate
)

// allFaults are the kinds SetFaultRate picks from when given none.
var allFaults = []Fault{FaultServerHTML, FaultRateLimit, FaultForbiddenNoBody, FaultDrop, FaultTruncate}

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultServerHTML:
		return "server-html"
	case FaultRateLimit:
		return "rate-limit"
	case FaultForbiddenNoBody:
		return "forbidden-no-body"
	case FaultDrop:
		return "drop"
	case FaultTruncate:
		return "truncate"
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// FailNext queues faults for the next len(faults) API requests that pass
// auth and the connection limit, in order. FaultNone lets one request
// through. Queued faults take precedence over SetFaultRate.
func (s *Mailchimp) FailNext(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultQueue = append(s.faultQueue, faults...)
}

// SetFaultRate makes each API request fail with probability rate, with a
// fault picked at random (seeded) from faults, or from every kind when none
// are given. A rate of 0 turns random faults off.
func (s *Mailchimp) SetFaultRate(rate float64, faults ...Fault) {
	if len(faults) == 0 {
		faults = allFaults
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultRate = rate
	s.faultKinds = append([]Fault(nil), faults...)
}

func (s *Mailchimp) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faultQueue) > 0 {
		f := s.faultQueue[0]
		s.faultQueue = s.faultQueue[1:]
		return f
	}
	if s.faultRate > 0 && s.rng.Float64() < s.faultRate {
		return s.faultKinds[s.rng.IntN(len(s.faultKinds))]
	}
	return FaultNone
}

// serveFault answers r with fault f instead of the endpoint's answer.
func (s *Mailchimp) serveFault(w *countingWriter, r *http.Request, credential string, f Fault) {
	switch f {
	case FaultServerHTML:
		status := http.StatusBadGateway
		s.mu.Lock()
		if s.rng.IntN(2) == 0 {
			status = http.StatusServiceUnavailable
		}
		s.mu.Unlock()
		text := fmt.Sprintf("%d %s", status, http.StatusText(status))
		body := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text +
			"</h1></center>\r\n<hr><center>openresty</center>\r\n</body>\r\n</html>\r\n"
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case FaultRateLimit:
		s.writeTooManyRequests(w)
	case FaultForbiddenNoBody:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusForbidden)
	case FaultDrop:
		s.drop(w)
	case FaultTruncate:
		s.truncate(w, r, credential)
	default:
		panic("mcsim: unknown fault " + f.String())
	}
}

// drop takes the connection away from net/http without writing anything.
// countingWriter.finish closes it once the request is counted, so a client
// that sees the connection die also sees the drop in Stats.
func (s *Mailchimp) drop(w *countingWriter) {
	conn, _, err := http.NewResponseController(w.ResponseWriter).Hijack()
	w.hijacked = true
	if err != nil {
		// HTTP/2 cannot hijack; aborting the handler resets the stream.
		panic(http.ErrAbortHandler)
	}
	w.conn = conn
}

// truncate renders the real response, announces its full length, sends half
// of it and then aborts, which makes net/http close the connection.
func (s *Mailchimp) truncate(w *countingWriter, r *http.Request, credential string) {
	buf := &bufferedResponse{header: make(http.Header)}
	s.route(buf, r, credential, func() bool { return true }) // the latency was already waited
	body := buf.body.Bytes()
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(buf.statusOr200())
	w.writeNow(body[:len(body)/2])
	_ = http.NewResponseController(w.ResponseWriter).Flush()
	panic(http.ErrAbortHandler)
}

// bufferedResponse is an http.ResponseWriter that keeps the response in
// memory, so a truncated answer can carry the real body's length.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }

func (b *bufferedResponse) statusOr200() int {
	if b.status == 0 {
		return http.StatusOK
	}
	return b.status
}
