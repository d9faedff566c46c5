package mcsim

import (
	"maps"
	"net/http"
	"strings"
)

// Stats counts what the simulator served since New or the last ResetStats.
// Tests use it to check a client's traffic (minimal requests, the
// connection limit, bytes saved by fields=).
type Stats struct {
	Requests int // API requests received (all paths, all outcomes)
	// Requests by kind, whatever their outcome; the three add up to
	// Requests. A count=1 request for total_items is a page request.
	PageRequests   int // GET /lists/{id}/members: the members endpoint
	MemberRequests int // GET /lists/{id}/members/{hash}: one member
	OtherRequests  int // everything else: ping, lists, unknown paths, other methods
	MemberNotFound int // one-member requests answered 404 (deleted, moved away or never there)
	// ByStatus counts responses by status code. Dropped connections count
	// under 0, clients that left during the latency under StatusClientClosed.
	ByStatus      map[int]int
	MemberPages   int // members requests answered 200 (without an injected fault)
	MembersServed int // members written in those pages
	// MaxInFlight is the most requests one key had in flight at once,
	// counting a request refused for being over the limit: a value above
	// MaxConnsPerKey means a client tried to exceed it.
	MaxInFlight   int
	LimitRejected int // 429s caused by the connection limit (not injected)
	Faults        int // injected faults
	BytesServed   int64
	// MetadataRequests counts the requests at MetadataPath, whatever their
	// answer. They are another server's, so no other counter includes them.
	MetadataRequests int
}

// Stats returns a copy of the counters.
func (s *Mailchimp) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = maps.Clone(s.stats.ByStatus)
	return st
}

// ResetStats zeroes the counters. Requests in flight are counted when they
// finish.
func (s *Mailchimp) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByStatus: make(map[int]int)}
}

// requestKind is what a request asked for, for Stats.
type requestKind int

const (
	kindOther requestKind = iota
	kindPage
	kindMember
)

// kindOf classifies a request by method and path: the path under /3.0 for
// an HTTP request, the endpoint for a Source call.
func kindOf(method, path string) requestKind {
	if method != http.MethodGet {
		return kindOther
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/"), "/")
	if len(parts) < 3 || parts[0] != "lists" || parts[1] == "" || parts[2] != "members" {
		return kindOther
	}
	switch {
	case len(parts) == 3:
		return kindPage
	case len(parts) == 4 && parts[3] != "":
		return kindMember
	}
	return kindOther
}

// countRequest counts a request as it arrives, so Requests and its kinds
// always add up.
func (s *Mailchimp) countRequest(kind requestKind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Requests++
	switch kind {
	case kindPage:
		s.stats.PageRequests++
	case kindMember:
		s.stats.MemberRequests++
	default:
		s.stats.OtherRequests++
	}
}

// outcome is what ServeHTTP learned about one request, for Stats.
type outcome struct {
	kind          requestKind
	members       int // members written in a 200 members page; -1 for other requests
	limitRejected bool
	fault         bool
	clientGone    bool
}

// StatusClientClosed is the ByStatus key for requests whose client went away
// while they waited out the latency (nginx's 499): nothing was sent.
const StatusClientClosed = 499

// record adds a finished request to Stats. It runs before net/http completes
// the response, so a client never sees an answer its Stats do not show yet.
func (s *Mailchimp) record(rw *countingWriter, out *outcome) {
	status := rw.status
	switch {
	case out.clientGone:
		status = StatusClientClosed
	case rw.hijacked:
		status = 0 // dropped: no response at all
	case status == 0:
		status = http.StatusOK // a handler that wrote nothing answered 200
	}
	s.count(status, rw.bytes, out)
}

// count adds one finished request, answered with status and bytes of body,
// to Stats: from ServeHTTP or from an in-process Source.
func (s *Mailchimp) count(status int, bytes int64, out *outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.ByStatus[status]++
	st.BytesServed += bytes
	if out.limitRejected {
		st.LimitRejected++
	}
	if out.fault {
		st.Faults++
	}
	if out.kind == kindMember && status == http.StatusNotFound {
		st.MemberNotFound++
	}
	if out.members >= 0 && status == http.StatusOK {
		st.MemberPages++
		st.MembersServed += out.members
	}
}
