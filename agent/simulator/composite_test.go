package simulator

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

func TestDecodePathList(t *testing.T) {
	for _, tc := range []struct {
		name    string
		format  codec.Format
		payload []byte
		want    []string
		fails   bool
	}{
		{"json", codec.SenMLJSON, []byte(`[{"n":"/3/0/0"},{"n":"/3303/0"}]`), []string{"/3/0/0", "/3303/0"}, false},
		{"json base name", codec.SenMLJSON, []byte(`[{"bn":"/3/0/","n":"0"},{"n":"1"}]`), []string{"/3/0/0", "/3/0/1"}, false},
		// [{0: "/3/0/0"}, {-2: "/4/0/", 0: "2"}]
		{"cbor", codec.SenMLCBOR, []byte("\x82\xa1\x00\x66/3/0/0\xa2\x21\x65/4/0/\x00\x612"), []string{"/3/0/0", "/4/0/2"}, false},
		{"empty", codec.SenMLJSON, []byte(`[]`), nil, true},
		{"bad path", codec.SenMLJSON, []byte(`[{"n":"/3/x"}]`), nil, true},
		{"not senml", codec.TLV, []byte{0xc1, 0, 1}, nil, true},
		{"garbage", codec.SenMLCBOR, []byte{0xff}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paths, err := decodePathList(tc.format, tc.payload)
			if (err != nil) != tc.fails {
				t.Fatalf("error %v, want failure %v", err, tc.fails)
			}
			var got []string
			for _, p := range paths {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("paths %v, want %v", got, tc.want)
			}
		})
	}
}

func TestComposite(t *testing.T) {
	srv := startServer(t)
	sim := runSim(t, srv, func(c *Config) { c.NotifyInterval = 0 })
	reg := srv.reg("sim-0")
	dev := sim.Device("sim-0")
	list := []byte(`[{"n":"/3/0/0"},{"n":"/3303/0/5701"},{"n":"/9/0"}]`)

	// Read-Composite answers the paths that exist.
	r := srv.must(reg, request{code: codes.FETCH, path: "/", accept: int(codec.SenMLCBOR), format: int(codec.SenMLJSON), payload: list})
	vals := decode(t, r, "/")
	if len(vals) != 2 || vals["/3/0/0"].Str != "lwm2m-agent" || vals["/3303/0/5701"].Str != "Cel" {
		t.Errorf("read-composite: %s", fmtValues(vals))
	}

	// Write-Composite: all or nothing.
	good, _ := codec.Encode(codec.SenMLJSON, node.Root, []node.Record{
		{Path: node.MustParsePath("/3/0/14"), Value: node.String("+01:00")},
		{Path: node.MustParsePath("/3303/0/5750"), Value: node.String("lab")},
	})
	if r := srv.must(reg, request{code: codes.IPATCH, path: "/", accept: -1, format: int(codec.SenMLJSON), payload: good}); r.code != codes.Changed {
		t.Fatalf("write-composite: %v %s", r.code, r.payload)
	}
	if v, _ := dev.Value(node.MustParsePath("/3303/0/5750")); v.Str != "lab" {
		t.Errorf("after write-composite 5750 = %q", v.Str)
	}
	bad, _ := codec.Encode(codec.SenMLJSON, node.Root, []node.Record{
		{Path: node.MustParsePath("/3/0/14"), Value: node.String("+09:00")},
		{Path: node.MustParsePath("/3303/0/5700"), Value: node.Float(1)}, // read-only
	})
	if r := srv.must(reg, request{code: codes.IPATCH, path: "/", accept: -1, format: int(codec.SenMLJSON), payload: bad}); r.code != codes.MethodNotAllowed {
		t.Errorf("write-composite with a read-only value: %v", r.code)
	}
	if v, _ := dev.Value(node.MustParsePath("/3/0/14")); v.Str != "+01:00" {
		t.Errorf("a refused write-composite changed /3/0/14 to %q", v.Str)
	}

	// Observe-Composite notifies when any of its paths changes.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := reg.conn.NewFetchRequest(ctx, "/", message.MediaType(codec.SenMLJSON), bytesReader(`[{"n":"/3/0/9"},{"n":"/4/0/2"}]`))
	if err != nil {
		t.Fatal(err)
	}
	req.SetObserve(0)
	req.SetAccept(message.MediaType(codec.SenMLJSON))
	o := &observer{ready: make(chan struct{}, 1)}
	obs, err := reg.conn.DoObserve(req, o.add)
	reg.conn.ReleaseMessage(req)
	if err != nil {
		t.Fatal(err)
	}
	o.waitFor(t, 1, 3*time.Second)
	dev.SetValue(node.MustParsePath("/4/0/2"), node.Int(-99))
	got := o.waitFor(t, 2, 3*time.Second)
	vals = decode(t, got[1], "/")
	if vals["/4/0/2"].Int != -99 || vals["/3/0/9"].Type != node.TypeInteger {
		t.Errorf("composite notification: %s", fmtValues(vals))
	}
	dev.SetValue(node.MustParsePath("/3/0/0"), node.String("elsewhere")) // not observed
	time.Sleep(100 * time.Millisecond)
	if n := len(o.all()); n != 2 {
		t.Errorf("%d notifications; a change outside the paths notified", n)
	}
	_ = obs.Cancel(ctx)
}
