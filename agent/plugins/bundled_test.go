package plugins_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
)

// The bundled decoders' programs run as plugin processes of the host.
func TestBundledDecoderPrograms(t *testing.T) {
	frameBin := build(t, "frame-decoder", "../..", "./decoders/frame/cmd/frame-decoder")
	cborBin := build(t, "cbor-decoder", "../..", "./decoders/cbor/cmd/cbor-decoder")
	layout := filepath.Join(t.TempDir(), "layout.json")
	if err := os.WriteFile(layout, []byte(`{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHost(t,
		plugins.Spec{Name: "frame", Kind: "decoder", Path: frameBin, Args: []string{"--config", layout}},
		plugins.Spec{Name: "cbor", Kind: "decoder", Path: cborBin, Args: []string{"--type", "c8y_Env"}},
	)
	res, err := h.Decode(context.Background(), "frame", plugins.DecodeRequest{Value: frame(-1234)})
	if err != nil || !res.Success || res.Measurements[0].Value != -12.34 || res.Measurements[0].Unit != "C" {
		t.Fatalf("frame: %+v, %v", res, err)
	}
	// {"H": 40, "T": 21.5}
	res, err = h.Decode(context.Background(), "cbor", plugins.DecodeRequest{Value: []byte{0xa2, 0x61, 0x48, 0x18, 0x28, 0x61, 0x54, 0xf9, 0x4d, 0x60}})
	if err != nil || !res.Success || len(res.Measurements) != 2 || res.Measurements[1].Value != 21.5 || res.Measurements[1].Type != "c8y_Env" {
		t.Fatalf("cbor: %+v, %v", res, err)
	}
}
