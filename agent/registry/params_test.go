package registry

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func nosecParams() map[string]any {
	return map[string]any{"endpointId": "dev1", "lwm2mServerUri": "coap://h:5783", "securityMode": "NO_SEC"}
}

func pskParams() map[string]any {
	return map[string]any{"endpointId": "dev1", "lwm2mServerUri": "coaps://h:5784", "securityMode": "PSK",
		"lwm2mPskId": "id1", "lwm2mPskKey": "00ff"}
}

func with(base map[string]any, kv ...any) map[string]any {
	out := Merge(base, nil)
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]any
		opts   Options
		reason string // the whole error text; "" for success
		check  func(t *testing.T, d Device)
	}{
		{name: "minimal", in: nosecParams(), check: func(t *testing.T, d Device) {
			if d.EndpointID != "dev1" || d.ID != "" || d.BinaryDeliveryEncoding != EncodingOpaque {
				t.Errorf("%+v", d)
			}
		}},
		{name: "json numbers and booleans", in: with(nosecParams(), "awakeTimeRegistrationParameter", json.Number("180000"),
			"registrationLifetime", float64(300), "generateBootstrapServerConfig", false, "lwm2mShortServerId", int64(1)),
			check: func(t *testing.T, d Device) {
				if *d.AwakeTime != 180*time.Second || *d.RegistrationLifetime != 300 || *d.GenerateBootstrapServerConfig || *d.LwM2MShortServerID != 1 {
					t.Errorf("%+v", d)
				}
			}},
		{name: "numbers as text, as in the file", in: with(nosecParams(), "registrationLifetime", " 60 "), check: func(t *testing.T, d Device) {
			if *d.RegistrationLifetime != 60 {
				t.Errorf("lifetime %v", *d.RegistrationLifetime)
			}
		}},
		{name: "psk with keys", in: with(pskParams(), "bootstrapPskId", "bs", "bootstrapPskKey", "0102"), check: func(t *testing.T, d Device) {
			if string(d.PSKKey) != "\x00\xff" || string(d.BootstrapPSKKey) != "\x01\x02" || d.PSKID != "id1" {
				t.Errorf("%+v", d)
			}
		}},
		{name: "nil is empty", in: with(nosecParams(), "registrationLifetime", nil), check: func(t *testing.T, d Device) {
			if d.RegistrationLifetime != nil {
				t.Errorf("lifetime %v", *d.RegistrationLifetime)
			}
		}},
		{name: "identity columns are no parameters", in: with(nosecParams(), "ID", "dev1", "CREDENTIALS", "x", "colour", "red"),
			reason: "unknown parameters CREDENTIALS, ID, colour (known: "},
		{name: "missing mandatory ones named as in JSON", in: map[string]any{},
			reason: "endpointId is missing; lwm2mServerUri is missing; securityMode is missing"},
		{name: "negative awake time", in: with(nosecParams(), "awakeTimeRegistrationParameter", json.Number("-5")),
			reason: "awakeTimeRegistrationParameter -5 must be 0 or more"},
		{name: "fraction", in: with(nosecParams(), "awakeTimeRegistrationParameter", json.Number("1.5")),
			reason: `awakeTimeRegistrationParameter "1.5" is not a whole number`},
		{name: "boolean for a number", in: with(nosecParams(), "registrationLifetime", true),
			reason: "registrationLifetime must be a whole number, not a boolean"},
		{name: "number for a string", in: with(nosecParams(), "bindingMode", json.Number("1")),
			reason: "bindingMode must be a string, not a number"},
		{name: "object for a boolean", in: with(nosecParams(), "notificationIfDisabled", map[string]any{}),
			reason: "notificationIfDisabled must be true or false, not an object"},
		{name: "request timeout above the maximum", in: with(nosecParams(), "lwm2mRequestTimeout", json.Number("60001")),
			opts: Options{MaxRequestTimeout: time.Minute}, reason: "lwm2mRequestTimeout 60001 ms is above the maximum of 60000 ms"},
		{name: "request timeout above the default maximum", in: with(nosecParams(), "lwm2mRequestTimeout", json.Number("300001")),
			reason: "lwm2mRequestTimeout 300001 ms is above the maximum of 300000 ms"},
		{name: "nosec carries keys", in: with(pskParams(), "securityMode", "NO_SEC", "lwm2mServerUri", "coap://h:5783"),
			reason: "securityMode NO_SEC must not carry keys, but lwm2mPskId, lwm2mPskKey are given"},
		{name: "psk without key", in: with(pskParams(), "lwm2mPskKey", nil),
			reason: "lwm2mPskKey is missing: securityMode PSK needs it"},
		{name: "psk key not hex", in: with(pskParams(), "lwm2mPskKey", "zz"),
			reason: "lwm2mPskKey is not hexadecimal: only 0-9 and a-f are allowed"},
		{name: "psk on coap", in: with(pskParams(), "lwm2mServerUri", "coap://h:5783"),
			reason: `lwm2mServerUri "coap://h:5783" must start with coaps:// for securityMode PSK`},
		{name: "several problems together", in: with(nosecParams(), "registrationLifetime", "x", "bindingMode", "Q", "defaultMinimumPeriod", 9, "defaultMaximumPeriod", 8),
			reason: `registrationLifetime "x" is not a whole number; defaultMinimumPeriod 9 must not be above defaultMaximumPeriod 8; bindingMode "Q" must be U or UQ`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseParams(tc.in, tc.opts)
			if tc.reason != "" {
				var pe *ParamsError
				if !errors.As(err, &pe) {
					t.Fatalf("error %v, want a *ParamsError", err)
				}
				if !strings.HasPrefix(err.Error(), tc.reason) {
					t.Errorf("reason\n got %q\nwant %q", err.Error(), tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// The file and the bootstrap resource share one set of rules: a value is
// accepted by both or refused by both, for the same reason.
func TestParamsAndFileAgree(t *testing.T) {
	values := []struct{ column, param, value string }{
		{"awakeTimeRegistrationParameter", "awakeTimeRegistrationParameter", "-1"},
		{"awakeTimeRegistrationParameter", "awakeTimeRegistrationParameter", "0"},
		{"awakeTimeRegistrationParameter", "awakeTimeRegistrationParameter", "2147483648"},
		{"registrationLifetime", "registrationLifetime", "0"},
		{"registrationLifetime", "registrationLifetime", "+60"},
		{"lwm2mShortServerId", "lwm2mShortServerId", "65535"},
		{"securityInstanceOffset", "securityInstanceOffset", "65533"},
		{"securityInstanceOffset", "securityInstanceOffset", "65534"},
		{"bindingMode", "bindingMode", "UQS"},
		{"bindingMode", "bindingMode", "U"},
		{"notificationIfDisabled", "notificationIfDisabled", "1"},
		{"generateBootstrapServerConfig", "generateBootstrapServerConfig", "TRUE"},
		{"lwm2mRequestTimeout", "lwm2mRequestTimeout", "300000"},
		{"lwm2mRequestTimeout", "lwm2mRequestTimeout", "300001"},
		{"fwUpdateURL", "fwUpdateURL", "ftp://x/y"},
		{"fwUpdateDeliveryMethod", "fwUpdateDeliveryMethod", "PUSH"},
		{"binaryDeliveryEncoding", "binaryDeliveryEncoding", "cbor"},
		{"bootstrap psk_key", "bootstrapPskKey", "00"},
	}
	for _, v := range values {
		t.Run(v.param+"="+v.value, func(t *testing.T) {
			res, err := ParseCSV(strings.NewReader(withCols(v.column, v.value)), Options{})
			if err != nil {
				t.Fatal(err)
			}
			_, perr := ParseParams(with(nosecParams(), v.param, v.value), Options{})
			fileOK := len(res.Failed) == 0
			if fileOK != (perr == nil) {
				t.Fatalf("file accepts: %v (%+v), parameters accept: %v (%v)", fileOK, res.Failed, perr == nil, perr)
			}
			if !fileOK {
				want := strings.ReplaceAll(res.Failed[0].Reason(), "bootstrap psk_key", "bootstrapPskKey")
				if perr.Error() != want {
					t.Errorf("reasons differ:\n file %q\n json %q", want, perr.Error())
				}
			}
		})
	}
}

func TestParamsRoundTrip(t *testing.T) {
	// what GET shows, with the keys PUT alone knows, parses to the same device
	in := with(pskParams(), "awakeTimeRegistrationParameter", json.Number("5000"), "bootstrapShortServerId", json.Number("0"))
	in["bootstrapShortServerId"] = json.Number("2")
	d, err := ParseParams(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := ParseParams(WithKeys(d.Params(), d.PSKKey, d.BootstrapPSKKey), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameDevice(d, d2) {
		t.Errorf("round trip changed the device:\n%+v\n%+v", d, d2)
	}
	if _, ok := d.Params()[ParamLwM2MPSKKey]; ok {
		t.Error("Params shows a key")
	}
}

func TestMerge(t *testing.T) {
	base := map[string]any{"a": 1, "b": 2}
	got := Merge(base, map[string]any{"b": nil, "c": 3})
	if len(got) != 2 || got["a"] != 1 || got["c"] != 3 {
		t.Errorf("merge: %v", got)
	}
	if len(base) != 2 || base["b"] != 2 {
		t.Errorf("base changed: %v", base)
	}
}

func TestCheckParams(t *testing.T) {
	tests := []struct {
		name   string
		in     map[string]any
		reason string
	}{
		{name: "awake time alone", in: map[string]any{"awakeTimeRegistrationParameter": json.Number("180000")}},
		{name: "zero awake time", in: map[string]any{"awakeTimeRegistrationParameter": json.Number("0")}},
		{name: "negative awake time", in: map[string]any{"awakeTimeRegistrationParameter": json.Number("-1")}, reason: "awakeTimeRegistrationParameter -1 must be 0 or more"},
		{name: "text awake time", in: map[string]any{"awakeTimeRegistrationParameter": "soon"}, reason: `awakeTimeRegistrationParameter "soon" is not a whole number`},
		{name: "too large", in: map[string]any{"awakeTimeRegistrationParameter": json.Number("2147483648")}, reason: "awakeTimeRegistrationParameter 2147483648 must be at most 2147483647"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckParams(tc.in, Options{})
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tc.reason {
				t.Errorf("error %v, want %q", err, tc.reason)
			}
		})
	}
}
