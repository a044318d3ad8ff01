package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// acceptOfRead reads /3/0 and returns the Accept the device saw.
func acceptOfRead(t *testing.T, s *Server, d *device, ep string) message.MediaType {
	t.Helper()
	if _, err := s.Read(context.Background(), ep, node.InstancePath(3, 0)); err != nil {
		t.Fatalf("read: %v", err)
	}
	r, ok := d.lastRequest("/3/0")
	if !ok {
		t.Fatal("the device saw no read of /3/0")
	}
	return r.accept
}

func TestSetFormatOverridesRegistration(t *testing.T) {
	s, h, d := registered(t, Config{}, "fmt")
	if got := acceptOfRead(t, s, d, "fmt"); got != message.MediaType(codec.TLV) {
		t.Fatalf("before: accept %v, want TLV (the registration's ct)", got)
	}
	if err := s.SetFormat("fmt", codec.SenMLJSON); err != nil {
		t.Fatal(err)
	}
	if got := acceptOfRead(t, s, d, "fmt"); got != message.MediaType(codec.SenMLJSON) {
		t.Fatalf("after SetFormat: accept %v, want SenML JSON", got)
	}
	if f, err := s.Format("fmt"); err != nil || f != codec.SenMLJSON {
		t.Fatalf("Format = %v, %v", f, err)
	}
	p := node.ResourcePath(1, 0, 1)
	if err := s.Write(context.Background(), "fmt", p, []node.Record{{Path: p, Value: node.Int(300)}}, true); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.lastRequest("/1/0/1"); r.format != message.MediaType(codec.SenMLJSON) {
		t.Fatalf("write in %v, want SenML JSON", r.format)
	}
	if err := s.ClearFormat("fmt"); err != nil {
		t.Fatal(err)
	}
	if got := acceptOfRead(t, s, d, "fmt"); got != message.MediaType(codec.TLV) {
		t.Fatalf("after ClearFormat: accept %v, want TLV again", got)
	}

	if err := s.SetFormat("nobody", codec.TLV); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	if err := s.SetFormat("fmt", codec.LinkFmt); !errors.Is(err, codec.ErrUnsupported) {
		t.Fatalf("link format: %v", err)
	}

	// What Authorize says of a device that registers again is kept.
	h.mu.Lock()
	h.formats = map[string]codec.Format{"fmt": codec.LwM2MJSON}
	h.mu.Unlock()
	if res, _ := d.register([]string{"ep=fmt", "lt=300", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		t.Fatalf("register again: %v", res.code)
	}
	if e := h.wait(t, "registered", 2*time.Second); !e.reg.HasSerialization || e.reg.Serialization != codec.LwM2MJSON {
		t.Fatalf("registration: serialization %v (set %v)", e.reg.Serialization, e.reg.HasSerialization)
	}
	if got := acceptOfRead(t, s, d, "fmt"); got != message.MediaType(codec.LwM2MJSON) {
		t.Fatalf("after a new Register: accept %v, want LwM2M JSON", got)
	}
}

func TestWriteFormat(t *testing.T) {
	s, _, d := registered(t, Config{}, "wf")
	p := node.ResourcePath(1, 0, 5)
	bin := []byte{0xde, 0xad, 0x00, 0xbe, 0xef}
	tests := []struct {
		name string
		f    codec.Format
		want []byte
	}{
		{"opaque", codec.Opaque, bin},
		{"tlv", codec.TLV, append([]byte{0xc5, 0x05}, bin...)},
		{"text", codec.Text, []byte("3q0Avu8=")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.WriteFormat(context.Background(), "wf", tt.f, p, []node.Record{{Path: p, Value: node.Opaque(bin)}}, true); err != nil {
				t.Fatal(err)
			}
			r, _ := d.lastRequest("/1/0/5")
			if r.code != codes.PUT || r.format != message.MediaType(tt.f) || !bytes.Equal(r.body, tt.want) {
				t.Fatalf("request %v in %v: %x, want %v %x", r.code, r.format, r.body, tt.f, tt.want)
			}
		})
	}
	// the device's own format is unchanged
	if f, _ := s.Format("wf"); f != codec.TLV {
		t.Fatalf("format after WriteFormat: %v", f)
	}
}

// An LwM2M 1.0 device that declares its JSON (ct=11543) is read in JSON
// but written and created in TLV, which every 1.0 client takes; once a
// serialization is set, writes use it, JSON in the 1.0 specification's
// shape.
func TestV10DeclaredJSONWrites(t *testing.T) {
	s, h := startServer(t, Config{})
	d := newDevice(t, s.Addr())
	links := `</>;rt="oma.lwm2m";ct=11543,</1/0>,</3/0>,</3303/0>`
	if res, _ := d.register([]string{"ep=v10json", "lt=300"}, links); res.code != codes.Created {
		t.Fatalf("register answered %v", res.code)
	}
	h.wait(t, "registered", 2*time.Second)
	ctx := context.Background()
	if got := acceptOfRead(t, s, d, "v10json"); got != message.MediaType(codec.LwM2MJSON) {
		t.Fatalf("read: accept %v, want LwM2M JSON (declared)", got)
	}

	p := node.ResourcePath(1, 0, 1)
	write := func() request {
		t.Helper()
		if err := s.Write(ctx, "v10json", p, []node.Record{{Path: p, Value: node.Int(300)}}, true); err != nil {
			t.Fatal(err)
		}
		r, _ := d.lastRequest("/1/0/1")
		return r
	}
	if r := write(); r.format != message.MediaType(codec.TLV) || !bytes.Equal(r.body, []byte{0xc2, 0x01, 0x01, 0x2c}) {
		t.Fatalf("default write: %v %x, want TLV c201012c", r.format, r.body)
	}
	if _, err := s.Create(ctx, "v10json", node.InstancePath(3303, 4), nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.lastRequest("/3303"); r.format != message.MediaType(codec.TLV) || !bytes.Equal(r.body, []byte{0x00, 0x04}) {
		t.Fatalf("empty create: %v %x, want TLV 0004 (an empty instance 4)", r.format, r.body)
	}

	if err := s.SetFormat("v10json", codec.LwM2MJSON); err != nil {
		t.Fatal(err)
	}
	if r := write(); r.format != message.MediaType(codec.LwM2MJSON) || string(r.body) != `{"bn":"/1/0/","e":[{"n":"1","v":300}]}` {
		t.Fatalf("JSON write: %v %s", r.format, r.body)
	}
	if _, err := s.Create(ctx, "v10json", node.InstancePath(3303, 4), []node.Record{{Path: node.ResourcePath(3303, 4, 5700), Value: node.Float(1.5)}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.lastRequest("/3303"); r.format != message.MediaType(codec.LwM2MJSON) || string(r.body) != `{"bn":"/3303/","e":[{"n":"4/5700","v":1.5}]}` {
		t.Fatalf("JSON create: %v %s", r.format, r.body)
	}
	// Text cannot carry an instance: creates fall back to TLV.
	if err := s.SetFormat("v10json", codec.Text); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "v10json", node.InstancePath(3303, 4), nil); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.lastRequest("/3303"); r.format != message.MediaType(codec.TLV) {
		t.Fatalf("create with text set: %v, want TLV", r.format)
	}
}
