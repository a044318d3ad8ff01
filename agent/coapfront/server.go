// Package coapfront serves CoAP over UDP with go-coap's connections, but
// reads the socket itself, so that a datagram is judged before any state
// is made for its sender: go-coap's own UDP server gives every new source
// address a connection and a goroutine, and keeps them for the idle
// timeout, before any limit can look at the datagram. Here a peer gets
// state only when its datagram is one a Policy admits, the peers with
// state that the Policy does not hold (devices not, or not yet,
// registered) are bounded, least recently active first out, and silent
// ones are dropped soon.
package coapfront

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/ratelimit"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"
)

// Verdict is what becomes of a datagram from a peer without state.
type Verdict struct {
	kind verdictKind
	code codes.Code
}

type verdictKind uint8

const (
	drop verdictKind = iota
	admit
	reset
	answer
)

var (
	// Drop discards the datagram, counted as CauseUnknownPeer.
	Drop = Verdict{kind: drop}
	// Admit gives the peer state and hands the datagram to go-coap.
	Admit = Verdict{kind: admit}
	// Reset answers it with an empty RST and keeps nothing.
	Reset = Verdict{kind: reset}
)

// Answer answers a request with code and no payload, piggybacked on the
// ACK of a CON, and keeps nothing. Like an RST, the answer is never larger
// than the request: a forged sender address gains nothing by it.
func Answer(code codes.Code) Verdict { return Verdict{kind: answer, code: code} }

// MaxAge is a Max-Age option of d, rounded up to whole seconds: when a
// refused client may try again (RFC 7252 section 5.10.5, RFC 8516).
func MaxAge(d time.Duration) message.Option {
	secs := uint32((d + time.Second - 1) / time.Second)
	buf := make([]byte, 4)
	n, _ := message.EncodeUint32(buf, secs)
	return message.Option{ID: message.MaxAge, Value: buf[:n]}
}

// Refusal causes, as lwm2m_agent_refused_total names them, and the
// agent's settings that move their limits.
const (
	CauseUnknownPeer   = "coap_unknown_peer"
	CausePeersFull     = "coap_peers_full"
	SettingMaxPending  = "coap-max-pending-peers"
	SettingPendingIdle = "coap-pending-idle-timeout"
)

// Defaults of Policy.
const (
	DefaultMaxPending  = 4096
	DefaultPendingIdle = 10 * time.Second
)

// Policy decides which peers get state.
type Policy struct {
	// Admit judges a well-formed datagram from a peer without state that
	// Held does not hold. Nil drops every such datagram.
	Admit func(raddr *net.UDPAddr, h *Header) Verdict
	// Held tells a peer whose state must stay (a registered device, a
	// running bootstrap): all its datagrams are admitted, and its state
	// is neither counted in MaxPending nor dropped after PendingIdle, only
	// by go-coap's inactivity monitor. Nil holds nobody.
	Held func(raddr *net.UDPAddr) bool
	// Allow takes a datagram from the sender's rate (after admission, so
	// that datagrams dropped anyway cost no entry); nil allows all.
	Allow func(raddr *net.UDPAddr) bool
	// MaxPending bounds the peers with state that Held does not hold; a
	// new one beyond it ends the least recently active one
	// (DefaultMaxPending).
	MaxPending int
	// PendingIdle ends the state of such a peer silent this long
	// (DefaultPendingIdle).
	PendingIdle time.Duration
	// Refused counts what is dropped; nil counts nothing.
	Refused *refusal.Log
}

// Server is one UDP socket served by go-coap connections behind a Policy.
type Server struct {
	sc     udpServer.Config
	conn   *coapNet.UDPConn
	policy Policy
	ctx    context.Context
	cancel context.CancelFunc
	served atomic.Bool

	mu      sync.Mutex
	closed  bool
	peers   map[netip.AddrPort]*peer
	pending list.List // of *peer not held, the least recently active at the back
	sweep   []*peer   // reused by the periodic runner

	received, dropped, evicted atomic.Uint64
}

type peer struct {
	key  netip.AddrPort
	addr *net.UDPAddr
	cc   *udpClient.Conn
	sess *session
	held bool
	elem *list.Element // in Server.pending unless held
	last time.Time
}

// New returns a Server on conn with go-coap's UDP server options (the
// same as udp.NewServer takes; multicast and OnNewConn are not used).
func New(conn *coapNet.UDPConn, policy Policy, opts ...udpServer.Option) *Server {
	sc := udpServer.DefaultConfig
	for _, o := range opts {
		o.UDPServerApply(&sc)
	}
	errorsFunc := sc.Errors
	if errorsFunc == nil {
		errorsFunc = func(error) {}
	}
	sc.Errors = func(err error) {
		if !coapNet.IsCancelOrCloseError(err) {
			errorsFunc(fmt.Errorf("udp: %w", err))
		}
	}
	if sc.GetMID == nil {
		sc.GetMID = message.GetMID
	}
	if sc.GetToken == nil {
		sc.GetToken = message.GetToken
	}
	if sc.MessagePool == nil {
		sc.MessagePool = pool.New(0, 0)
	}
	if sc.CreateInactivityMonitor == nil {
		sc.CreateInactivityMonitor = udpServer.DefaultConfig.CreateInactivityMonitor
	}
	if policy.MaxPending <= 0 {
		policy.MaxPending = DefaultMaxPending
	}
	if policy.PendingIdle <= 0 {
		policy.PendingIdle = DefaultPendingIdle
	}
	ctx, cancel := context.WithCancel(sc.Ctx)
	return &Server{sc: sc, conn: conn, policy: policy, ctx: ctx, cancel: cancel, peers: make(map[netip.AddrPort]*peer)}
}

// Serve reads the socket until Stop; it can be called once.
func (s *Server) Serve() error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("coap front: serve called twice")
	}
	defer s.closeAll()
	s.sc.PeriodicRunner(func(now time.Time) bool {
		s.tick(now)
		return s.ctx.Err() == nil
	})
	// One byte more than the largest datagram, so that a longer one is
	// seen as such instead of cut to size.
	buf := make([]byte, int(s.sc.MaxMessageSize)+1)
	for {
		var raddr *net.UDPAddr
		var cm *coapNet.ControlMessage
		n, err := s.conn.ReadWithOptions(buf, coapNet.WithContext(s.ctx), coapNet.WithGetControlMessage(&cm), coapNet.WithGetRemoteAddr(&raddr))
		if err != nil {
			if s.ctx.Err() != nil || coapNet.IsCancelOrCloseError(err) {
				return nil
			}
			if coapNet.IsMessageSizeError(err) {
				continue
			}
			return fmt.Errorf("coap front: read: %w", err)
		}
		if n > int(s.sc.MaxMessageSize) || raddr == nil {
			s.sc.Errors(fmt.Errorf("%v: datagram of %d bytes over the limit of %d", raddr, n, s.sc.MaxMessageSize))
			continue
		}
		s.received.Add(1)
		s.handle(buf[:n], raddr, cm)
	}
}

// Stop closes the socket and every peer's state; Serve returns.
func (s *Server) Stop() {
	s.cancel()
	_ = s.conn.Close()
	s.closeAll()
}

// Peers returns the peers with state, and how many of them are not held.
func (s *Server) Peers() (all, pending int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers), s.pending.Len()
}

// Received returns the datagrams read within the size limit.
func (s *Server) Received() uint64 { return s.received.Load() }

// Dropped returns the datagrams dropped for coming from a peer without
// state that the Policy did not admit.
func (s *Server) Dropped() uint64 { return s.dropped.Load() }

// Evicted returns the peers whose state made room for a new peer's.
func (s *Server) Evicted() uint64 { return s.evicted.Load() }

func addrKey(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// handle passes a datagram to its peer's connection, after the Policy for
// a peer without one.
func (s *Server) handle(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	key := addrKey(raddr)
	p := s.lookup(key)
	created := false
	if p == nil {
		h, err := Parse(b)
		if err != nil {
			s.drop(raddr, "malformed")
			return
		}
		held := s.policy.Held != nil && s.policy.Held(raddr)
		v := Admit
		if !held {
			v = Drop
			if s.policy.Admit != nil {
				v = s.policy.Admit(raddr, &h)
			}
		}
		switch v.kind {
		case admit:
		case reset:
			if s.allow(raddr) {
				s.writeReset(h.MessageID, raddr, cm)
			}
			return
		case answer:
			if s.allow(raddr) {
				s.writeAnswer(&h, v.code, raddr, cm)
			}
			return
		default:
			s.drop(raddr, "not admitted")
			return
		}
		if !s.allow(raddr) {
			return
		}
		if p, created = s.open(raddr, key, held); p == nil {
			return
		}
	} else if !s.allow(raddr) {
		return
	}
	if err := p.cc.Process(cm, b); err != nil {
		s.processError(p, cm, err, created)
	}
}

func (s *Server) allow(raddr *net.UDPAddr) bool {
	return s.policy.Allow == nil || s.policy.Allow(raddr)
}

func (s *Server) drop(raddr *net.UDPAddr, why string) {
	s.dropped.Add(1)
	s.policy.Refused.Refuse(CauseUnknownPeer, "", "peer", raddr, "reason", why)
}

// lookup returns the open state of key, marked active now.
func (s *Server) lookup(key netip.AddrPort) *peer {
	s.mu.Lock()
	p := s.peers[key]
	if p == nil {
		s.mu.Unlock()
		return nil
	}
	if p.cc.Context().Err() != nil {
		s.forgetLocked(p)
		s.mu.Unlock()
		p.sess.shutdown()
		return nil
	}
	p.last = time.Now()
	if p.elem != nil {
		s.pending.MoveToFront(p.elem)
	}
	s.mu.Unlock()
	return p
}

// open returns the state of raddr, made now unless another goroutine made
// it first; nil once the server stopped. A new peer not held may end the
// least recently active one.
func (s *Server) open(raddr *net.UDPAddr, key netip.AddrPort, held bool) (*peer, bool) {
	p := s.newPeer(raddr, key, held)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.close()
		return nil, false
	}
	if q := s.peers[key]; q != nil && q.cc.Context().Err() == nil {
		if held && q.elem != nil {
			s.pending.Remove(q.elem)
			q.elem, q.held = nil, true
		}
		s.mu.Unlock()
		p.close()
		return q, false
	} else if q != nil {
		s.forgetLocked(q)
		defer q.sess.shutdown()
	}
	s.peers[key] = p
	var evict []*peer
	if !held {
		p.elem = s.pending.PushFront(p)
		for s.pending.Len() > s.policy.MaxPending {
			q := s.pending.Back().Value.(*peer)
			s.pending.Remove(q.elem)
			q.elem = nil
			if s.policy.Held != nil && s.policy.Held(q.addr) {
				q.held = true
				continue
			}
			delete(s.peers, q.key)
			evict = append(evict, q)
		}
	}
	s.mu.Unlock()
	for _, q := range evict {
		s.evicted.Add(1)
		s.policy.Refused.Refuse(CausePeersFull, SettingMaxPending, "peer", q.addr, "max", s.policy.MaxPending)
		q.close()
	}
	return p, true
}

// NewConn returns the connection to addr for a request the server sends:
// the open one, else a new one, held since the server talks to it.
func (s *Server) NewConn(addr *net.UDPAddr) (*udpClient.Conn, error) {
	if s.ctx.Err() != nil {
		return nil, errors.New("coap front: server is not running")
	}
	key := addrKey(addr)
	if p := s.lookup(key); p != nil {
		s.mu.Lock()
		if p.elem != nil {
			s.pending.Remove(p.elem)
			p.elem, p.held = nil, true
		}
		s.mu.Unlock()
		return p.cc, nil
	}
	p, _ := s.open(addr, key, true)
	if p == nil {
		return nil, errors.New("coap front: server is not running")
	}
	return p.cc, nil
}

// forgetLocked removes p from the tables; its session's shutdown is the
// caller's, outside s.mu, since it runs go-coap's close callbacks.
func (s *Server) forgetLocked(p *peer) {
	if s.peers[p.key] == p {
		delete(s.peers, p.key)
	}
	if p.elem != nil {
		s.pending.Remove(p.elem)
		p.elem = nil
	}
}

// tick runs every round of the periodic runner: the state of peers not
// held that fell silent ends, and every connection checks its timers
// (retransmissions, block-wise transfers, inactivity).
func (s *Server) tick(now time.Time) {
	s.mu.Lock()
	var idle []*peer
	for e := s.pending.Back(); e != nil; {
		p := e.Value.(*peer)
		if now.Sub(p.last) < s.policy.PendingIdle {
			break
		}
		prev := e.Prev()
		s.pending.Remove(e)
		p.elem = nil
		if s.policy.Held != nil && s.policy.Held(p.addr) {
			p.held = true
		} else {
			delete(s.peers, p.key)
			idle = append(idle, p)
		}
		e = prev
	}
	all := s.sweep[:0]
	for _, p := range s.peers {
		all = append(all, p)
	}
	s.mu.Unlock()
	for _, p := range idle {
		p.close()
	}
	for i, p := range all {
		if p.cc.Context().Err() != nil {
			s.mu.Lock()
			s.forgetLocked(p)
			s.mu.Unlock()
			p.sess.shutdown()
		} else {
			p.cc.CheckExpirations(now)
		}
		all[i] = nil
	}
	s.mu.Lock()
	s.sweep = all[:0]
	s.mu.Unlock()
}

func (s *Server) closeAll() {
	s.mu.Lock()
	s.closed = true
	all := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		p.elem = nil
		all = append(all, p)
	}
	clear(s.peers)
	s.pending.Init()
	s.mu.Unlock()
	for _, p := range all {
		p.close()
	}
}

// processError does what go-coap's server does with a datagram its
// connection could not take: an RST for a malformed CON (RFC 7252 section
// 4.2), and the end of a connection made for it or one that failed.
func (s *Server) processError(p *peer, cm *coapNet.ControlMessage, err error, created bool) {
	var malformed *udpClient.MalformedMessageError
	if errors.As(err, &malformed) {
		if !malformed.InvalidVersion && malformed.HasHeader && malformed.Type == message.Confirmable && message.ValidateMID(malformed.MessageID) {
			s.writeReset(uint16(malformed.MessageID), p.addr, cm)
		}
		if !created {
			return
		}
	} else {
		s.sc.Errors(fmt.Errorf("%v: cannot process datagram: %w", p.addr, err))
	}
	s.mu.Lock()
	s.forgetLocked(p)
	s.mu.Unlock()
	p.close()
}

// writeReset sends an empty RST with message ID mid: it keeps no state and
// is no larger than any datagram it answers.
func (s *Server) writeReset(mid uint16, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	s.write([]byte{0x70, 0x00, byte(mid >> 8), byte(mid)}, raddr, cm)
}

// writeAnswer sends the answer of Answer(code) to the request h: its
// header and token, nothing more.
func (s *Server) writeAnswer(h *Header, code codes.Code, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	typ, mid := message.Acknowledgement, h.MessageID
	if h.Type != message.Confirmable {
		typ, mid = message.NonConfirmable, uint16(message.GetMID())
	}
	b := make([]byte, 4, 4+len(h.Token))
	b[0] = 1<<6 | byte(typ)<<4 | byte(len(h.Token))
	b[1] = byte(code)
	b[2], b[3] = byte(mid>>8), byte(mid)
	s.write(append(b, h.Token...), raddr, cm)
}

func (s *Server) write(b []byte, raddr *net.UDPAddr, cm *coapNet.ControlMessage) {
	opts := []coapNet.UDPWriteOption{coapNet.WithContext(s.ctx), coapNet.WithRemoteAddr(raddr)}
	if cm != nil {
		opts = append(opts, coapNet.WithControlMessage(&coapNet.ControlMessage{IfIndex: cm.GetIfIndex(), Src: cm.Dst}))
	}
	if err := s.conn.WriteWithOptions(b, opts...); err != nil {
		s.sc.Errors(fmt.Errorf("%v: cannot answer: %w", raddr, err))
	}
}

// newPeer makes a connection as go-coap's UDP server does for a new
// address, on a session this package can end.
func (s *Server) newPeer(raddr *net.UDPAddr, key netip.AddrPort, held bool) *peer {
	sess := newSession(s.ctx, s.conn, raddr, s.sc.MaxMessageSize)
	cfg := udpClient.DefaultConfig
	cfg.TransmissionNStart = s.sc.TransmissionNStart
	cfg.TransmissionAcknowledgeTimeout = s.sc.TransmissionAcknowledgeTimeout
	cfg.TransmissionAcknowledgeRandomFactor = s.sc.TransmissionAcknowledgeRandomFactor
	cfg.TransmissionMaxRetransmit = s.sc.TransmissionMaxRetransmit
	cfg.MaxPendingMessages = s.sc.MaxPendingMessages
	cfg.QBlockwiseMode = s.sc.QBlockwiseMode
	cfg.QBlockwiseConfig = s.sc.QBlockwiseConfig
	cfg.MTU = s.sc.MTU
	cfg.Handler = s.sc.Handler
	cfg.BlockwiseSZX = s.sc.BlockwiseSZX
	cfg.Errors = s.sc.Errors
	cfg.GetMID = s.sc.GetMID
	cfg.GetToken = s.sc.GetToken
	cfg.MessagePool = s.sc.MessagePool
	cfg.ProcessReceivedMessage = s.sc.ProcessReceivedMessage
	cfg.ReceivedMessageQueueSize = s.sc.ReceivedMessageQueueSize
	createBlockWise := func(*udpClient.Conn) *blockwise.BlockWise[*udpClient.Conn] { return nil }
	if s.sc.BlockwiseEnable {
		createBlockWise = func(cc *udpClient.Conn) *blockwise.BlockWise[*udpClient.Conn] {
			// cc is still being built: its observations are looked up
			// when a block comes, not now
			bw := blockwise.New(cc, s.sc.BlockwiseTransferTimeout, s.sc.Errors, func(token message.Token) (*pool.Message, bool) {
				return cc.GetObservationRequest(token)
			})
			bw.SetReceivingMessagesCacheMaxEntries(s.sc.BlockwiseReceivingMessagesCacheMaxEntries)
			return bw
		}
	}
	cc := udpClient.NewConnWithOpts(sess, &cfg,
		udpClient.WithInactivityMonitor(s.sc.CreateInactivityMonitor()),
		udpClient.WithRequestMonitor(s.sc.RequestMonitor),
		udpClient.WithBlockWise(createBlockWise),
	)
	return &peer{key: key, addr: raddr, cc: cc, sess: sess, held: held, last: time.Now()}
}

func (p *peer) close() {
	_ = p.cc.Close()
	p.sess.shutdown()
}

// RateLimit is a Policy.Allow that takes each datagram from its sender's
// bucket in limiter (nil: no limit) and counts those refused in limited.
func RateLimit(limiter *ratelimit.Peers, limited *atomic.Uint64) func(*net.UDPAddr) bool {
	return func(a *net.UDPAddr) bool {
		if limiter.Allow(a.String(), time.Now()) {
			return true
		}
		limited.Add(1)
		return false
	}
}
