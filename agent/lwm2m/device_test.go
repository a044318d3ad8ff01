package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// testTypes types the resources the test device serves.
var testTypes = node.ResolverFunc(func(p node.Path) (node.Type, bool) {
	switch {
	case p.Object == 3 && (p.Resource == 0 || p.Resource == 1 || p.Resource == 2):
		return node.TypeString, true
	case p.Object == 3 && p.Resource == 9:
		return node.TypeInteger, true
	case p.Object == 3303 && p.Resource == 5700:
		return node.TypeFloat, true
	}
	return node.TypeNone, false
})

// request is what the test device saw of a request from the server.
type request struct {
	code    codes.Code
	path    string
	queries []string
	format  message.MediaType
	hasCF   bool
	accept  message.MediaType
	observe int64 // -1 when absent
	token   []byte
	body    []byte
}

// device is a minimal LwM2M client on a real UDP socket, built on
// go-coap's UDP client with a router so it answers the server's requests
// on the same socket it registers from.
type device struct {
	t     testing.TB
	conn  *udpClient.Conn
	delay time.Duration // before answering /3/0/13; guarded by mu
	senml bool          // notify in SenML CBOR rather than TLV

	mu       sync.Mutex
	requests []request
	arrivals []time.Time // of requests to /3/0/13, as read from the socket
	resets   []int32     // message IDs of RSTs received
	obsToken []byte      // token of the last Observe=0 on /3/0
	manuf    string      // /3/0/0
}

func newDevice(t testing.TB, server net.Addr) *device {
	t.Helper()
	d := &device{t: t, manuf: "Open Mobile Alliance"}
	conn, err := udp.Dial(server.String(), d.options()...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	d.conn = conn
	t.Cleanup(func() { _ = conn.Close() })
	return d
}

// options make a go-coap client connection answer the server's requests
// with d.serve and record what the device sees.
func (d *device) options() []udp.Option {
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(d.serve))
	return []udp.Option{
		options.WithMux(r),
		options.WithRequestMonitor(func(_ *udpClient.Conn, m *pool.Message) (bool, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if m.Type() == message.Reset {
				d.resets = append(d.resets, m.MessageID())
			}
			if p, _ := m.Options().Path(); p == "/3/0/13" && m.Code() == codes.GET {
				d.arrivals = append(d.arrivals, time.Now())
			}
			return false, nil
		}),
	}
}

// waitArrivals waits until n requests to /3/0/13 have reached the device.
func (d *device) waitArrivals(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d.mu.Lock()
		got := len(d.arrivals)
		d.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests to /3/0/13 reached the device within %v, want %d", got, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *device) serve(w mux.ResponseWriter, r *mux.Message) {
	req := request{code: r.Code(), observe: -1, token: append([]byte(nil), r.Token()...)}
	req.path, _ = r.Options().Path()
	req.queries, _ = r.Options().Queries()
	if cf, err := r.ContentFormat(); err == nil {
		req.format, req.hasCF = cf, true
	}
	if a, err := r.Accept(); err == nil {
		req.accept = a
	}
	if o, err := r.Observe(); err == nil {
		req.observe = int64(o)
	}
	if r.Body() != nil {
		req.body, _ = r.ReadBody()
	}
	d.mu.Lock()
	d.requests = append(d.requests, req)
	if req.observe == 0 {
		d.obsToken = req.token
	}
	manuf, delay := d.manuf, d.delay
	d.mu.Unlock()

	switch {
	case req.code == codes.FETCH:
		payload, err := codec.Encode(codec.SenMLCBOR, node.Root, []node.Record{
			{Path: node.ResourcePath(3, 0, 0), Value: node.String(manuf)},
			{Path: node.ResourcePath(3, 0, 9), Value: node.Int(87)},
		})
		if err != nil {
			d.t.Errorf("encode: %v", err)
		}
		_ = w.SetResponse(codes.Content, message.MediaType(codec.SenMLCBOR), bytes.NewReader(payload))
		if req.observe == 0 {
			w.Message().SetObserve(2)
		}
	case req.code == codes.IPATCH:
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case req.code == codes.GET && req.accept == message.AppLinkFormat:
		_ = w.SetResponse(codes.Content, message.AppLinkFormat, strings.NewReader(`</3/0>,</3/0/0>,</3/0/9>;pmin=10,</3/0/13>`))
	case req.code == codes.GET && req.path == "/3/0":
		payload := d.encode(node.InstancePath(3, 0), []node.Record{
			{Path: node.ResourcePath(3, 0, 0), Value: node.String(manuf)},
			{Path: node.ResourcePath(3, 0, 9), Value: node.Int(87)},
		})
		_ = w.SetResponse(codes.Content, message.MediaType(codec.TLV), bytes.NewReader(payload))
		if req.observe == 0 {
			w.Message().SetObserve(2)
		}
	case req.code == codes.GET && req.path == "/3/0/0":
		payload := d.encode(node.ResourcePath(3, 0, 0), []node.Record{{Path: node.ResourcePath(3, 0, 0), Value: node.String(manuf)}})
		_ = w.SetResponse(codes.Content, message.MediaType(codec.TLV), bytes.NewReader(payload))
	case req.code == codes.GET && req.path == "/3/0/13":
		time.Sleep(delay)
		_ = w.SetResponse(codes.Content, message.TextPlain, strings.NewReader("1700000000"))
	case req.code == codes.GET && req.path == "/5/0/3":
		// Refuses observation: answers without the Observe option.
		_ = w.SetResponse(codes.Content, message.TextPlain, strings.NewReader("1"))
	case req.code == codes.PUT && req.path == "/3/0/9" && len(req.queries) > 0:
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case (req.code == codes.PUT || req.code == codes.POST) && strings.HasPrefix(req.path, "/1/0"):
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case req.code == codes.POST && req.path == "/3/0/4":
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	case req.code == codes.POST && req.path == "/3303":
		_ = w.SetResponse(codes.Created, message.TextPlain, nil,
			message.Option{ID: message.LocationPath, Value: []byte("3303")},
			message.Option{ID: message.LocationPath, Value: []byte("7")})
	case req.code == codes.DELETE && req.path == "/3303/7":
		_ = w.SetResponse(codes.Deleted, message.TextPlain, nil)
	case req.code == codes.DELETE:
		_ = w.SetResponse(codes.MethodNotAllowed, message.TextPlain, strings.NewReader("not here"))
	default:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
}

func (d *device) encode(base node.Path, recs []node.Record) []byte {
	b, err := codec.Encode(codec.TLV, base, recs)
	if err != nil {
		d.t.Errorf("encode: %v", err)
	}
	return b
}

func (d *device) setDelay(v time.Duration) {
	d.mu.Lock()
	d.delay = v
	d.mu.Unlock()
}

// lastRequest returns the last request the device saw for path.
func (d *device) lastRequest(path string) (request, bool) {
	return d.last(func(r request) bool { return r.path == path })
}

// last returns the last request that match accepts.
func (d *device) last(match func(request) bool) (request, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.requests) - 1; i >= 0; i-- {
		if match(d.requests[i]) {
			return d.requests[i], true
		}
	}
	return request{}, false
}

func (d *device) resetCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.resets)
}

// result of a request the device sent.
type result struct {
	code     codes.Code
	location string
	diag     string // the payload of an error answer
	maxAge   uint32 // the Max-Age option, 0 when absent
}

// post sends a request from the device and returns the answer.
func (d *device) do(method codes.Code, path string, queries []string, cf message.MediaType, payload []byte) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := make([]message.Option, 0, len(queries))
	for _, q := range queries {
		opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte(q)})
	}
	var resp *pool.Message
	var err error
	switch method {
	case codes.POST:
		var body *bytes.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
			resp, err = d.conn.Post(ctx, path, cf, body, opts...)
		} else {
			var req *pool.Message
			req, err = d.conn.NewPostRequest(ctx, path, cf, nil, opts...)
			if err == nil {
				resp, err = d.conn.Do(req)
				d.conn.ReleaseMessage(req)
			}
		}
	case codes.DELETE:
		resp, err = d.conn.Delete(ctx, path, opts...)
	default:
		return result{}, errors.New("unsupported method")
	}
	if err != nil {
		return result{}, err
	}
	defer d.conn.ReleaseMessage(resp)
	loc, _ := resp.Options().LocationPath()
	var diag []byte
	if resp.Body() != nil {
		if diag, err = resp.ReadBody(); err != nil {
			return result{}, fmt.Errorf("read answer payload: %w", err)
		}
	}
	maxAge, _ := resp.Options().GetUint32(message.MaxAge)
	return result{code: resp.Code(), location: loc, diag: string(diag), maxAge: maxAge}, nil
}

// register sends Register with the given query and object list and
// returns the registration ID from the Location-Path.
func (d *device) register(queries []string, links string) (result, string) {
	d.t.Helper()
	res, err := d.do(codes.POST, "/rd", queries, message.AppLinkFormat, []byte(links))
	if err != nil {
		d.t.Fatalf("register: %v", err)
	}
	id, _ := strings.CutPrefix(strings.TrimPrefix(res.location, "/"), "rd/")
	return res, id
}

// notify sends a notification of /3/0 with the token of the last
// observation, CON or NON.
func (d *device) notify(seq uint32, confirmable bool, manuf string) error {
	d.mu.Lock()
	tok := d.obsToken
	d.mu.Unlock()
	if tok == nil {
		return errors.New("not observed")
	}
	recs := []node.Record{{Path: node.ResourcePath(3, 0, 0), Value: node.String(manuf)}}
	f := codec.TLV
	payload := d.encode(node.InstancePath(3, 0), recs)
	if d.senml {
		f = codec.SenMLCBOR
		var err error
		if payload, err = codec.Encode(f, node.Root, recs); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := d.conn.AcquireMessage(ctx)
	defer d.conn.ReleaseMessage(m)
	m.SetCode(codes.Content)
	m.SetToken(tok)
	m.SetObserve(seq)
	m.SetContentFormat(message.MediaType(f))
	m.SetBody(bytes.NewReader(payload))
	if confirmable {
		m.SetType(message.Confirmable)
	} else {
		m.SetType(message.NonConfirmable)
	}
	return d.conn.WriteMessage(m)
}

// event is one hook call.
type event struct {
	kind     string
	reg      Registration
	observed node.Path
	recs     []node.Record
}

// recorder is a Hooks that records every call and lets tests refuse
// endpoints.
type recorder struct {
	mu     sync.Mutex
	refuse map[string]bool
	auths  []AuthRequest
	events chan event
	// formats are the serializations Authorize returns, by endpoint
	formats map[string]codec.Format
	// persisted are the Persist calls in order; persistErr is what
	// Persist returns, after waiting for persistGate when it is set
	persisted   []persisted
	persistErr  error
	persistGate chan struct{}
}

type persisted struct {
	change Change
	reg    Registration
}

func newRecorder() *recorder {
	return &recorder{refuse: map[string]bool{}, events: make(chan event, 1024)}
}

func (h *recorder) Authorize(_ context.Context, req AuthRequest) (Identity, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.auths = append(h.auths, req)
	ep := req.Endpoint
	if h.refuse[ep] {
		return Identity{}, errors.New("unknown endpoint")
	}
	id := Identity{Tenant: "t1", DeviceID: "dev-" + ep}
	if f, ok := h.formats[ep]; ok {
		id.Serialization, id.HasSerialization = f, true
	}
	return id, nil
}
func (h *recorder) Persist(ctx context.Context, reg Registration, change Change) error {
	h.mu.Lock()
	h.persisted = append(h.persisted, persisted{change: change, reg: reg})
	err, gate := h.persistErr, h.persistGate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

// persistCalls returns the Persist calls so far.
func (h *recorder) persistCalls() []persisted {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.persisted)
}

func (h *recorder) Registered(_ context.Context, reg Registration) {
	h.events <- event{kind: "registered", reg: reg}
}
func (h *recorder) Updated(_ context.Context, reg Registration) {
	h.events <- event{kind: "updated", reg: reg}
}
func (h *recorder) Deregistered(_ context.Context, reg Registration) {
	h.events <- event{kind: "deregistered", reg: reg}
}
func (h *recorder) Expired(_ context.Context, reg Registration) {
	h.events <- event{kind: "expired", reg: reg}
}
func (h *recorder) Values(_ context.Context, reg Registration, observed node.Path, recs []node.Record) {
	h.events <- event{kind: "values", reg: reg, observed: observed, recs: recs}
}

// wait returns the next event of kind, skipping others, or fails.
func (h *recorder) wait(t *testing.T, kind string, timeout time.Duration) event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-h.events:
			if e.kind == kind {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event within %v", kind, timeout)
			return event{}
		}
	}
}

// none asserts that no event of kind arrives within d.
func (h *recorder) none(t *testing.T, kind string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-h.events:
			if e.kind == kind {
				t.Fatalf("unexpected %s event: %+v", kind, e)
			}
		case <-deadline:
			return
		}
	}
}

// startServer runs a Server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, cfg Config) (*Server, *recorder) {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Types == nil {
		cfg.Types = testTypes
	}
	h := newRecorder()
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
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
	return s, h
}

const testLinks = `</>;rt="oma.lwm2m";ct=11542,</1/0>,</3/0>,</3303>;ver=1.1,</3303/0>`

// registered starts a server and registers one device with endpoint ep.
func registered(t *testing.T, cfg Config, ep string) (*Server, *recorder, *device) {
	t.Helper()
	s, h := startServer(t, cfg)
	d := newDevice(t, s.Addr())
	res, _ := d.register([]string{"ep=" + ep, "lt=300", "lwm2m=1.1"}, testLinks)
	if res.code != codes.Created {
		t.Fatalf("register answered %v", res.code)
	}
	h.wait(t, "registered", 2*time.Second)
	return s, h, d
}
