package simulator

import (
	"bytes"
	"context"
	"errors"
	"slices"
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
	"github.com/plgd-dev/go-coap/v3/udp/coder"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// bsStep is one request of a test bootstrap server and the answer it
// expects.
type bsStep struct {
	code    codes.Code
	path    string
	accept  int // -1 for none
	format  int // -1 for none
	payload []byte
	want    codes.Code
}

// bsServer is a small LwM2M bootstrap server: it accepts a
// Bootstrap-Request and then runs a script of requests on the device.
type bsServer struct {
	t      testing.TB
	addr   string
	script func(ep string) []bsStep

	mu      sync.Mutex
	queries []map[string]string
	answers map[string][]response // by endpoint, in script order
	done    chan string           // endpoints whose script ran
	wg      sync.WaitGroup
}

func newBSServer(t testing.TB, script func(ep string) []bsStep) *bsServer {
	b := &bsServer{t: t, script: script, answers: map[string][]response{}, done: make(chan string, 16)}
	return b
}

func servePlain(t testing.TB, h func(*responsewriter.ResponseWriter[*client.Conn], *pool.Message)) string {
	t.Helper()
	l, err := coapNet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithHandlerFunc(h), options.WithErrors(func(error) {}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return l.LocalAddr().String()
}

// startBS starts the bootstrap server, over DTLS when keys are given.
func startBS(t testing.TB, keys map[string][]byte, script func(ep string) []bsStep) *bsServer {
	t.Helper()
	b := newBSServer(t, script)
	if keys != nil {
		b.addr = serveDTLS(t, dtlsOpts{keys: keys}, b.handle)
	} else {
		b.addr = servePlain(t, b.handle)
	}
	t.Cleanup(b.wg.Wait) // before the server stops
	return b
}

func (b *bsServer) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	path, _ := r.Path()
	if r.Code() != codes.POST || strings.Trim(path, "/") != "bs" {
		_ = w.SetResponse(codes.NotFound, 0, nil)
		return
	}
	qs, _ := r.Queries()
	q := queryMap(qs)
	b.mu.Lock()
	b.queries = append(b.queries, q)
	b.mu.Unlock()
	_ = w.SetResponse(codes.Changed, 0, nil)
	cc := w.Conn()
	b.wg.Go(func() { b.run(cc, q["ep"]) })
}

func (b *bsServer) run(cc *client.Conn, ep string) {
	defer func() { b.done <- ep }()
	for _, st := range b.script(ep) {
		r, err := doRequest(cc, request{code: st.code, path: st.path, accept: st.accept, format: st.format, payload: st.payload})
		if err != nil {
			b.t.Errorf("bootstrap %v %s: %v", st.code, st.path, err)
			return
		}
		b.mu.Lock()
		b.answers[ep] = append(b.answers[ep], r)
		b.mu.Unlock()
	}
}

// doRequest is lwm2mServer.do without a server.
func doRequest(cc *client.Conn, rq request) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	m := cc.AcquireMessage(ctx)
	defer cc.ReleaseMessage(m)
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
	resp, err := cc.Do(m)
	if err != nil {
		return response{}, err
	}
	defer cc.ReleaseMessage(resp)
	return readResponse(resp), nil
}

// finished waits for the script of ep and checks every answer.
func (b *bsServer) finished(ep string) []response {
	b.t.Helper()
	select {
	case got := <-b.done:
		if got != ep {
			b.t.Fatalf("bootstrap of %q ended, want %q", got, ep)
		}
	case <-time.After(10 * time.Second):
		b.t.Fatalf("bootstrap of %s did not end", ep)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.answers[ep]
	for i, st := range b.script(ep) {
		if i >= len(got) {
			b.t.Fatalf("no answer to %v %s", st.code, st.path)
		}
		if got[i].code != st.want {
			b.t.Errorf("%v %s answered %v %q, want %v", st.code, st.path, got[i].code, got[i].payload, st.want)
		}
	}
	return got
}

func mustEncode(t testing.TB, f codec.Format, base string, recs ...node.Record) []byte {
	t.Helper()
	b, err := codec.Encode(f, node.MustParsePath(base), recs)
	if err != nil {
		t.Fatalf("encode %s in %v: %v", base, f, err)
	}
	return b
}

// serverAccount is the script of a bootstrap server that configures one
// LwM2M server account: /0/1 security, /1/0 server with short server ID
// 123, lifetime 77 s and binding UQ.
func serverAccount(t testing.TB, f codec.Format, uri, identity string, key []byte) []bsStep {
	mode := node.Int(secModeNoSec)
	if strings.HasPrefix(uri, "coaps:") {
		mode = node.Int(secModePSK)
	}
	sec := mustEncode(t, f, "/0/1",
		rec("/0/1/0", node.String(uri)),
		rec("/0/1/1", node.Bool(false)),
		rec("/0/1/2", mode),
		rec("/0/1/3", node.Opaque([]byte(identity))),
		rec("/0/1/4", node.Opaque(nil)),
		rec("/0/1/5", node.Opaque(key)),
		rec("/0/1/10", node.Int(123)),
	)
	srv := mustEncode(t, f, "/1/0",
		rec("/1/0/0", node.Int(123)),
		rec("/1/0/1", node.Int(77)),
		rec("/1/0/6", node.Bool(true)),
		rec("/1/0/7", node.String("UQ")),
	)
	return []bsStep{
		{code: codes.DELETE, path: "/0", accept: -1, format: -1, want: codes.Deleted},
		{code: codes.DELETE, path: "/1", accept: -1, format: -1, want: codes.Deleted},
		{code: codes.PUT, path: "/0/1", accept: -1, format: int(f), payload: sec, want: codes.Changed},
		{code: codes.PUT, path: "/1/0", accept: -1, format: int(f), payload: srv, want: codes.Changed},
		{code: codes.POST, path: "/bs", accept: -1, format: -1, want: codes.Changed},
	}
}

func TestBootstrapThenRegister(t *testing.T) {
	const srvID = "srv-psk-id"
	srvKey := []byte("0123456789abcdef")
	bsKey := []byte("fedcba9876543210")
	for _, tc := range []struct {
		name    string
		version string
		format  codec.Format
		secure  bool // bootstrap and LwM2M server over DTLS with PSK
	}{
		{"1.0 TLV", "1.0", codec.TLV, false},
		{"1.1 SenML CBOR", "1.1", codec.SenMLCBOR, false},
		{"1.1 SenML JSON", "1.1", codec.SenMLJSON, false},
		{"1.2 LwM2M JSON", "1.2", codec.LwM2MJSON, false},
		{"1.1 SenML CBOR PSK", "1.1", codec.SenMLCBOR, true},
		{"1.0 TLV PSK", "1.0", codec.TLV, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				lw     *lwm2mServer
				bs     *bsServer
				dc     = DeviceConfig{Endpoint: "bs-dev"}
				script func(string) []bsStep
			)
			if tc.secure {
				lw = startDTLSServer(t, dtlsOpts{keys: map[string][]byte{srvID: srvKey}})
			} else {
				lw = startServer(t)
			}
			script = func(string) []bsStep {
				var steps []bsStep
				// Bootstrap-Discover first, as bootstrap servers do to
				// learn what the device has.
				if tc.version == "1.0" {
					steps = append(steps, bsStep{code: codes.GET, path: "/", accept: int(codec.LinkFmt), format: -1, want: codes.MethodNotAllowed})
				} else {
					steps = append(steps, bsStep{code: codes.GET, path: "/", accept: int(codec.LinkFmt), format: -1, want: codes.Content})
				}
				if tc.secure {
					return append(steps, serverAccount(t, tc.format, "coaps://"+lw.addr, srvID, srvKey)...)
				}
				return append(steps, serverAccount(t, tc.format, "coap://"+lw.addr, "", nil)...)
			}
			if tc.secure {
				bs = startBS(t, map[string][]byte{"bs-psk-id": bsKey}, script)
				dc.BootstrapURI, dc.BootstrapPSKIdentity, dc.BootstrapPSK = "coaps://"+bs.addr, "bs-psk-id", bsKey
			} else {
				bs = startBS(t, nil, script)
				dc.BootstrapURI = "coap://" + bs.addr
			}
			sim := launch(t, Config{Version: tc.version, Devices: []DeviceConfig{dc}})

			answers := bs.finished("bs-dev")
			if tc.version != "1.0" {
				links, err := codec.ParseLinks(answers[0].payload)
				if err != nil {
					t.Fatalf("bootstrap discover %q: %v", answers[0].payload, err)
				}
				if v, _ := links[0].Attr("lwm2m"); links[0].Target != "/" || v != tc.version {
					t.Errorf("bootstrap discover starts with %v", links[0])
				}
				if !slices.ContainsFunc(links, func(l codec.Link) bool { return l.Target == "/0/0" }) {
					t.Errorf("bootstrap discover without the bootstrap account: %s", answers[0].payload)
				}
			}
			bs.mu.Lock()
			q := bs.queries[0]
			bs.mu.Unlock()
			if q["ep"] != "bs-dev" {
				t.Errorf("bootstrap request ep=%q", q["ep"])
			}
			wantPct := ""
			if tc.version != "1.0" {
				wantPct = itoa(int(codec.SenMLCBOR))
			}
			if q["pct"] != wantPct {
				t.Errorf("bootstrap request pct=%q, want %q", q["pct"], wantPct)
			}

			// The device registers where it was told, as it was told.
			reg := lw.reg("bs-dev")
			for k, v := range map[string]string{"lt": "77", "b": "UQ", "lwm2m": tc.version} {
				if reg.query[k] != v {
					t.Errorf("register %s=%q, want %q", k, reg.query[k], v)
				}
			}
			var targets []string
			for _, l := range reg.links {
				targets = append(targets, l.Target)
			}
			if !slices.Contains(targets, "/1/0") || slices.ContainsFunc(targets, func(s string) bool { return strings.HasPrefix(s, "/0") }) {
				t.Errorf("registered objects %v: want /1/0 and no security instance", targets)
			}
			vals := decode(t, lw.must(reg, get("/1/0", int(codec.SenMLJSON))), "/1/0")
			if vals["/1/0/0"].Int != 123 || vals["/1/0/1"].Int != 77 || vals["/1/0/7"].Str != "UQ" {
				t.Errorf("server object after bootstrap: %s", fmtValues(vals))
			}
			for _, p := range []string{"/0", "/0/1", "/0/1/5"} {
				if r := lw.must(reg, get(p, -1)); r.code != codes.Unauthorized {
					t.Errorf("LwM2M server read %s: %v %q, want 4.01", p, r.code, r.payload)
				}
			}
			dev := sim.Device("bs-dev")
			if !dev.Bootstrapped() || dev.Err() != nil {
				t.Errorf("bootstrapped %v, err %v", dev.Bootstrapped(), dev.Err())
			}
			if s := sim.Stats(); s.Bootstraps != 1 {
				t.Errorf("stats %+v", s)
			}
			// The bootstrap account survived the DELETE /0.
			dev.mu.Lock()
			a, err := dev.accountLocked(true)
			dev.mu.Unlock()
			if err != nil || a.uri != dc.BootstrapURI {
				t.Errorf("bootstrap account after bootstrap: %+v, %v", a, err)
			}
		})
	}
}

func TestBootstrapFinishWithoutAccount(t *testing.T) {
	bs := startBS(t, nil, func(string) []bsStep {
		return []bsStep{
			{code: codes.DELETE, path: "/", accept: -1, format: -1, want: codes.Deleted},
			{code: codes.POST, path: "/bs", accept: -1, format: -1, want: codes.NotAcceptable},
		}
	})
	sim := launch(t, Config{Bootstrap: "coap://" + bs.addr, Prefix: "nobody"})
	bs.finished("nobody-0")
	waitSettled(t, sim, 5*time.Second)
	dev := sim.Device("nobody-0")
	if err := dev.Err(); !errors.Is(err, ErrBootstrapFinish) || !strings.Contains(err.Error(), "no LwM2M server") {
		t.Errorf("error %v, want a refused bootstrap finish naming the missing server account", err)
	}
	if dev.Registered() || dev.Bootstrapped() {
		t.Errorf("registered %v, bootstrapped %v", dev.Registered(), dev.Bootstrapped())
	}
	if f := sim.Failures(); len(f) != 1 {
		t.Errorf("failures %v", f)
	}
}

// bootstrapDevice is a device waiting for its bootstrap server, without a
// network, for calling serveBootstrap directly.
func bootstrapDevice(t testing.TB, version string) *Device {
	t.Helper()
	sim, err := New(Config{Bootstrap: "coap://127.0.0.1:5683", Version: version})
	if err != nil {
		t.Fatal(err)
	}
	d := sim.devices[0]
	d.bsWaiting = true
	return d
}

func bsRequest(t testing.TB, code codes.Code, path string, opts message.Options, payload []byte) *pool.Message {
	t.Helper()
	data := encodeRequest(t, code, path, opts, payload)
	m := pool.NewMessage(context.Background())
	if _, err := m.UnmarshalWithDecoder(coder.DefaultCoder, data); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServeBootstrap(t *testing.T) {
	tlvServer := mustEncode(t, codec.TLV, "/1/4", rec("/1/4/0", node.Int(9)), rec("/1/4/1", node.Int(60)), rec("/1/4/7", node.String("U")))
	// Two security instances in one object-level write.
	twoSec := mustEncode(t, codec.SenMLJSON, "/0",
		rec("/0/5/0", node.String("coap://a:1")), rec("/0/5/1", node.Bool(false)), rec("/0/5/2", node.Int(3)), rec("/0/5/10", node.Int(9)),
		rec("/0/6/0", node.String("coap://b:1")), rec("/0/6/1", node.Bool(false)), rec("/0/6/2", node.Int(3)), rec("/0/6/10", node.Int(10)),
	)
	cf := func(f codec.Format) message.Options {
		return message.Options{uintOpt(message.ContentFormat, uint32(f))}
	}
	acc := func(f codec.Format) message.Options { return message.Options{uintOpt(message.Accept, uint32(f))} }
	for _, tc := range []struct {
		name    string
		version string
		code    codes.Code
		path    string
		opts    message.Options
		payload []byte
		want    codes.Code
		check   func(t *testing.T, d *Device, r reply)
	}{
		{name: "discover root", version: "1.1", code: codes.GET, path: "/", opts: acc(codec.LinkFmt), want: codes.Content,
			check: func(t *testing.T, _ *Device, r reply) {
				if !strings.HasPrefix(string(r.payload), "</>;lwm2m=1.1,</0/0>,</1>,</3/0>") {
					t.Errorf("discover %s", r.payload)
				}
			}},
		{name: "discover object", version: "1.1", code: codes.GET, path: "/0", opts: acc(codec.LinkFmt), want: codes.Content,
			check: func(t *testing.T, _ *Device, r reply) {
				if string(r.payload) != "</0/0>" {
					t.Errorf("discover /0: %s", r.payload)
				}
			}},
		{name: "discover instance", version: "1.1", code: codes.GET, path: "/0/0", opts: acc(codec.LinkFmt), want: codes.BadRequest},
		{name: "discover 1.0", version: "1.0", code: codes.GET, path: "/", opts: acc(codec.LinkFmt), want: codes.MethodNotAllowed},
		{name: "read security", version: "1.1", code: codes.GET, path: "/0/0", opts: acc(codec.SenMLJSON), want: codes.Unauthorized},
		{name: "read server", version: "1.1", code: codes.GET, path: "/1", opts: acc(codec.SenMLJSON), want: codes.Content},
		{name: "delete root keeps bootstrap account and device", version: "1.1", code: codes.DELETE, path: "/", want: codes.Deleted,
			check: func(t *testing.T, d *Device, _ reply) {
				if _, err := d.accountLocked(true); err != nil {
					t.Errorf("bootstrap account gone: %v", err)
				}
				if d.tree.object(objDevice).instance(0) == nil || d.tree.object(objTemperature).instance(0) == nil {
					t.Error("device instances deleted")
				}
			}},
		{name: "delete bootstrap account", version: "1.1", code: codes.DELETE, path: "/0/0", want: codes.BadRequest},
		{name: "delete device", version: "1.1", code: codes.DELETE, path: "/3/0", want: codes.BadRequest},
		{name: "delete resource", version: "1.1", code: codes.DELETE, path: "/0/0/1", want: codes.BadRequest},
		{name: "delete unknown object", version: "1.1", code: codes.DELETE, path: "/42", want: codes.NotFound},
		{name: "write server TLV", version: "1.0", code: codes.PUT, path: "/1/4", opts: cf(codec.TLV), payload: tlvServer, want: codes.Changed,
			check: func(t *testing.T, d *Device, _ reply) {
				if v, _ := d.tree.value(node.MustParsePath("/1/4/1"), time.Time{}); v.Int != 60 {
					t.Errorf("/1/4/1 = %v", v.Interface())
				}
				// Executables a client implements come with the instance.
				if _, _, res, err := d.tree.lookupResource(node.MustParsePath("/1/4/8")); err != nil || res != present {
					t.Errorf("/1/4/8 registration update trigger missing: %v", err)
				}
			}},
		{name: "write object with two instances", version: "1.1", code: codes.PUT, path: "/0", opts: cf(codec.SenMLJSON), payload: twoSec, want: codes.Changed,
			check: func(t *testing.T, d *Device, _ reply) {
				if n := len(d.tree.object(objSecurity).insts); n != 3 {
					t.Errorf("%d security instances, want 3", n)
				}
			}},
		{name: "write one resource", version: "1.1", code: codes.PUT, path: "/0/0/11", opts: cf(codec.Text), payload: []byte("5"), want: codes.Changed},
		{name: "write without format", version: "1.1", code: codes.PUT, path: "/1/0", payload: tlvServer, want: codes.BadRequest},
		{name: "write garbage", version: "1.1", code: codes.PUT, path: "/1/0", opts: cf(codec.SenMLCBOR), payload: []byte{0xff, 0x00}, want: codes.BadRequest},
		{name: "write outside the path", version: "1.1", code: codes.PUT, path: "/1/0", opts: cf(codec.SenMLJSON), payload: []byte(`[{"n":"/1/4/1","v":60}]`), want: codes.BadRequest},
		{name: "write root", version: "1.1", code: codes.PUT, path: "/", opts: cf(codec.TLV), payload: tlvServer, want: codes.BadRequest},
		{name: "write unknown object", version: "1.1", code: codes.PUT, path: "/42/0", opts: cf(codec.SenMLJSON), payload: []byte(`[{"n":"/42/0/0","v":1}]`), want: codes.NotFound},
		{name: "finish without account", version: "1.1", code: codes.POST, path: "/bs", want: codes.NotAcceptable},
		{name: "other POST", version: "1.1", code: codes.POST, path: "/1/0/8", want: codes.BadRequest},
		{name: "FETCH", version: "1.1", code: codes.FETCH, path: "/", want: codes.MethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := bootstrapDevice(t, tc.version)
			r := d.serveBootstrap(bsRequest(t, tc.code, tc.path, tc.opts, tc.payload), time.Now())
			if r.code != tc.want {
				t.Fatalf("answer %v (%s), want %v", r.code, r.diag, tc.want)
			}
			if tc.check != nil {
				d.mu.Lock()
				defer d.mu.Unlock()
				tc.check(t, d, r)
			}
		})
	}
}

// A write that fails part-way changes nothing.
func TestBootstrapWriteAtomic(t *testing.T) {
	d := bootstrapDevice(t, "1.1")
	payload := []byte(`[{"n":"/1/3/0","v":3},{"n":"/1/3/1","v":60},{"n":"/1/4/1","vs":"not a number"}]`)
	m := bsRequest(t, codes.PUT, "/1", message.Options{uintOpt(message.ContentFormat, uint32(codec.SenMLJSON))}, payload)
	if r := d.serveBootstrap(m, time.Now()); r.code != codes.BadRequest {
		t.Fatalf("answer %v, want 4.00", r.code)
	}
	if n := len(d.tree.object(objServer).insts); n != 0 {
		t.Errorf("%d server instances after a refused write", n)
	}
}
