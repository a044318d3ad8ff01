package lwm2m

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// Reasons Restore refuses a registration.
var (
	// ErrRegistered: the endpoint or registration ID is live already.
	ErrRegistered = errors.New("already registered")
	// ErrFull: MaxRegistrations are live.
	ErrFull = errors.New("too many registrations")
)

// Restore makes a registration the agent held before it restarted live
// again, so that the device's next Update to its location is answered
// 2.04 and requests reach it without a new Register. reg is what was
// stored of it: ID, Endpoint, Tenant, DeviceID and Lifetime are needed,
// and a plain CoAP registration needs its Address. Requests to a UDP
// device go to that address; a DTLS registration waits for the device's
// next handshake (ErrNoSession until then), as the session is gone.
//
// The registration expires at UpdatedAt + Lifetime (plus the grace), as
// if the agent had never stopped: one that ran out while the agent was
// down is expired at once, through Hooks.Expired, once Serve runs.
// Observations are not restored (their tokens died with the process);
// the first Update after a Restore says so with Registration.Restored.
//
// Restore is meant to be called before Serve, so that no device's Update
// arrives first; after Serve it works too.
func (s *Server) Restore(reg Registration) error {
	if reg.ID == "" || reg.Endpoint == "" || reg.Tenant == "" || reg.DeviceID == "" {
		return fmt.Errorf("restore registration %q of %q: id, endpoint, tenant and device are needed", reg.ID, reg.Endpoint)
	}
	if reg.Lifetime <= 0 {
		return fmt.Errorf("restore registration %s of %s: lifetime %v is not positive", reg.ID, reg.Endpoint, reg.Lifetime)
	}
	var addr *net.UDPAddr
	if reg.Address != "" {
		a, err := net.ResolveUDPAddr("udp", reg.Address)
		if err != nil {
			return fmt.Errorf("restore registration %s of %s: address: %w", reg.ID, reg.Endpoint, err)
		}
		addr = a
	}
	if addr == nil && !reg.Secure {
		return fmt.Errorf("restore registration %s of %s: a plain CoAP registration needs its address", reg.ID, reg.Endpoint)
	}
	if reg.Secure && reg.PSKIdentity == "" {
		return fmt.Errorf("restore registration %s of %s: a DTLS registration needs its PSK identity", reg.ID, reg.Endpoint)
	}
	if reg.Binding == "" {
		reg.Binding = "U"
	}
	if reg.RootPath == "" {
		reg.RootPath = "/"
	}
	if reg.UpdatedAt.IsZero() {
		reg.UpdatedAt = time.Now()
	}
	if reg.RegisteredAt.IsZero() {
		reg.RegisteredAt = reg.UpdatedAt
	}
	reg.Restored = true
	reg = copyReg(reg)
	peer := peerInfo{addr: addr, secure: reg.Secure, identity: reg.PSKIdentity}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byEndpoint[reg.Endpoint] != nil || s.byID[reg.ID] != nil {
		return fmt.Errorf("restore registration %s of %s: %w", reg.ID, reg.Endpoint, ErrRegistered)
	}
	if len(s.byID)+s.reserved >= s.cfg.MaxRegistrations {
		return fmt.Errorf("restore registration %s of %s: %w", reg.ID, reg.Endpoint, ErrFull)
	}
	rctx, cancel := context.WithCancel(s.baseCtx)
	rs := &regState{
		reg:     reg,
		addr:    addr,
		peerKey: peer.key(),
		ctx:     rctx,
		cancel:  cancel,
		sem:     make(chan struct{}, s.cfg.NStart),
		obs:     make(map[string]*observation),
		heapIdx: -1,
	}
	s.byID[reg.ID] = rs
	s.byEndpoint[reg.Endpoint] = rs
	if old := s.byPeer[rs.peerKey]; old == nil {
		s.byPeer[rs.peerKey] = rs
	}
	s.scheduleLocked(rs, reg.UpdatedAt)
	return nil
}

// Serving is closed once Serve answers devices and can send them
// requests: a request made before would fail, and one to a restored
// registration must wait for it.
func (s *Server) Serving() <-chan struct{} { return s.serving }
