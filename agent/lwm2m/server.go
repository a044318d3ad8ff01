package lwm2m

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ratelimit"
	"github.com/plgd-dev/go-coap/v3/dtls"
	dtlsServer "github.com/plgd-dev/go-coap/v3/dtls/server"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// Hooks receive what happens to registrations. The Server calls Persist
// while the device waits for its answer (or from its expiry goroutine),
// and the others from the goroutine that handles the device's message
// after the answer has been sent (or from its expiry goroutine); calls
// for one device come in order. A slow hook delays that device's
// traffic, not other devices'.
type Hooks interface {
	// Authorize decides whether a device may register as the endpoint it
	// names; an error answers the Register with 4.03 Forbidden.
	Authorize(ctx context.Context, req AuthRequest) (Identity, error)
	// Persist records in the store what change did to reg (the device's
	// state and its lifecycle event), while no other change of the
	// endpoint is under way, so that the store hears of an endpoint's
	// changes in the order the server made them. A Register or Update
	// takes effect and is answered only once Persist returned nil, which
	// for ChangeRegister and ChangeUpdate must mean that the state is
	// durable; an error, or ctx ending (within the request timeout),
	// answers it 5.03 Service Unavailable with Max-Age and leaves the
	// registration as it was: none, for a Register. A De-register or an
	// expiry has taken effect whatever Persist returns.
	Persist(ctx context.Context, reg Registration, change Change) error
	// Registered follows a successful Register (also one that replaced an
	// earlier registration of the same endpoint).
	Registered(ctx context.Context, reg Registration)
	// Updated follows a successful Update.
	Updated(ctx context.Context, reg Registration)
	// Deregistered follows a De-register.
	Deregistered(ctx context.Context, reg Registration)
	// Expired follows the removal of a registration whose lifetime ran out.
	Expired(ctx context.Context, reg Registration)
	// Values receives decoded notifications and Send (/dp) values;
	// observed is the observed path, node.Root for Send.
	Values(ctx context.Context, reg Registration, observed node.Path, recs []node.Record)
}

// AuthRequest is what a Register tells about who is registering.
type AuthRequest struct {
	Endpoint string
	Peer     net.Addr
	// Secure is true for a Register over DTLS; PSKIdentity is then the
	// identity the device's session was authenticated with.
	Secure      bool
	PSKIdentity string
}

// Server is an LwM2M server on one UDP socket and, optionally, one DTLS
// socket; a registration is reachable over the transport it was made on.
type Server struct {
	cfg       Config
	hooks     Hooks
	log       *slog.Logger
	listener  *coapNet.UDPConn
	secure    *psk.Listener // nil without a DTLS port
	served    atomic.Bool
	coap      atomic.Pointer[coapfront.Server]
	serving   chan struct{} // closed once Serve answers (see Serving)
	stats     counters
	transfers *coapfront.Transfers

	mu         sync.RWMutex
	baseCtx    context.Context
	byID       map[string]*regState
	byEndpoint map[string]*regState
	byPeer     map[string]*regState // by peerInfo.key of the device's last message
	tokens     map[string]*observation
	expiry     expiryHeap
	kick       chan struct{}    // wakes the expiry loop when the earliest deadline moved
	limiter    *ratelimit.Peers // nil when unlimited
	registers  *ratelimit.Peers // Registers by endpoint; nil when unlimited
	// reserved counts the Registers of new endpoints between the check
	// against MaxRegistrations and taking effect (while Persist runs).
	reserved int

	endpoints endpointLocks

	// the package requests answered at once (packages.go)
	packageSlots chan struct{}
	packageWG    sync.WaitGroup
	pushing      sync.Map // endpoints with a WritePackage under way
	blocks       blockAnswers
	// resuming are the parked DTLS sessions being resumed to send a
	// request, by PSK identity; guarded by mu.
	resuming map[string]chan *udpClient.Conn
}

// CauseRegisterRate counts the Registers refused by
// Config.RegisterInterval and RegisterBurst.
const CauseRegisterRate = "register_rate_endpoint"

// regState is one live registration. Fields other than ctx, cancel and sem
// are guarded by Server.mu.
type regState struct {
	reg      Registration
	addr     *net.UDPAddr
	peerKey  string          // key in Server.byPeer
	conn     *udpClient.Conn // the connection the device last spoke on
	ctx      context.Context // cancelled when the registration ends
	cancel   context.CancelFunc
	sem      chan struct{}           // NStart slots
	obs      map[string]*observation // by observation key
	expireAt time.Time
	heapIdx  int
	// takenFrom is the replica a registration taken over (Adopter) was
	// held by, until its first Update here
	takenFrom string
}

// udpReadBuffer is the receive buffer asked for the CoAP socket.
const udpReadBuffer = 4 << 20

// NewServer validates cfg and binds the UDP socket, so Addr is known at
// once; Serve starts answering.
func NewServer(cfg Config, hooks Hooks) (*Server, error) {
	if hooks == nil {
		return nil, errors.New("new lwm2m server: hooks are nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	l, err := coapNet.NewListenUDP("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("new lwm2m server: listen %s: %w", cfg.Addr, err)
	}
	// Notifications are non-confirmable: what the socket cannot hold
	// while the reader is off the CPU is lost. A larger buffer rides out
	// a scheduling pause or a collection (at 20,000 datagrams/s the
	// default 208 KiB holds about 10 ms); the kernel caps it at
	// net.core.rmem_max.
	if u, ok := l.NetConn().(*net.UDPConn); ok {
		_ = u.SetReadBuffer(udpReadBuffer)
	}
	var limiter *ratelimit.Peers
	if cfg.PeerRate > 0 {
		// twice the registrations: devices that moved leave an old address behind
		limiter = ratelimit.New(cfg.PeerRate, cfg.PeerBurst, 2*cfg.MaxRegistrations)
	}
	var registers *ratelimit.Peers
	if cfg.RegisterInterval > 0 {
		registers = ratelimit.NewOpen(float64(time.Second)/float64(cfg.RegisterInterval), cfg.RegisterBurst, cfg.MaxRegistrations)
	}
	var secure *psk.Listener
	if cfg.SecureAddr != "" {
		secure, err = psk.Listen(cfg.SecureAddr, cfg.Keys, cfg.DTLS, cfg.Logger.With("component", "dtls"), limiter, cfg.Refused)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("new lwm2m server: %w", err)
		}
		if cfg.Sessions.Store != nil || cfg.Sessions.ParkAfter > 0 {
			if err := secure.KeepSessions(cfg.Sessions); err != nil {
				_ = l.Close()
				_ = secure.Close()
				return nil, fmt.Errorf("new lwm2m server: %w", err)
			}
		}
	}
	return &Server{
		cfg:          cfg,
		hooks:        hooks,
		log:          cfg.Logger.With("component", "lwm2m"),
		listener:     l,
		secure:       secure,
		baseCtx:      context.Background(),
		byID:         make(map[string]*regState),
		byEndpoint:   make(map[string]*regState),
		byPeer:       make(map[string]*regState),
		tokens:       make(map[string]*observation),
		kick:         make(chan struct{}, 1),
		packageSlots: make(chan struct{}, cfg.PackageWorkers),
		limiter:      limiter,
		registers:    registers,
		serving:      make(chan struct{}),
		transfers:    coapfront.NewTransfers(cfg.Blockwise),
		resuming:     make(map[string]chan *udpClient.Conn),
	}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.listener.LocalAddr() }

// SecureAddr returns the DTLS address the server listens on, nil without
// one.
func (s *Server) SecureAddr() net.Addr {
	if s.secure == nil {
		return nil
	}
	return s.secure.Addr()
}

// Sessions returns the open DTLS sessions, handshakes refused by a limit
// and failed handshakes so far.
func (s *Server) Sessions() (open, refused, failed int64) {
	if s.secure == nil {
		return 0, 0, 0
	}
	return s.secure.Sessions(), s.secure.Refused(), s.secure.HandshakeFailures()
}

// HandshakesInProgress returns the DTLS handshakes under way; 0 without
// a DTLS port.
func (s *Server) HandshakesInProgress() int {
	if s.secure == nil {
		return 0
	}
	return s.secure.Handshakes()
}

// HelloVerifyRequests returns the HelloVerifyRequests the DTLS port sent
// so far: one for each ClientHello without a valid cookie, for which
// nothing was kept.
func (s *Server) HelloVerifyRequests() uint64 {
	if s.secure == nil {
		return 0
	}
	return s.secure.HelloVerifyRequests()
}

// Serve answers devices until ctx is done, then closes the socket, ends
// every registration (without calling hooks: the devices did not leave)
// and returns after all its goroutines stopped. It can be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("lwm2m server: serve called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.baseCtx = ctx
	s.mu.Unlock()

	var wg sync.WaitGroup
	router := mux.NewRouter()
	router.DefaultHandle(mux.HandlerFunc(s.serveCOAP))
	// go-coap's default runner sleeps 4 s between rounds and outlives
	// Serve; this one is owned here and paces retransmissions at 1 s.
	// go-coap starts a server's periodic runner once the server holds its
	// socket, from then on answering and able to send: when every server
	// has started it, Serving is closed.
	var starting atomic.Int32
	starting.Store(1)
	if s.secure != nil {
		starting.Store(2)
	}
	runner := options.WithPeriodicRunner(func(f func(time.Time) bool) {
		if starting.Add(-1) == 0 {
			close(s.serving)
		}
		wg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					if !f(now) {
						return
					}
				}
			}
		})
	})
	// The plain port is read by coapfront, which gives an address state
	// only for what admit lets through and bounds the peers that hold no
	// registration; DTLS peers have state only after a handshake.
	srv := coapfront.New(s.listener, coapfront.Policy{
		Admit:       s.admit,
		Held:        s.held,
		Allow:       coapfront.RateLimit(s.limiter, &s.stats.rateLimited),
		MaxPending:  s.cfg.MaxPendingPeers,
		PendingIdle: s.cfg.PendingIdleTimeout,
		Refused:     s.cfg.Refused,
	},
		options.WithMux(router),
		options.WithContext(ctx),
		options.WithMaxMessageSize(s.cfg.MaxMessageSize),
		options.WithBlockwise(true, blockwise.SZX1024, s.cfg.BlockwiseTimeout),
		options.WithBlockwiseReceivingMessagesCacheMaxEntries(s.cfg.Blockwise.PerPeer),
		options.WithTransmission(uint32(s.cfg.NStart), 2*time.Second, 4),
		options.WithInactivityMonitor(s.cfg.IdleTimeout, func(cc *udpClient.Conn) { s.forgetConn(cc); _ = cc.Close() }),
		options.WithRequestMonitor(s.monitor),
		options.WithErrors(func(err error) { s.log.Debug("coap", "err", err) }),
		runner,
	)
	var dsrv *dtlsServer.Server
	// The DTLS sessions' context ends only after they are parked (see
	// below): go-coap closes a session when its context ends, and a
	// closed session sends close_notify.
	dctx, dcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer dcancel()
	if s.secure != nil {
		dsrv = dtls.NewServer(
			options.WithMux(router),
			options.WithContext(dctx),
			options.WithMaxMessageSize(s.cfg.MaxMessageSize),
			options.WithBlockwise(true, blockwise.SZX1024, s.cfg.BlockwiseTimeout),
			options.WithBlockwiseReceivingMessagesCacheMaxEntries(s.cfg.Blockwise.PerPeer),
			options.WithTransmission(uint32(s.cfg.NStart), 2*time.Second, 4),
			// A DTLS session cannot be reopened from this side: closing it
			// means the device must handshake again, so it is kept while
			// the device may still talk, up to SessionIdleTimeout.
			options.WithInactivityMonitor(s.cfg.SessionIdleTimeout, func(cc *udpClient.Conn) { s.forgetConn(cc); _ = cc.Close() }),
			options.WithRequestMonitor(s.monitorSecure),
			options.WithOnNewConn(s.newSecureConn),
			options.WithErrors(func(err error) { s.log.Debug("coaps", "err", err) }),
			runner,
		)
	}
	s.coap.Store(srv)

	errc := make(chan error, 2)
	wg.Go(func() { errc <- srv.Serve() })
	if dsrv != nil {
		wg.Go(func() {
			if err := dsrv.Serve(s.secure); err != nil {
				errc <- fmt.Errorf("dtls: %w", err)
			}
		})
	}
	wg.Go(func() { s.expiryLoop(ctx) })
	s.log.Debug("lwm2m server listening", "addr", s.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("lwm2m server: %w", err)
		}
	}
	if s.secure != nil {
		// before anything closes them: a closed session sends
		// close_notify and its device would have to handshake again
		s.secure.Park()
	}
	cancel()
	dcancel()
	srv.Stop()
	if dsrv != nil {
		dsrv.Stop()
	}
	wg.Wait()
	s.packageWG.Wait()
	_ = s.listener.Close()
	if s.secure != nil {
		_ = s.secure.Close()
	}

	s.mu.Lock()
	for _, rs := range s.byID {
		rs.cancel()
	}
	clear(s.byID)
	clear(s.byEndpoint)
	clear(s.byPeer)
	clear(s.tokens)
	s.expiry = s.expiry[:0]
	s.mu.Unlock()
	return err
}

// Registration returns the live registration of endpoint.
func (s *Server) Registration(endpoint string) (Registration, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs, ok := s.byEndpoint[endpoint]
	if !ok {
		return Registration{}, false
	}
	return rs.reg, true
}

// Registrations returns every live registration, in no order.
func (s *Server) Registrations() []Registration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Registration, 0, len(s.byID))
	for _, rs := range s.byID {
		out = append(out, rs.reg)
	}
	return out
}

func (s *Server) ctx() context.Context {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.baseCtx
}

// serveCOAP routes what devices send: the registration interface, Send,
// and notifications (responses that arrive outside a request).
func (s *Server) serveCOAP(w mux.ResponseWriter, r *mux.Message) {
	if r.Type() == message.Reset {
		// go-coap passes an RST on after matching it to an exchange, and
		// would send whatever is set here as a CON; an RST is never
		// answered (RFC 7252 section 4.2).
		return
	}
	if r.Code() >= codes.Created {
		s.handleNotification(w, r)
		return
	}
	path, _ := r.Options().Path()
	seg := splitPath(path)
	switch {
	case len(seg) == 1 && seg[0] == "rd":
		if r.Code() != codes.POST {
			reply(w, codes.MethodNotAllowed, "")
			return
		}
		s.handleRegister(w, r)
	case len(seg) == 2 && seg[0] == "rd":
		switch r.Code() {
		case codes.POST:
			s.handleUpdate(w, r, seg[1])
		case codes.DELETE:
			s.handleDeregister(w, r, seg[1])
		default:
			reply(w, codes.MethodNotAllowed, "")
		}
	case len(seg) == 1 && seg[0] == "dp":
		if r.Code() != codes.POST {
			reply(w, codes.MethodNotAllowed, "")
			return
		}
		s.handleSend(w, r)
	default:
		reply(w, codes.NotFound, "")
	}
}

func splitPath(p string) []string {
	var out []string
	for len(p) > 0 {
		for len(p) > 0 && p[0] == '/' {
			p = p[1:]
		}
		if p == "" {
			break
		}
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		p = p[i:]
	}
	return out
}

// reply sets the answer code with an optional diagnostic payload. An
// error from SetResponse means the request's No-Response option asked for
// silence on this code, which is what then happens.
func reply(w mux.ResponseWriter, code codes.Code, diag string, opts ...message.Option) {
	if diag != "" {
		_ = w.SetResponse(code, message.TextPlain, bytes.NewReader([]byte(diag)), opts...)
		return
	}
	_ = w.SetResponse(code, message.TextPlain, nil, opts...)
}

// afterReply runs f once the answer has been written, so hooks that talk
// to the device find it with its answer in hand.
func afterReply(r *mux.Message, f func()) {
	if !responsewriter.AfterWrite(r.Context(), f) {
		f()
	}
}

// peerInfo is who sent a message: the address, and for DTLS the PSK
// identity the session was authenticated with.
type peerInfo struct {
	addr     *net.UDPAddr
	secure   bool
	identity string
}

// peerOf describes the device at the other end of c.
func peerOf(c *udpClient.Conn) peerInfo {
	p := peerInfo{}
	if a, ok := c.RemoteAddr().(*net.UDPAddr); ok {
		p.addr = a
	}
	p.identity, p.secure = psk.Identity(c.NetConn())
	return p
}

// key names the peer in Server.byPeer: its address for plain CoAP, its
// identity over DTLS, where the address may change under the session
// (Connection ID) and one identity is one device.
func (p peerInfo) key() string {
	if p.secure {
		return "psk:" + p.identity
	}
	return addrString(p.addr)
}

// sameSecurity tells whether a message from p may act on a registration
// made by rs: over the same kind of transport and, for DTLS, by the same
// identity. A device authenticates as itself only.
func (p peerInfo) sameSecurity(rs *regState) bool {
	return p.secure == rs.reg.Secure && p.identity == rs.reg.PSKIdentity
}

// newRegistrationID returns a random registration ID: unguessable, so
// that one device cannot update or remove another's registration.
func newRegistrationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// handleRegister is the Register operation: POST /rd?ep=...
func (s *Server) handleRegister(w mux.ResponseWriter, r *mux.Message) {
	queries, _ := r.Options().Queries()
	p, err := parseRegisterQuery(queries)
	if err != nil {
		s.stats.rejected.Add(1)
		reply(w, codes.BadRequest, err.Error())
		return
	}
	if p.endpoint == "" {
		s.stats.rejected.Add(1)
		reply(w, codes.BadRequest, "missing endpoint name (ep)")
		return
	}
	version, err := checkVersion(p.version)
	if err != nil {
		s.stats.rejected.Add(1)
		reply(w, codes.PreconditionFailed, err.Error())
		return
	}
	var payload []byte
	if r.Body() != nil {
		payload, err = r.ReadBody()
		if err != nil {
			s.stats.rejected.Add(1)
			reply(w, codes.BadRequest, "cannot read payload")
			return
		}
	}
	objs, err := parseObjectLinks(payload)
	if err != nil {
		s.stats.rejected.Add(1)
		reply(w, codes.BadRequest, err.Error())
		return
	}
	conn, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		reply(w, codes.InternalServerError, "")
		return
	}
	peer := peerOf(conn)
	// made when a line is logged: a logger With its attributes costs
	// allocations on every Register
	log := func() *slog.Logger { return s.log.With("endpoint", p.endpoint, "peer", addrString(peer.addr)) }

	// Before any lookup, and alike for every name: a flood of Registers
	// naming one endpoint from many addresses costs a map lookup each,
	// and the answer says nothing of whether the endpoint exists. Over
	// DTLS the key holds the identity, so that a device cannot use up
	// another's Registers.
	security := "coap"
	if peer.secure {
		security = "psk:" + peer.identity
	}
	if ok, wait := s.registers.Take(security+" "+p.endpoint, time.Now()); !ok {
		s.stats.rejected.Add(1)
		s.cfg.Refused.Refuse(CauseRegisterRate, "--endpoint-register-interval", "endpoint", p.endpoint, "peer", addrString(peer.addr))
		reply(w, codes.TooManyRequests, "", coapfront.MaxAge(wait))
		return
	}

	s.mu.RLock()
	_, exists := s.byEndpoint[p.endpoint]
	full := !exists && len(s.byID)+s.reserved >= s.cfg.MaxRegistrations
	s.mu.RUnlock()
	if full {
		s.stats.rejected.Add(1)
		log().Warn("register refused: too many registrations", "max", s.cfg.MaxRegistrations)
		reply(w, codes.ServiceUnavailable, "too many registrations")
		return
	}

	id, err := s.hooks.Authorize(r.Context(), AuthRequest{
		Endpoint: p.endpoint, Peer: peer.addr, Secure: peer.secure, PSKIdentity: peer.identity,
	})
	if err != nil {
		s.stats.rejected.Add(1)
		// Hooks count and log refusals once per interval and cause;
		// anyone can send these.
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			log().Debug("register refused", "err", err)
		}
		reply(w, codes.Forbidden, "")
		return
	}

	now := time.Now()
	reg := Registration{
		ID:               newRegistrationID(),
		Endpoint:         p.endpoint,
		Version:          version,
		Lifetime:         DefaultLifetime,
		Binding:          "U",
		SMS:              p.sms,
		AwakeTime:        p.awake,
		HasAwakeTime:     p.hasAwake,
		ContentFormat:    objs.contentFormat,
		Serialization:    id.Serialization,
		RootPath:         objs.root,
		Objects:          objs.objects,
		Address:          addrString(peer.addr),
		Secure:           peer.secure,
		PSKIdentity:      peer.identity,
		Tenant:           id.Tenant,
		DeviceID:         id.DeviceID,
		RegisteredAt:     now,
		HasSerialization: id.HasSerialization,
		UpdatedAt:        now,
		Replica:          s.cfg.Replica,
		New:              id.New,
	}
	if p.hasLifetime {
		reg.Lifetime = p.lifetime
	}
	if p.hasBinding {
		reg.Binding = p.binding
	}
	reg.Queue = queueMode(reg.Binding, p.queue)

	// The registration takes effect, and is answered, only once its
	// state is durable: a device answered 2.01 is registered even if the
	// agent dies right after. The endpoint's lock keeps its other
	// changes (an earlier De-register's, a concurrent Register's) from
	// being recorded after this one.
	pctx, release, ok := s.lockEndpoint(w, ChangeRegister, p.endpoint, peer)
	if !ok {
		return
	}
	defer release()
	s.mu.Lock()
	// under the endpoint's lock the endpoint's registration stays as it
	// is until this one replaces it
	replaces := s.byEndpoint[p.endpoint] != nil
	if !replaces && len(s.byID)+s.reserved >= s.cfg.MaxRegistrations {
		s.mu.Unlock()
		s.stats.rejected.Add(1)
		reply(w, codes.ServiceUnavailable, "too many registrations")
		return
	}
	if !replaces {
		s.reserved++
	}
	s.mu.Unlock()
	err = s.hooks.Persist(pctx, copyReg(reg), ChangeRegister)
	s.mu.Lock()
	if !replaces {
		s.reserved--
	}
	if err != nil {
		s.mu.Unlock()
		s.refuseUnstored(w, ChangeRegister, p.endpoint, peer, err)
		return
	}
	reg.New = false // created: what follows changes a device that exists
	base := s.baseCtx
	rctx, cancel := context.WithCancel(base)
	rs := &regState{
		reg:     reg,
		addr:    peer.addr,
		peerKey: peer.key(),
		conn:    conn,
		ctx:     rctx,
		cancel:  cancel,
		sem:     make(chan struct{}, s.cfg.NStart),
		obs:     make(map[string]*observation),
		heapIdx: -1,
	}
	if old := s.byEndpoint[p.endpoint]; old != nil {
		// A new Register replaces the old registration with everything
		// attached to it: the device restarted and forgot it.
		s.removeLocked(old)
	}
	s.byID[reg.ID] = rs
	s.byEndpoint[reg.Endpoint] = rs
	s.byPeer[rs.peerKey] = rs
	s.scheduleLocked(rs, now)
	s.mu.Unlock()

	s.stats.registers.Add(1)
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		log().Debug("registered", "reg_id", reg.ID, "version", reg.Version, "lifetime", reg.Lifetime)
	}
	reply(w, codes.Created, "",
		message.Option{ID: message.LocationPath, Value: []byte("rd")},
		message.Option{ID: message.LocationPath, Value: []byte(reg.ID)})
	afterReply(r, func() { s.hooks.Registered(base, copyReg(reg)) })
}

// handleUpdate is the Update operation: POST /rd/{id}.
func (s *Server) handleUpdate(w mux.ResponseWriter, r *mux.Message, id string) {
	queries, _ := r.Options().Queries()
	p, err := parseRegisterQuery(queries)
	if err != nil {
		s.stats.rejected.Add(1)
		reply(w, codes.BadRequest, err.Error())
		return
	}
	var objs *objectList
	if r.Body() != nil {
		payload, err := r.ReadBody()
		if err != nil {
			s.stats.rejected.Add(1)
			reply(w, codes.BadRequest, "cannot read payload")
			return
		}
		if len(payload) > 0 {
			o, err := parseObjectLinks(payload)
			if err != nil {
				s.stats.rejected.Add(1)
				reply(w, codes.BadRequest, err.Error())
				return
			}
			objs = &o
		}
	}
	conn, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		reply(w, codes.InternalServerError, "")
		return
	}
	peer := peerOf(conn)

	// As a Register: the change takes effect, and is answered, once
	// Persist has recorded it, under the endpoint's lock.
	rs, pctx, release, ok := s.lockRegistration(w, id, ChangeUpdate, peer)
	if !ok {
		return
	}
	defer release()
	now := time.Now()
	s.mu.RLock()
	next := copyReg(rs.reg)
	change := ChangeRefresh
	next.Replica = s.cfg.Replica
	if applyUpdate(&next, p, objs, peer, now); registrationChanged(rs.reg, next) {
		change = ChangeUpdate
	}
	s.mu.RUnlock()
	if err := s.hooks.Persist(pctx, copyReg(next), change); err != nil {
		s.refuseUnstored(w, change, next.Endpoint, peer, err)
		return
	}

	s.mu.Lock()
	// the endpoint's lock kept the registration live; what else changed
	// it meanwhile (SetFormat) stays
	applyUpdate(&rs.reg, p, objs, peer, now)
	rs.reg.Replica = s.cfg.Replica
	rs.addr = peer.addr
	if k := peer.key(); k != rs.peerKey {
		if s.byPeer[rs.peerKey] == rs {
			delete(s.byPeer, rs.peerKey)
		}
		rs.peerKey = k
	}
	s.byPeer[rs.peerKey] = rs
	rs.conn = conn
	s.scheduleLocked(rs, now)
	snapshot := copyReg(rs.reg)
	snapshot.Replica = next.Replica
	if rs.reg.TakenOver {
		// Hooks.Updated learns whom it was taken from
		snapshot.Replica = rs.takenFrom
	}
	rs.reg.Restored, rs.reg.TakenOver = false, false
	base := s.baseCtx
	s.mu.Unlock()

	if snapshot.TakenOver {
		s.stats.takenOver.Add(1)
	}
	s.stats.updates.Add(1)
	reply(w, codes.Changed, "")
	afterReply(r, func() { s.hooks.Updated(base, snapshot) })
}

// lockRegistration finds the live registration id that an Update or a
// De-register from peer acts on and takes its endpoint's lock (see
// lockEndpoint). It answers 4.04 when there is none (or it ended while
// the request waited for its endpoint) and 4.03 when peer is not the
// device that made it: a device authenticates as itself only.
func (s *Server) lockRegistration(w mux.ResponseWriter, id string, change Change, peer peerInfo) (rs *regState, ctx context.Context, release func(), ok bool) {
	refuse := func(code codes.Code) {
		if code == codes.Forbidden || change != ChangeDeregister {
			s.stats.rejected.Add(1)
		}
		reply(w, code, "")
	}
	s.mu.RLock()
	rs = s.byID[id]
	s.mu.RUnlock()
	if rs == nil {
		// the device may have been moved here from another replica
		rs = s.adopt(id, peer)
	}
	var endpoint string
	if rs != nil {
		s.mu.RLock()
		endpoint = rs.reg.Endpoint // never changes under an ID
		s.mu.RUnlock()
	}
	if rs == nil {
		refuse(codes.NotFound)
		return nil, nil, nil, false
	}
	if ctx, release, ok = s.lockEndpoint(w, change, endpoint, peer); !ok {
		return nil, nil, nil, false
	}
	s.mu.RLock()
	live, same := s.byID[id] == rs, peer.sameSecurity(rs)
	s.mu.RUnlock()
	switch {
	case !live:
		release()
		refuse(codes.NotFound)
		return nil, nil, nil, false
	case !same:
		release()
		s.log.Warn(change.String()+" refused: not the registering device's security context",
			"endpoint", endpoint, "peer", addrString(peer.addr), "secure", peer.secure, "psk_identity", peer.identity)
		refuse(codes.Forbidden)
		return nil, nil, nil, false
	}
	return rs, ctx, release, true
}

// applyUpdate makes reg what an Update with parameters p and object list
// objs (nil: none sent) from peer at now makes it.
func applyUpdate(reg *Registration, p registerParams, objs *objectList, peer peerInfo, now time.Time) {
	if p.hasLifetime {
		reg.Lifetime = p.lifetime
	}
	if p.hasBinding {
		reg.Binding = p.binding
	}
	if p.hasBinding || p.queue {
		reg.Queue = queueMode(reg.Binding, p.queue)
	}
	if p.hasSMS {
		reg.SMS = p.sms
	}
	if p.hasAwake {
		reg.AwakeTime, reg.HasAwakeTime = p.awake, true
	}
	if objs != nil {
		reg.Objects = objs.objects
		reg.RootPath = objs.root
		if objs.contentFormat != 0 {
			reg.ContentFormat = objs.contentFormat
		}
	}
	reg.Address = addrString(peer.addr)
	reg.UpdatedAt = now
}

// handleDeregister is the De-register operation: DELETE /rd/{id}.
func (s *Server) handleDeregister(w mux.ResponseWriter, r *mux.Message, id string) {
	conn, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		reply(w, codes.InternalServerError, "")
		return
	}
	peer := peerOf(conn)
	// Under the endpoint's lock, so that the state this leaves is
	// recorded before that of a Register that follows; not waited for
	// durably: nothing the device relies on is answered.
	rs, ctx, release, ok := s.lockRegistration(w, id, ChangeDeregister, peer)
	if !ok {
		return
	}
	defer release()
	s.mu.Lock()
	s.removeLocked(rs)
	snapshot := copyReg(rs.reg)
	base := s.baseCtx
	s.mu.Unlock()
	s.persistGone(ctx, snapshot, ChangeDeregister)

	s.stats.deregisters.Add(1)
	reply(w, codes.Deleted, "")
	afterReply(r, func() {
		s.forgetSession(snapshot)
		s.hooks.Deregistered(base, snapshot)
	})
}

// removeLocked forgets rs and everything attached to it: its index
// entries, its place in the expiry heap, its observations (their next
// notification gets RST) and its in-flight requests (cancelled).
func (s *Server) removeLocked(rs *regState) {
	if s.byID[rs.reg.ID] == rs {
		delete(s.byID, rs.reg.ID)
	}
	if s.byEndpoint[rs.reg.Endpoint] == rs {
		delete(s.byEndpoint, rs.reg.Endpoint)
	}
	if s.byPeer[rs.peerKey] == rs {
		delete(s.byPeer, rs.peerKey)
	}
	s.unscheduleLocked(rs)
	for k, o := range rs.obs {
		delete(s.tokens, o.token)
		delete(rs.obs, k)
	}
	rs.cancel()
}

// End ends the live registration of endpoint if the tenant's device made
// it: the agent's decision, not the device's, taken when the security
// settings the registration was made under no longer hold. It is
// forgotten with its observations and requests as a De-register would
// forget it, a DTLS session it was made over is closed, and an Update to
// it is answered 4.04, so that the device registers again, under the
// settings that hold now. No hook is called: record (nil: none) is,
// with the registration ended, before End returns and before any other
// change of the endpoint (a Register that follows) is recorded.
func (s *Server) End(endpoint, tenant, deviceID string, record func(Registration)) (Registration, bool) {
	// no bound: a holder of the lock holds it within the request timeout
	unlock, _ := s.endpoints.lock(context.Background(), endpoint)
	defer unlock()
	s.mu.Lock()
	rs := s.byEndpoint[endpoint]
	if rs == nil || rs.reg.Tenant != tenant || rs.reg.DeviceID != deviceID {
		s.mu.Unlock()
		return Registration{}, false
	}
	s.removeLocked(rs)
	snapshot, conn := copyReg(rs.reg), rs.conn
	s.mu.Unlock()
	if record != nil {
		record(copyReg(snapshot))
	}
	if snapshot.Secure && conn != nil {
		_ = conn.Close()
	}
	s.stats.ended.Add(1)
	return snapshot, true
}

// SessionStats returns the counts of the DTLS port's parked and resumed
// sessions and full handshakes.
func (s *Server) SessionStats() psk.SessionStats {
	if s.secure == nil {
		return psk.SessionStats{}
	}
	return s.secure.SessionStats()
}

// forgetSession removes the kept DTLS session of a registration that
// ended, so that nothing resumes it.
func (s *Server) forgetSession(reg Registration) {
	if s.secure != nil && reg.Secure && reg.PSKIdentity != "" {
		s.secure.ForgetIdentity(reg.PSKIdentity)
	}
}

// resumeSecure resumes the parked DTLS session of rs for a request to
// its device, and returns the connection go-coap made for it.
func (s *Server) resumeSecure(rs *regState) (*udpClient.Conn, error) {
	s.mu.Lock()
	id := rs.reg.PSKIdentity
	ch := make(chan *udpClient.Conn, 1)
	s.resuming[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.resuming[id] == ch {
			delete(s.resuming, id)
		}
		s.mu.Unlock()
	}()
	if err := s.secure.Resume(id); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSession, err)
	}
	t := time.NewTimer(s.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case c := <-ch:
		s.mu.Lock()
		rs.conn = c
		s.mu.Unlock()
		return c, nil
	case <-t.C:
		return nil, ErrNoSession
	case <-rs.ctx.Done():
		return nil, ErrNoSession
	}
}

// newSecureConn sees every connection of a DTLS session. Once it closes
// (parked, most often) its registration lets go of it: a closed
// connection keeps the session's pion state, buffers and go-coap
// exchange caches, some 20 KiB that parking is meant to release.
func (s *Server) newSecureConn(cc *udpClient.Conn) {
	cc.AddOnClose(func() { s.forgetConn(cc) })
	s.resumedConn(cc)
}

// resumedConn hands a connection of a resumed session to the request
// waiting for it, if any.
func (s *Server) resumedConn(cc *udpClient.Conn) {
	id, ok := psk.Identity(cc.NetConn())
	if !ok {
		return
	}
	s.mu.RLock()
	ch := s.resuming[id]
	s.mu.RUnlock()
	if ch != nil {
		select {
		case ch <- cc:
		default:
		}
	}
}

// CloseSessions closes the DTLS sessions authenticated with identity and
// returns how many: those opened with a key that is no longer the
// device's must carry nothing more, a Register least of all.
func (s *Server) CloseSessions(identity string) int {
	if s.secure == nil || identity == "" {
		return 0
	}
	return s.secure.CloseIdentity(identity)
}

// copyReg returns reg with its own object list, so callers cannot see
// later changes or change the Server's.
func copyReg(reg Registration) Registration {
	reg.Objects = append([]ObjectLink(nil), reg.Objects...)
	return reg
}

// monitorSecure is monitor for DTLS peers, whose datagrams do not pass
// coapfront's rate limit.
func (s *Server) monitorSecure(cc *udpClient.Conn, m *pool.Message) (bool, error) {
	if !s.limiter.Allow(addrString(cc.RemoteAddr()), time.Now()) {
		s.stats.rateLimited.Add(1)
		return true, nil
	}
	return s.monitor(cc, m)
}

// monitor sees every datagram before go-coap processes it. It answers a
// notification of an observation this server no longer holds with RST
// (RFC 7641 section 3.6), which is how a device learns that nobody
// listens, and drops it. It drops an RST that is not empty: go-coap
// would hand one with a request code to the handlers as a request. It
// refuses block-wise bodies beyond the limits before go-coap buffers
// them. It records the answers to the blocks of package pushes
// (blockAnswers).
func (s *Server) monitor(cc *udpClient.Conn, m *pool.Message) (bool, error) {
	s.blocks.capture(m)
	if malformedReset(m) {
		return true, nil
	}
	if s.cfg.Packages != nil {
		if token, ok := packageToken(m); ok {
			s.servePackage(cc, m, token)
			return true, nil
		}
	}
	if s.transfers.Check(cc, m) {
		return true, nil
	}
	t := m.Type()
	if (t != message.Confirmable && t != message.NonConfirmable) || m.Code() < codes.Created || !m.HasOption(message.Observe) {
		return false, nil
	}
	tok := m.Token()
	if len(tok) == 0 {
		return false, nil
	}
	s.mu.RLock()
	_, known := s.tokens[string(tok)]
	s.mu.RUnlock()
	if known {
		return false, nil
	}
	rst := cc.AcquireMessage(cc.Context())
	defer cc.ReleaseMessage(rst)
	rst.SetType(message.Reset)
	rst.SetCode(codes.Empty)
	rst.SetMessageID(m.MessageID())
	if err := cc.Session().WriteMessage(rst); err != nil {
		s.log.Debug("cannot send reset", "peer", addrString(cc.RemoteAddr()), "err", err)
	}
	s.stats.notificationsRST.Add(1)
	return true, nil
}

// forgetConn drops the registration's reference to a connection that goes
// idle, so that what go-coap kept for it can be freed; the next request
// opens a fresh one (connOf).
func (s *Server) forgetConn(cc *udpClient.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.byPeer[peerOf(cc).key()]; rs != nil && rs.conn == cc {
		rs.conn = nil
	}
}

// malformedReset tells an RST that carries anything besides its message
// ID: RFC 7252 section 4.2 makes such a message a format error, which is
// dropped without an answer.
func malformedReset(m *pool.Message) bool {
	return m.Type() == message.Reset &&
		(m.Code() != codes.Empty || len(m.Token()) != 0 || len(m.Options()) != 0 || m.Body() != nil)
}

// admit judges a datagram from an address without state: a Register, and
// an Update or De-register of a live registration (from a device whose
// address changed), get state; an Update or De-register of none is
// answered 4.04 and a Send 4.03, as the handlers would, without any. A
// notification of a live observation gets state, one of none an empty
// RST as monitor does (RFC 7641 section 3.6). Everything else is dropped
// unanswered: the address may be forged.
func (s *Server) admit(_ *net.UDPAddr, h *coapfront.Header) coapfront.Verdict {
	if h.Type != message.Confirmable && h.Type != message.NonConfirmable {
		return coapfront.Drop
	}
	switch {
	case h.IsRequest():
		switch {
		case h.Code == codes.POST && h.PathIs("rd"):
			return coapfront.Admit
		case (h.Code == codes.POST || h.Code == codes.DELETE) && h.PathLen == 2 && string(h.Path[0]) == "rd":
			s.mu.RLock()
			_, live := s.byID[string(h.Path[1])]
			s.mu.RUnlock()
			if live || s.cfg.TakeOver {
				// with replicas, one unknown here may be another's
				// (adopt); the peer rate limit bounds the reads
				return coapfront.Admit
			}
			return coapfront.Answer(codes.NotFound)
		case h.Code == codes.POST && h.PathIs("dp"):
			return coapfront.Answer(codes.Forbidden)
		case h.Code == codes.GET && h.PathLen == 2 && string(h.Path[0]) == PackagePath && s.cfg.Packages != nil:
			// a device may pull its firmware from another port than
			// the one it registered from; the package handler answers
			// an unknown token 4.04
			return coapfront.Admit
		}
	case h.IsResponse() && h.Observe && len(h.Token) > 0:
		s.mu.RLock()
		_, live := s.tokens[string(h.Token)]
		s.mu.RUnlock()
		if live {
			return coapfront.Admit
		}
		s.stats.notificationsRST.Add(1)
		return coapfront.Reset
	}
	return coapfront.Drop
}

// held tells the address of a plain CoAP registration: its state stays
// outside the bound of peers without one.
func (s *Server) held(a *net.UDPAddr) bool {
	key := addrString(a)
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.byPeer[key]
	return rs != nil && !rs.reg.Secure
}
