package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// deviceOps lists a device's operations in creation order.
func (h *harness) deviceOps(user, pass, deviceID string) []operation {
	h.t.Helper()
	var res struct {
		Operations []operation `json:"operations"`
	}
	if code := h.callAs(user, pass, "GET", "/devicecontrol/operations?pageSize=100&deviceId="+deviceID, nil, &res); code != 200 {
		h.t.Fatalf("operations of %s: HTTP %d", deviceID, code)
	}
	return res.Operations
}

// waitOps waits until the device has n operations, all finished.
func (h *harness) waitOps(user, pass, deviceID string, n int) []operation {
	h.t.Helper()
	var ops []operation
	h.eventually(20*time.Second, func() error {
		ops = h.deviceOps(user, pass, deviceID)
		if len(ops) != n {
			return fmt.Errorf("%d operations, want %d", len(ops), n)
		}
		for _, op := range ops {
			if op.Status != "SUCCESSFUL" && op.Status != "FAILED" {
				return fmt.Errorf("operation %s %q is %s", op.ID, op.Command.Text, op.Status)
			}
		}
		return nil
	})
	return ops
}

func (h *harness) putPostOps(user, pass string, cmds ...string) {
	h.t.Helper()
	var e apiErr
	if code := h.callAs(user, pass, "PUT", "/lwm2m/postoperations", map[string]any{"commands": cmds}, &e); code != 200 {
		h.t.Fatalf("PUT post-registration operations: HTTP %d %s", code, e.Message)
	}
}

func TestPostOperationsOnRegistration(t *testing.T) {
	h := startAgent(t)
	const admin = "management/admin"
	cmds := []string{"read /3/0/0", "write /3/0/14 +02:00", "read /3/0/14"}
	h.putPostOps(admin, adminPassword, cmds...)
	var got struct{ Commands []string }
	if h.call("GET", "/lwm2m/postoperations", nil, &got); !slices.Equal(got.Commands, cmds) {
		t.Fatalf("GET answered %q", got.Commands)
	}

	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	ops := h.waitOps(admin, adminPassword, id, len(cmds))
	for i, op := range ops {
		if op.Command.Text != cmds[i] || op.Status != "SUCCESSFUL" {
			t.Fatalf("operation %d: %q %s %s, want %q SUCCESSFUL", i, op.Command.Text, op.Status, op.FailureReason, cmds[i])
		}
	}
	// in order: the read comes after the write
	if !strings.Contains(ops[2].Command.Result, "+02:00") {
		t.Fatalf("read after write answered %q", ops[2].Command.Result)
	}
	if text, err := h.metrics(); err != nil || !strings.Contains(text, fmt.Sprintf("\nlwm2m_agent_post_operations_total %d\n", len(cmds))) {
		t.Errorf("/metrics does not count %d post-registration operations (%v)", len(cmds), err)
	}

	// an Update is no full registration: nothing new
	before := len(h.events(id, "c8y_LWM2MDeviceRegistrationUpdate"))
	sim.Device(ep).Update()
	h.eventually(10*time.Second, func() error {
		if n := len(h.events(id, "c8y_LWM2MDeviceRegistrationUpdate")); n == before {
			return fmt.Errorf("no update event yet")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(h.deviceOps(admin, adminPassword, id)); n != len(cmds) {
		t.Fatalf("after an Update: %d operations, want still %d", n, len(cmds))
	}

	// a new Register queues them again
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sim.Device(ep).Deregister(dctx); err != nil {
		t.Fatal(err)
	}
	h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ops = h.waitOps(admin, adminPassword, id, 2*len(cmds))
	for i, op := range ops[len(cmds):] {
		if op.Command.Text != cmds[i] || op.Status != "SUCCESSFUL" {
			t.Fatalf("after a new Register, operation %d: %q %s %s", i, op.Command.Text, op.Status, op.FailureReason)
		}
	}
}

func TestPostOperationsRefusedAndPerTenant(t *testing.T) {
	h := startAgent(t)
	const admin = "management/admin"
	const user, pass = "beta/admin", "Beta-pass-1234!"
	if code := h.call("POST", "/tenant/tenants", map[string]any{"id": "beta", "adminName": "admin", "adminPass": pass}, nil); code != 201 {
		t.Fatalf("create tenant: HTTP %d", code)
	}
	h.putPostOps(admin, adminPassword, "read /3/0/0")
	h.putPostOps(user, pass, "read /3/0/1", "read /3/0/2")

	// a malformed list stores nothing
	var e apiErr
	code := h.callAs(user, pass, "PUT", "/lwm2m/postoperations", map[string]any{"commands": []string{"read /3/0/0", "write /3/0/14"}}, &e)
	if code != 422 || !strings.Contains(e.Message, "command 2") || !strings.Contains(e.Message, "a value is needed") {
		t.Fatalf("malformed command: HTTP %d %q", code, e.Message)
	}
	var got struct{ Commands []string }
	if h.callAs(user, pass, "GET", "/lwm2m/postoperations", nil, &got); !slices.Equal(got.Commands, []string{"read /3/0/1", "read /3/0/2"}) {
		t.Fatalf("beta's list after a refused PUT: %q", got.Commands)
	}

	csv := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;endpoint id;lwm2m server uri;securityMode\n" +
		"beta-1;c8y_Id;Secret-pass-1234!;Meter;c8y_lwm2m;1;beta-1;coap://127.0.0.1:5783;NO_SEC\n"
	h.importOK(user, pass, csv)
	h.simulate(1, func(c *simulator.Config) { c.Prefix, c.Start, c.NotifyInterval = "beta", 1, 0 })
	msim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })

	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	h.callAs(user, pass, "GET", "/identity/externalIds/c8y_Id/beta-1", nil, &ext)
	betaOps := h.waitOps(user, pass, ext.ManagedObject.ID, 2)
	if betaOps[0].Command.Text != "read /3/0/1" || betaOps[1].Command.Text != "read /3/0/2" {
		t.Fatalf("beta's device got %q, %q", betaOps[0].Command.Text, betaOps[1].Command.Text)
	}
	mid := h.device(msim.Endpoints()[0]).str("id")
	mOps := h.waitOps(admin, adminPassword, mid, 1)
	if mOps[0].Command.Text != "read /3/0/0" || mOps[0].Status != "SUCCESSFUL" {
		t.Fatalf("management's device got %+v", mOps[0])
	}
	// and beta cannot see management's device's operations
	if ops := h.deviceOps(user, pass, mid); len(ops) != 0 {
		t.Fatalf("beta lists %d operations of management's device", len(ops))
	}
}

// seen is what the recording device saw of one request.
type seen struct {
	code   codes.Code
	path   string
	accept message.MediaType // 0xffff when absent
	cf     message.MediaType // 0xffff when absent
	body   []byte
}

// recordingDevice is a minimal LwM2M 1.1 client that registers with the
// agent, records every request, answers reads of /3/0 in the format asked
// for and accepts every write.
type recordingDevice struct {
	t    *testing.T
	conn *udpClient.Conn
	mu   sync.Mutex
	reqs []seen
}

func newRecordingDevice(t *testing.T, server net.Addr) *recordingDevice {
	t.Helper()
	d := &recordingDevice{t: t}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(d.serve))
	c, err := udp.Dial(server.String(), options.WithMux(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	d.conn = c
	return d
}

func (d *recordingDevice) serve(w mux.ResponseWriter, m *mux.Message) {
	s := seen{code: m.Code(), accept: 0xffff, cf: 0xffff}
	s.path, _ = m.Options().Path()
	if a, err := m.Accept(); err == nil {
		s.accept = a
	}
	if cf, err := m.ContentFormat(); err == nil {
		s.cf = cf
	}
	if m.Body() != nil {
		s.body, _ = m.ReadBody()
	}
	d.mu.Lock()
	d.reqs = append(d.reqs, s)
	d.mu.Unlock()
	switch {
	case s.code == codes.GET && s.path == "/3/0":
		f := codec.Format(s.accept)
		payload, err := codec.Encode(f, node.InstancePath(3, 0), []node.Record{{Path: node.ResourcePath(3, 0, 0), Value: node.String("Recorder Inc")}})
		if err != nil {
			_ = w.SetResponse(codes.NotAcceptable, message.TextPlain, nil)
			return
		}
		_ = w.SetResponse(codes.Content, message.MediaType(f), bytes.NewReader(payload))
	case s.code == codes.PUT || s.code == codes.POST:
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
	default:
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
	}
}

func (d *recordingDevice) register(ep string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := d.conn.NewPostRequest(ctx, "/rd", message.AppLinkFormat, strings.NewReader(`</1/0>,</3/0>,</5/0>`))
	if err != nil {
		d.t.Fatal(err)
	}
	req.AddQuery("ep=" + ep)
	req.AddQuery("lwm2m=1.1")
	req.AddQuery("lt=300")
	resp, err := d.conn.Do(req)
	if err != nil {
		d.t.Fatalf("register %s: %v", ep, err)
	}
	if resp.Code() != codes.Created {
		d.t.Fatalf("register %s: %v", ep, resp.Code())
	}
}

// last returns the last request for path.
func (d *recordingDevice) last(path string) seen {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.reqs) - 1; i >= 0; i-- {
		if d.reqs[i].path == path {
			return d.reqs[i]
		}
	}
	d.t.Fatalf("the device saw no request for %s", path)
	return seen{}
}

// okShell runs a shell command and fails the test unless it succeeded.
func (h *harness) okShell(id, text string) operation {
	h.t.Helper()
	op := h.shell(id, text, 15*time.Second)
	if op.Status != "SUCCESSFUL" {
		h.t.Fatalf("%q: %s %s", text, op.Status, op.FailureReason)
	}
	return op
}

func TestSerializationCommand(t *testing.T) {
	h := startAgent(t)
	d := newRecordingDevice(t, h.agent.CoAPAddr)
	const ep = "serialization-1"
	d.register(ep)
	var id string
	h.eventually(10*time.Second, func() error {
		id = h.device(ep).str("id")
		if id == "" {
			return fmt.Errorf("no device yet")
		}
		return nil
	})
	readAccept := func() message.MediaType {
		t.Helper()
		op := h.okShell(id, "read /3/0")
		if !strings.Contains(op.Command.Result, "Recorder Inc") {
			t.Fatalf("read answered %q", op.Command.Result)
		}
		return d.last("/3/0").accept
	}
	if got := readAccept(); got != message.MediaType(codec.SenMLCBOR) {
		t.Fatalf("a 1.1 device is read with Accept %v, want SenML CBOR before any serialization", got)
	}
	op := h.okShell(id, "serialization TLV")
	if !strings.Contains(op.Command.Result, "TLV") {
		t.Fatalf("result %q does not name the format", op.Command.Result)
	}
	if got := readAccept(); got != message.MediaType(codec.TLV) {
		t.Fatalf("after serialization TLV: Accept %v", got)
	}
	// writes use it too
	h.okShell(id, "write /1/0/1 120")
	if w := d.last("/1/0/1"); w.cf != message.MediaType(codec.TLV) {
		t.Fatalf("write in %v, want TLV", w.cf)
	}
	// kept when the device registers again (within a minute: the
	// registration event of the second Register is coalesced, the state
	// follows it)
	first := h.device(ep)["lwm2m"].(map[string]any)["registrationId"]
	d.register(ep)
	h.eventually(10*time.Second, func() error {
		if now := h.device(ep)["lwm2m"].(map[string]any)["registrationId"]; now == first {
			return fmt.Errorf("registration %v not replaced yet", now)
		}
		return nil
	})
	if got := readAccept(); got != message.MediaType(codec.TLV) {
		t.Fatalf("after a new Register: Accept %v, want TLV still", got)
	}
	h.okShell(id, "serialization senml_json")
	if got := readAccept(); got != message.MediaType(codec.SenMLJSON) {
		t.Fatalf("after serialization senml_json: Accept %v", got)
	}
	op = h.okShell(id, "serialization DEFAULT")
	if !strings.Contains(op.Command.Result, "default") {
		t.Fatalf("DEFAULT answered %q", op.Command.Result)
	}
	if got := readAccept(); got != message.MediaType(codec.SenMLCBOR) {
		t.Fatalf("after DEFAULT: Accept %v, want SenML CBOR again", got)
	}
}

// setBinaryEncoding sets the device's binaryDeliveryEncoding parameter.
func (h *harness) setBinaryEncoding(id, enc string) {
	h.t.Helper()
	var e apiErr
	body := map[string]any{"lwm2mServerUri": "coap://127.0.0.1:5783", "securityMode": "NO_SEC", "binaryDeliveryEncoding": enc}
	if code := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", body, &e); code != 200 {
		h.t.Fatalf("set binaryDeliveryEncoding %s: HTTP %d %s", enc, code, e.Message)
	}
}

func TestWriteBinaryEncodings(t *testing.T) {
	h := startAgent(t)
	pkg := []byte{0x00, 0x01, 0xfe, 0xff, 'f', 'w'}
	pkgHex := hex.EncodeToString(pkg)

	// against the simulator: OPAQUE (the default) and TLV
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	sid := h.device(ep).str("id")
	for i, enc := range []string{"", "TLV"} {
		if enc != "" {
			h.setBinaryEncoding(sid, enc)
		}
		b := append(slices.Clone(pkg), byte(i))
		op := h.okShell(sid, "writeb /5/0/0 "+hex.EncodeToString(b))
		want := "OPAQUE (application/octet-stream)"
		if enc == "TLV" {
			want = "TLV (application/vnd.oma.lwm2m+tlv)"
		}
		if !strings.Contains(op.Command.Result, want) || !strings.Contains(op.Command.Result, fmt.Sprintf("%d bytes", len(b))) {
			t.Fatalf("%s: result %q", enc, op.Command.Result)
		}
		if n, sum := sim.Device(ep).Package(); n != int64(len(b)) || sum != sha256.Sum256(b) {
			t.Fatalf("%s: the simulator received %d bytes (SHA-256 %x), want %x", enc, n, sum, b)
		}
	}
	var e apiErr
	unknown := map[string]any{"deviceId": sid, "c8y_Command": map[string]string{"text": "writeb /5/0/0 binary:4711"}}
	if code := h.call("POST", "/devicecontrol/operations", unknown, &e); code != 422 || !strings.Contains(e.Message, "no such binary") {
		t.Fatalf("writeb of an unknown binary: HTTP %d %q, want 422", code, e.Message)
	}

	// the exact bytes on the wire, for every encoding
	d := newRecordingDevice(t, h.agent.CoAPAddr)
	const rep = "writeb-1"
	d.register(rep)
	var id string
	h.eventually(10*time.Second, func() error {
		id = h.device(rep).str("id")
		if id == "" {
			return fmt.Errorf("no device yet")
		}
		return nil
	})
	tests := []struct {
		enc  string
		cf   codec.Format
		body string
	}{
		{"OPAQUE", codec.Opaque, string(pkg)},
		{"TLV", codec.TLV, "\xc6\x00" + string(pkg)},
		{"JSON", codec.SenMLJSON, `[{"bn":"/5/0/0","vd":"AAH-_2Z3"}]`},
		{"TEXT", codec.Text, "AAH+/2Z3"},
	}
	for _, tt := range tests {
		t.Run(tt.enc, func(t *testing.T) {
			h.setBinaryEncoding(id, tt.enc)
			h.okShell(id, "writeb /5/0/0 "+pkgHex)
			w := d.last("/5/0/0")
			if w.code != codes.PUT || w.cf != message.MediaType(tt.cf) {
				t.Fatalf("request %v in %v, want PUT in %v", w.code, w.cf, tt.cf)
			}
			if string(w.body) != tt.body {
				t.Fatalf("body %q, want %q", w.body, tt.body)
			}
		})
	}
}
