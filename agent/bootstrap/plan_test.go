package bootstrap

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
)

func ptr[T any](v T) *T { return &v }

func TestParseParams(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"endpointId": "ep", "lwm2mServerUri": "coap://s:5783", "securityMode": "NO_SEC"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		in      map[string]any
		want    Params
		wantErr string
	}{
		{"defaults", base(nil), Params{ServerURI: "coap://s:5783", SecurityMode: ModeNoSec, ShortServerID: 1, Lifetime: 86400, Binding: "U"}, ""},
		{"mode absent means NO_SEC", map[string]any{"lwm2mServerUri": "coap://s"}, Params{ServerURI: "coap://s", SecurityMode: ModeNoSec, ShortServerID: 1, Lifetime: 86400, Binding: "U"}, ""},
		{"store integer widths and strings", base(map[string]any{
			"securityInstanceOffset": int32(4), "lwm2mShortServerId": int64(9), "bootstrapShortServerId": "100",
			"registrationLifetime": float64(60), "defaultMinimumPeriod": 0, "defaultMaximumPeriod": "300",
			"disableTimeout": int64(5), "notificationIfDisabled": "false", "generateBootstrapServerConfig": true, "bindingMode": "UQ",
		}), Params{
			ServerURI: "coap://s:5783", SecurityMode: ModeNoSec, GenerateBootstrapServerConfig: true, SecurityInstanceOffset: 4,
			BootstrapShortServerID: ptr(uint16(100)), ShortServerID: 9, Lifetime: 60, MinPeriod: ptr(int64(0)), MaxPeriod: ptr(int64(300)),
			DisableTimeout: ptr(int64(5)), NotificationStoring: ptr(false), Binding: "UQ",
		}, ""},
		{"psk", base(map[string]any{"securityMode": "psk", "lwm2mPskId": "id", "bootstrapPskId": "bs"}),
			Params{ServerURI: "coap://s:5783", SecurityMode: ModePSK, PSKID: "id", BootstrapPSKID: "bs", ShortServerID: 1, Lifetime: 86400, Binding: "U"}, ""},
		{"empty strings are absent", base(map[string]any{"securityInstanceOffset": "", "notificationIfDisabled": ""}),
			Params{ServerURI: "coap://s:5783", SecurityMode: ModeNoSec, ShortServerID: 1, Lifetime: 86400, Binding: "U"}, ""},
		{"no server uri", map[string]any{"securityMode": "NO_SEC"}, Params{}, "lwm2mServerUri missing"},
		{"psk without identity", base(map[string]any{"securityMode": "PSK"}), Params{}, "lwm2mPskId missing"},
		{"unknown mode", base(map[string]any{"securityMode": "RPK"}), Params{}, `securityMode "RPK"`},
		{"short server id 0", base(map[string]any{"lwm2mShortServerId": 0}), Params{}, "lwm2mShortServerId 0 is not between 1 and 65534"},
		{"offset leaves no room", base(map[string]any{"securityInstanceOffset": 65534}), Params{}, "securityInstanceOffset 65534"},
		{"fractional", base(map[string]any{"registrationLifetime": 1.5}), Params{}, "not an integer"},
		{"huge float", base(map[string]any{"registrationLifetime": math.Inf(1)}), Params{}, "not an integer"},
		{"not a number", base(map[string]any{"disableTimeout": "soon"}), Params{}, `disableTimeout "soon"`},
		{"not a boolean", base(map[string]any{"generateBootstrapServerConfig": "maybe"}), Params{}, "not a boolean"},
		{"wrong type", base(map[string]any{"notificationIfDisabled": 1}), Params{}, "has type int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrIncomplete) {
					t.Fatalf("err = %v, want ErrIncomplete containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if fmt.Sprint(deref(got)) != fmt.Sprint(deref(tt.want)) {
				t.Errorf("got  %v\nwant %v", deref(got), deref(tt.want))
			}
		})
	}
}

// deref prints Params with pointed-to values rather than addresses.
func deref(p Params) string {
	s := func(v any) string {
		switch v := v.(type) {
		case *uint16:
			if v != nil {
				return fmt.Sprint(*v)
			}
		case *int64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		case *bool:
			if v != nil {
				return fmt.Sprint(*v)
			}
		}
		return "nil"
	}
	return fmt.Sprintf("%s %s %s %s gen=%v off=%d bsid=%s ssid=%d lt=%d pmin=%s pmax=%s dt=%s ns=%s b=%s",
		p.ServerURI, p.SecurityMode, p.PSKID, p.BootstrapPSKID, p.GenerateBootstrapServerConfig, p.SecurityInstanceOffset,
		s(p.BootstrapShortServerID), p.ShortServerID, p.Lifetime, s(p.MinPeriod), s(p.MaxPeriod), s(p.DisableTimeout), s(p.NotificationStoring), p.Binding)
}

// TestPlanInstanceIDs: where the Security instances go.
func TestPlanInstanceIDs(t *testing.T) {
	own := uris{plain: "coap://bs", secure: "coaps://bs"}
	tests := []struct {
		name      string
		offset    uint16
		generate  bool
		bootstrap []uint16 // the client's bootstrap instances, from Discover
		want      []string // written instances, in order
	}{
		{"1.0 defaults", 0, false, nil, []string{"/0/0", "/1/0"}},
		{"offset", 7, false, nil, []string{"/0/7", "/1/0"}},
		{"generate after the offset", 7, true, nil, []string{"/0/7", "/0/8", "/1/0"}},
		{"client bootstrap elsewhere is kept", 0, false, []uint16{3}, []string{"/0/0", "/1/0"}},
		{"client bootstrap at the offset moves the server", 0, false, []uint16{0}, []string{"/0/1", "/1/0"}},
		{"generated bootstrap replaces the client's", 0, true, []uint16{4}, []string{"/0/0", "/0/4", "/1/0"}},
		{"generated bootstrap in place at the offset", 2, true, []uint16{2}, []string{"/0/3", "/0/2", "/1/0"}},
		{"skips every taken id", 0, true, []uint16{0, 1}, []string{"/0/2", "/0/0", "/1/0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct := Account{Params: Params{ServerURI: "coap://s", SecurityMode: ModeNoSec, ShortServerID: 1, Lifetime: 60, Binding: "U",
				SecurityInstanceOffset: tt.offset, GenerateBootstrapServerConfig: tt.generate}}
			pl, err := buildPlan(acct, discovery{bootstrap: tt.bootstrap}, own)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range pl.writes {
				got = append(got, w.path.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("writes %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		acct Account
		own  uris
		want string
	}{
		{"psk without key", Account{Params: Params{ServerURI: "coaps://s", SecurityMode: ModePSK, PSKID: "id"}}, uris{}, "psk key missing"},
		{"bootstrap psk missing", Account{PSKKey: []byte{1}, Params: Params{ServerURI: "coaps://s", SecurityMode: ModePSK, PSKID: "id", GenerateBootstrapServerConfig: true}}, uris{secure: "coaps://bs"}, "bootstrap psk"},
		{"own uri not configured", Account{Params: Params{ServerURI: "coap://s", SecurityMode: ModeNoSec, GenerateBootstrapServerConfig: true}}, uris{secure: "coaps://bs"}, "plain uri is not configured"},
		{"no room for the bootstrap instance", Account{Params: Params{ServerURI: "coap://s", SecurityMode: ModeNoSec, SecurityInstanceOffset: 65534, GenerateBootstrapServerConfig: true}}, uris{plain: "coap://bs"}, "no free security instance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildPlan(tt.acct, discovery{}, tt.own)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestParseRequest(t *testing.T) {
	long := strings.Repeat("e", maxEndpointLen+1)
	tests := []struct {
		name    string
		queries []string
		want    request
		wantErr string
	}{
		{"endpoint", []string{"ep=dev-1"}, request{endpoint: "dev-1"}, ""},
		{"pct", []string{"ep=dev-1", "pct=112"}, request{endpoint: "dev-1", pct: codec.SenMLCBOR, hasPCT: true}, ""},
		{"unknown parameters ignored", []string{"lwm2m=1.1", "ep=x", "b=U", "flag"}, request{endpoint: "x"}, ""},
		{"missing ep", []string{"pct=112"}, request{}, "missing endpoint"},
		{"empty ep", []string{"ep="}, request{}, "endpoint name"},
		{"ep twice", []string{"ep=a", "ep=b"}, request{}, `parameter "ep" given twice`},
		{"ep twice same value", []string{"ep=a", "pct=112", "ep=a"}, request{}, `parameter "ep" given twice`},
		{"pct twice", []string{"ep=a", "pct=112", "pct=11542"}, request{}, `parameter "pct" given twice`},
		{"ep too long", []string{"ep=" + long}, request{}, "endpoint name"},
		{"control characters", []string{"ep=a\nb"}, request{}, "endpoint name"},
		{"invalid utf-8", []string{"ep=\xff"}, request{}, "endpoint name"},
		{"pct not a number", []string{"ep=a", "pct=cbor"}, request{}, "pct"},
		{"pct too big", []string{"ep=a", "pct=70000"}, request{}, "pct"},
		{"too many queries", slices.Repeat([]string{"x=1"}, maxQueries+1), request{}, "query options"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.queries)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, errBadRequest) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseDiscovery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    discovery
		wantErr bool
	}{
		// Core TS 1.1, 5.2.7.1, Bootstrap-Discover of "/".
		{"spec example", `</>;lwm2m=1.1,</0/0>,</0/1>;ssid=101;uri="coaps://server_1.example.com",</1/0>;ssid=101,</3/0>,</4/0>`,
			discovery{version: "1.1", security: []uint16{0, 1}, bootstrap: []uint16{0}}, false},
		{"version as a bare leading parameter", `lwm2m="1.1",</0/0>,</0/1>;ssid="101"`,
			discovery{version: "1.1", security: []uint16{0, 1}, bootstrap: []uint16{0}}, false},
		{"1.2, quoted", `</>;lwm2m="1.2", </0>, </0/3>;ssid=1, </0/9>`,
			discovery{version: "1.2", security: []uint16{3, 9}, bootstrap: []uint16{9}}, false},
		{"alternate root and resources skipped", `</lwm2m>;rt="oma.lwm2m",</0/0/1>,</1/0>;ssid=1`, discovery{}, false},
		{"empty", ``, discovery{}, false},
		{"duplicates once", `</0/2>,</0/2>`, discovery{security: []uint16{2}, bootstrap: []uint16{2}}, false},
		{"malformed", `</0/0`, discovery{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDiscovery([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error for %q: %+v", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.version != tt.want.version || !slices.Equal(got.security, tt.want.security) || !slices.Equal(got.bootstrap, tt.want.bootstrap) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteFormat(t *testing.T) {
	tests := []struct {
		name    string
		req     request
		version string
		want    codec.Format
	}{
		{"1.0", request{}, "1.0", codec.TLV},
		{"1.1", request{}, "1.1", codec.SenMLCBOR},
		{"1.2 asks for TLV", request{pct: codec.TLV, hasPCT: true}, "1.2", codec.TLV},
		{"1.1 asks for SenML JSON", request{pct: codec.SenMLJSON, hasPCT: true}, "1.1", codec.SenMLJSON},
		{"text cannot carry an instance", request{pct: codec.Text, hasPCT: true}, "1.1", codec.SenMLCBOR},
		{"unknown format", request{pct: 9999, hasPCT: true}, "1.1", codec.SenMLCBOR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeFormat(tt.req, tt.version); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"ep=dev-1", "ep=dev-1&pct=112", "pct=11542&ep=x&lwm2m=1.1", "ep=", "ep=a&ep=b", "ep=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRequest(strings.Split(s, "&"))
		if err != nil {
			return
		}
		if r.endpoint == "" || len(r.endpoint) > maxEndpointLen {
			t.Fatalf("accepted endpoint %q", r.endpoint)
		}
	})
}

func FuzzParseDiscovery(f *testing.F) {
	for _, s := range []string{
		`</>;lwm2m=1.1,</0/0>,</0/1>;ssid=101;uri="coaps://server_1.example.com",</1/0>;ssid=101,</3/0>`,
		`lwm2m="1.1",</0/0>,</0/1>;ssid="101"`,
		`</>;lwm2m="1.2", </0>, </0/3>;ssid=1, </0/9>`,
		`</0/0`, ``, `,,,`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDiscovery(b)
		if err != nil {
			return
		}
		for _, id := range d.bootstrap {
			if !slices.Contains(d.security, id) {
				t.Fatalf("bootstrap instance %d is not a security instance: %+v", id, d)
			}
		}
		if !slices.IsSorted(d.security) || !slices.IsSorted(d.bootstrap) {
			t.Fatalf("unsorted: %+v", d)
		}
		// The plan must hold whatever the client reports.
		acct := Account{Params: Params{ServerURI: "coap://s", SecurityMode: ModeNoSec, ShortServerID: 1, Binding: "U", GenerateBootstrapServerConfig: true}}
		pl, err := buildPlan(acct, d, uris{plain: "coap://bs"})
		if err != nil {
			return
		}
		if slices.Contains(d.bootstrap, pl.securityID) || pl.securityID == pl.bootstrapID {
			t.Fatalf("server security instance %d collides: %+v", pl.securityID, d)
		}
	})
}
