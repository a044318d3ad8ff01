package bootstrap

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

const tenant = "acme"

func hexs(s string) string { return hex.EncodeToString([]byte(s)) }

func assertEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func assertInstance(t *testing.T, c *client, p node.Path, want map[uint16]string) {
	t.Helper()
	got := c.instance(p)
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", p, got, want)
	}
}

func assertSlice(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// fragment returns the c8y_LWM2MBootstrap fragment of an event.
func fragment(e store.Event) map[string]any {
	m, _ := e.Fragments["c8y_LWM2MBootstrap"].(map[string]any)
	return m
}

func TestBootstrapNoSec10TLV(t *testing.T) {
	ts := startServer(t, nil)
	id := ts.device(t, tenant, map[string]any{
		"endpointId": "nosec-10", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC",
		"registrationLifetime": 300, "bindingMode": "UQ", "defaultMinimumPeriod": 10, "defaultMaximumPeriod": 600,
	}, nil, nil)

	c := newClient(t, "1.0")
	c.dialPlain(ts.srv.Addr())
	code, _, err := c.request("ep=nosec-10")
	if err != nil {
		t.Fatalf("bootstrap request: %v", err)
	}
	assertEqual(t, "answer", code, codes.Changed)
	c.waitFinished(t)

	assertSlice(t, "requests", c.seen(), []string{
		"GET / 40", "DELETE /0", "DELETE /1", "PUT /0/0 11542", "PUT /1/0 11542", "POST /bs",
	})
	assertSlice(t, "instances", c.instances(), []string{"/0/0", "/1/0"})
	assertInstance(t, c, node.InstancePath(0, 0), map[uint16]string{
		0: "s:coap://lwm2m.example.com:5783", 1: "b:0", 2: "i:3", 3: "o:", 4: "o:", 5: "o:", 10: "i:1",
	})
	assertInstance(t, c, node.InstancePath(1, 0), map[uint16]string{
		0: "i:1", 1: "i:300", 2: "i:10", 3: "i:600", 6: "b:1", 7: "s:UQ",
	})

	types, evs := ts.waitEvents(t, tenant, id, TypeEnd)
	assertSlice(t, "events", types, []string{TypeStart, TypeDelete, TypeDelete, TypeWrite, TypeWrite, TypeEnd})
	paths := []string{}
	for _, e := range evs {
		p, _ := fragment(e)["path"].(string)
		paths = append(paths, p)
	}
	assertSlice(t, "event paths", paths, []string{"", "/0", "/1", "/0/0", "/1/0", "/bs"})
	assertEqual(t, "version", fragment(evs[len(evs)-1])["lwm2mVersion"], any("1.0"))
	assertEqual(t, "transport", fragment(evs[0])["transport"], any("coap"))
	if st := ts.srv.Stats(); st.Finished != 1 || st.Failed != 0 {
		t.Errorf("stats = %+v, want 1 finished", st)
	}
}

// TestBootstrapPSK11SenML: a 1.1 client over DTLS that holds its
// bootstrap account at the offset and an old server account gets the
// LwM2M server's Security instance at the next ID, its bootstrap
// instance replaced in place, in SenML CBOR.
func TestBootstrapPSK11SenML(t *testing.T) {
	// The secure port from a listener built outside, as psk builds it.
	ts := startServer(t, func(c *Config) {
		l, err := psk.Listen("127.0.0.1:0", c.Keys, psk.Limits{}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.SecureAddr, c.Keys, c.SecureListener = "", nil, l
	})
	pskKey, bsKey := []byte{0x01, 0x02, 0x03, 0x04}, []byte{0xb0, 0x07}
	id := ts.device(t, tenant, map[string]any{
		"endpointId": "psk-11", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-11-id", "bootstrapPskId": "psk-11-bs", "generateBootstrapServerConfig": true,
		"securityInstanceOffset": 5, "bootstrapShortServerId": 100, "lwm2mShortServerId": 2,
		"notificationIfDisabled": false, "disableTimeout": 60,
	}, pskKey, bsKey)

	c := newClient(t, "1.1")
	c.bootstrapID = 5
	c.tree[node.InstancePath(0, 5)] = []node.Record{{Path: node.ResourcePath(0, 5, 0), Value: node.String("coaps://factory-bs:5684")}}
	c.tree[node.InstancePath(0, 1)] = []node.Record{{Path: node.ResourcePath(0, 1, 10), Value: node.Int(7)}}
	c.tree[node.InstancePath(1, 1)] = []node.Record{{Path: node.ResourcePath(1, 1, 0), Value: node.Int(7)}}
	c.dialSecure(ts.srv.SecureAddr(), "psk-11-bs", bsKey)
	code, _, err := c.request("ep=psk-11")
	if err != nil {
		t.Fatalf("bootstrap request: %v", err)
	}
	assertEqual(t, "answer", code, codes.Changed)
	c.waitFinished(t)

	assertSlice(t, "requests", c.seen(), []string{
		"GET / 40", "DELETE /0", "DELETE /1", "PUT /0/6 112", "PUT /0/5 112", "PUT /1/0 112", "POST /bs",
	})
	assertSlice(t, "instances", c.instances(), []string{"/0/5", "/0/6", "/1/0"})
	assertInstance(t, c, node.InstancePath(0, 6), map[uint16]string{
		0: "s:coaps://lwm2m.example.com:5784", 1: "b:0", 2: "i:0", 3: "o:" + hexs("psk-11-id"), 4: "o:", 5: "o:01020304", 10: "i:2",
	})
	assertInstance(t, c, node.InstancePath(0, 5), map[uint16]string{
		0: "s:" + secureURI, 1: "b:1", 2: "i:0", 3: "o:" + hexs("psk-11-bs"), 4: "o:", 5: "o:b007", 10: "i:100",
	})
	assertInstance(t, c, node.InstancePath(1, 0), map[uint16]string{
		0: "i:2", 1: "i:86400", 5: "i:60", 6: "b:0", 7: "s:U",
	})

	types, evs := ts.waitEvents(t, tenant, id, TypeEnd)
	assertSlice(t, "events", types, []string{TypeStart, TypeDelete, TypeDelete, TypeWrite, TypeWrite, TypeWrite, TypeEnd})
	last := fragment(evs[len(evs)-1])
	assertEqual(t, "version", last["lwm2mVersion"], any("1.1"))
	assertEqual(t, "transport", last["transport"], any("coaps"))
	assertEqual(t, "format", last["contentFormat"], any("application/senml+cbor"))
	for _, e := range evs {
		for _, secret := range []string{"01020304", "b007", "\x01\x02\x03\x04"} {
			if strings.Contains(e.Text, secret) {
				t.Errorf("event %s text %q holds a key", e.Type, e.Text)
			}
		}
	}
}

// TestBootstrapPreferredFormat: a 1.2 client that asks for TLV with pct
// gets TLV, and generateBootstrapServerConfig of a NO_SEC device writes
// the plain bootstrap URI after the offset.
func TestBootstrapPreferredFormat(t *testing.T) {
	ts := startServer(t, nil)
	id := ts.device(t, tenant, map[string]any{
		"endpointId": "nosec-12", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC",
		"generateBootstrapServerConfig": "true", "securityInstanceOffset": "3",
	}, nil, nil)
	c := newClient(t, "1.2")
	c.dialPlain(ts.srv.Addr())
	code, _, err := c.request("ep=nosec-12", "pct=11542")
	if err != nil {
		t.Fatalf("bootstrap request: %v", err)
	}
	assertEqual(t, "answer", code, codes.Changed)
	c.waitFinished(t)
	assertSlice(t, "requests", c.seen(), []string{
		"GET / 40", "DELETE /0", "DELETE /1", "PUT /0/3 11542", "PUT /0/4 11542", "PUT /1/0 11542", "POST /bs",
	})
	assertInstance(t, c, node.InstancePath(0, 3), map[uint16]string{
		0: "s:coap://lwm2m.example.com:5783", 1: "b:0", 2: "i:3", 3: "o:", 4: "o:", 5: "o:", 10: "i:1",
	})
	assertInstance(t, c, node.InstancePath(0, 4), map[uint16]string{
		0: "s:" + plainURI, 1: "b:1", 2: "i:3", 3: "o:", 4: "o:", 5: "o:",
	})
	_, evs := ts.waitEvents(t, tenant, id, TypeEnd)
	assertEqual(t, "version", fragment(evs[len(evs)-1])["lwm2mVersion"], any("1.2"))
}

// TestBootstrapFormatFallback: a client that refuses SenML CBOR with 4.15
// gets the same write in TLV, and TLV for the rest.
func TestBootstrapFormatFallback(t *testing.T) {
	ts := startServer(t, nil)
	id := ts.device(t, tenant, map[string]any{"endpointId": "tlv-only", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)
	c := newClient(t, "1.1")
	c.refuse = 112
	c.dialPlain(ts.srv.Addr())
	if code, _, err := c.request("ep=tlv-only"); err != nil || code != codes.Changed {
		t.Fatalf("bootstrap request: %v %v", code, err)
	}
	c.waitFinished(t)
	assertSlice(t, "requests", c.seen(), []string{
		"GET / 40", "DELETE /0", "DELETE /1", "PUT /0/0 112", "PUT /0/0 11542", "PUT /1/0 11542", "POST /bs",
	})
	assertInstance(t, c, node.InstancePath(1, 0), map[uint16]string{0: "i:1", 1: "i:86400", 6: "b:1", 7: "s:U"})
	ts.waitEvents(t, tenant, id, TypeEnd)
}

func TestBootstrapWriteRefused(t *testing.T) {
	ts := startServer(t, nil)
	id := ts.device(t, tenant, map[string]any{"endpointId": "refuser", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)
	c := newClient(t, "1.0")
	c.failWrite = "/0/0"
	c.dialPlain(ts.srv.Addr())
	if code, _, err := c.request("ep=refuser"); err != nil || code != codes.Changed {
		t.Fatalf("bootstrap request: %v %v", code, err)
	}
	types, evs := ts.waitEvents(t, tenant, id, TypeFailure)
	assertSlice(t, "events", types, []string{TypeStart, TypeDelete, TypeDelete, TypeFailure})
	fail := evs[len(evs)-1]
	f := fragment(fail)
	assertEqual(t, "step", f["step"], any("write"))
	assertEqual(t, "path", f["path"], any("/0/0"))
	assertEqual(t, "code", f["code"], any("4.00"))
	if !strings.Contains(fail.Text, "4.00") || !strings.Contains(fail.Text, "no such server") {
		t.Errorf("failure text %q does not say the code and the device's diagnostic", fail.Text)
	}
	assertSlice(t, "requests", c.seen(), []string{"GET / 40", "DELETE /0", "DELETE /1", "PUT /0/0 11542"})
	if st := ts.srv.Stats(); st.Failed != 1 {
		t.Errorf("stats = %+v, want 1 failed", st)
	}
}

// TestBootstrapRefused covers requests answered with an error code: none
// of them starts a session or writes an event.
func TestBootstrapRefused(t *testing.T) {
	ts := startServer(t, nil)
	pskID := ts.device(t, tenant, map[string]any{
		"endpointId": "psk-a", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-a-id", "bootstrapPskId": "psk-a-bs",
	}, []byte{1}, []byte{0xaa})
	otherID := ts.device(t, "other", map[string]any{
		"endpointId": "psk-b", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-b-id", "bootstrapPskId": "psk-b-bs",
	}, []byte{2}, []byte{0xbb})

	tests := []struct {
		name     string
		dial     func(c *client)
		queries  []string
		wantCode codes.Code
		wantDiag string
	}{
		{"unknown endpoint", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"ep=nobody"}, codes.BadRequest, ""},
		{"missing endpoint", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"pct=112"}, codes.BadRequest, "missing endpoint"},
		{"bad pct", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"ep=psk-a", "pct=tlv"}, codes.BadRequest, "pct"},
		{"endpoint twice", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"ep=nobody", "ep=psk-a"}, codes.BadRequest, `parameter "ep" given twice`},
		{"pct twice", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"ep=psk-a", "pct=112", "pct=11542"}, codes.BadRequest, `parameter "pct" given twice`},
		{"psk device on plain port", func(c *client) { c.dialPlain(ts.srv.Addr()) }, []string{"ep=psk-a"}, codes.BadRequest, ""},
		{"identity of another endpoint", func(c *client) { c.dialSecure(ts.srv.SecureAddr(), "psk-a-bs", []byte{0xaa}) }, []string{"ep=psk-b"}, codes.Forbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, "1.1")
			tt.dial(c)
			code, diag, err := c.request(tt.queries...)
			if err != nil {
				t.Fatalf("bootstrap request: %v", err)
			}
			assertEqual(t, "answer", code, tt.wantCode)
			if !strings.Contains(diag, tt.wantDiag) {
				t.Errorf("diagnostic %q does not contain %q", diag, tt.wantDiag)
			}
			// The server refuses before it starts a session, the only
			// thing that sends the device requests.
			if st := ts.srv.Stats(); st.Sessions != 0 {
				t.Errorf("a session runs after a refusal: %+v", st)
			}
			if s := c.seen(); len(s) != 0 {
				t.Errorf("server sent requests after refusing: %v", s)
			}
		})
	}
	for _, d := range []struct{ tenant, id string }{{tenant, pskID}, {"other", otherID}} {
		if evs := ts.events(t, d.tenant, d.id); len(evs) != 0 {
			t.Errorf("device %s has events after refusals: %+v", d.id, evs)
		}
	}
	if st := ts.srv.Stats(); st.Refused != uint64(len(tests)) || st.Sessions != 0 {
		t.Errorf("stats = %+v, want %d refused and no session", st, len(tests))
	}
}

// TestBootstrapPlainRefusalsAlike: on the plain port, an endpoint nobody
// registered, a PSK device asking without DTLS, and devices whose
// account is incomplete or missing get the same answer to the byte: 4.00
// without a diagnostic. The log and the counters say which it was, once
// per cause however often it is asked.
func TestBootstrapPlainRefusalsAlike(t *testing.T) {
	var logs logbuf.Buffer
	refused := refusal.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	ts := startServer(t, func(c *Config) { c.Refused = refused })
	ts.device(t, tenant, map[string]any{
		"endpointId": "psk-p", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-p-id", "bootstrapPskId": "psk-p-bs",
	}, []byte{1}, []byte{2})
	ts.device(t, tenant, map[string]any{"endpointId": "no-uri", "securityMode": "NO_SEC"}, nil, nil)
	if _, err := ts.store.CreateDevice(context.Background(), tenant, "no-params"); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ endpoint, cause string }{
		{"nobody", causeUnknownEndpoint},
		{"psk-p", causePSKWithoutDTLS},
		{"no-uri", causeIncomplete},
		{"no-params", causeIncomplete},
	}
	answers := map[string][]byte{}
	for range 3 {
		for _, c := range cases {
			answers[c.endpoint] = rawcoap.Exchange(t, ts.srv.Addr(), rawcoap.Post(0x1234, []byte{0xaa}, "bs", []string{"ep=" + c.endpoint}, nil))
		}
	}
	want := answers["nobody"]
	// ACK, token aa, 4.00, the request's message ID, no payload
	if len(want) < 5 || want[0] != 0x61 || want[1] != 0x80 || want[2] != 0x12 || want[3] != 0x34 || bytes.IndexByte(want[5:], 0xff) >= 0 {
		t.Fatalf("answer to an unknown endpoint % x, want a 4.00 ACK without payload", want)
	}
	for _, c := range cases {
		if !bytes.Equal(answers[c.endpoint], want) {
			t.Errorf("answer for %s % x, for an unknown endpoint % x", c.endpoint, answers[c.endpoint], want)
		}
	}
	counts := map[string]uint64{causeUnknownEndpoint: 3, causePSKWithoutDTLS: 3, causeIncomplete: 6}
	out := logs.String()
	for cause, n := range counts {
		if got := refused.Count(cause); got != n {
			t.Errorf("%s counted %d times, want %d", cause, got, n)
		}
		if got := strings.Count(out, "cause="+cause); got != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", cause, got, out)
		}
	}
	if !strings.Contains(out, "endpoint=psk-p") || !strings.Contains(out, "asks for bootstrap over DTLS") {
		t.Errorf("the log does not name the endpoint and the reason:\n%s", out)
	}
}

// TestBootstrapWrongKey: a handshake with the wrong key fails, and
// nothing else happens.
func TestBootstrapWrongKey(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.DTLS.HandshakeTimeout = time.Second })
	id := ts.device(t, tenant, map[string]any{
		"endpointId": "psk-w", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK",
		"lwm2mPskId": "psk-w-id", "bootstrapPskId": "psk-w-bs",
	}, []byte{1}, []byte{0x11, 0x22})
	c := newClient(t, "1.1")
	if err := c.handshake(ts.srv.SecureAddr(), "psk-w-bs", []byte{0x11, 0x23}, 3*time.Second); err == nil {
		t.Fatal("a handshake with a wrong key completed")
	}
	if evs := ts.events(t, tenant, id); len(evs) != 0 {
		t.Errorf("events after a failed handshake: %+v", evs)
	}
	// The server drops the records it cannot authenticate; the handshake
	// fails when its timeout ends it.
	testbound.Until(t, 5*time.Second, "the server's failed handshake", func() bool { return ts.srv.Stats().DTLSHandshakeFailures > 0 })
	if st := ts.srv.Stats(); st.Requests != 0 || st.DTLSSessions != 0 {
		t.Errorf("stats = %+v, want failed handshakes and no request", st)
	}
}

// TestBootstrapSupersededAndBusy: with room for one session, a second
// device is answered 5.03 while the first runs; the first device asking
// again replaces its own stalled session, which records its failure
// before the new session starts.
func TestBootstrapSupersededAndBusy(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxSessions = 1; c.RequestTimeout = 5 * time.Second })
	id := ts.device(t, tenant, map[string]any{"endpointId": "again", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)
	ts.device(t, tenant, map[string]any{"endpointId": "waiting", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)

	a := newClient(t, "1.1")
	a.ignore = 1
	a.dialPlain(ts.srv.Addr())
	if code, _, err := a.request("ep=again"); err != nil || code != codes.Changed {
		t.Fatalf("first request: %v %v", code, err)
	}
	testbound.Until(t, 5*time.Second, "the first device's Discover", func() bool { return len(a.seen()) > 0 })

	b := newClient(t, "1.1")
	b.dialPlain(ts.srv.Addr())
	code, diag, err := b.request("ep=waiting")
	if err != nil {
		t.Fatalf("second device: %v", err)
	}
	assertEqual(t, "second device's answer", code, codes.ServiceUnavailable)
	if !strings.Contains(diag, "too many") {
		t.Errorf("diagnostic %q", diag)
	}

	if code, _, err := a.request("ep=again"); err != nil || code != codes.Changed {
		t.Fatalf("repeated request: %v %v", code, err)
	}
	a.waitFinished(t)
	types, evs := ts.waitEvents(t, tenant, id, TypeEnd)
	assertSlice(t, "events", types, []string{TypeStart, TypeFailure, TypeStart, TypeDelete, TypeDelete, TypeWrite, TypeWrite, TypeEnd})
	if r, _ := fragment(evs[1])["reason"].(string); !strings.Contains(r, "superseded") {
		t.Errorf("failure reason %q does not say it was superseded", r)
	}
	if st := ts.srv.Stats(); st.Busy != 1 || st.Finished != 1 || st.Failed != 1 {
		t.Errorf("stats = %+v, want 1 busy, 1 finished, 1 failed", st)
	}
}

// TestBootstrapTimeout: a device that stops answering fails the session
// after the request timeout, naming the step.
func TestBootstrapTimeout(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestTimeout = 500 * time.Millisecond })
	id := ts.device(t, tenant, map[string]any{"endpointId": "mute", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)
	c := newClient(t, "1.1")
	c.ignore = 1
	c.dialPlain(ts.srv.Addr())
	if code, _, err := c.request("ep=mute"); err != nil || code != codes.Changed {
		t.Fatalf("bootstrap request: %v %v", code, err)
	}
	types, evs := ts.waitEvents(t, tenant, id, TypeFailure)
	assertSlice(t, "events", types, []string{TypeStart, TypeFailure})
	f := fragment(evs[1])
	assertEqual(t, "step", f["step"], any("discover"))
	if r, _ := f["reason"].(string); !strings.Contains(r, "no answer within") {
		t.Errorf("reason %q does not say the device did not answer", r)
	}
}

// TestBootstrapShutdown: stopping the server ends a running session,
// which records why, and Serve returns without waiting for the device.
func TestBootstrapShutdown(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestTimeout = time.Minute })
	id := ts.device(t, tenant, map[string]any{"endpointId": "late", "lwm2mServerUri": "coap://lwm2m.example.com:5783", "securityMode": "NO_SEC"}, nil, nil)
	c := newClient(t, "1.1")
	c.ignore = 1
	c.dialPlain(ts.srv.Addr())
	if code, _, err := c.request("ep=late"); err != nil || code != codes.Changed {
		t.Fatalf("bootstrap request: %v %v", code, err)
	}
	testbound.Until(t, 5*time.Second, "the session's Discover", func() bool { return len(c.seen()) > 0 })
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("serve took %v to return", d)
	}
	types, evs := ts.waitEvents(t, tenant, id, TypeFailure)
	assertSlice(t, "events", types, []string{TypeStart, TypeFailure})
	if r, _ := fragment(evs[1])["reason"].(string); !strings.Contains(r, "stopped") {
		t.Errorf("reason %q does not say the server stopped", r)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{}, "addr: empty"},
		{"secure port without keys", Config{Addr: ":0", SecureAddr: ":0"}, "keys: nil"},
		{"negative timeout", Config{Addr: ":0", RequestTimeout: -time.Second}, "requestTimeout"},
		{"negative sessions", Config{Addr: ":0", MaxSessions: -1}, "maxSessions"},
		{"tiny messages", Config{Addr: ":0", MaxMessageSize: 10}, "maxMessageSize"},
		{"negative request burst", Config{Addr: ":0", RequestBurst: -1}, "requestBurst: -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.cfg, NewStoreHooks(nil, nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestBootstrapIncompleteOverDTLS: a device that authenticated but whose
// parameters cannot configure it is answered 4.00, and the refusal is
// recorded on it.
func TestBootstrapIncompleteOverDTLS(t *testing.T) {
	ts := startServer(t, nil)
	id := ts.device(t, tenant, map[string]any{
		"endpointId": "psk-i", "lwm2mServerUri": "coaps://lwm2m.example.com:5784", "securityMode": "PSK", "bootstrapPskId": "psk-i-bs",
	}, nil, []byte{0x42})
	c := newClient(t, "1.1")
	c.dialSecure(ts.srv.SecureAddr(), "psk-i-bs", []byte{0x42})
	code, diag, err := c.request("ep=psk-i")
	if err != nil {
		t.Fatalf("bootstrap request: %v", err)
	}
	assertEqual(t, "answer", code, codes.BadRequest)
	assertEqual(t, "diagnostic", diag, "bootstrap account incomplete")
	types, evs := ts.waitEvents(t, tenant, id, TypeFailure)
	assertSlice(t, "events", types, []string{TypeFailure})
	f := fragment(evs[0])
	assertEqual(t, "step", f["step"], any("request"))
	assertEqual(t, "code", f["code"], any("4.00"))
	if r, _ := f["reason"].(string); !strings.Contains(r, "lwm2mPskId missing") {
		t.Errorf("reason %q does not name the missing parameter", r)
	}
}
