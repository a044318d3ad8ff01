package bootstrap

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	agentsession "github.com/lwm2m-agent/lwm2m-agent/agent/session"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// seen is a request the test client received from the server.
type seen struct {
	method codes.Code
	path   string
	format message.MediaType // content format of a write, accept of a GET
}

func (s seen) String() string {
	if s.format != 0 || s.method == codes.PUT {
		return fmt.Sprintf("%v %s %d", s.method, s.path, s.format)
	}
	return fmt.Sprintf("%v %s", s.method, s.path)
}

// client is an LwM2M client in bootstrap mode on a real socket: it sends
// Bootstrap-Request, then serves the server's Discover, Delete and Write
// requests on an in-memory object tree, and answers Finish.
type client struct {
	t    testing.TB
	conn *udpClient.Conn
	// version is "1.0" (Discover answered 4.04) or "1.1"/"1.2".
	version string

	mu sync.Mutex
	// tree holds resource values by instance path ("/0/1").
	tree map[node.Path][]node.Record
	// bootstrapID is the instance of the client's own bootstrap account,
	// which Bootstrap-Delete keeps; -1 for none.
	bootstrapID int
	// failWrite answers writes of this path with 4.00.
	failWrite string
	// refuse answers writes in this content format with 4.15.
	refuse message.MediaType
	// ignore leaves this many Discover requests unanswered.
	ignore   int
	requests []seen
	finished chan struct{}
}

func newClient(t testing.TB, version string) *client {
	return &client{t: t, version: version, tree: map[node.Path][]node.Record{}, bootstrapID: -1, finished: make(chan struct{})}
}

// dialPlain connects c to the server's plain port.
func (c *client) dialPlain(addr net.Addr) {
	c.t.Helper()
	conn, err := udp.Dial(addr.String(), options.WithMux(c.router()))
	if err != nil {
		c.t.Fatalf("dial: %v", err)
	}
	c.conn = conn
	c.t.Cleanup(func() { _ = conn.Close() })
}

// dialSecure connects c to the server's DTLS port with a PSK.
func (c *client) dialSecure(addr net.Addr, identity string, key []byte) {
	c.t.Helper()
	if err := c.handshake(addr, identity, key, 5*time.Second); err != nil {
		c.t.Fatalf("dial dtls: %v", err)
	}
}

// handshake connects c to the server's DTLS port with a PSK and completes
// the handshake within timeout, or returns why not. It does so before
// go-coap takes the connection: pion otherwise runs the handshake in the
// first Read or Write without a deadline, and go-coap's reading goroutine
// comes first and holds pion's handshake lock; a handshake that never
// completes (a wrong key draws no answer, RFC 6347 4.1.2.7) then blocks
// every request of the test whatever its context.
func (c *client) handshake(addr net.Addr, identity string, key []byte, timeout time.Duration) error {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	dc, err := dtls.ClientWithOptions(pc, addr,
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_CCM_8),
	)
	if err != nil {
		_ = pc.Close()
		return fmt.Errorf("dtls client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := dc.HandshakeContext(ctx); err != nil {
		_ = dc.Close()
		return fmt.Errorf("handshake: %w", err)
	}
	conn := coapdtls.Client(dc, options.WithMux(c.router()), options.WithCloseSocket())
	c.conn = conn
	c.t.Cleanup(func() { _ = conn.Close() })
	return nil
}

func (c *client) router() *mux.Router {
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(c.serve))
	return r
}

// request sends Bootstrap-Request and returns the answer's code and
// diagnostic.
func (c *client) request(queries ...string) (codes.Code, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := make([]message.Option, 0, len(queries))
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	req, err := c.conn.NewPostRequest(ctx, "/bs", message.TextPlain, nil, opts...)
	if err != nil {
		return 0, "", err
	}
	defer c.conn.ReleaseMessage(req)
	resp, err := c.conn.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer c.conn.ReleaseMessage(resp)
	var diag []byte
	if resp.Body() != nil {
		diag, _ = resp.ReadBody()
	}
	return resp.Code(), string(diag), nil
}

func (c *client) serve(w mux.ResponseWriter, r *mux.Message) {
	path, _ := r.Options().Path()
	path = "/" + strings.TrimPrefix(path, "/")
	rq := seen{method: r.Code(), path: path}
	if cf, err := r.ContentFormat(); err == nil {
		rq.format = cf
	}
	if a, err := r.Accept(); err == nil && r.Code() == codes.GET {
		rq.format = a
	}
	var body []byte
	if r.Body() != nil {
		body, _ = r.ReadBody()
	}
	c.mu.Lock()
	c.requests = append(c.requests, rq)
	ignore := c.ignore > 0 && rq.method == codes.GET && path == "/"
	if ignore {
		c.ignore--
	}
	c.mu.Unlock()
	if ignore {
		return
	}

	switch {
	case rq.method == codes.GET && path == "/":
		if c.version == "1.0" {
			_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
			return
		}
		_ = w.SetResponse(codes.Content, message.AppLinkFormat, strings.NewReader(c.links()))
	case rq.method == codes.DELETE:
		p, err := node.ParsePath(path)
		if err != nil || p.Depth != 1 {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		c.mu.Lock()
		for ip := range c.tree {
			if ip.Object == p.Object && !(p.Object == 0 && int(ip.Instance) == c.bootstrapID) {
				delete(c.tree, ip)
			}
		}
		c.mu.Unlock()
		_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
	case rq.method == codes.PUT:
		c.mu.Lock()
		fail, refuse := c.failWrite, c.refuse
		c.mu.Unlock()
		if path == fail {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, strings.NewReader("no such server"))
			return
		}
		if rq.format == refuse {
			_ = w.SetResponse(codes.UnsupportedMediaType, message.TextPlain, nil)
			return
		}
		p, err := node.ParsePath(path)
		if err != nil || p.Depth != 2 {
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		recs, err := codec.Decode(codec.Format(rq.format), p, body, model.Core())
		if err != nil {
			c.t.Errorf("decode write of %s: %v", path, err)
			_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
			return
		}
		c.mu.Lock()
		c.tree[p] = recs // a Bootstrap-Write replaces the instance
		c.mu.Unlock()
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case rq.method == codes.POST && path == "/bs":
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		select {
		case <-c.finished:
		default:
			close(c.finished)
		}
	default:
		_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, nil)
	}
}

// links is the Bootstrap-Discover answer of the tree.
func (c *client) links() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []string{"</>;lwm2m=" + c.version}
	paths := make([]node.Path, 0, len(c.tree))
	for p := range c.tree {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b node.Path) int {
		return int(a.Object)*65536 + int(a.Instance) - int(b.Object)*65536 - int(b.Instance)
	})
	for _, p := range paths {
		l := "<" + p.String() + ">"
		if !(p.Object == 0 && int(p.Instance) == c.bootstrapID) {
			for _, r := range c.tree[p] {
				if (p.Object == 0 && r.Path.Resource == 10) || (p.Object == 1 && r.Path.Resource == 0) {
					l += fmt.Sprintf(";ssid=%d", r.Value.Int)
				}
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, ",")
}

// waitFinished waits for Bootstrap-Finish.
func (c *client) waitFinished(t *testing.T) {
	t.Helper()
	select {
	case <-c.finished:
	case <-time.After(10 * time.Second):
		t.Fatalf("no Bootstrap-Finish; requests: %v", c.seen())
	}
}

func (c *client) seen() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.requests))
	for i, r := range c.requests {
		out[i] = r.String()
	}
	return out
}

// instance returns the values written to p, by resource ID, as text.
func (c *client) instance(p node.Path) map[uint16]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	recs, ok := c.tree[p]
	if !ok {
		return nil
	}
	m := map[uint16]string{}
	for _, r := range recs {
		m[r.Path.Resource] = valueText(r.Value)
	}
	return m
}

func (c *client) instances() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for p := range c.tree {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// valueText writes a value as a type letter and its text (opaque as
// hex), so that an expected tree checks types too: "s:coap://...",
// "b:1", "i:3", "o:" for empty opaque.
func valueText(v node.Value) string {
	tag := map[node.Type]string{node.TypeString: "s", node.TypeBoolean: "b", node.TypeInteger: "i", node.TypeUnsignedInteger: "u", node.TypeOpaque: "o"}[v.Type]
	if tag == "" {
		tag = v.Type.String()
	}
	return tag + ":" + v.Text()
}

// testServer runs a Server with StoreHooks over a real embedded store.
type testServer struct {
	srv   *Server
	store store.Engine
	hooks *StoreHooks
	stop  func() // stops Serve and waits for it; idempotent
}

const (
	plainURI  = "coap://bs.example.com:5683"
	secureURI = "coaps://bs.example.com:5684"
)

// startServer starts a bootstrap server on loopback with both ports, keys
// from the store; mod may change the config first.
func startServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	st := storetest.OpenTest(t)
	hooks := NewStoreHooks(st, nil)
	cfg := Config{
		Addr:               "127.0.0.1:0",
		SecureAddr:         "127.0.0.1:0",
		Keys:               agentsession.Keys(st, store.PSKBootstrap),
		BootstrapURI:       plainURI,
		SecureBootstrapURI: secureURI,
		RequestTimeout:     2 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg, hooks)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("serve did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return &testServer{srv: srv, store: st, hooks: hooks, stop: stop}
}

// device stores a device of tenant with its registration parameters and
// keys, and binds its bootstrap PSK identity if it has one.
func (ts *testServer) device(t *testing.T, tenant string, params map[string]any, pskKey, bsKey []byte) string {
	t.Helper()
	ctx := context.Background()
	ep := params["endpointId"].(string)
	id, err := ts.store.CreateDevice(ctx, tenant, ep)
	if err != nil {
		t.Fatalf("create device: %v", err)
	}
	if err := ts.store.SaveDeviceRegistration(ctx, tenant, id, store.DeviceRegistration{Params: params, PSKKey: pskKey, BootstrapPSKKey: bsKey}); err != nil {
		t.Fatalf("save registration: %v", err)
	}
	if bs, _ := params["bootstrapPskId"].(string); bs != "" {
		if err := ts.store.BindPSKIdentity(ctx, store.PSKBootstrap, bs, tenant, id); err != nil {
			t.Fatalf("bind identity: %v", err)
		}
	}
	return id
}

// events returns the device's event types and texts, oldest first.
func (ts *testServer) events(t *testing.T, tenant, id string) []store.Event {
	t.Helper()
	evs, _, err := ts.store.ListEvents(context.Background(), tenant, store.EventFilter{Source: id, Revert: true, Page: store.Page{Size: 100, Current: 1}})
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	return evs
}

// waitEvents waits until the device has an event of type last and returns
// the types of all its events, oldest first.
func (ts *testServer) waitEvents(t *testing.T, tenant, id, last string) ([]string, []store.Event) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := ts.events(t, tenant, id)
		types := make([]string, len(evs))
		for i, e := range evs {
			types[i] = e.Type
		}
		if slices.Contains(types, last) {
			return types, evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event; events: %v", last, types)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
