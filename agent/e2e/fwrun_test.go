package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// fwPackage is a package of 40 KiB: forty blocks of a push, enough for
// a transfer to be stopped half-way.
var fwPackage = pattern(40 << 10)

// storeFirmware uploads pkg as an agent binary and returns binary:<id>.
func (h *harness) storeFirmware(name string, pkg []byte) string {
	h.t.Helper()
	code, b := h.upload("management/admin", adminPassword, map[string]any{"name": name}, pkg)
	if code != http.StatusCreated {
		h.t.Fatalf("upload %s: HTTP %d %v", name, code, b)
	}
	return "binary:" + b["id"].(string)
}

// fwSim starts one simulated device with the firmware object fw, which
// installs version 2.0 whatever the package.
func (h *harness) fwSim(fw simulator.FirmwareConfig, mod func(*simulator.Config)) (*simulator.Device, string) {
	h.t.Helper()
	fw.Version = "2.0"
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Firmware, c.Record = fw, 512
		if mod != nil {
			mod(c)
		}
	})
	ep := sim.Endpoints()[0]
	return sim.Device(ep), h.device(ep)["id"].(string)
}

// cancelOp sets an operation FAILED through the API, as an operator
// cancels it.
func (h *harness) cancelOp(id, reason string) fwOperation {
	h.t.Helper()
	var op fwOperation
	if code := h.call("PUT", "/devicecontrol/operations/"+id, map[string]any{"status": "FAILED", "failureReason": reason}, &op); code != 200 {
		h.t.Fatalf("cancel operation %s: HTTP %d", id, code)
	}
	return op
}

// fwState is the device's own State and Update Result.
func fwState(dev *simulator.Device) (state, result int64) {
	s, _ := dev.Value(node.MustParsePath("/5/0/3"))
	r, _ := dev.Value(node.MustParsePath("/5/0/5"))
	return s.Int, r.Int
}

// requested counts the device's requests of method on path.
func requested(dev *simulator.Device, method, path string) int {
	n := 0
	for _, r := range dev.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// TestFirmwareDeliveryMethods updates a device by each method it may
// have, the package an agent binary: the device's own /5/0/9 and /5/0/8
// choose the method, the operation says which one delivered it, and the
// device runs the new version.
func TestFirmwareDeliveryMethods(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fw        simulator.FirmwareConfig
		method    string
		wantWrite string // the resource the package or its URI went to
	}{
		{"push", simulator.FirmwareConfig{Delivery: "push", BlockSize: 256}, "delivered by push", "/5/0/0"},
		{"pull over coap", simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap", "http"}}, "delivered by pull over coap", "/5/0/1"},
		{"pull over http", simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"http"}}, "delivered by pull over http", "/5/0/1"},
		{"both: pull first", simulator.FirmwareConfig{Delivery: "both", Protocols: []string{"coap"}}, "delivered by pull over coap", "/5/0/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startAgent(t)
			dev, id := h.fwSim(tc.fw, nil)
			src := h.storeFirmware("sensor_2.0.bin", fwPackage)
			op := h.shell(id, "fwupdate sensor;2.0;"+src, 60*time.Second)
			if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, tc.method) {
				t.Fatalf("fwupdate: %s %q %q; want SUCCESSFUL %s", op.Status, op.Command.Result, op.FailureReason, tc.method)
			}
			checkInstalled(t, h, dev, id, "sensor", "2.0", src)
			if requested(dev, "PUT", tc.wantWrite) == 0 {
				t.Errorf("no write of %s: %+v", tc.wantWrite, dev.Requests())
			}
			if s, r := fwState(dev); s != 0 || r != 1 {
				t.Errorf("device state %d, result %d; want 0, 1", s, r)
			}
		})
	}
}

// A device registered over DTLS pulls its package over CoAPS, in a
// session of its own with its own PSK identity.
func TestFirmwarePullCoAPS(t *testing.T) {
	h := startAgent(t, withAutoRegister(false))
	if code, res, raw := h.postCSV("management/admin", adminPassword, []byte(pskCSV), false); code != 201 || res.Created != 3 {
		t.Fatalf("import: HTTP %d %s", code, raw)
	}
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Server, c.Record = "", 256
		c.Devices = []simulator.DeviceConfig{{Endpoint: "psk-a", ServerURI: "coaps://" + h.agent.CoAPSAddr.String(), PSKIdentity: "identity-a", PSK: keyA,
			Firmware: &simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap", "coaps"}, Version: "2.0"}}}
	})
	dev := sim.Device("psk-a")
	id := h.device("psk-a").str("id")
	src := h.storeFirmware("sensor_2.0.bin", fwPackage)
	op := h.shell(id, "fwupdate sensor;2.0;"+src, 60*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "delivered by pull over coaps") {
		t.Fatalf("fwupdate: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	checkInstalled(t, h, dev, id, "sensor", "2.0", src)
}

// A device that pulls over HTTPS is given a URI on the agent's HTTPS
// port, and downloads from it trusting the agent's certificate.
func TestFirmwarePullHTTPS(t *testing.T) {
	certFile, keyFile, pool := testCertificate(t)
	h := startAgent(t, func(c *config.Config) {
		c.HTTPSAddr, c.TLSCertFile, c.TLSKeyFile = "127.0.0.1:0", certFile, keyFile
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	dev, id := h.fwSim(simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"https"}, Client: client}, nil)
	src := h.storeFirmware("sensor_2.0.bin", fwPackage)
	op := h.shell(id, "fwupdate sensor;2.0;"+src, 60*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "delivered by pull over https") {
		t.Fatalf("fwupdate: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	checkInstalled(t, h, dev, id, "sensor", "2.0", src)
}

// testCertificate writes a self-signed certificate for 127.0.0.1 and its
// key, and returns a pool that trusts it.
func testCertificate(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "e2e"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(t.TempDir(), "c.pem"), filepath.Join(t.TempDir(), "k.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// BOTH: the device cannot reach the address of the URI it is given (its
// pull fails), and the package is pushed instead; the result says so.
func TestFirmwareBothFallsBackToPush(t *testing.T) {
	h := startAgent(t, func(c *config.Config) { c.FirmwareHTTPBase = "http://127.0.0.1:9" })
	dev, id := h.fwSim(simulator.FirmwareConfig{Delivery: "both", Protocols: []string{"http"}, Timeout: 5 * time.Second}, nil)
	src := h.storeFirmware("sensor_2.0.bin", fwPackage)
	op := h.shell(id, "fwupdate sensor;2.0;"+src, 60*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "delivered by push, after pull over http failed: Update Result") {
		t.Fatalf("fwupdate: %s %q %q", op.Status, op.Command.Result, op.FailureReason)
	}
	checkInstalled(t, h, dev, id, "sensor", "2.0", src)
	if requested(dev, "PUT", "/5/0/1") == 0 || requested(dev, "PUT", "/5/0/0") == 0 {
		t.Errorf("want a Package URI write, then a push: %+v", dev.Requests())
	}
}

// Each failure the specification lists surfaces as its reason, and the
// device's object is left Idle.
func TestFirmwareFailureReasons(t *testing.T) {
	h := startAgent(t)
	for _, tc := range []struct {
		fail     int64
		delivery string
		reason   string
	}{
		{2, "push", "Update Result 2: not enough flash memory for the new firmware package"},
		{3, "push", "Update Result 3: out of RAM during the download"},
		{4, "pull", "Update Result 4: connection lost during the download"},
		{5, "pull", "Update Result 5: integrity check failure of the downloaded package"},
		{6, "push", "Update Result 6: unsupported package type"},
		{7, "pull", "Update Result 7: invalid URI"},
		{8, "pull", "Update Result 8: firmware update failed"},
		{9, "pull", "Update Result 9: unsupported protocol"},
	} {
		t.Run(fmt.Sprint(tc.fail), func(t *testing.T) {
			dev, id := h.fwSim(simulator.FirmwareConfig{Delivery: tc.delivery, Protocols: []string{"coap"}, Fail: tc.fail}, func(c *simulator.Config) {
				c.Prefix = fmt.Sprintf("fwfail-%d", tc.fail)
			})
			src := h.storeFirmware("sensor_2.0.bin", fwPackage)
			op := h.shell(id, "fwupdate sensor;2.0;"+src, 60*time.Second)
			if op.Status != "FAILED" || !strings.Contains(op.FailureReason, tc.reason) {
				t.Fatalf("fwupdate: %s %q; want FAILED with %q", op.Status, op.FailureReason, tc.reason)
			}
			if v, _ := dev.Value(node.MustParsePath("/3/0/3")); v.Str != "1.0.0" {
				t.Errorf("the device runs %q after a failed update", v.Str)
			}
			h.eventually(10*time.Second, func() error {
				if s, r := fwState(dev); s != 0 || r != 0 {
					return fmt.Errorf("device state %d, result %d; want reset to 0, 0", s, r)
				}
				return nil
			})
		})
	}
}

// An operator cancels an update mid-download: the device's object is
// reset by its reset mechanism (and Cancel executed where it has one),
// the package's URI revoked, and the operation keeps the reason given.
func TestFirmwareCancel(t *testing.T) {
	for _, tc := range []struct {
		name, reset string
		fw          simulator.FirmwareConfig
		wantReset   string // the request that resets the device
	}{
		{"pull, PACKAGE_URI", "", simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap"}, BlockSize: 16}, "PUT /5/0/1"},
		{"pull, PACKAGE", "PACKAGE", simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap"}, BlockSize: 16}, "PUT /5/0/0"},
		{"pull, Cancel", "", simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"coap"}, BlockSize: 16, Cancel: true}, "POST /5/0/10"},
		{"push, PACKAGE", "", simulator.FirmwareConfig{Delivery: "push", StallAfter: 8 << 10}, "PUT /5/0/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// the pull at 16-byte blocks and the peer rate limit lasts
			// long enough to be cancelled half-way
			h := startAgent(t, func(c *config.Config) { c.FirmwareResetMechanism, c.PeerRate, c.PeerBurst = tc.reset, 50, 10 })
			dev, id := h.fwSim(tc.fw, nil)
			src := h.storeFirmware("sensor_2.0.bin", fwPackage)
			opID := h.postOp(map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "fwupdate sensor;2.0;" + src}})
			h.eventually(20*time.Second, func() error {
				if s, _ := fwState(dev); s != 1 {
					return fmt.Errorf("device state %d, want 1 (downloading)", s)
				}
				return nil
			})
			h.cancelOp(opID, "wrong version")
			op := h.waitOp(opID, 5*time.Second)
			if op.Status != "FAILED" || op.FailureReason != "wrong version" {
				t.Fatalf("cancelled: %s %q", op.Status, op.FailureReason)
			}
			h.eventually(10*time.Second, func() error {
				if s, r := fwState(dev); s != 0 || (r != 0 && r != 10) {
					return fmt.Errorf("device state %d, result %d; want Idle", s, r)
				}
				m, p, _ := strings.Cut(tc.wantReset, " ")
				if requested(dev, m, p) == 0 {
					return fmt.Errorf("no %s", tc.wantReset)
				}
				return nil
			})
			if v, _ := dev.Value(node.MustParsePath("/3/0/3")); v.Str != "1.0.0" {
				t.Errorf("the device runs %q after a cancel", v.Str)
			}
			// the next update goes through
			if op := h.shell(id, "read /5/0/3", 10*time.Second); op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "= 0") {
				t.Errorf("state after the cancel: %s %q", op.Status, op.Command.Result)
			}
		})
	}
}

// PUT of an operation that has ended, or to anything but FAILED, is 422.
func TestOperationCancelRefused(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	id := h.device(sim.Endpoints()[0])["id"].(string)
	op := h.shell(id, "read /3/0/0", 10*time.Second)
	for _, body := range []map[string]any{{"status": "FAILED"}, {"status": "SUCCESSFUL"}} {
		if code := h.call("PUT", "/devicecontrol/operations/"+op.ID, body, nil); code != 422 {
			t.Errorf("PUT %v of a %s operation: HTTP %d, want 422", body, op.Status, code)
		}
	}
}

// An update whose device never finishes times out, and the device's
// object is reset.
func TestFirmwareTimeoutResets(t *testing.T) {
	files := serveFirmware(t, 0)
	h := startAgent(t, withTimeouts(time.Second, time.Second, 1500*time.Millisecond), func(c *config.Config) {
		c.FirmwareTimeout = 4 * time.Second
	})
	dev, id := h.fwSim(simulator.FirmwareConfig{Delivery: "pull", Protocols: []string{"http"}}, nil)
	// the file server holds the download until the test ends
	op := h.shell(id, "fwupdate sensor;2.0;"+files.URL+"/held/sensor_2.0.bin", 30*time.Second)
	if op.Status != "FAILED" || !strings.HasPrefix(op.FailureReason, "firmware update timed out after 4s at step download (last state 1") {
		t.Fatalf("update that never downloads: %s %q", op.Status, op.FailureReason)
	}
	h.eventually(10*time.Second, func() error {
		if s, r := fwState(dev); s != 0 || r != 0 {
			return fmt.Errorf("device state %d, result %d; want reset (operations %+v)", s, r, h.listOps(id, ""))
		}
		return nil
	})
	if requested(dev, "PUT", "/5/0/1") != 2 {
		t.Errorf("want the Package URI written, then emptied: %+v", dev.Requests())
	}
}

// The agent restarts in the middle of a push, while the device leaves a
// block unanswered: the update resumes from the offset stored, without
// starting over, and completes.
func TestFirmwareResumesAfterRestartMidTransfer(t *testing.T) {
	for _, tc := range []struct {
		name string
		fw   simulator.FirmwareConfig
	}{
		{"push", simulator.FirmwareConfig{Delivery: "push", StallAfter: 20 << 10, Version: "2.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, addr := t.TempDir(), freeUDPAddr(t)
			slow := func(c *config.Config) {
				c.RequestTimeout = 2 * time.Second
			}
			h1, stop1 := startAgentIn(t, dir, addr, slow)
			cfg := simulator.Config{Server: addr, Count: 1, Prefix: "fw-restart-" + tc.name, Version: "1.1", Lifetime: 30 * time.Second,
				UpdateEvery: 2 * time.Second, Record: 1024, Firmware: tc.fw}
			sim := runSimulator(t, cfg, 10*time.Second)
			ep := sim.Endpoints()[0]
			dev := sim.Device(ep)
			id := h1.deviceIDs(sim)[ep]
			src := h1.storeFirmware("sensor_2.0.bin", fwPackage)
			opID := h1.postOp(map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "fwupdate sensor;2.0;" + src}})
			h1.eventually(30*time.Second, func() error {
				if s, _ := fwState(dev); s != 1 {
					return fmt.Errorf("device state %d", s)
				}
				// stopped while the device leaves a block unanswered
				for _, r := range dev.Requests() {
					if r.Method == "PUT" && r.Path == "/5/0/0" && !r.Answered {
						return nil
					}
				}
				return fmt.Errorf("no push block unanswered yet")
			})
			stop1()
			h2, _ := startAgentIn(t, dir, addr, slow)
			op := h2.waitOp(opID, 90*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("after the restart: %s %q (progress %v)", op.Status, op.FailureReason, op.Progress)
			}
			if n, _ := op.Progress["restarts"].(float64); n != 0 {
				t.Errorf("the push restarted %v times; want it resumed from the offset it stopped at", n)
			}
			checkInstalled(t, h2, dev, id, "sensor", "2.0", src)
		})
	}
}
