package lwm2m

import (
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestEncodePathList(t *testing.T) {
	tests := []struct {
		name   string
		format codec.Format
		paths  []node.Path
		want   string
	}{
		// [{0: "/3/0/0"}]
		{"senml cbor one", codec.SenMLCBOR, []node.Path{node.ResourcePath(3, 0, 0)}, "81a100662f332f302f30"},
		// [{0: "/1"}, {0: "/3303/0/5700"}]
		{"senml cbor two", codec.SenMLCBOR, []node.Path{node.ObjectPath(1), node.ResourcePath(3303, 0, 5700)},
			"82a100622f31a1006c2f333330332f302f35373030"},
		{"senml json", codec.SenMLJSON, []node.Path{node.ResourcePath(3, 0, 0), node.InstancePath(1, 0)},
			hex.EncodeToString([]byte(`[{"n":"/3/0/0"},{"n":"/1/0"}]`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodePathList(tt.format, tt.paths)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tt.want {
				t.Fatalf("got %x, want %s", got, tt.want)
			}
		})
	}
	if _, err := encodePathList(codec.TLV, []node.Path{node.Root}); err == nil {
		t.Fatal("TLV path list accepted")
	}
	if _, err := encodePathList(codec.SenMLCBOR, nil); err == nil {
		t.Fatal("empty path list accepted")
	}
}

func TestComposite(t *testing.T) {
	s, h, d := registered(t, Config{}, "comp")
	ctx := context.Background()
	paths := []node.Path{node.ResourcePath(3, 0, 0), node.ResourcePath(3, 0, 9)}
	isFetch := func(r request) bool { return r.code == codes.FETCH }

	recs, err := s.ReadComposite(ctx, "comp", paths)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Value.Str != "Open Mobile Alliance" || recs[1].Value.Int != 87 {
		t.Fatalf("records = %+v", recs)
	}
	r, _ := d.last(isFetch)
	want, _ := encodePathList(codec.SenMLCBOR, paths)
	if r.format != message.MediaType(codec.SenMLCBOR) || string(r.body) != string(want) || r.observe != -1 {
		t.Fatalf("fetch = %+v", r)
	}

	err = s.WriteComposite(ctx, "comp", []node.Record{{Path: node.ResourcePath(1, 0, 1), Value: node.Int(60)}, {Path: node.ResourcePath(3, 0, 14), Value: node.String("+01")}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = d.last(func(r request) bool { return r.code == codes.IPATCH })
	got, err := codec.Decode(codec.SenMLCBOR, node.Root, r.body, nil)
	if err != nil || len(got) != 2 || got[1].Path != node.ResourcePath(3, 0, 14) {
		t.Fatalf("iPATCH payload → %+v, %v", got, err)
	}

	if _, err := s.ObserveComposite(ctx, "comp", paths); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.last(isFetch); r.observe != 0 {
		t.Fatalf("observe-composite observe = %d", r.observe)
	}
	d.senml = true
	if err := d.notify(3, false, "composite"); err != nil {
		t.Fatal(err)
	}
	if e := h.wait(t, "values", 2*time.Second); e.observed != node.Root || len(e.recs) != 1 || e.recs[0].Value.Str != "composite" {
		t.Fatalf("notification = %+v", e)
	}
	if err := s.CancelObserveComposite(ctx, "comp", []node.Path{paths[1], paths[0]}); err != nil {
		t.Fatal(err)
	}
	if r, _ := d.last(isFetch); r.observe != 1 || string(r.body) != string(want) {
		t.Fatalf("cancel = %+v", r)
	}
	if n := len(s.Observations("comp")); n != 0 {
		t.Fatalf("%d observations left", n)
	}
}
