package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/coapclient"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	coapNet "github.com/plgd-dev/go-coap/v3/net"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// coapClientCSV registers the PSK device the libcoap client connects as.
const coapClientCSV = `ID,IDTYPE,CREDENTIALS,NAME,TYPE,SHELL,endpoint id,lwm2m server uri,securityMode,lwm2m psk_id,lwm2m psk_key
libcoap-psk,c8y_Id,Secret-pass-1234!,libcoap PSK,c8y_lwm2m,1,libcoap-psk,coaps://127.0.0.1:5784,PSK,libcoap-identity,00112233445566778899aabbccddeeff
`

var coapClientKey = []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

// startCoapClient starts the libcoap client as the endpoint ep against
// the agent, over DTLS with the CSV's PSK when secure, and waits until the
// agent knows it as a device. mod changes its configuration (delivery
// method, failures) before it starts.
func (h *harness) startCoapClient(ep string, secure bool, mod func(*coapclient.Config)) (*coapclient.Client, string) {
	h.t.Helper()
	cfg := coapclient.Config{Server: "coap://" + h.agent.CoAPAddr.String(), Endpoint: ep, Lifetime: time.Minute}
	if secure {
		if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(coapClientCSV), false); code != 201 || res.Created != 1 {
			h.t.Fatalf("import: HTTP %d %s", code, raw)
		}
		cfg.Server = "coaps://" + h.agent.CoAPSAddr.String()
		cfg.Identity, cfg.Key = "libcoap-identity", coapClientKey
	}
	if mod != nil {
		mod(&cfg)
	}
	c := coapclient.StartDevice(h.t, cfg)
	var id string
	h.eventually(10*time.Second, func() error {
		mo := h.device(ep)
		if st := mo.str("c8y_Availability", "status"); st != "AVAILABLE" {
			return fmt.Errorf("%s is %q", ep, st)
		}
		id = mo.str("id")
		return nil
	})
	return c, id
}

// TestCoapClientDeviceManagement drives the libcoap client, an LwM2M
// client on a CoAP and DTLS stack independent of the agent's, through the
// API's shell operations: reads in TLV and text, a write, an observation
// whose notifications the agent takes, and a Deregister on stop.
func TestCoapClientDeviceManagement(t *testing.T) {
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "coap", true: "coaps"}[secure]
		t.Run(name, func(t *testing.T) {
			h := startAgent(t, withAutoRegister(!secure))
			ep := "libcoap-plain"
			if secure {
				ep = "libcoap-psk"
			}
			c, id := h.startCoapClient(ep, secure, nil)

			h.shellResults(id,
				"read /3/0/0", "libcoap interop",
				"read /3/0/3", "= 1.0.0",
				"read /5/0/3", "= 0",
				"read /5/0/9", "= 2",
				"write /1/0/1 300", "Wrote /1/0/1",
				"read /1/0/1", "= 300",
				"read /3/0", "LC-0001",
				"observe /5/0/3", "Observing /5/0/3")
			c.Wait(t, 5*time.Second, "write", "path=/1/0/1", "value=300")
			c.Wait(t, 5*time.Second, "observe", "path=/5/0/3")
			// the new lifetime goes to the agent with the next Update
			c.Wait(t, 5*time.Second, "updated", "code=2.04")

			// a pushed package makes State 2 Downloaded, a null byte
			// Idle again: both reach the agent as notifications
			mark := c.Mark()
			if op := h.shell(id, "writeb /5/0/0 6669726d77617265", 10*time.Second); op.Status != "SUCCESSFUL" {
				t.Fatalf("writeb: %s %q", op.Status, op.FailureReason)
			}
			c.WaitAfter(t, mark, 5*time.Second, "state", "state=2")
			c.WaitAfter(t, mark, 5*time.Second, "notify", "path=/5/0/3")
			h.eventually(5*time.Second, func() error { return h.wantValue(id, "/5/0/3", "2") })
			if op := h.shell(id, "writeb /5/0/0 00", 10*time.Second); op.Status != "SUCCESSFUL" {
				t.Fatalf("writeb null byte: %s %q", op.Status, op.FailureReason)
			}
			c.WaitAfter(t, mark, 5*time.Second, "reset", "reason=null-package")
			h.eventually(5*time.Second, func() error { return h.wantValue(id, "/5/0/3", "0") })

			if err := c.Stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			c.Wait(t, time.Second, "deregistered", "code=2.02")
			h.eventually(5*time.Second, func() error {
				if st := h.device(ep).str("c8y_Availability", "status"); st == "AVAILABLE" {
					return fmt.Errorf("%s still AVAILABLE after its Deregister", ep)
				}
				return nil
			})
		})
	}
}

// TestCoapClientFirmwarePush pushes a stored binary block-wise into
// /5/0/0 of the libcoap client (at its smaller block size), which must
// hold exactly its bytes, then executes Update: the client restarts into
// the package's version and registers again.
func TestCoapClientFirmwarePush(t *testing.T) {
	h := startAgent(t, func(c *config.Config) { c.RequestTimeout = 10 * time.Second })
	c, id := h.startCoapClient("libcoap-push", false, func(c *coapclient.Config) {
		c.Delivery = "push"
		c.BlockSZX = 4 // 256-byte blocks: the agent follows the device's size
	})
	pkg := append([]byte("name=meter version=2.4.0\n"), pattern(40<<10)...)
	code, b := h.upload("management/admin", adminPassword, map[string]any{"name": "meter_2.4.0.bin"}, pkg)
	if code != http.StatusCreated {
		t.Fatalf("upload: HTTP %d %v", code, b)
	}
	if op := h.shell(id, "observe /5/0/3", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("observe: %s %q", op.Status, op.FailureReason)
	}
	if op := h.shell(id, "writeb /5/0/0 binary:"+b["id"].(string), 60*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("push: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	sum := sha256.Sum256(pkg)
	c.Wait(t, 5*time.Second, "download-done", "method=push", fmt.Sprintf("bytes=%d", len(pkg)), "sha256="+hex.EncodeToString(sum[:]))
	if c.Wait(t, time.Second, "push-block", "num=1").Fields["szx"] != "4" {
		t.Fatalf("the agent did not take the device's block size:\n%s", c.Output())
	}
	h.eventually(5*time.Second, func() error { return h.wantValue(id, "/5/0/3", "2") })

	mark := c.Mark()
	if op := h.shell(id, "execute /5/0/2", 10*time.Second); op.Status != "SUCCESSFUL" {
		t.Fatalf("execute Update: %s %q", op.Status, op.FailureReason)
	}
	c.WaitAfter(t, mark, 10*time.Second, "update-done", "name=meter", "version=2.4.0")
	c.WaitAfter(t, mark, 10*time.Second, "registered")
	h.shellResults(id, "read /3/0/3", "= 2.4.0", "read /5/0/5", "= 1", "read /5/0/7", "= 2.4.0")
}

// TestCoapClientFirmwareHTTPSourceOverCoAP updates the libcoap client,
// which fetches over CoAP only (/5/0/8), from an http:// URL: the agent
// fetches the package once and serves it to the client over CoAP, at a
// URI of the operation's own.
func TestCoapClientFirmwareHTTPSourceOverCoAP(t *testing.T) {
	pkg := append([]byte("name=meter version=2.0.0\n"), pattern(20<<10)...)
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(pkg) }))
	defer files.Close()
	h := startAgent(t)
	c, id := h.startCoapClient("libcoap-http", false, func(c *coapclient.Config) {
		c.Delivery, c.Protocols = "pull", []string{"coap"}
	})
	op := h.shell(id, "fwupdate meter;2.0.0;"+files.URL+"/meter_2.0.0.bin", 60*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "delivered by pull over coap") {
		t.Fatalf("fwupdate from http: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	sum := sha256.Sum256(pkg)
	c.Wait(t, time.Second, "download-done", "method=coap", fmt.Sprintf("bytes=%d", len(pkg)), "sha256="+hex.EncodeToString(sum[:]))
	h.shellResults(id, "read /3/0/3", "= 2.0.0")
}

// TestCoapClientFirmwareRunner updates the libcoap client through the
// runner, the package an agent binary: pushed block-wise into /5/0/0 at
// the client's block size, or pulled over CoAP from the agent.
func TestCoapClientFirmwareRunner(t *testing.T) {
	for _, delivery := range []string{"push", "pull"} {
		t.Run(delivery, func(t *testing.T) {
			h := startAgent(t, func(c *config.Config) { c.RequestTimeout = 10 * time.Second })
			c, id := h.startCoapClient("libcoap-"+delivery, false, func(c *coapclient.Config) {
				c.Delivery, c.Protocols, c.BlockSZX = delivery, []string{"coap"}, 4
			})
			pkg := append([]byte("name=meter version=2.4.0\n"), pattern(30<<10)...)
			src := h.storeFirmware("meter_2.4.0.bin", pkg)
			op := h.shell(id, "fwupdate meter;2.4.0;"+src, 60*time.Second)
			want := map[string]string{"push": "delivered by push", "pull": "delivered by pull over coap"}[delivery]
			if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, want) {
				t.Fatalf("fwupdate: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
			}
			sum := sha256.Sum256(pkg)
			method := map[string]string{"push": "push", "pull": "coap"}[delivery]
			c.Wait(t, time.Second, "download-done", "method="+method, fmt.Sprintf("bytes=%d", len(pkg)), "sha256="+hex.EncodeToString(sum[:]))
			h.shellResults(id, "read /3/0/3", "= 2.4.0", "read /5/0/5", "= 1")
		})
	}
}

// TestCoapClientFirmwarePullCoAP updates the libcoap client from a
// coap:// Package URI served block-wise by a CoAP server of the test: the
// client fetches it with libcoap's Block2 handling, holds exactly its
// bytes, and the agent's fwupdate sees it through to Update Result 1 and
// the new version.
func TestCoapClientFirmwarePullCoAP(t *testing.T) {
	h := startAgent(t)
	c, id := h.startCoapClient("libcoap-pull", false, func(c *coapclient.Config) {
		c.Delivery, c.Protocols = "pull", []string{"coap"}
	})
	pkg := pattern(30 << 10)
	addr := serveCoAPPackage(t, "/fw/meter_3.1.0.bin", pkg)
	uri := "coap://" + addr + "/fw/meter_3.1.0.bin"
	op := h.shell(id, "fwupdate meter;3.1.0;"+uri, 60*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("fwupdate over coap: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	sum := sha256.Sum256(pkg)
	c.Wait(t, time.Second, "download-done", "method=coap", fmt.Sprintf("bytes=%d", len(pkg)), "sha256="+hex.EncodeToString(sum[:]))
	c.Wait(t, time.Second, "update-done", "name=meter", "version=3.1.0")
	h.shellResults(id, "read /3/0/3", "= 3.1.0")
}

// serveCoAPPackage serves pkg at path over plain CoAP on loopback (go-coap
// answers block-wise as the client asks) and returns the address.
func serveCoAPPackage(t *testing.T, path string, pkg []byte) string {
	t.Helper()
	l, err := coapNet.NewListenUDP("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	_ = r.Handle(path, mux.HandlerFunc(func(w mux.ResponseWriter, m *mux.Message) {
		_ = w.SetResponse(codes.Content, message.AppOctets, bytes.NewReader(pkg))
	}))
	srv := udp.NewServer(options.WithMux(r), options.WithErrors(func(error) {}))
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

// shellResults runs each command of pairs (command, then a text its
// result must have) in turn, each SUCCESSFUL within 10 s.
func (h *harness) shellResults(id string, pairs ...string) {
	h.t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		cmd, want := pairs[i], pairs[i+1]
		op := h.shell(id, cmd, 10*time.Second)
		if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, want) {
			h.t.Fatalf("%s: %s %q %q, want a result with %q", cmd, op.Status, op.Command.Result, op.FailureReason, want)
		}
	}
}

// wantValue is nil when the agent's last known value of path is want.
func (h *harness) wantValue(id, path, want string) error {
	if v, ok := h.objectValue(id, path); !ok || v != want {
		return fmt.Errorf("%s is %q (known: %v), want %q", path, v, ok, want)
	}
	return nil
}

// TestCoapClientFirmwarePullCoAPS updates the libcoap client registered
// over DTLS, which fetches over coap and coaps (/5/0/8), from an agent
// binary through the runner: a device on DTLS pulls over CoAPS, in a DTLS
// session of its own with its own PSK identity beside its registration's,
// and holds exactly the binary's bytes.
func TestCoapClientFirmwarePullCoAPS(t *testing.T) {
	h := startAgent(t, func(c *config.Config) { c.RequestTimeout = 10 * time.Second })
	ep := "libcoap-psk"
	c, id := h.startCoapClient(ep, true, func(c *coapclient.Config) {
		c.Delivery, c.Protocols, c.BlockSZX = "pull", []string{"coap", "coaps"}, 5
	})
	pkg := append([]byte("name=meter version=2.6.0\n"), pattern(30<<10)...)
	src := h.storeFirmware("meter_2.6.0.bin", pkg)
	op := h.shell(id, "fwupdate meter;2.6.0;"+src, 60*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "delivered by pull over coaps") {
		t.Fatalf("fwupdate: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	start := c.Wait(t, time.Second, "download-start", "method=coaps")
	if want := "coaps://" + h.agent.CoAPSAddr.String() + "/"; !strings.HasPrefix(start.Fields["uri"], want) {
		t.Errorf("the client pulled from %q, want a URI under %s", start.Fields["uri"], want)
	}
	sum := sha256.Sum256(pkg)
	c.Wait(t, time.Second, "download-done", "method=coaps", fmt.Sprintf("bytes=%d", len(pkg)), "sha256="+hex.EncodeToString(sum[:]))
	c.Wait(t, time.Second, "update-done", "name=meter", "version=2.6.0")
	h.shellResults(id, "read /3/0/3", "= 2.6.0", "read /5/0/5", "= 1")
	h.eventually(30*time.Second, func() error {
		fw := h.device(ep)
		if name, version := fw.str("c8y_Firmware", "name"), fw.str("c8y_Firmware", "version"); name != "meter" || version != "2.6.0" {
			return fmt.Errorf("c8y_Firmware name %q version %q, want meter 2.6.0", name, version)
		}
		return nil
	})
}
