package coapfront

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	netClient "github.com/plgd-dev/go-coap/v3/net/client"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// session is one peer's side of the shared socket, as go-coap's UDP
// server session, whose end (shutdown) only go-coap's server can call.
type session struct {
	ctx            atomic.Pointer[context.Context]
	cancel         context.CancelFunc
	done           context.Context
	doneCancel     context.CancelFunc
	conn           *coapNet.UDPConn
	raddr          *net.UDPAddr
	maxMessageSize uint32

	mu       sync.Mutex
	onClose  []udpClient.EventFunc
	shutOnce sync.Once
}

var _ udpClient.Session = (*session)(nil)

func newSession(ctx context.Context, conn *coapNet.UDPConn, raddr *net.UDPAddr, maxMessageSize uint32) *session {
	ctx, cancel := context.WithCancel(ctx)
	done, doneCancel := context.WithCancel(context.Background())
	s := &session{cancel: cancel, done: done, doneCancel: doneCancel, conn: conn, raddr: raddr, maxMessageSize: maxMessageSize}
	s.ctx.Store(&ctx)
	return s
}

// shutdown runs the close callbacks and stops the connection's reading
// goroutine (which waits on Done); after Close.
func (s *session) shutdown() {
	s.shutOnce.Do(func() {
		defer s.doneCancel()
		s.mu.Lock()
		fs := s.onClose
		s.onClose = nil
		s.mu.Unlock()
		for _, f := range fs {
			f()
		}
	})
}

func (s *session) Context() context.Context { return *s.ctx.Load() }

func (s *session) SetContextValue(key, val any) {
	ctx := context.WithValue(s.Context(), key, val)
	s.ctx.Store(&ctx)
}

func (s *session) Done() <-chan struct{} { return s.done.Done() }

func (s *session) AddOnClose(f udpClient.EventFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onClose = append(s.onClose, f)
}

// Close ends the session; the socket is shared and stays open.
func (s *session) Close() error {
	s.cancel()
	return nil
}

func (s *session) MaxMessageSize() uint32 { return s.maxMessageSize }
func (s *session) RemoteAddr() net.Addr   { return s.raddr }
func (s *session) LocalAddr() net.Addr    { return s.conn.LocalAddr() }
func (s *session) NetConn() net.Conn      { return s.conn.NetConn() }

func (s *session) WriteMessage(req *pool.Message) error {
	data, err := req.MarshalWithEncoder(coder.DefaultCoder)
	if err != nil {
		return &netClient.RequestNotSentError{Err: fmt.Errorf("cannot marshal: %w", err)}
	}
	return s.conn.WriteWithOptions(data, coapNet.WithContext(req.Context()), coapNet.WithRemoteAddr(s.raddr), coapNet.WithControlMessage(req.ControlMessage()))
}

var errNoMulticast = errors.New("coap front: no multicast")

func (s *session) WriteMulticastMessage(*pool.Message, *net.UDPAddr, ...coapNet.MulticastOption) error {
	return errNoMulticast
}

// Run is the read loop of a client's own socket; the server reads for
// every session.
func (s *session) Run(*udpClient.Conn) error {
	return errors.New("coap front: a server session has no read loop of its own")
}
