package mcsim

import "maps"

// Stats counts what the simulator served since New or the last ResetStats.
// Tests use it to check a client's traffic (minimal requests, the
// connection limit, bytes saved by fields=).
type Stats struct {
	Requests int // API requests received (all paths, all outcomes)
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
