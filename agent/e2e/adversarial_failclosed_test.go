package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

// The fail-closed rule: a device whose registration record says PSK, or
// that has no complete record, is never accepted on the plain port,
// whatever cut its import short; and registrations made under security
// settings that changed end.

// plainRegister sends a Register for ep from a fresh plain CoAP client
// and returns the answer's code and the registration's location, with
// the client for Updates.
func plainRegister(t *testing.T, server, ep string) (codes.Code, string, *udpClient.Conn) {
	t.Helper()
	c, err := udp.Dial(server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	code, loc := registerAt(t, c, ep)
	return code, loc, c
}

// An import line that fails after the device would have been created (a
// NAME too large for the store's documents) writes nothing: no device,
// no endpoint binding, so a plain Register for its endpoint is refused;
// importing the line again with a name that fits creates the device
// whole, a PSK device still refused in plain CoAP and let in over DTLS.
// The record limit (--max-csv-line-size) refuses such a line before it
// is stored; raised to the file's size, it leaves the store to fail it.
func TestAdversarialImportLineFailingAfterCreationWritesNothing(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) {
		c.DTLSHandshakeTimeout = time.Second
		c.MaxCSVLineSize = 64 << 20
	})
	huge := strings.Repeat("N", 60<<20) // the file may be 64 MiB; a document 48
	csv := "ID;IDTYPE;CREDENTIALS;NAME;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key\n" +
		"fc-huge;c8y_Id;Secret-pass-1234!;" + huge + ";c8y_lwm2m;fc-huge;coaps://127.0.0.1:5784;PSK;fc-huge-id;00112233\n" +
		"fc-fine;c8y_Id;Secret-pass-1234!;Fine;c8y_lwm2m;fc-fine;coap://127.0.0.1:5783;NO_SEC;;\n"
	code, res, raw := h.postCSV("management/admin", adminPassword, []byte(csv), false)
	if code != 201 || res.Created != 1 || res.Failed != 1 || len(res.Failures) != 1 || res.Failures[0].Line != 2 {
		t.Fatalf("import: HTTP %d %.500s", code, raw)
	}
	if c := h.call("GET", "/identity/externalIds/c8y_Id/fc-huge", nil, nil); c != 404 {
		t.Errorf("external id of the failed line: HTTP %d, want 404", c)
	}
	var list struct {
		ManagedObjects []managedObject `json:"managedObjects"`
	}
	h.call("GET", "/inventory/managedObjects?type=c8y_lwm2m&pageSize=100", nil, &list)
	if len(list.ManagedObjects) != 1 || list.ManagedObjects[0].str("name") != "Fine" {
		t.Errorf("devices after the import: %d, want only the line that succeeded", len(list.ManagedObjects))
	}
	if holder := h.pskHolder("lwm2m", "fc-huge-id"); holder != "" {
		t.Errorf("identity of the failed line held by %q", holder)
	}
	if code, _, _ := plainRegister(t, h.agent.CoAPAddr.String(), "fc-huge"); code != codes.Forbidden {
		t.Fatalf("plain Register for the failed line's endpoint: %v, want 4.03", code)
	}
	if code, _, _ := plainRegister(t, h.agent.CoAPAddr.String(), "fc-fine"); code != codes.Created {
		t.Fatalf("plain Register for the NO_SEC line's endpoint: %v, want 2.01", code)
	}

	h.importOK("management/admin", adminPassword, pskHeader+"fc-huge;c8y_Id;Secret-pass-1234!;c8y_lwm2m;fc-huge;coaps://127.0.0.1:5784;PSK;fc-huge-id;00112233;;\n")
	if code, _, _ := plainRegister(t, h.agent.CoAPAddr.String(), "fc-huge"); code != codes.Forbidden {
		t.Fatalf("plain Register for the PSK device imported again: %v, want 4.03", code)
	}
	c, err := dialPSK(t, h.agent.CoAPSAddr, "fc-huge-id", []byte{0, 0x11, 0x22, 0x33})
	if err != nil {
		t.Fatalf("handshake of the device imported again: %v", err)
	}
	if code := register(t, c, "fc-huge"); code != codes.Created {
		t.Fatalf("DTLS Register of the device imported again: %v, want 2.01", code)
	}
}

// killLine is line i of the file the kill test imports: a PSK device, so
// that no plain Register of any of its endpoints may ever succeed.
func killLine(i int) string {
	return fmt.Sprintf("kill-%05d;c8y_Id;Secret-pass-1234!;c8y_lwm2m;kill-%05d;coaps://127.0.0.1:5784;PSK;kill-%05d-id;%08x;;\n", i, i, i, i+1)
}

// countDevices returns how many LwM2M devices the API lists.
func countDevices(h *harness) int {
	h.t.Helper()
	var res struct {
		Statistics struct {
			TotalElements int `json:"totalElements"`
		} `json:"statistics"`
	}
	if c := h.call("GET", "/inventory/managedObjects?type=c8y_lwm2m&pageSize=1&withTotalPages=true", nil, &res); c != 200 {
		h.t.Fatalf("count devices: HTTP %d", c)
	}
	return res.Statistics.TotalElements
}

// listDevices returns the names of every LwM2M device by ID.
func listDevices(h *harness) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for page := 1; ; page++ {
		var res struct {
			ManagedObjects []managedObject `json:"managedObjects"`
		}
		if c := h.call("GET", fmt.Sprintf("/inventory/managedObjects?type=c8y_lwm2m&pageSize=1000&currentPage=%d", page), nil, &res); c != 200 {
			h.t.Fatalf("list devices: HTTP %d", c)
		}
		for _, mo := range res.ManagedObjects {
			out[mo.str("id")] = mo.str("name")
		}
		if len(res.ManagedObjects) < 1000 {
			return out
		}
	}
}

// killMidImport posts the file to the agent process p, kills p once the
// API lists want devices (the import is under way: lines are being
// written) and fails the test if the import ended before.
func killMidImport(t *testing.T, p *agentProcess, h *harness, file string, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	imported := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "POST", h.base+"/devicecontrol/bulkNewDeviceRequests", strings.NewReader(file))
		req.SetBasicAuth("management/admin", adminPassword)
		req.Header.Set("Content-Type", "text/csv")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("the import answered HTTP %d before the kill", resp.StatusCode)
		}
		imported <- err
	}()
	testbound.Until(t, time.Minute, fmt.Sprintf("%d devices imported", want), func() bool { return countDevices(h) >= want })
	p.kill()
	if err := <-imported; strings.Contains(err.Error(), "before the kill") {
		t.Fatalf("%v: the file is too small to be killed in the middle", err)
	}
}

// checkNoHalfDevices checks that every device the API lists has the
// complete parameters of its line of the kill test's file and that no
// plain Register for an endpoint of the lines around the last one
// written is accepted: workers take lines in file order, so those were
// the ones under way. It returns how many devices there are and the
// index of the last line written.
func checkNoHalfDevices(t *testing.T, h *harness, coap string, lines int) (n, last int) {
	t.Helper()
	devices := listDevices(h)
	t.Logf("%d of %d lines imported", len(devices), lines)
	for id, name := range devices {
		i, err := strconv.Atoi(strings.TrimPrefix(name, "kill-"))
		if err != nil {
			t.Fatalf("device %s named %q", id, name)
		}
		last = max(last, i)
		var b map[string]any
		if c := h.call("GET", "/lwm2m/devices/"+id+"/bootstrap", nil, &b); c != 200 || b["securityMode"] != "PSK" || b["lwm2mPskId"] != name+"-id" {
			t.Errorf("device %s (%s): parameters HTTP %d %v", id, name, c, b)
		}
	}
	for i := max(0, last-40); i < min(lines, last+40); i++ {
		if code, _, _ := plainRegister(t, coap, fmt.Sprintf("kill-%05d", i)); code != codes.Forbidden {
			t.Errorf("plain Register of kill-%05d: %v, want 4.03", i, code)
		}
	}
	return len(devices), last
}

// The agent killed with SIGKILL in the middle of a large import, three
// times, leaves after each restart no device without its complete
// parameters: every device the API lists has its PSK parameters, and no
// plain Register of an endpoint of the file is accepted. Importing the
// file again completes every line.
func TestAdversarialKillDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built agent as a process")
	}
	const lines = 4000
	var b strings.Builder
	b.WriteString(pskHeader)
	for i := range lines {
		b.WriteString(killLine(i))
	}
	file := b.String()
	dir, coap, httpAddr := t.TempDir(), freeUDPAddr(t), freeTCPAddr(t)
	flags := []string{"--auto-register=false", "--credentials-hash-cost", "4", "--peer-rate", "-1"}
	p, h := startAgentProcess(t, dir, coap, httpAddr, flags...)

	// A kill lands inside a line's writes most of the time, not always:
	// three of them.
	n, last := 0, 0
	for range 3 {
		killMidImport(t, p, h, file, n+200)
		p, h = startAgentProcess(t, dir, coap, httpAddr, flags...)
		if n, last = checkNoHalfDevices(t, h, coap, lines); n == 0 || n >= lines {
			t.Fatalf("%d devices after the restart, want some of the %d lines", n, lines)
		}
	}

	code, res, raw := h.postCSV("management/admin", adminPassword, []byte(file), false)
	if code != 201 || res.Failed != 0 || res.Successful != lines || res.Created != lines-n {
		t.Fatalf("import again: HTTP %d %.1000s, want %d created", code, raw, lines-n)
	}
	if got := countDevices(h); got != lines {
		t.Errorf("%d devices after importing again, want %d", got, lines)
	}
	for i := max(0, last-40); i < min(lines, last+40); i++ {
		id := h.device(fmt.Sprintf("kill-%05d", i)).str("id")
		if b := h.bootstrap(id); b["securityMode"] != "PSK" || b["lwm2mPskId"] != fmt.Sprintf("kill-%05d-id", i) {
			t.Errorf("kill-%05d after importing again: %v", i, b)
		}
	}
}

// waitRegistrationEnded waits until the device of ep (its ID id) is
// DISCONNECTED with no registration, and has a security event whose text
// holds every one of words.
func (h *harness) waitRegistrationEnded(ep, id string, words ...string) {
	h.t.Helper()
	h.eventually(10*time.Second, func() error {
		mo := h.device(ep)
		if st := mo.str("c8y_Connection", "status"); st != "DISCONNECTED" || mo.str("lwm2m", "registrationId") != "" {
			return fmt.Errorf("device %s, registration %q", st, mo.str("lwm2m", "registrationId"))
		}
	events:
		for _, ev := range h.events(id, "c8y_LWM2MSecurityEvent") {
			text, _ := ev["text"].(string)
			for _, w := range words {
				if !strings.Contains(text, w) {
					continue events
				}
			}
			return nil
		}
		return fmt.Errorf("no security event saying %q", words)
	})
}

// updateAnswer sends an Update to location over c and returns its code,
// or the error of a session that is gone.
func updateAnswer(c *udpClient.Conn, location string) (codes.Code, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := c.NewPostRequest(ctx, location, message.TextPlain, bytes.NewReader(nil))
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	return resp.Code(), nil
}

// A live plain registration ends when the operator imports its device
// again with securityMode PSK: its next Update is answered 4.04 and a
// plain Register 4.03. A DTLS registration ends when the device's key
// changes, with its session: nothing more is answered over it, and the
// device registers again with the new key.
func TestAdversarialSecurityChangeEndsRegistrations(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second })
	h.importOK("management/admin", adminPassword, pskHeader+"fc-move;c8y_Id;Secret-pass-1234!;c8y_lwm2m;fc-move;coap://127.0.0.1:5783;NO_SEC;;;;\n")
	id := h.device("fc-move").str("id")
	code, location, plain := plainRegister(t, h.agent.CoAPAddr.String(), "fc-move")
	if code != codes.Created {
		t.Fatalf("plain Register of the NO_SEC device: %v", code)
	}
	if code, err := updateAnswer(plain, location); err != nil || code != codes.Changed {
		t.Fatalf("Update before the change: %v %v, want 2.04", code, err)
	}

	h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine("fc-move", "0a0b0c0d"))
	if code, err := updateAnswer(plain, location); err != nil || code != codes.NotFound {
		t.Fatalf("Update of the plain registration after the device became PSK: %v %v, want 4.04", code, err)
	}
	if code, _ := registerAt(t, plain, "fc-move"); code != codes.Forbidden {
		t.Fatalf("plain Register after the device became PSK: %v, want 4.03", code)
	}
	h.waitRegistrationEnded("fc-move", id, "ended", "plain CoAP")

	secure, err := dialPSK(t, h.agent.CoAPSAddr, "fc-move-id", []byte{0x0a, 0x0b, 0x0c, 0x0d})
	if err != nil {
		t.Fatalf("handshake with the imported key: %v", err)
	}
	code, location = registerAt(t, secure, "fc-move")
	if code != codes.Created {
		t.Fatalf("DTLS Register: %v", code)
	}
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{"lwm2mPskKey": "f0f1f2f3"}, nil); c != 200 {
		t.Fatalf("PUT of a new key: HTTP %d", c)
	}
	if code, err := updateAnswer(secure, location); err == nil && code != codes.NotFound {
		t.Fatalf("Update over the session of the old key: %v, want no answer or 4.04", code)
	}
	if _, ok := h.agent.Server.Registration("fc-move"); ok {
		t.Fatal("the DTLS registration of the old key is live")
	}
	if _, err := dialPSK(t, h.agent.CoAPSAddr, "fc-move-id", []byte{0x0a, 0x0b, 0x0c, 0x0d}); err == nil {
		t.Fatal("the old key opens a session")
	}
	again, err := dialPSK(t, h.agent.CoAPSAddr, "fc-move-id", []byte{0xf0, 0xf1, 0xf2, 0xf3})
	if err != nil {
		t.Fatalf("handshake with the new key: %v", err)
	}
	if code := register(t, again, "fc-move"); code != codes.Created {
		t.Fatalf("DTLS Register with the new key: %v, want 2.01", code)
	}
	if got := h.metric("lwm2m_agent_registrations_ended_total"); got != 2 {
		t.Errorf("%v registrations ended, want 2", got)
	}
	// a change that leaves the security alone ends nothing
	if c := h.call("PUT", "/lwm2m/devices/"+id+"/bootstrap", map[string]any{"registrationLifetime": 600}, nil); c != 200 {
		t.Fatalf("PUT of a lifetime: HTTP %d", c)
	}
	if _, ok := h.agent.Server.Registration("fc-move"); !ok {
		t.Error("a change of the lifetime ended the registration")
	}
}

// Deleting a device ends its registrations and frees its names: a PSK
// device registered over DTLS and a NO_SEC one registered in plain CoAP
// are deleted through the API; nothing more is answered over the PSK
// device's session, an Update of either registration gets no answer or
// 4.04, the identity names nobody and the endpoint no device, and a new
// device imported with the same endpoint and identity handshakes and
// registers.
func TestAdversarialDeletedDeviceFreesItsNames(t *testing.T) {
	h := startAgent(t, withAutoRegister(false), func(c *config.Config) { c.DTLSHandshakeTimeout = time.Second })
	line := pskHeader + pskCSVLine("del-psk", "0a0b0c0d")
	h.importOK("management/admin", adminPassword, line+"del-plain;c8y_Id;Secret-pass-1234!;c8y_lwm2m;del-plain;coap://127.0.0.1:5783;NO_SEC;;;;\n")
	key := []byte{0x0a, 0x0b, 0x0c, 0x0d}
	pskID, plainID := h.device("del-psk").str("id"), h.device("del-plain").str("id")
	secure, err := dialPSK(t, h.agent.CoAPSAddr, "del-psk-id", key)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	code, location := registerAt(t, secure, "del-psk")
	if code != codes.Created {
		t.Fatalf("DTLS Register: %v", code)
	}
	code, plainLocation, plain := plainRegister(t, h.agent.CoAPAddr.String(), "del-plain")
	if code != codes.Created {
		t.Fatalf("plain Register: %v", code)
	}

	for _, id := range []string{pskID, plainID} {
		if c := h.call("DELETE", "/inventory/managedObjects/"+id, nil, nil); c != 204 {
			t.Fatalf("DELETE of device %s: HTTP %d", id, c)
		}
	}
	for _, ep := range []string{"del-psk", "del-plain"} {
		if _, ok := h.agent.Server.Registration(ep); ok {
			t.Errorf("the registration of deleted device %s is live", ep)
		}
	}
	if code, err := updateAnswer(secure, location); err == nil && code != codes.NotFound {
		t.Errorf("Update over the deleted device's session: %v, want no answer or 4.04", code)
	}
	if code, err := updateAnswer(plain, plainLocation); err != nil || code != codes.NotFound {
		t.Errorf("Update of the deleted plain device: %v %v, want 4.04", code, err)
	}
	if holder := h.pskHolder("lwm2m", "del-psk-id"); holder != "" {
		t.Errorf("identity of the deleted device held by %q", holder)
	}
	if holder := h.pskHolder("bootstrap", "del-psk-bs"); holder != "" {
		t.Errorf("bootstrap identity of the deleted device held by %q", holder)
	}
	if _, err := dialPSK(t, h.agent.CoAPSAddr, "del-psk-id", key); err == nil {
		t.Error("the deleted device's identity opens a session")
	}
	if code, _ := registerAt(t, plain, "del-plain"); code != codes.Forbidden {
		t.Errorf("plain Register of the deleted device's endpoint: %v, want 4.03", code)
	}
	if got := h.metric("lwm2m_agent_registrations_ended_total"); got != 2 {
		t.Errorf("%v registrations ended, want 2", got)
	}

	h.importOK("management/admin", adminPassword, line)
	again := h.device("del-psk").str("id")
	if again == pskID {
		t.Fatalf("the import found the deleted device %s", pskID)
	}
	c, err := dialPSK(t, h.agent.CoAPSAddr, "del-psk-id", key)
	if err != nil {
		t.Fatalf("handshake of the new device: %v", err)
	}
	if code := register(t, c, "del-psk"); code != codes.Created {
		t.Fatalf("DTLS Register of the new device: %v, want 2.01", code)
	}
	if reg, ok := h.agent.Server.Registration("del-psk"); !ok || reg.DeviceID != again {
		t.Errorf("registration of the new device: %+v %v", reg, ok)
	}
}
