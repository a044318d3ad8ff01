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
	reg, addr, err := prepareRestore(reg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byEndpoint[reg.Endpoint] != nil || s.byID[reg.ID] != nil {
		return fmt.Errorf("restore registration %s of %s: %w", reg.ID, reg.Endpoint, ErrRegistered)
	}
	if len(s.byID)+s.reserved >= s.cfg.MaxRegistrations {
		return fmt.Errorf("restore registration %s of %s: %w", reg.ID, reg.Endpoint, ErrFull)
	}
	s.insertLocked(reg, addr)
	return nil
}

// prepareRestore checks a stored registration and completes it as
// Restore takes it.
func prepareRestore(reg Registration) (Registration, *net.UDPAddr, error) {
	if reg.ID == "" || reg.Endpoint == "" || reg.Tenant == "" || reg.DeviceID == "" {
		return reg, nil, fmt.Errorf("restore registration %q of %q: id, endpoint, tenant and device are needed", reg.ID, reg.Endpoint)
	}
	if reg.Lifetime <= 0 {
		return reg, nil, fmt.Errorf("restore registration %s of %s: lifetime %v is not positive", reg.ID, reg.Endpoint, reg.Lifetime)
	}
	var addr *net.UDPAddr
	if reg.Address != "" {
		a, err := net.ResolveUDPAddr("udp", reg.Address)
		if err != nil {
			return reg, nil, fmt.Errorf("restore registration %s of %s: address: %w", reg.ID, reg.Endpoint, err)
		}
		addr = a
	}
	if addr == nil && !reg.Secure {
		return reg, nil, fmt.Errorf("restore registration %s of %s: a plain CoAP registration needs its address", reg.ID, reg.Endpoint)
	}
	if reg.Secure && reg.PSKIdentity == "" {
		return reg, nil, fmt.Errorf("restore registration %s of %s: a DTLS registration needs its PSK identity", reg.ID, reg.Endpoint)
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
	return copyReg(reg), addr, nil
}

// insertLocked makes a restored or taken over registration live.
func (s *Server) insertLocked(reg Registration, addr *net.UDPAddr) *regState {
	peer := peerInfo{addr: addr, secure: reg.Secure, identity: reg.PSKIdentity}
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
	return rs
}

// Adopter is implemented by Hooks whose store other replicas share: it
// finds a live registration that another replica holds (or held before
// it died), so that the device, moved here by the load balancer, carries
// on with it without a new Register.
type Adopter interface {
	// Adopt returns the stored live registration id, as Restore takes
	// it, with Replica naming the replica holding it; an error (none
	// such, not allowed by the device's record now) leaves the device
	// to register again.
	Adopt(ctx context.Context, id string) (Registration, error)
}

// adopt takes over the registration id, unknown here, from the store
// when a device moved here from another replica asks for it (an Update,
// a De-register): as at a restart, its observations are gone and a DTLS
// device needs a session here (a new handshake, or one resumed from the
// store) before its message arrives. Only the device that made the
// registration may: the same transport, and over DTLS the same
// identity. A registration of the same endpoint held here is one the
// device has since replaced elsewhere: it is dropped, unrecorded.
func (s *Server) adopt(id string, peer peerInfo) *regState {
	a, ok := s.hooks.(Adopter)
	if !ok || !s.cfg.TakeOver || id == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx(), s.cfg.RequestTimeout)
	defer cancel()
	stored, err := a.Adopt(ctx, id)
	if err != nil {
		s.log.Debug("registration not taken over", "reg_id", id, "peer", addrString(peer.addr), "err", err)
		return nil
	}
	if stored.ID != id || stored.Secure != peer.secure || stored.PSKIdentity != peer.identity {
		s.log.Warn("registration not taken over: not the registering device's security context",
			"reg_id", id, "endpoint", stored.Endpoint, "peer", addrString(peer.addr), "secure", peer.secure, "psk_identity", peer.identity)
		return nil
	}
	from := stored.Replica
	if stored.Address == "" && peer.addr != nil {
		stored.Address = addrString(peer.addr)
	}
	reg, addr, err := prepareRestore(stored)
	if err != nil {
		s.log.Warn("registration not taken over", "reg_id", id, "err", err)
		return nil
	}
	reg.TakenOver = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.byID[id]; rs != nil {
		return rs // taken over by a concurrent message
	}
	if old := s.byEndpoint[reg.Endpoint]; old != nil {
		s.removeLocked(old)
	}
	if len(s.byID)+s.reserved >= s.cfg.MaxRegistrations {
		s.log.Warn("registration not taken over: too many registrations", "reg_id", id, "max", s.cfg.MaxRegistrations)
		return nil
	}
	rs := s.insertLocked(reg, addr)
	rs.takenFrom = from
	s.log.Info("registration taken over", "reg_id", id, "endpoint", reg.Endpoint, "from", from)
	return rs
}

// Release forgets the live registration regID of endpoint without a
// word to the hooks or the store: another replica holds it now (the
// device moved), and what this one would record of it (its expiry)
// would be wrong. It reports whether there was one.
func (s *Server) Release(endpoint, regID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.byEndpoint[endpoint]
	if rs == nil || rs.reg.ID != regID {
		return false
	}
	s.removeLocked(rs)
	return true
}

// Serving is closed once Serve answers devices and can send them
// requests: a request made before would fail, and one to a restored
// registration must wait for it.
func (s *Server) Serving() <-chan struct{} { return s.serving }
