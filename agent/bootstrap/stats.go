package bootstrap

import (
	"sync/atomic"

	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
)

// Stats are the Server's counters since it started, and the number of
// sessions running.
type Stats struct {
	Sessions    int64  // running
	Requests    uint64 // Bootstrap-Requests received
	Refused     uint64 // answered with an error code: malformed, unknown, forbidden, limited (4.29)
	Busy        uint64 // answered 5.03 because MaxSessions were running
	Finished    uint64 // sessions that ended with a successful Bootstrap-Finish
	Failed      uint64 // sessions that ended otherwise
	RateLimited uint64 // datagrams dropped because their peer sent too many

	// Of the secure port, when it is a *psk.Listener: sessions open,
	// sessions dropped by a limit, handshakes that failed.
	DTLSSessions, DTLSRefused, DTLSHandshakeFailures int64
}

type counters struct {
	requests, refused, busy, finished, failed, rateLimited atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	running := int64(s.running)
	s.mu.Unlock()
	c := &s.stats
	st := Stats{
		Sessions:    running,
		Requests:    c.requests.Load(),
		Refused:     c.refused.Load(),
		Busy:        c.busy.Load(),
		Finished:    c.finished.Load(),
		Failed:      c.failed.Load(),
		RateLimited: c.rateLimited.Load(),
	}
	if l, ok := s.secure.(*psk.Listener); ok {
		st.DTLSSessions, st.DTLSRefused, st.DTLSHandshakeFailures = l.Sessions(), l.Refused(), l.HandshakeFailures()
	}
	return st
}
