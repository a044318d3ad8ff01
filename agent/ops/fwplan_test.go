package ops

import (
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
)

func TestPlanFirmware(t *testing.T) {
	all := func(string) bool { return true }
	noHTTPS := func(s string) bool { return s != "https" }
	bin := firmware.Source{BinaryID: "7"}
	httpURL := firmware.Source{URL: "http://files.example.com/fw_2.0.bin"}
	coapURL := firmware.Source{URL: "coap://files.example.com/fw_2.0.bin"}
	unknown := fwDevice{ReportedDelivery: -1}
	for _, tc := range []struct {
		name   string
		d      fwDevice
		src    firmware.Source
		def    FirmwareDefaults
		serves func(string) bool
		holds  bool
		want   fwPlan
		err    string
	}{
		{name: "nothing known: the default, pull over CoAP", d: unknown, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "coap"}},
		{name: "nothing known, over DTLS: CoAPS", d: fwDevice{ReportedDelivery: -1, Secure: true}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "coaps"}},
		{name: "default push", d: unknown, src: bin, def: FirmwareDefaults{Delivery: "PUSH"}, serves: all, holds: true,
			want: fwPlan{Method: methodPush}},
		{name: "parameters win over the report", d: fwDevice{Delivery: "PUSH", ReportedDelivery: 0}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPush}},
		{name: "reported push", d: fwDevice{ReportedDelivery: 1}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPush}},
		{name: "reported both: pull first, push after", d: fwDevice{ReportedDelivery: 2, ReportedProtocols: []int64{0, 2}}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Alternative: methodPush, Scheme: "coap"}},
		{name: "both without a common protocol: push", d: fwDevice{Delivery: "BOTH", ReportedProtocols: []int64{4}}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPush}},
		{name: "coaps not offered without DTLS", d: fwDevice{Protocol: "COAPS", ReportedDelivery: 0}, src: bin, serves: all, holds: true,
			err: "the agent serves packages over none of the protocols it supports (coaps)"},
		{name: "https when https is served", d: fwDevice{Protocol: "HTTPS", ReportedDelivery: 0}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "https"}},
		{name: "https not served", d: fwDevice{ReportedDelivery: 0, ReportedProtocols: []int64{3, 2}}, src: bin, serves: noHTTPS, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "http"}},
		{name: "an external http URL the device fetches itself", d: fwDevice{ReportedDelivery: 2, ReportedProtocols: []int64{0, 1, 2, 3}}, src: httpURL, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Alternative: methodPush, Scheme: "http"}},
		{name: "an external http URL to a CoAP-only device: the agent's copy", d: fwDevice{ReportedDelivery: 0, ReportedProtocols: []int64{0}}, src: httpURL, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "coap"}},
		{name: "an external coap URL to an http device", d: fwDevice{ReportedDelivery: 0, ReportedProtocols: []int64{2}}, src: coapURL, serves: all, holds: true,
			err: "does not support coap"},
		{name: "fwUpdateURL sets scheme and base", d: fwDevice{URL: "http://10.0.0.5:8080", ReportedDelivery: 0}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "http", Base: "http://10.0.0.5:8080"}},
		{name: "reset mechanism from the parameters", d: fwDevice{Reset: "package", ReportedDelivery: 0}, src: bin, serves: all, holds: true,
			want: fwPlan{Method: methodPull, Scheme: "coap", Reset: ResetPackage}},
		{name: "reset mechanism from the defaults", d: unknown, src: bin, def: FirmwareDefaults{Reset: ResetPackageURI, Delivery: "PUSH"}, serves: all, holds: true,
			want: fwPlan{Method: methodPush, Reset: ResetPackageURI}},
		{name: "without the firmware service: external URLs only", d: unknown, src: httpURL,
			want: fwPlan{Method: methodPull, Scheme: "http"}},
		{name: "without the firmware service: no push", d: fwDevice{Delivery: "PUSH"}, src: httpURL,
			err: "cannot push"},
		{name: "push of a coap URL", d: fwDevice{Delivery: "PUSH"}, src: coapURL, serves: all, holds: true,
			err: "cannot push coap://"},
		{name: "unknown method", d: fwDevice{Delivery: "SIDEWAYS"}, src: bin, serves: all, holds: true,
			err: "none of PULL, PUSH, BOTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := planFirmware(tc.d, tc.src, tc.def, tc.serves, tc.holds)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("planFirmware = %+v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("planFirmware = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestResetMechanism(t *testing.T) {
	for _, tc := range []struct{ set, method, want string }{
		{"", methodPush, ResetPackage},
		{"", methodPull, ResetPackageURI},
		{ResetPackageURI, methodPush, ResetPackageURI},
		{ResetPackage, methodPull, ResetPackage},
	} {
		if got := resetMechanism(tc.set, tc.method); got != tc.want {
			t.Errorf("resetMechanism(%q, %q) = %q, want %q", tc.set, tc.method, got, tc.want)
		}
	}
}
