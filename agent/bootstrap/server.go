package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coalesce"
	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ratelimit"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
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
	udpServer "github.com/plgd-dev/go-coap/v3/udp/server"
)

// Transports, as events and logs name them.
const (
	transportPlain  = "coap"
	transportSecure = "coaps"
)

// Why a session ends early, as its failure event says.
var (
	errSuperseded = errors.New("superseded by a new Bootstrap-Request of the same endpoint")
	errStopped    = errors.New("bootstrap server stopped")
)

// Server is an LwM2M Bootstrap-Server on a plain UDP socket and, when
// configured, a DTLS listener.
type Server struct {
	cfg       Config
	hooks     Hooks
	log       *slog.Logger
	plain     *coapNet.UDPConn
	secure    Listener         // nil without a secure port
	limiter   *ratelimit.Peers // nil when unlimited
	requests  *ratelimit.Peers // Bootstrap-Requests by endpoint; nil when unlimited
	events    *coalesce.Events // start and failure events of sessions no device answered
	served    atomic.Bool
	stats     counters
	transfers *coapfront.Transfers

	mu       sync.Mutex
	baseCtx  context.Context
	closed   bool
	sessions map[string]*session // by endpoint
	plainBy  map[string]int      // running plain sessions by the device's address
	running  int                 // sessions whose goroutine has not ended
	wg       sync.WaitGroup      // session goroutines
}

// session is one running bootstrap of one endpoint.
type session struct {
	endpoint string
	peer     string // the device's address over plain CoAP, else empty
	cancel   context.CancelCauseFunc
	done     chan struct{} // closed when the goroutine ended
}

// NewServer validates cfg and binds the sockets, so Addr and SecureAddr
// are known at once; Serve starts answering.
func NewServer(cfg Config, hooks Hooks) (*Server, error) {
	if hooks == nil {
		return nil, errors.New("new bootstrap server: hooks are nil")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	plain, err := coapNet.NewListenUDP("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("new bootstrap server: listen %s: %w", cfg.Addr, err)
	}
	var limiter *ratelimit.Peers
	if cfg.PeerRate > 0 {
		limiter = ratelimit.New(cfg.PeerRate, cfg.PeerBurst, cfg.MaxPeers)
	}
	var requests *ratelimit.Peers
	if cfg.RequestInterval > 0 {
		// open: anyone can make endpoint names up
		requests = ratelimit.NewOpen(float64(time.Second)/float64(cfg.RequestInterval), cfg.RequestBurst, cfg.MaxPeers)
	}
	secure := cfg.SecureListener
	if secure == nil && cfg.SecureAddr != "" {
		l, err := psk.Listen(cfg.SecureAddr, cfg.Keys, cfg.DTLS, cfg.Logger.With("component", "dtls"), limiter, cfg.Refused)
		if err != nil {
			_ = plain.Close()
			return nil, fmt.Errorf("new bootstrap server: %w", err)
		}
		secure = l
	}
	// A URI left empty is the bound address as a device on this machine
	// reaches it; deployments behind NAT or DNS set it.
	if cfg.BootstrapURI == "" {
		cfg.BootstrapURI = publicURI("coap", plain.LocalAddr())
	}
	if cfg.SecureBootstrapURI == "" && secure != nil {
		cfg.SecureBootstrapURI = publicURI("coaps", secure.Addr())
	}
	return &Server{
		cfg:       cfg,
		hooks:     hooks,
		log:       cfg.Logger.With("component", "bootstrap"),
		plain:     plain,
		secure:    secure,
		limiter:   limiter,
		requests:  requests,
		events:    coalesce.New(cfg.EventInterval),
		baseCtx:   context.Background(),
		sessions:  make(map[string]*session),
		plainBy:   make(map[string]int),
		transfers: coapfront.NewTransfers(cfg.Blockwise),
	}, nil
}

// Addr returns the address of the plain CoAP socket.
func (s *Server) Addr() net.Addr { return s.plain.LocalAddr() }

// SecureAddr returns the address of the DTLS listener, nil when there is
// none.
func (s *Server) SecureAddr() net.Addr {
	if s.secure == nil {
		return nil
	}
	return s.secure.Addr()
}

// Serve answers devices until ctx is done, then closes the sockets, ends
// the running sessions (each records its failure) and returns after all
// its goroutines stopped. It can be called once.
func (s *Server) Serve(ctx context.Context) error {
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("bootstrap server: serve called twice")
	}
	// The sockets and the sessions hang off contexts of their own, so
	// that shutdown can end the sessions first, with errStopped as their
	// cause, and close the connections after.
	coapCtx, stopCoap := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCoap()
	sessions, stopSessions := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopSessions(errStopped)
	s.mu.Lock()
	s.baseCtx = sessions
	s.mu.Unlock()

	var wg sync.WaitGroup
	// go-coap's default periodic runner sleeps 4 s between rounds and
	// outlives Serve; this one is owned here and paces retransmissions
	// at 1 s.
	runner := func(f func(time.Time) bool) {
		wg.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-coapCtx.Done():
					return
				case now := <-t.C:
					if !f(now) {
						return
					}
				}
			}
		})
	}
	common := func(secure bool) []serverOption {
		// coapfront takes the plain port's rate limit before any state
		monitor := s.monitor
		if secure {
			monitor = s.monitorSecure
		}
		router := mux.NewRouter()
		router.DefaultHandle(mux.HandlerFunc(func(w mux.ResponseWriter, r *mux.Message) { s.serveCOAP(w, r, secure) }))
		return []serverOption{
			options.WithMux(router),
			options.WithContext(coapCtx),
			options.WithMaxMessageSize(s.cfg.MaxMessageSize),
			options.WithBlockwise(true, blockwise.SZX1024, s.cfg.BlockwiseTimeout),
			options.WithBlockwiseReceivingMessagesCacheMaxEntries(s.cfg.Blockwise.PerPeer),
			options.WithTransmission(1, 2*time.Second, 4),
			options.WithInactivityMonitor(s.cfg.IdleTimeout, func(cc *udpClient.Conn) { _ = cc.Close() }),
			options.WithRequestMonitor(monitor),
			options.WithErrors(func(err error) { s.log.Debug("coap", "err", err) }),
			options.WithPeriodicRunner(runner),
		}
	}

	errc := make(chan error, 2)
	var udpOpts []udpServer.Option
	for _, o := range common(false) {
		udpOpts = append(udpOpts, o)
	}
	// The plain port is read by coapfront, which gives an address state
	// only for a Bootstrap-Request and bounds the peers without a running
	// session; DTLS peers have state only after a handshake.
	plainSrv := coapfront.New(s.plain, coapfront.Policy{
		Admit:       admit,
		Held:        s.held,
		Allow:       coapfront.RateLimit(s.limiter, &s.stats.rateLimited),
		MaxPending:  s.cfg.MaxPendingPeers,
		PendingIdle: s.cfg.PendingIdleTimeout,
		Refused:     s.cfg.Refused,
	}, udpOpts...)
	wg.Go(func() {
		if err := plainSrv.Serve(); err != nil {
			errc <- fmt.Errorf("bootstrap server: coap: %w", err)
		}
	})
	var secureSrv interface{ Stop() }
	if s.secure != nil {
		var dtlsOpts []dtlsServer.Option
		for _, o := range common(true) {
			dtlsOpts = append(dtlsOpts, o)
		}
		srv := coapdtls.NewServer(dtlsOpts...)
		secureSrv = srv
		wg.Go(func() {
			if err := srv.Serve(s.secure); err != nil {
				errc <- fmt.Errorf("bootstrap server: coaps: %w", err)
			}
		})
	}
	s.log.Debug("bootstrap server listening", "addr", s.Addr().String(), "secure_addr", addrString(s.SecureAddr()))

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	stopSessions(errStopped)
	stopCoap()
	plainSrv.Stop()
	if secureSrv != nil {
		secureSrv.Stop()
	}
	s.wg.Wait()
	wg.Wait()
	_ = s.plain.Close()
	if s.secure != nil {
		_ = s.secure.Close()
	}
	return err
}

// serverOption is an option of both go-coap servers, plain and DTLS.
type serverOption interface {
	udpServer.Option
	dtlsServer.Option
}

// serveCOAP answers what devices send: Bootstrap-Request only.
func (s *Server) serveCOAP(w mux.ResponseWriter, r *mux.Message, secure bool) {
	// An RST is never answered (RFC 7252 section 4.2); go-coap passes
	// one on after matching it to an exchange.
	if r.Type() == message.Reset || r.Code() >= codes.Created || r.Code() == codes.Empty {
		return
	}
	path, _ := r.Options().Path()
	if path != "bs" && path != "/bs" {
		reply(w, codes.NotFound, "")
		return
	}
	if r.Code() != codes.POST {
		reply(w, codes.MethodNotAllowed, "")
		return
	}
	s.handleRequest(w, r, secure)
}

// handleRequest is the Bootstrap-Request: POST /bs?ep=NAME[&pct=FORMAT].
func (s *Server) handleRequest(w mux.ResponseWriter, r *mux.Message, secure bool) {
	s.stats.requests.Add(1)
	conn, ok := w.Conn().(*udpClient.Conn)
	if !ok {
		reply(w, codes.InternalServerError, "")
		return
	}
	peer := addrString(conn.RemoteAddr())
	transport := transportPlain
	if secure {
		transport = transportSecure
	}
	queries, _ := r.Options().Queries()
	req, err := parseRequest(queries)
	if err != nil {
		s.stats.refused.Add(1)
		s.log.Debug("bootstrap request refused", "peer", peer, "transport", transport, "err", err)
		reply(w, codes.BadRequest, err.Error())
		return
	}
	log := s.log.With("endpoint", req.endpoint, "peer", peer, "transport", transport)

	// Before any lookup, and alike for every name: a flood of
	// Bootstrap-Requests for one endpoint from many addresses costs a
	// map lookup each instead of a session each, and the answer says
	// nothing of whether the endpoint exists. Over DTLS the key holds
	// the identity, so that a device cannot use up another's requests.
	key := transport + " " + req.endpoint
	if secure {
		identity, _ := pskIdentity(conn)
		key = "psk:" + identity + " " + req.endpoint
	}
	if ok, wait := s.requests.Take(key, time.Now()); !ok {
		s.stats.refused.Add(1)
		s.cfg.Refused.Refuse(CauseRequestRate, "--bootstrap-request-interval", "endpoint", req.endpoint, "peer", peer, "transport", transport)
		reply(w, codes.TooManyRequests, "", coapfront.MaxAge(wait))
		return
	}

	acct, ref := s.authorize(r.Context(), conn, req, secure)
	if ref.err != nil {
		s.stats.refused.Add(1)
		if ref.cause == "" {
			log.Warn("bootstrap request refused", "code", codeString(ref.code), "err", ref.err)
		} else {
			// Anyone may send these on the plain port: counted, and
			// logged once per interval, not once per datagram.
			log.Debug("bootstrap request refused", "code", codeString(ref.code), "cause", ref.cause, "err", ref.err)
			s.cfg.Refused.Deny(ref.cause, "endpoint", req.endpoint, "peer", peer, "transport", transport, "reason", ref.err.Error())
		}
		if secure && acct.DeviceID != "" {
			// The handshake proved who asks, so the refusal belongs on
			// that device; on the plain port anyone can claim an
			// endpoint, and a refusal there writes nothing.
			s.event(r.Context(), acct, Event{
				Kind: EventFailure, Step: "request", Code: codeString(ref.code), Transport: transport,
				Reason: ref.err.Error(),
				Text:   fmt.Sprintf("Bootstrap-Request of %s over %s refused: %v", req.endpoint, transport, ref.err),
			})
		}
		reply(w, ref.code, ref.diag)
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		reply(w, codes.ServiceUnavailable, "shutting down")
		return
	}
	prev := s.sessions[req.endpoint]
	if prev != nil && !secure && prev.peer != peer {
		// Nobody proved on the plain port that the request comes from
		// where it says: the running session may be the device's, and
		// this one a forged address to send the session's requests to.
		// An endpoint's session talks to one address at a time; the
		// device asks again once that session has ended, within a
		// request timeout of its last request.
		s.mu.Unlock()
		s.stats.refused.Add(1)
		s.cfg.Refused.Refuse(CauseSessionRunning, "--request-timeout", "endpoint", req.endpoint, "peer", peer, "session_peer", prev.peer)
		reply(w, codes.TooManyRequests, "", coapfront.MaxAge(s.cfg.RequestTimeout))
		return
	}
	// A device that asks again while its session runs has given up on
	// it; the replaced session ends at once, so it does not count.
	if s.running >= s.cfg.MaxSessions && prev == nil {
		s.mu.Unlock()
		s.stats.busy.Add(1)
		log.Warn("bootstrap request refused: too many sessions", "max", s.cfg.MaxSessions)
		reply(w, codes.ServiceUnavailable, "too many bootstrap sessions")
		return
	}
	if prev != nil {
		prev.cancel(errSuperseded)
	}
	ctx, cancel := context.WithCancelCause(s.baseCtx)
	sess := &session{endpoint: req.endpoint, cancel: cancel, done: make(chan struct{})}
	if !secure {
		sess.peer = peer
		s.plainBy[peer]++
	}
	s.sessions[req.endpoint] = sess
	s.running++
	s.wg.Add(1)
	s.mu.Unlock()

	replied := make(chan struct{})
	reply(w, codes.Changed, "")
	if !responsewriter.AfterWrite(r.Context(), func() { close(replied) }) {
		close(replied)
	}
	go s.run(ctx, sess, prev, replied, conn, acct, req, transport, log)
}

// Causes of Bootstrap-Requests refused by a limit and of events held
// back, as lwm2m_agent_refused_total and the log name them.
const (
	// CauseRequestRate counts the Bootstrap-Requests refused by
	// Config.RequestInterval and RequestBurst.
	CauseRequestRate = "bootstrap_rate_endpoint"
	// CauseSessionRunning counts the Bootstrap-Requests on the plain port
	// refused because a session of their endpoint with another address
	// runs.
	CauseSessionRunning = "bootstrap_session_running"
	// CauseEventCoalesced counts the start and failure events held back
	// by Config.EventInterval.
	CauseEventCoalesced = "bootstrap_event_coalesced"
)

// Causes of refused Bootstrap-Requests, as lwm2m_agent_refused_total and
// the log name them.
const (
	causeUnknownEndpoint  = "bootstrap_unknown_endpoint"
	causeIncomplete       = "bootstrap_incomplete_account"
	causeForbidden        = "bootstrap_forbidden"
	causePSKWithoutDTLS   = "bootstrap_psk_without_dtls"
	causeIdentityMismatch = "bootstrap_identity_mismatch"
)

// denial is why authorize refused a Bootstrap-Request and how to answer:
// err is nil when it did not; cause is empty for a failure of the agent
// (the store), which is logged as such.
type denial struct {
	code  codes.Code
	diag  string
	cause string
	err   error
}

// authorize finds the account of a Bootstrap-Request and decides whether
// it may bootstrap this way, and returns the account as far as it is
// known.
//
// On the plain port nobody has proved who they are, so every refusal is
// the same 4.00 Bad Request without a diagnostic, the answer the LwM2M
// transport specification gives a Bootstrap-Request for an endpoint the
// server cannot serve: an endpoint nobody registered, one whose account
// is incomplete and a PSK device asking without DTLS must not be told
// apart, or the port would tell who exists and how they connect. Over
// DTLS the device has authenticated, and learns more.
func (s *Server) authorize(ctx context.Context, conn *udpClient.Conn, req request, secure bool) (Account, denial) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HookTimeout)
	defer cancel()
	if !secure {
		acct, err := s.hooks.AccountByEndpoint(ctx, req.endpoint)
		refuse := func(cause string, err error) (Account, denial) {
			return acct, denial{code: codes.BadRequest, cause: cause, err: err}
		}
		switch {
		case errors.Is(err, ErrUnknownEndpoint):
			return refuse(causeUnknownEndpoint, err)
		case errors.Is(err, ErrIncomplete):
			return refuse(causeIncomplete, err)
		case errors.Is(err, ErrForbidden):
			return refuse(causeForbidden, err)
		case err != nil:
			return Account{}, denial{code: codes.ServiceUnavailable, err: err}
		}
		if acct.Params.SecurityMode != ModeNoSec {
			// Its keys would cross the network in clear.
			return refuse(causePSKWithoutDTLS, fmt.Errorf("%w: security mode %s asks for bootstrap over DTLS", ErrForbidden, acct.Params.SecurityMode))
		}
		return acct, denial{}
	}
	identity, err := pskIdentity(conn)
	if err != nil {
		return Account{}, denial{code: codes.Forbidden, err: err}
	}
	mismatch := denial{code: codes.Forbidden, cause: causeIdentityMismatch,
		err: fmt.Errorf("%w: psk identity %q belongs to another endpoint", ErrForbidden, identity)}
	acct, err := s.hooks.AccountByIdentity(ctx, identity)
	switch {
	case errors.Is(err, ErrUnknownEndpoint), errors.Is(err, ErrForbidden):
		return Account{}, denial{code: codes.Forbidden, cause: causeForbidden, err: err}
	case errors.Is(err, ErrIncomplete):
		if acct.Endpoint != req.endpoint {
			return Account{}, mismatch
		}
		return acct, denial{code: codes.BadRequest, diag: "bootstrap account incomplete", cause: causeIncomplete, err: err}
	case err != nil:
		return Account{}, denial{code: codes.ServiceUnavailable, err: err}
	}
	if acct.Endpoint != req.endpoint {
		// Not recorded on the identity's device either: the identity's
		// owner asked under a name that is not its own.
		return Account{}, mismatch
	}
	return acct, denial{}
}

// pskIdentity returns the PSK identity the client presented in the DTLS
// handshake of conn.
func pskIdentity(conn *udpClient.Conn) (string, error) {
	id, ok := psk.Identity(conn.NetConn())
	if !ok || id == "" {
		return "", errors.New("no psk identity in the dtls session")
	}
	return id, nil
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

// monitor sees every datagram before go-coap processes it and drops RSTs
// that are not empty, and block-wise bodies beyond the limits (which it
// answers itself).
func (s *Server) monitor(cc *udpClient.Conn, m *pool.Message) (bool, error) {
	// go-coap would hand an RST with a request code to serveCOAP as a
	// request and answer it.
	if malformedReset(m) {
		return true, nil
	}
	return s.transfers.Check(cc, m), nil
}

// admit judges a datagram from an address without state: only a
// Bootstrap-Request gets some; everything else is dropped unanswered,
// since the address may be forged.
func admit(_ *net.UDPAddr, h *coapfront.Header) coapfront.Verdict {
	if (h.Type == message.Confirmable || h.Type == message.NonConfirmable) && h.Code == codes.POST && h.PathIs("bs") {
		return coapfront.Admit
	}
	return coapfront.Drop
}

// held tells the address of a running plain session, whose state stays
// outside the bound of peers without one.
func (s *Server) held(a *net.UDPAddr) bool {
	key := addrString(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plainBy[key] > 0
}

// malformedReset tells an RST that carries anything besides its message
// ID: RFC 7252 section 4.2 makes such a message a format error, which is
// dropped without an answer.
func malformedReset(m *pool.Message) bool {
	return m.Type() == message.Reset &&
		(m.Code() != codes.Empty || len(m.Token()) != 0 || len(m.Options()) != 0 || m.Body() != nil)
}

// event hands ev to the hooks with a deadline of its own, so that the
// failure of a cancelled session is still recorded.
func (s *Server) event(ctx context.Context, acct Account, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HookTimeout)
	defer cancel()
	s.hooks.Event(ctx, acct, ev)
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

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// codeString formats a CoAP code as "4.04".
func codeString(c codes.Code) string {
	return fmt.Sprintf("%d.%02d", uint8(c)>>5, uint8(c)&0x1f)
}

// publicURI is scheme://host:port of a listen address; the unspecified
// address (":5683") becomes loopback.
func publicURI(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
