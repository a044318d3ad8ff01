package api

import (
	"slices"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
)

func TestClaimsRepeated(t *testing.T) {
	dev := func(line int, id, psk, bs, extPSK string) registry.Device {
		return registry.Device{Line: line, ID: id, PSKID: psk, BootstrapPSKID: bs, ExternalLwM2MPSKID: extPSK}
	}
	tests := []struct {
		name    string
		in      []registry.Device
		kept    []int    // lines
		reasons []string // of the refused lines, in order
	}{
		{name: "distinct claims", in: []registry.Device{dev(2, "a", "a-id", "a-bs", "a-id"), dev(3, "b", "b-id", "", "")}, kept: []int{2, 3}},
		{name: "no claims at all", in: []registry.Device{dev(2, "a", "", "", ""), dev(3, "b", "", "", "")}, kept: []int{2, 3}},
		{name: "one identity as server and bootstrap identity of two devices", in: []registry.Device{dev(2, "a", "x", "", ""), dev(3, "b", "", "x", "")}, kept: []int{2, 3}},
		{name: "repeated server identity", in: []registry.Device{dev(2, "a", "x", "", ""), dev(3, "b", "y", "", ""), dev(4, "c", "x", "", "")},
			kept: []int{2, 3}, reasons: []string{`lwm2m psk_id "x" already appears on line 2`}},
		{name: "every repeat of a line named", in: []registry.Device{dev(2, "a", "x", "z", "e"), dev(5, "c", "x", "z", "e")},
			kept: []int{2}, reasons: []string{`lwm2m psk_id "x" already appears on line 2; bootstrap psk_id "z" already appears on line 2; external-c8y_Lwm2mPskId "e" already appears on line 2`}},
		{name: "a refused line claims nothing", in: []registry.Device{dev(2, "a", "x", "", ""), dev(3, "b", "x", "w", ""), dev(4, "c", "", "w", "")},
			kept: []int{2, 4}, reasons: []string{`lwm2m psk_id "x" already appears on line 2`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kept, failed := claimsRepeated(tc.in)
			var lines []int
			for _, d := range kept {
				lines = append(lines, d.Line)
			}
			var reasons []string
			for _, f := range failed {
				reasons = append(reasons, f.FailureReason)
			}
			if !slices.Equal(lines, tc.kept) || !slices.Equal(reasons, tc.reasons) {
				t.Errorf("kept %v refused %q, want %v %q", lines, reasons, tc.kept, tc.reasons)
			}
		})
	}
}
