package firmware

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// keys are the PSK keys of the DTLS port: two devices of acme.
var keys = map[string][]byte{
	"id-1": []byte("secret-key-0001"), // printable, for libcoap's -k
	"id-2": []byte("secret-key-0002"),
}

// noHooks serve no registration: these tests only fetch packages.
type noHooks struct{ lwm2m.Hooks }

// env is an agent's firmware serving: the embedded store, the service,
// the LwM2M server's two ports and an HTTP server, on loopback.
type env struct {
	st      store.Engine
	svc     *Service
	srv     *lwm2m.Server
	httpURL string
	bin     store.Binary
	data    []byte
}

func start(t *testing.T, cfg Config, size int) *env {
	t.Helper()
	st := storetest.OpenEmbedded(t)
	cfg.Store = st
	e := &env{st: st}
	var err error
	if e.svc, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv, err = lwm2m.NewServer(lwm2m.Config{
		Addr: "127.0.0.1:0", SecureAddr: "127.0.0.1:0", Packages: e.svc, PeerRate: -1,
		Keys: func(_ context.Context, identity string) ([]byte, error) {
			if k, ok := keys[identity]; ok {
				return k, nil
			}
			return nil, psk.ErrUnknownIdentity
		},
	}, noHooks{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = e.srv.Serve(ctx); done <- struct{}{} }()
	go func() { e.svc.Run(ctx); done <- struct{}{} }()
	hs := httptest.NewServer(e.svc.Handler())
	e.httpURL = hs.URL
	t.Cleanup(func() { hs.Close(); cancel(); <-done; <-done })
	select {
	case <-e.srv.Serving():
	case <-time.After(10 * time.Second):
		t.Fatal("server not serving")
	}
	e.svc.cfg.CoAPBase = "coap://" + e.srv.Addr().String()
	e.svc.cfg.CoAPSBase = "coaps://" + e.srv.SecureAddr().String()
	e.svc.cfg.HTTPBase = hs.URL
	// id-1 is device 10's, id-2 device 20's
	check(t, st.BindPSKIdentity(context.Background(), store.PSKServer, "id-1", "acme", "10"))
	check(t, st.BindPSKIdentity(context.Background(), store.PSKServer, "id-2", "acme", "20"))
	if size >= 0 {
		e.data = randomBytes(size, 1)
		e.bin, err = st.CreateBinary(context.Background(), "acme", store.Binary{Name: "fw.bin"}, bytes.NewReader(e.data), 1<<30)
		check(t, err)
	}
	return e
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// grant makes a URI of the test binary for device 10's operation op.
func (e *env) grant(t *testing.T, scheme, op string, expires time.Duration) string {
	t.Helper()
	uri, err := e.svc.Grant(context.Background(), Grant{Tenant: "acme", DeviceID: "10", Endpoint: "dev-10", OperationID: op,
		Source: Source{BinaryID: e.bin.ID}, Scheme: scheme, Expires: time.Now().Add(expires)})
	check(t, err)
	return uri
}

// pathOf is the Uri-Path of a URI the service made.
func pathOf(t *testing.T, uri string) string {
	t.Helper()
	i := strings.Index(uri, "/"+PathPrefix)
	if i < 0 {
		t.Fatalf("URI %s has no /%s", uri, PathPrefix)
	}
	return uri[i:]
}

// getBlocks fetches path block by block at szx, as a constrained device
// does, and returns the bytes with the last answer's code; a code other
// than 2.05 stops it.
func getBlocks(t *testing.T, cc *udpClient.Conn, path string, szx uint32) ([]byte, codes.Code) {
	t.Helper()
	var out []byte
	var etag []byte
	for num := uint32(0); ; num++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, err := cc.NewGetRequest(ctx, path)
		check(t, err)
		req.SetOptionUint32(message.Block2, num<<4|szx)
		resp, err := cc.Do(req)
		cancel()
		check(t, err)
		if resp.Code() != codes.Content {
			return out, resp.Code()
		}
		blk, err := resp.GetOptionUint32(message.Block2)
		check(t, err)
		if blk>>4 != num || blk&7 != szx {
			t.Fatalf("asked block %d size %d, got block %d size %d", num, szx, blk>>4, blk&7)
		}
		tag, err := resp.GetOptionBytes(message.ETag)
		check(t, err)
		if etag != nil && !bytes.Equal(tag, etag) {
			t.Fatalf("ETag changed within a transfer: %x then %x", etag, tag)
		}
		etag = tag
		if size2, err := resp.GetOptionUint32(message.Size2); err != nil || size2 == 0 && len(out) > 0 {
			t.Fatalf("no Size2 (%v)", err)
		}
		body, err := resp.ReadBody()
		check(t, err)
		out = append(out, body...)
		if blk&8 == 0 {
			return out, codes.Content
		}
	}
}

// plainClient is a device on the plain port without go-coap's
// block-wise layer, so that each block is a request of the test's.
func plainClient(t *testing.T, e *env) *udpClient.Conn {
	t.Helper()
	cc, err := udp.Dial(e.srv.Addr().String(), options.WithBlockwise(false, blockwise.SZX1024, time.Minute))
	check(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func secureClient(t *testing.T, e *env, identity string) *udpClient.Conn {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	check(t, err)
	dc, err := piondtls.ClientWithOptions(pc, e.srv.SecureAddr(),
		piondtls.WithPSK(func([]byte) ([]byte, error) { return keys[identity], nil }),
		piondtls.WithPSKIdentityHint([]byte(identity)),
		piondtls.WithCipherSuites(piondtls.TLS_PSK_WITH_AES_128_CCM_8))
	check(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	check(t, dc.HandshakeContext(ctx))
	cc := dtls.Client(dc, options.WithBlockwise(false, blockwise.SZX1024, time.Minute))
	t.Cleanup(func() { _ = cc.Close(); _ = pc.Close() })
	return cc
}

func TestCoAPPull(t *testing.T) {
	const size = 3*store.BinaryChunkSize + 777 // blocks across chunk boundaries, a short last one
	e := start(t, Config{}, size)
	uri := e.grant(t, "coap", "op1", time.Hour)
	if !strings.HasPrefix(uri, "coap://"+e.srv.Addr().String()+"/fw/") || len(uri) < len("coap://x/fw/")+22 {
		t.Fatalf("URI %s", uri)
	}
	cc := plainClient(t, e)
	for _, szx := range []uint32{6, 2, 0} { // 1024, 64, 16 bytes
		t.Run("szx "+string(rune('0'+szx)), func(t *testing.T) {
			if szx < 6 && testing.Short() {
				t.Skip("short")
			}
			data := e.data
			p := pathOf(t, uri)
			if szx < 4 {
				// small blocks over the whole package take long: the
				// first blocks of a smaller binary show the same
				b, err := e.st.CreateBinary(context.Background(), "acme", store.Binary{Name: "small"}, bytes.NewReader(data[:3000]), 1<<20)
				check(t, err)
				u, err := e.svc.Grant(context.Background(), Grant{Tenant: "acme", DeviceID: "10", OperationID: "small-" + b.ID,
					Source: Source{BinaryID: b.ID}, Scheme: "coap", Expires: time.Now().Add(time.Hour)})
				check(t, err)
				data, p = data[:3000], pathOf(t, u)
			}
			got, code := getBlocks(t, cc, p, szx)
			if code != codes.Content || !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes (%v), want the %d of the binary", len(got), code, len(data))
			}
		})
	}
	t.Run("a GET without Block2 gets the first 1024 bytes", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cc.Get(ctx, pathOf(t, uri))
		check(t, err)
		body, _ := resp.ReadBody()
		blk, _ := resp.GetOptionUint32(message.Block2)
		if resp.Code() != codes.Content || !bytes.Equal(body, e.data[:1024]) || blk != 1<<3|6 {
			t.Fatalf("%v, %d bytes, Block2 %x", resp.Code(), len(body), blk)
		}
	})
	t.Run("a block past the end is 4.02", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := cc.NewGetRequest(ctx, pathOf(t, uri))
		check(t, err)
		req.SetOptionUint32(message.Block2, uint32(size/1024+1)<<4|6)
		resp, err := cc.Do(req)
		check(t, err)
		if resp.Code() != codes.BadOption {
			t.Fatalf("%v, want 4.02", resp.Code())
		}
	})
}

// code fetches the first block of path and returns the answer's code.
func code(t *testing.T, cc *udpClient.Conn, path string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, path)
	check(t, err)
	return resp.Code()
}

func TestCoAPRefusals(t *testing.T) {
	e := start(t, Config{}, 5000)
	cc := plainClient(t, e)
	coap := pathOf(t, e.grant(t, "coap", "op1", time.Hour))
	if c := code(t, cc, coap); c != codes.Content {
		t.Fatalf("granted: %v", c)
	}
	t.Run("unknown token", func(t *testing.T) {
		if c := code(t, cc, "/fw/AAAAAAAAAAAAAAAAAAAAAA"); c != codes.NotFound {
			t.Fatalf("%v, want 4.04", c)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		p := pathOf(t, e.grant(t, "coap", "op2", time.Hour))
		check(t, e.svc.Revoke(context.Background(), "acme", "op2"))
		if c := code(t, cc, p); c != codes.NotFound {
			t.Fatalf("%v, want 4.04", c)
		}
		// the other tenant's revocation of the same operation id does nothing
		check(t, e.svc.Revoke(context.Background(), "globex", "op1"))
		if c := code(t, cc, coap); c != codes.Content {
			t.Fatalf("after another tenant's revoke: %v", c)
		}
	})
	t.Run("expired", func(t *testing.T) {
		uri, err := e.svc.Grant(context.Background(), Grant{Tenant: "acme", DeviceID: "30", OperationID: "op3",
			Source: Source{BinaryID: e.bin.ID}, Scheme: "coap", Expires: time.Now().Add(300 * time.Millisecond)})
		check(t, err)
		p := pathOf(t, uri)
		if c := code(t, cc, p); c != codes.Content {
			t.Fatalf("before expiry: %v", c)
		}
		deadline := time.Now().Add(10 * time.Second)
		for code(t, cc, p) != codes.NotFound {
			if time.Now().After(deadline) {
				t.Fatal("still served 10 s after its expiry")
			}
		}
	})
	t.Run("coaps grant over plain CoAP", func(t *testing.T) {
		if c := code(t, cc, pathOf(t, e.grant(t, "coaps", "op4", time.Hour))); c != codes.NotFound {
			t.Fatalf("%v, want 4.04", c)
		}
	})
	t.Run("http grant over CoAP", func(t *testing.T) {
		if c := code(t, cc, pathOf(t, e.grant(t, "http", "op5", time.Hour))); c != codes.NotFound {
			t.Fatalf("%v, want 4.04", c)
		}
	})
}

func TestCoAPSPull(t *testing.T) {
	e := start(t, Config{}, 40000)
	p := pathOf(t, e.grant(t, "coaps", "op1", time.Hour))
	t.Run("its own device", func(t *testing.T) {
		got, c := getBlocks(t, secureClient(t, e, "id-1"), p, 5)
		if c != codes.Content || !bytes.Equal(got, e.data) {
			t.Fatalf("%v, %d bytes of %d", c, len(got), len(e.data))
		}
	})
	t.Run("another device's identity", func(t *testing.T) {
		if c := code(t, secureClient(t, e, "id-2"), p); c != codes.NotFound {
			t.Fatalf("%v, want 4.04", c)
		}
	})
}

func TestHTTPPull(t *testing.T) {
	e := start(t, Config{}, 2*store.BinaryChunkSize+10)
	uri := e.grant(t, "http", "op1", time.Hour)
	if !strings.HasPrefix(uri, e.httpURL+"/fw/") {
		t.Fatalf("URI %s", uri)
	}
	resp, err := http.Get(uri)
	check(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(body, e.data) || resp.Header.Get("ETag") == "" {
		t.Fatalf("%s, %d bytes, ETag %q", resp.Status, len(body), resp.Header.Get("ETag"))
	}
	req, _ := http.NewRequest(http.MethodGet, uri, nil)
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err = http.DefaultClient.Do(req)
	check(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, e.data[1000:2000]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(body))
	}
	resp, err = http.Head(uri)
	check(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(e.data)) {
		t.Fatalf("HEAD: %s, length %d", resp.Status, resp.ContentLength)
	}
	for name, u := range map[string]string{
		"unknown":     e.httpURL + "/fw/AAAAAAAAAAAAAAAAAAAAAA",
		"coap grant":  e.httpURL + pathOf(t, e.grant(t, "coap", "op2", time.Hour)),
		"nested path": uri + "/x",
	} {
		resp, err := http.Get(u)
		check(t, err)
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: %s, want 404", name, resp.Status)
		}
	}
	check(t, e.svc.Revoke(context.Background(), "acme", "op1"))
	resp, err = http.Get(uri)
	check(t, err)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("after revoke: %s, want 404", resp.Status)
	}
}

func TestTransferLimits(t *testing.T) {
	e := start(t, Config{MaxTransfers: 1, StallTimeout: time.Hour}, 5000)
	cc := plainClient(t, e)
	p1 := pathOf(t, e.grant(t, "coap", "op1", time.Hour))
	uri, err := e.svc.Grant(context.Background(), Grant{Tenant: "acme", DeviceID: "20", OperationID: "op2",
		Source: Source{BinaryID: e.bin.ID}, Scheme: "coap", Expires: time.Now().Add(time.Hour)})
	check(t, err)
	p2 := pathOf(t, uri)
	if c := code(t, cc, p1); c != codes.Content { // the first block: a transfer under way
		t.Fatalf("first transfer: %v", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cc.Get(ctx, p2)
	check(t, err)
	if age, _ := resp.GetOptionUint32(message.MaxAge); resp.Code() != codes.ServiceUnavailable || age == 0 {
		t.Fatalf("second device while the slot is taken: %v Max-Age %d, want 5.03 with Max-Age", resp.Code(), age)
	}
	hr, err := http.Get(e.httpURL + pathOf(t, e.grant(t, "http", "op3", time.Hour)))
	check(t, err)
	hr.Body.Close()
	if hr.StatusCode != 503 || hr.Header.Get("Retry-After") == "" {
		t.Fatalf("HTTP while the slot is taken: %s Retry-After %q", hr.Status, hr.Header.Get("Retry-After"))
	}
	// the first transfer's last block frees the slot
	if got, c := getBlocks(t, cc, p1, 6); c != codes.Content || !bytes.Equal(got, e.data) {
		t.Fatalf("finishing the first: %v", c)
	}
	if c := code(t, cc, p2); c != codes.Content {
		t.Fatalf("second device once the first finished: %v", c)
	}
}

func TestGrantErrors(t *testing.T) {
	e := start(t, Config{MaxSize: 4000}, 5000)
	ctx := context.Background()
	ok := Grant{Tenant: "acme", DeviceID: "10", OperationID: "op", Source: Source{BinaryID: e.bin.ID}, Scheme: "coap", Expires: time.Now().Add(time.Hour)}
	tests := []struct {
		name string
		edit func(g *Grant)
		want string
	}{
		{"too large", func(g *Grant) {}, "--firmware-max-size"},
		{"unknown binary", func(g *Grant) { g.Source = Source{BinaryID: "999999"} }, "no such binary"},
		{"another tenant's binary", func(g *Grant) { g.Tenant = "globex" }, "no such binary"},
		{"bad scheme", func(g *Grant) { g.Scheme = "ftp" }, "not one of"},
		{"past deadline", func(g *Grant) { g.Expires = time.Now().Add(-time.Second) }, "deadline"},
		{"base of another scheme", func(g *Grant) { g.Base = "http://h:1" }, "not a coap://"},
		{"base with a user", func(g *Grant) { g.Base = "coap://u:p@h:1" }, "without user"},
		{"no https base", func(g *Grant) { g.Scheme = "https" }, "--firmware-https-base"},
		{"external coap package for an http device", func(g *Grant) { g.Scheme = "http"; g.Source = Source{URL: "coap://h/fw"} }, "HTTP(S) only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := ok
			tc.edit(&g)
			_, err := e.svc.Grant(ctx, g)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Grant: %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
	t.Run("external http passed through to an http device", func(t *testing.T) {
		g := ok
		g.Scheme, g.Source = "http", Source{URL: "https://files.example.com/fw.bin"}
		uri, err := e.svc.Grant(ctx, g)
		if err != nil || uri != g.Source.URL {
			t.Fatalf("%q, %v", uri, err)
		}
	})
	t.Run("the device's fwUpdateURL", func(t *testing.T) {
		small, err := e.st.CreateBinary(ctx, "acme", store.Binary{Name: "s"}, bytes.NewReader([]byte("x")), 10)
		check(t, err)
		g := ok
		g.Source, g.Base = Source{BinaryID: small.ID}, "coap://10.1.2.3:5783/"
		uri, err := e.svc.Grant(ctx, g)
		if err != nil || !strings.HasPrefix(uri, "coap://10.1.2.3:5783/fw/") {
			t.Fatalf("%q, %v", uri, err)
		}
	})
}

// TestExternalCopy fetches an external package once into the store for
// CoAP devices and for Open, serves it, and removes it after its expiry.
func TestExternalCopy(t *testing.T) {
	data := randomBytes(70000, 9)
	fetches := 0
	ext := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches++
		switch r.URL.Path {
		case "/fw.bin":
			_, _ = w.Write(data)
		case "/big.bin":
			_, _ = w.Write(make([]byte, 100001))
		default:
			http.NotFound(w, r)
		}
	}))
	defer ext.Close()
	e := start(t, Config{MaxSize: 100000}, -1)
	ctx := context.Background()
	src, err := ParseSource(ext.URL + "/fw.bin")
	check(t, err)
	var uris []string
	for i, op := range []string{"op1", "op2"} {
		uri, err := e.svc.Grant(ctx, Grant{Tenant: "acme", DeviceID: []string{"10", "20"}[i], OperationID: op, Source: src, Scheme: "coap",
			Expires: time.Now().Add(time.Duration(i+1) * time.Hour)})
		check(t, err)
		uris = append(uris, uri)
	}
	pkg, err := e.svc.Open(ctx, "acme", src)
	check(t, err)
	if fetches != 1 {
		t.Fatalf("fetched %d times for two grants and an Open, want once", fetches)
	}
	buf := make([]byte, pkg.Size())
	if _, err := pkg.ReadAt(buf, 0); err != nil && err != io.EOF || !bytes.Equal(buf, data) {
		t.Fatalf("Open reads %d bytes (%v), not the package", len(buf), err)
	}
	check(t, pkg.Close())
	if got, c := getBlocks(t, plainClient(t, e), pathOf(t, uris[0]), 6); c != codes.Content || !bytes.Equal(got, data) {
		t.Fatalf("CoAP pull of the copy: %v, %d bytes", c, len(got))
	}
	for name, u := range map[string]string{"too large": ext.URL + "/big.bin", "missing": ext.URL + "/none.bin"} {
		if _, err := e.svc.Open(ctx, "acme", Source{URL: u}); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
	// past every deadline, the sweep removes the copy and its binary
	copies, _, err := e.st.ListBinaries(ctx, "acme", store.Page{Size: 10})
	check(t, err)
	if len(copies) != 1 {
		t.Fatalf("%d binaries stored, want the one copy", len(copies))
	}
	e.svc.sweep(ctx, time.Now().Add(3*time.Hour))
	if _, err := e.st.GetBinary(ctx, "acme", copies[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("copy after the sweep: %v, want removed", err)
	}
}

// TestLibcoap pulls with libcoap's coap-client, an independent
// implementation of block-wise transfer, over CoAP and over CoAPS with
// the device's own PSK identity.
func TestLibcoap(t *testing.T) {
	bin := ""
	for _, name := range []string{"coap-client-openssl", "coap-client-gnutls"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("no libcoap coap-client with DTLS (apt-get install libcoap3-bin); CI installs it")
	}
	e := start(t, Config{}, 100000)
	run := func(t *testing.T, uri string, args ...string) ([]byte, error) {
		out := filepath.Join(t.TempDir(), "fw.bin")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(append([]string{"-m", "get", "-B", "30", "-o", out}, args...), uri)...)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			return nil, errors.New(string(msg))
		}
		return os.ReadFile(out)
	}
	t.Run("coap", func(t *testing.T) {
		got, err := run(t, e.grant(t, "coap", "op1", time.Hour), "-b", "512")
		if err != nil || !bytes.Equal(got, e.data) {
			t.Fatalf("%d bytes of %d: %v", len(got), len(e.data), err)
		}
	})
	t.Run("coaps", func(t *testing.T) {
		uri := e.grant(t, "coaps", "op2", time.Hour)
		got, err := run(t, uri, "-b", "1024", "-u", "id-1", "-k", string(keys["id-1"]))
		if err != nil || !bytes.Equal(got, e.data) {
			t.Fatalf("%d bytes of %d: %v", len(got), len(e.data), err)
		}
		got, _ = run(t, uri, "-u", "id-2", "-k", string(keys["id-2"]))
		if len(got) > 0 {
			t.Fatalf("another device's identity fetched %d bytes", len(got))
		}
	})
}
