// Package psk is the agent's DTLS 1.2 transport with pre-shared keys: the
// server configuration LwM2M asks for (the PSK cipher suites of the
// transport specification, RFC 9146 Connection IDs), keys looked up by the
// identity a client presents, and a listener that bounds what unfinished
// and idle sessions may hold.
package psk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/ratelimit"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/pion/dtls/v3"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
)

// CipherSuites are the suites a server offers, in its order of preference:
// the two that LwM2M mandates for PSK (Transport TS, section 5.2.8) first.
var CipherSuites = []dtls.CipherSuiteID{
	dtls.TLS_PSK_WITH_AES_128_CCM_8,
	dtls.TLS_PSK_WITH_AES_128_CBC_SHA256,
	dtls.TLS_PSK_WITH_AES_128_CCM,
	dtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
}

// ErrUnknownIdentity is what a KeyFunc returns for an identity that has no
// key; the handshake fails.
var ErrUnknownIdentity = errors.New("unknown psk identity")

// KeyFunc returns the key of a PSK identity. It should do the same work
// for an identity nobody holds as for one with a key (the same lookups),
// so that its time does not tell them apart either.
type KeyFunc func(ctx context.Context, identity string) ([]byte, error)

// Causes of failed handshakes, counted and logged once per interval by a
// refusal.Log.
const (
	// CauseUnknownIdentity: the client presented an identity that has no
	// key (or whose key could not be looked up).
	CauseUnknownIdentity = "dtls_unknown_identity"
	// CauseWrongKey: the client presented an identity with a key, and the
	// handshake failed after the key exchange; almost always a wrong key.
	CauseWrongKey = "dtls_wrong_key"
	// CauseBadCookie: a ClientHello returned a cookie that was not made
	// for it and its address, or whose secret has expired; it is answered
	// with a new HelloVerifyRequest, nothing else.
	CauseBadCookie = "dtls_bad_cookie"
	// CauseUnknownPeer: a datagram from an address without an association
	// that is not an unfragmented ClientHello, dropped (records of a
	// session that was closed, garbage).
	CauseUnknownPeer = "dtls_unknown_peer"
)

// Defaults of Limits.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHandshakes    = 1024
	DefaultMaxSessions      = 200000
	DefaultKeyTimeout       = 5 * time.Second
	CIDSize                 = 8
)

// Limits bound the listener. Zero fields mean their defaults.
type Limits struct {
	// HandshakeTimeout ends a handshake that has not finished in time.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds the handshakes under way; a client beyond it is
	// dropped and retransmits its hello later.
	MaxHandshakes int
	// MaxHandshakesPerAddr bounds the handshakes under way from one IP
	// address (any port), so that the hosts of one address cannot hold
	// every slot; a client beyond it is dropped like one beyond
	// MaxHandshakes. Zero means a quarter of MaxHandshakes: devices
	// behind one carrier NAT share an address.
	MaxHandshakesPerAddr int
	// MaxSessions bounds the established sessions; beyond it a new session
	// is closed at once.
	MaxSessions int
	// KeyTimeout bounds one key lookup.
	KeyTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.MaxHandshakes <= 0 {
		l.MaxHandshakes = DefaultMaxHandshakes
	}
	if l.MaxHandshakesPerAddr <= 0 {
		l.MaxHandshakesPerAddr = max(1, l.MaxHandshakes/4)
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = DefaultMaxSessions
	}
	if l.KeyTimeout <= 0 {
		l.KeyTimeout = DefaultKeyTimeout
	}
	return l
}

// serverOptions are the DTLS server options: PSK only, keys from ring,
// Connection IDs offered to clients that support them, and each new
// handshake counted against its peer's rate in peers (nil: no limit), like
// a datagram. The PSK callback never logs a key. pion sends no
// HelloVerifyRequest: the demux has verified the cookie of every
// ClientHello it hands over (its second), and pion's own cookie would be
// a second exchange, with state.
func serverOptions(ring *keyring, peers *ratelimit.Peers, log *slog.Logger) []dtls.ServerOption {
	opts := []dtls.ServerOption{
		dtls.WithPSK(ring.key),
		// Clients choose the identity; the hint only has to be present.
		dtls.WithPSKIdentityHint([]byte("lwm2m-agent")),
		dtls.WithCipherSuites(CipherSuites...),
		dtls.WithExtendedMasterSecret(dtls.RequestExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(CIDSize)),
		dtls.WithFlightInterval(time.Second),
		dtls.WithInsecureSkipVerifyHello(true),
		dtls.WithLoggerFactory(pionLog{log}),
	}
	if peers != nil {
		opts = append(opts, dtls.WithOnConnectionAttempt(func(a net.Addr) error {
			if !peers.Allow(a.String(), time.Now()) {
				return ratelimit.ErrLimited
			}
			return nil
		}))
	}
	return opts
}

// Identity returns the PSK identity a client authenticated with on c, a
// connection accepted by a Listener (or a *dtls.Conn); ok is false for a
// connection that is not DTLS or has not finished its handshake.
func Identity(c net.Conn) (identity string, ok bool) {
	if s, isSession := c.(*session); isSession {
		// read once after the handshake: the state is cloned on each read
		if id := s.identity.Load(); id != nil {
			return *id, true
		}
		c = s.Conn
	}
	d, isDTLS := c.(*dtls.Conn)
	if !isDTLS {
		return "", false
	}
	st, ok := d.ConnectionState()
	if !ok || st.IdentityHint == nil {
		return "", false
	}
	// On the server side the state's hint holds the client's identity.
	return string(st.IdentityHint), true
}

// Listener accepts DTLS sessions within Limits. It satisfies go-coap's DTLS
// server listener.
type Listener struct {
	inner      net.Listener
	closed     atomic.Bool
	lim        Limits
	ring       *keyring
	demux      *demux
	refused    *refusal.Log
	log        *slog.Logger
	handshakes chan struct{}
	sessions   atomic.Int64
	completed  atomic.Int64 // full handshakes
	keep       atomic.Pointer[keeper]
	pumped     chan acceptResult
	dropped    atomic.Int64
	failed     atomic.Int64

	mu         sync.Mutex
	byIdentity map[string]map[*session]struct{} // established sessions, for CloseIdentity
	byAddr     map[netip.Addr]int               // handshakes under way by IP address, an entry for each address with one
}

// Listen binds addr ("host:port", "udp" network) for DTLS-PSK with keys
// from keys, within lim; peers (nil: no limit) bounds each peer's rate of
// new handshakes, counted only for ClientHellos that returned their
// cookie. Handshakes that fail for an unknown identity or a wrong key are
// counted and logged in refused (nil: neither) under CauseUnknownIdentity
// and CauseWrongKey, invalid cookies under CauseBadCookie, and datagrams
// from addresses without an association that are not ClientHellos under
// CauseUnknownPeer.
func Listen(addr string, keys KeyFunc, lim Limits, log *slog.Logger, peers *ratelimit.Peers, refused *refusal.Log) (*Listener, error) {
	lim = lim.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ring := newKeyring(keys, lim, log)
	opts := serverOptions(ring, peers, log)
	// pion's own listener (dtls.ListenWithOptions, which go-coap's
	// NewDTLSListener calls) sends a new ClientHello from an address with
	// a finished session to that session, which drops it: the socket's
	// datagrams go through demux instead.
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dtls listen %s: %w", addr, err)
	}
	d := newDemux(pc, CIDSize, newCookies(cookieRotation, nil), refused)
	l, err := dtls.NewListenerWithOptions(d, opts...)
	if err != nil {
		_ = d.Close()
		return nil, fmt.Errorf("dtls listen %s: %w", addr, err)
	}
	return &Listener{inner: l, lim: lim, ring: ring, demux: d, refused: refused, log: log, pumped: make(chan acceptResult),
		handshakes: make(chan struct{}, lim.MaxHandshakes), byIdentity: map[string]map[*session]struct{}{}, byAddr: map[netip.Addr]int{}}, nil
}

// CloseIdentity closes every established session authenticated with
// identity and returns how many: a session opened with a key the device
// no longer has must not carry its next Register.
func (l *Listener) CloseIdentity(identity string) int {
	l.mu.Lock()
	var open []*session
	for s := range l.byIdentity[identity] {
		open = append(open, s)
	}
	l.mu.Unlock()
	for _, s := range open {
		_ = s.Close()
	}
	l.ForgetIdentity(identity)
	return len(open)
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Close stops accepting; sessions already accepted stay open.
func (l *Listener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := l.inner.Close()
	if k := l.keep.Load(); k != nil {
		k.stop()
	}
	return err
}

// Sessions returns the established sessions open now.
func (l *Listener) Sessions() int64 { return l.sessions.Load() }

// Handshakes returns the handshakes under way now.
func (l *Listener) Handshakes() int { return len(l.handshakes) }

// Associations returns the associations the listener holds now: those
// queued for Accept, handshakes under way and sessions. Only a client
// that returned its cookie gets one.
func (l *Listener) Associations() int { return l.demux.associations() }

// HelloVerifyRequests returns the HelloVerifyRequests sent so far, one
// for each ClientHello without a valid cookie.
func (l *Listener) HelloVerifyRequests() uint64 { return l.demux.hvrs.Load() }

// HandshakesCompleted returns the full handshakes that succeeded so far.
func (l *Listener) HandshakesCompleted() int64 { return l.completed.Load() }

// Refused returns the sessions dropped by a limit so far.
func (l *Listener) Refused() int64 { return l.dropped.Load() }

// HandshakeFailures returns the handshakes that failed so far (a wrong
// key, a timeout, garbage).
func (l *Listener) HandshakeFailures() int64 { return l.failed.Load() }

// AcceptWithContext returns the next session; its handshake runs when the
// server calls HandshakeContext, within the limits.
func (l *Listener) AcceptWithContext(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.closed.Load() {
		return nil, coapNet.ErrListenerIsClosed
	}
	var r acceptResult
	if k := l.keep.Load(); k != nil {
		select {
		case r = <-l.pumped:
		case s := <-k.resumed:
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		r = l.accept()
	}
	if r.err != nil {
		if errors.Is(r.err, errDemuxClosed) {
			// go-coap's server stops on this error and retries on others
			return nil, coapNet.ErrListenerIsClosed
		}
		return nil, r.err
	}
	return r.s, nil
}

type acceptResult struct {
	s   *session
	err error
}

// accept takes the next new session from pion's listener, with its
// association.
func (l *Listener) accept() acceptResult {
	c, err := l.inner.Accept()
	if err != nil {
		return acceptResult{err: err}
	}
	return acceptResult{s: &session{Conn: c, l: l, pc: l.demux.takeAccepted()}}
}

// pumpAccept accepts for AcceptWithContext, which also takes resumed
// sessions, until the listener closes.
func (l *Listener) pumpAccept() {
	k := l.keep.Load()
	for {
		r := l.accept()
		select {
		case l.pumped <- r:
		case <-k.ctx.Done():
			if r.s != nil {
				_ = r.s.Close()
			}
			return
		}
		if r.err != nil && errors.Is(r.err, errDemuxClosed) {
			return
		}
	}
}

// session counts a connection against the limits from its handshake to
// its close.
type session struct {
	net.Conn
	l       *Listener
	started atomic.Bool // the first HandshakeContext call took the limits
	counted atomic.Bool // counted in l.sessions
	closed  atomic.Bool
	// identity is the client's PSK identity, set once the handshake is done.
	identity atomic.Pointer[string]
	// pc is its association; parking says it closes to be parked.
	pc      *peerConn
	parking atomic.Bool
}

var errTooMany = errors.New("dtls: too many sessions or handshakes")

// HandshakeContext runs the handshake if a handshake slot is free and
// the session limit allows another session. go-coap calls it again before
// reads and writes; only the first call is limited.
func (s *session) HandshakeContext(ctx context.Context) error {
	h, ok := s.Conn.(interface{ HandshakeContext(context.Context) error })
	if !ok {
		return nil
	}
	if !s.started.CompareAndSwap(false, true) {
		return h.HandshakeContext(ctx)
	}
	// The address's bound first: a client refused by it does not hold
	// one of the slots of all, even for a moment.
	ip, hasIP := remoteIP(s.Conn.RemoteAddr())
	if hasIP {
		if !s.l.takeAddr(ip) {
			s.l.dropped.Add(1)
			return errTooMany
		}
		defer s.l.releaseAddr(ip)
	}
	select {
	case s.l.handshakes <- struct{}{}:
	default:
		s.l.dropped.Add(1)
		return errTooMany
	}
	defer func() { <-s.l.handshakes }()
	if s.l.sessions.Load() >= int64(s.l.lim.MaxSessions) {
		s.l.dropped.Add(1)
		return errTooMany
	}
	ctx, cancel := context.WithTimeout(ctx, s.l.lim.HandshakeTimeout)
	defer cancel()
	err := h.HandshakeContext(ctx)
	// The identity is known once the client's key exchange was read,
	// whether the handshake went on to succeed or not.
	presented, hasIdentity := Identity(s.Conn)
	standIn := s.l.ring.release(presented)
	if err == nil && standIn != nil {
		// Only a client that computed the stand-in key gets here.
		err = fmt.Errorf("psk identity %s: %w", quoteIdentity(presented), standIn)
	}
	if err != nil {
		s.l.failed.Add(1)
		s.l.handshakeFailed(s.Conn.RemoteAddr(), presented, standIn, err)
		return err
	}
	// read once: each read clones the connection's state
	if id := presented; hasIdentity {
		s.identity.Store(&id)
	}
	if s.l.admit(s) {
		if k := s.l.keep.Load(); k != nil {
			k.established(s)
		} else {
			s.l.completed.Add(1)
		}
	}
	return nil
}

// admit counts an established session (one that finished its handshake,
// or was resumed) and files it under its identity; false when it closed
// meanwhile. Handshakes under way have their own bound, so the session
// limit may be passed by at most that many.
func (l *Listener) admit(s *session) bool {
	l.sessions.Add(1)
	s.counted.Store(true)
	id := s.identity.Load()
	if id == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed.Load() {
		return false
	}
	set := l.byIdentity[*id]
	if set == nil {
		set = map[*session]struct{}{}
		l.byIdentity[*id] = set
	}
	set[s] = struct{}{}
	return true
}

// takeAddr counts a handshake of ip if it has fewer than
// MaxHandshakesPerAddr under way.
func (l *Listener) takeAddr(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[ip] >= l.lim.MaxHandshakesPerAddr {
		return false
	}
	l.byAddr[ip]++
	return true
}

func (l *Listener) releaseAddr(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddr[ip]--; l.byAddr[ip] <= 0 {
		delete(l.byAddr, ip)
	}
}

// remoteIP is the IP address of a peer, without its port.
func remoteIP(a net.Addr) (netip.Addr, bool) {
	ap, ok := addrPort(a)
	return ap.Addr().Unmap(), ok
}

// handshakeFailed counts and logs a handshake that failed after the client
// presented an identity: an unknown one, which was handed a stand-in key,
// or one with a key. Failures before that (timeouts, garbage) are only
// counted in HandshakeFailures.
func (l *Listener) handshakeFailed(peer net.Addr, identity string, standIn, err error) {
	if identity == "" {
		return
	}
	attrs := []any{"psk_identity", quoteIdentity(identity), "peer", peer.String()}
	if standIn != nil {
		l.refused.Deny(CauseUnknownIdentity, append(attrs, "reason", standIn.Error())...)
		return
	}
	l.refused.Deny(CauseWrongKey, append(attrs, "err", err.Error())...)
}

func (s *session) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		if k := s.l.keep.Load(); k != nil {
			k.closed(s)
		}
		if s.counted.Load() {
			s.l.sessions.Add(-1)
		}
		if id := s.identity.Load(); id != nil {
			s.l.mu.Lock()
			if set := s.l.byIdentity[*id]; set != nil {
				delete(set, s)
				if len(set) == 0 {
					delete(s.l.byIdentity, *id)
				}
			}
			s.l.mu.Unlock()
		}
	}
	return s.Conn.Close()
}
