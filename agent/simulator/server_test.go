package simulator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// lwm2mServer is a small LwM2M server for the tests: it takes Register,
// Update, De-register and Send on a real UDP socket and lets a test make
// device-management requests to a registered device over the connection
// the device registered from.
type lwm2mServer struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	next    int
	regs    map[string]*testReg // by registration ID
	byEP    map[string]*testReg // latest registration of an endpoint
	events  []string            // "register sim-0", "update sim-0", "deregister sim-0", "send sim-0"
	sends   [][]byte
	refuse  codes.Code // when set, Updates get this answer
	changed chan struct{}
	stop    func()
}

type testReg struct {
	id      string
	ep      string
	query   map[string]string
	links   []codec.Link
	conn    *client.Conn
	updates int
	gone    bool
	// Where the last Update came from: the connection (the DTLS session,
	// for coaps) and its remote address then.
	updConn *client.Conn
	updAddr string
	regAddr string
}

func newLwm2mServer(t testing.TB) *lwm2mServer {
	return &lwm2mServer{t: t, regs: map[string]*testReg{}, byEP: map[string]*testReg{}, changed: make(chan struct{}, 1)}
}

func startServer(t testing.TB) *lwm2mServer {
	t.Helper()
	s := newLwm2mServer(t)
	l, err := coapNet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithHandlerFunc(s.handle), options.WithErrors(func(error) {}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(s.stop)
	s.addr = l.LocalAddr().String()
	return s
}

func queryMap(qs []string) map[string]string {
	m := map[string]string{}
	for _, q := range qs {
		k, v, _ := strings.Cut(q, "=")
		m[k] = v
	}
	return m
}

func (s *lwm2mServer) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	path, _ := r.Path()
	path = "/" + strings.TrimPrefix(path, "/")
	qs, _ := r.Queries()
	body, _ := r.ReadBody()
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}()
	switch {
	case r.Code() == codes.POST && path == "/rd":
		links, err := codec.ParseLinks(body)
		if err != nil {
			s.t.Errorf("register payload %q: %v", body, err)
		}
		s.next++
		reg := &testReg{id: strconv.Itoa(s.next), query: queryMap(qs), links: links, conn: w.Conn(), regAddr: w.Conn().RemoteAddr().String()}
		reg.ep = reg.query["ep"]
		s.regs[reg.id] = reg
		s.byEP[reg.ep] = reg
		s.events = append(s.events, "register "+reg.ep)
		_ = w.SetResponse(codes.Created, 0, nil, message.Option{ID: message.LocationPath, Value: []byte("rd")},
			message.Option{ID: message.LocationPath, Value: []byte(reg.id)})
	case r.Code() == codes.POST && path == "/dp":
		s.sends = append(s.sends, body)
		s.events = append(s.events, "send")
		_ = w.SetResponse(codes.Changed, 0, nil)
	case strings.HasPrefix(path, "/rd/"):
		reg := s.regs[strings.TrimPrefix(path, "/rd/")]
		if reg == nil || reg.gone {
			_ = w.SetResponse(codes.NotFound, 0, nil)
			return
		}
		switch r.Code() {
		case codes.POST:
			if s.refuse != 0 {
				_ = w.SetResponse(s.refuse, 0, nil)
				return
			}
			reg.updates++
			reg.updConn, reg.updAddr = w.Conn(), w.Conn().RemoteAddr().String()
			for k, v := range queryMap(qs) {
				reg.query[k] = v
			}
			if len(body) > 0 {
				links, err := codec.ParseLinks(body)
				if err != nil {
					s.t.Errorf("update payload %q: %v", body, err)
				}
				reg.links = links
			}
			s.events = append(s.events, "update "+reg.ep)
			_ = w.SetResponse(codes.Changed, 0, nil)
		case codes.DELETE:
			reg.gone = true
			s.events = append(s.events, "deregister "+reg.ep)
			_ = w.SetResponse(codes.Deleted, 0, nil)
		}
	default:
		_ = w.SetResponse(codes.NotFound, 0, nil)
	}
}

// wait polls cond until it holds or the timeout passes.
func (s *lwm2mServer) wait(timeout time.Duration, what string, cond func() bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.changed:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			ev := s.eventsCopy()
			if len(ev) > 20 {
				ev = ev[len(ev)-20:]
			}
			s.t.Fatalf("timed out waiting for %s; last events %v", what, ev)
		}
	}
}

func (s *lwm2mServer) eventsCopy() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// count counts events of one kind.
func (s *lwm2mServer) count(event string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.countLocked(event)
}

func (s *lwm2mServer) countLocked(event string) int {
	n := 0
	for _, e := range s.events {
		if e == event {
			n++
		}
	}
	return n
}

// reg waits for the endpoint's registration and returns it.
func (s *lwm2mServer) reg(ep string) *testReg {
	s.t.Helper()
	var reg *testReg
	s.wait(5*time.Second, "registration of "+ep, func() bool {
		reg = s.byEP[ep]
		return reg != nil && !reg.gone
	})
	return reg
}

// response is what a device answered, read out of the pooled message.
type response struct {
	code    codes.Code
	format  codec.Format
	hasCF   bool
	payload []byte
	observe int64
	loc     string
}

func readResponse(m *pool.Message) response {
	r := response{code: m.Code(), observe: -1}
	if cf, err := m.ContentFormat(); err == nil {
		r.format, r.hasCF = codec.Format(cf), true
	}
	r.payload, _ = m.ReadBody()
	if o, err := m.Observe(); err == nil {
		r.observe = int64(o)
	}
	r.loc, _ = m.Options().LocationPath()
	return r
}

// request makes one request to the device behind reg.
type request struct {
	code    codes.Code
	path    string
	accept  int // -1 for none
	format  int // content format of payload; -1 for none
	payload []byte
	queries []string
}

func (s *lwm2mServer) do(reg *testReg, rq request) (response, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m := reg.conn.AcquireMessage(ctx)
	defer reg.conn.ReleaseMessage(m)
	tok, err := message.GetToken()
	if err != nil {
		return response{}, err
	}
	m.SetToken(tok)
	m.SetCode(rq.code)
	if err := m.SetPath(rq.path); err != nil {
		return response{}, err
	}
	if rq.accept >= 0 {
		m.SetAccept(message.MediaType(rq.accept))
	}
	if rq.format >= 0 {
		m.SetContentFormat(message.MediaType(rq.format))
	}
	if rq.payload != nil {
		m.SetBody(bytes.NewReader(rq.payload))
	}
	for _, q := range rq.queries {
		m.AddQuery(q)
	}
	resp, err := reg.conn.Do(m)
	if err != nil {
		return response{}, err
	}
	defer reg.conn.ReleaseMessage(resp)
	return readResponse(resp), nil
}

// must is do that fails the test on a transport error.
func (s *lwm2mServer) must(reg *testReg, rq request) response {
	s.t.Helper()
	r, err := s.do(reg, rq)
	if err != nil {
		s.t.Fatalf("%v %s: %v", rq.code, rq.path, err)
	}
	return r
}

func get(path string, accept int) request {
	return request{code: codes.GET, path: path, accept: accept, format: -1}
}

func put(path string, format int, payload []byte) request {
	return request{code: codes.PUT, path: path, accept: -1, format: format, payload: payload}
}

func post(path string, format int, payload []byte) request {
	return request{code: codes.POST, path: path, accept: -1, format: format, payload: payload}
}

// runSim starts a simulator against s and waits until its devices are
// registered; it stops (and is waited for) when the test ends.
func runSim(t testing.TB, s *lwm2mServer, mod func(*Config)) *Simulator {
	t.Helper()
	sim, stop := startSim(t, s, mod)
	t.Cleanup(stop)
	return sim
}

// startSim is runSim with the stop function handed to the caller.
func startSim(t testing.TB, s *lwm2mServer, mod func(*Config)) (*Simulator, func()) {
	t.Helper()
	cfg := Config{
		Server:         s.addr,
		Count:          1,
		Version:        "1.1",
		Lifetime:       60 * time.Second,
		NotifyInterval: 50 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("simulator did not stop")
			}
		})
	}
	s.wait(5*time.Second+time.Duration(cfg.Count)*time.Millisecond, "devices registered", func() bool { return sim.Registered() == cfg.Count })
	return sim, stop
}

// decode decodes a device's answer with the simulator's own resource
// types.
func decode(t *testing.T, r response, base string) map[string]node.Value {
	t.Helper()
	if r.code != codes.Content {
		t.Fatalf("read %s: %v %s", base, r.code, r.payload)
	}
	recs, err := codec.Decode(r.format, node.MustParsePath(base), r.payload, resolver)
	if err != nil {
		t.Fatalf("decode %s (%v): %v", base, r.format, err)
	}
	m := map[string]node.Value{}
	for _, rec := range recs {
		m[rec.Path.String()] = rec.Value
	}
	return m
}

func fmtValues(m map[string]node.Value) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%s ", k, v.Text())
	}
	return b.String()
}

func bytesReader(s string) *bytes.Reader { return bytes.NewReader([]byte(s)) }
