package simulator

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"
	coapdtls "github.com/plgd-dev/go-coap/v3/dtls"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/net/responsewriter"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	"github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// packageServer serves one package at /fw/<token> with Block2, each
// block answered by itself, over CoAP or CoAPS: what the agent does for
// pulling devices, written here on go-coap with its block-wise layer off.
type packageServer struct {
	addr  string
	token string
	pkg   []byte

	mu     sync.Mutex
	blocks []uint32 // the Block2 options asked for
}

func (p *packageServer) handle(w *responsewriter.ResponseWriter[*client.Conn], r *pool.Message) {
	path, _ := r.Path()
	if r.Code() != codes.GET || path != "/fw/"+p.token {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	szx, num := blockwise.SZX1024, int64(0)
	if v, err := r.GetOptionUint32(message.Block2); err == nil {
		szx, num, _, _ = blockwise.DecodeBlockOption(v)
		p.mu.Lock()
		p.blocks = append(p.blocks, v)
		p.mu.Unlock()
	}
	off := min(num*szx.Size(), int64(len(p.pkg)))
	end := min(off+szx.Size(), int64(len(p.pkg)))
	opt, _ := blockwise.EncodeBlockOption(szx, num, end < int64(len(p.pkg)))
	_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(p.pkg[off:end]))
	w.Message().SetOptionUint32(message.Block2, opt)
	w.Message().SetOptionUint32(message.Size2, uint32(len(p.pkg)))
}

func (p *packageServer) uri(scheme string) string {
	return fmt.Sprintf("%s://%s/fw/%s", scheme, p.addr, p.token)
}

func (p *packageServer) sizes() map[int64]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int64]bool{}
	for _, b := range p.blocks {
		szx, _, _, _ := blockwise.DecodeBlockOption(b)
		out[szx.Size()] = true
	}
	return out
}

func servePackage(t *testing.T, size int) *packageServer {
	t.Helper()
	p := &packageServer{token: "k9Vx2", pkg: bytes.Repeat([]byte{7}, size)}
	l, err := coapNet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := udp.NewServer(options.WithHandlerFunc(p.handle), options.WithBlockwise(false, blockwise.SZX1024, time.Minute), options.WithErrors(func(error) {}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	p.addr = l.LocalAddr().String()
	return p
}

// servePackageDTLS is servePackage over DTLS: only identity with key
// completes a handshake.
func servePackageDTLS(t *testing.T, size int, identity string, key []byte) *packageServer {
	t.Helper()
	p := &packageServer{token: "Zq81c", pkg: bytes.Repeat([]byte{9}, size)}
	l, err := coapNet.NewDTLSListener("udp", "127.0.0.1:0", coapNet.NewDTLSServerOptions(
		piondtls.WithPSK(func(id []byte) ([]byte, error) {
			if string(id) != identity {
				return nil, fmt.Errorf("unknown PSK identity %q", id)
			}
			return key, nil
		}),
		piondtls.WithCipherSuites(DefaultCipherSuites...),
		piondtls.WithLoggerFactory(quietDTLS),
	))
	if err != nil {
		t.Fatal(err)
	}
	srv := coapdtls.NewServer(options.WithHandlerFunc(p.handle), options.WithBlockwise(false, blockwise.SZX1024, time.Minute), options.WithErrors(func(error) {}))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	p.addr = l.Addr().String()
	return p
}

// pullDevice runs one device with fw against the test LwM2M server.
func pullDevice(t *testing.T, fw FirmwareConfig) (*lwm2mServer, *testReg, *Device) {
	t.Helper()
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.Firmware = fw })
	return srv, srv.reg("sim-0"), sim.Device("sim-0")
}

func writeURI(t *testing.T, srv *lwm2mServer, reg *testReg, uri string) codes.Code {
	t.Helper()
	return srv.must(reg, put("/5/0/1", int(codec.Text), []byte(uri))).code
}

func TestFirmwarePullCoAP(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fw        FirmwareConfig
		size      int
		uri       func(p *packageServer) string
		state     int64
		result    int64
		wantSizes []int64
	}{
		{"whole", FirmwareConfig{}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwDownloaded, fwResultInitial, []int64{1024}},
		{"device blocks of 64", FirmwareConfig{BlockSize: 64}, 1000, func(p *packageServer) string { return p.uri("coap") }, fwDownloaded, fwResultInitial, []int64{64}},
		{"unknown token", FirmwareConfig{}, 1000, func(p *packageServer) string { return "coap://" + p.addr + "/fw/nope" }, fwIdle, fwResultInvalidURI, nil},
		{"too large", FirmwareConfig{MaxSize: 2048}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultNoFlash, nil},
		{"connection lost", FirmwareConfig{Fail: fwResultConnLost}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultConnLost, nil},
		{"out of RAM", FirmwareConfig{Fail: fwResultNoRAM}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultNoRAM, nil},
		{"integrity", FirmwareConfig{Fail: fwResultIntegrity}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultIntegrity, nil},
		{"package type", FirmwareConfig{Fail: fwResultPackageType}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultPackageType, nil},
		{"invalid URI injected", FirmwareConfig{Fail: fwResultInvalidURI}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultInvalidURI, nil},
		{"unsupported protocol", FirmwareConfig{Protocols: []string{"http", "https"}}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultUnsupported, nil},
		{"unsupported injected", FirmwareConfig{Fail: fwResultUnsupported}, 5000, func(p *packageServer) string { return p.uri("coap") }, fwIdle, fwResultUnsupported, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := servePackage(t, tc.size)
			srv, reg, d := pullDevice(t, tc.fw)
			if c := writeURI(t, srv, reg, tc.uri(files)); c != codes.Changed {
				t.Fatalf("write package URI: %v", c)
			}
			waitFor(t, 5*time.Second, "the download's end", func() bool { return fwValue(d, resFwState) != fwDownloading })
			if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != tc.state || res != tc.result {
				t.Fatalf("state %d result %d, want %d %d", st, res, tc.state, tc.result)
			}
			sizes := files.sizes()
			for _, s := range tc.wantSizes {
				if !sizes[s] || len(sizes) != len(tc.wantSizes) {
					t.Errorf("block sizes asked %v, want %v", sizes, tc.wantSizes)
				}
			}
		})
	}
}

func TestFirmwarePullCoAPS(t *testing.T) {
	srv := startDTLSServer(t, dtlsOpts{keys: map[string][]byte{"psk-id-1": testKey}})
	files := servePackageDTLS(t, 3000, "psk-id-1", testKey)
	sim := runSim(t, srv, func(c *Config) {
		c.Server = ""
		c.Devices = []DeviceConfig{{Endpoint: "psk-dev", ServerURI: "coaps://" + srv.addr, PSKIdentity: "psk-id-1", PSK: testKey}}
	})
	reg, d := srv.reg("psk-dev"), sim.Device("psk-dev")
	if c := writeURI(t, srv, reg, files.uri("coaps")); c != codes.Changed {
		t.Fatalf("write package URI: %v", c)
	}
	waitFor(t, 10*time.Second, "the download's end", func() bool { return fwValue(d, resFwState) != fwDownloading })
	if st, res := fwValue(d, resFwState), fwValue(d, resFwResult); st != fwDownloaded || res != fwResultInitial {
		t.Fatalf("state %d result %d, want Downloaded (2) and 0", st, res)
	}
}

func TestFirmwareURIRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		fw   FirmwareConfig
		uri  string
		want codes.Code
	}{
		{"unsupported scheme refused", FirmwareConfig{Protocols: []string{"coap"}, RefuseUnsupported: true}, "http://127.0.0.1:1/fw", codes.BadRequest},
		{"push only", FirmwareConfig{Delivery: "push"}, "coap://127.0.0.1:1/fw", codes.MethodNotAllowed},
		{"reset always allowed", FirmwareConfig{Delivery: "push"}, "", codes.Changed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, reg, d := pullDevice(t, tc.fw)
			if c := writeURI(t, srv, reg, tc.uri); c != tc.want {
				t.Fatalf("write package URI: %v, want %v", c, tc.want)
			}
			if st := fwValue(d, resFwState); st != fwIdle {
				t.Errorf("state %d, want Idle", st)
			}
		})
	}
}

func TestFirmwareResources(t *testing.T) {
	// the device's own settings, over the simulator's
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) {
		c.Devices = []DeviceConfig{{Endpoint: "sim-0", Firmware: &FirmwareConfig{Protocols: []string{"coaps", "https"}, Delivery: "pull"}}}
	})
	srv.reg("sim-0")
	d := sim.Device("sim-0")
	v0, _ := d.Value(node.ResourceInstancePath(objFirmware, 0, resFwProtocols, 0))
	v1, _ := d.Value(node.ResourceInstancePath(objFirmware, 0, resFwProtocols, 1))
	if v0.Int != 1 || v1.Int != 3 {
		t.Errorf("/5/0/8 = %d, %d, want 1 (CoAPS), 3 (HTTPS)", v0.Int, v1.Int)
	}
	if got := fwValue(d, resFwDelivery); got != 0 {
		t.Errorf("/5/0/9 = %d, want 0 (pull only)", got)
	}
}

func TestFirmwareConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		fw   FirmwareConfig
		ok   bool
	}{
		{"defaults", FirmwareConfig{}, true},
		{"unknown protocol", FirmwareConfig{Protocols: []string{"ftp"}}, false},
		{"unknown delivery", FirmwareConfig{Delivery: "mail"}, false},
		{"block size", FirmwareConfig{BlockSize: 100}, false},
		{"fail 1", FirmwareConfig{Fail: 1}, false},
		{"fail 8", FirmwareConfig{Fail: 8}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.fw.validate(); (err == nil) != tc.ok {
				t.Errorf("validate: %v, want ok %v", err, tc.ok)
			}
		})
	}
}
