package registry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// examplesDir is the repository's folder of example registration files,
// which the README's quickstart uses too.
func examplesDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join("..", "..", "examples")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the repository's examples: %v", err)
	}
	return dir
}

func parseFile(t *testing.T, name string) Result {
	t.Helper()
	f, err := os.Open(filepath.Join(examplesDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := ParseCSV(f, Options{})
	if err != nil {
		t.Fatalf("ParseCSV(%s): %v", name, err)
	}
	return res
}

func ptr[T any](v T) *T { return &v }

func TestExampleNoSec(t *testing.T) {
	res := parseFile(t, "devices-nosec.csv")
	if len(res.Failed) != 0 {
		t.Fatalf("failed lines: %+v", res.Failed)
	}
	if len(res.Devices) != 2 {
		t.Fatalf("got %d devices, want 2", len(res.Devices))
	}
	d := res.Devices[0]
	if d.ID != "nosec_device" || d.Line != 2 || d.AwakeTime != nil || *d.RegistrationLifetime != 300 ||
		d.BindingMode != "UQ" || d.SecurityMode != SecurityNoSec || !d.Shell || !d.Agent || d.GenericUI != "{}" ||
		d.ServerURI != "coap://127.0.0.1:5783" || d.Credentials != "Secret-pass-1234!" || d.BinaryDeliveryEncoding != EncodingOpaque {
		t.Errorf("nosec_device: %+v", d)
	}
	s := res.Devices[1]
	if s.ID != "nosec_sleepy" || s.Line != 3 || s.AwakeTime == nil || *s.AwakeTime != 5000*time.Millisecond ||
		s.RegistrationLifetime == nil || *s.RegistrationLifetime != 60 || s.BindingMode != "UQ" {
		t.Errorf("nosec_sleepy: %+v", s)
	}
	if len(res.IgnoredColumns) != 0 {
		t.Errorf("ignored columns %v", res.IgnoredColumns)
	}
}

func TestExamplePSK(t *testing.T) {
	res := parseFile(t, "devices-psk.csv")
	if len(res.Failed) != 0 || len(res.Devices) != 1 {
		t.Fatalf("devices %d, failed %+v", len(res.Devices), res.Failed)
	}
	d := res.Devices[0]
	wantKey := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	wantBS := slices.Clone(wantKey)
	slices.Reverse(wantBS)
	if d.SecurityMode != SecurityPSK || d.PSKID != "psk_device_id" || !bytes.Equal(d.PSKKey, wantKey) ||
		d.BootstrapPSKID != "psk_device_bs" || !bytes.Equal(d.BootstrapPSKKey, wantBS) ||
		d.ExternalLwM2MPSKID != "psk_device_id" || d.ExternalBootstrapPSKID != "psk_device_bs" ||
		d.GenerateBootstrapServerConfig == nil || !*d.GenerateBootstrapServerConfig ||
		d.SecurityInstanceOffset == nil || *d.SecurityInstanceOffset != 0 ||
		d.LwM2MShortServerID == nil || *d.LwM2MShortServerID != 1 || d.ServerURI != "coaps://127.0.0.1:5784" {
		t.Errorf("psk_device: %+v", d)
	}
}

// TestExampleAllFields reads the example that has every column the format
// knows: none may be ignored, and each must reach the device.
func TestExampleAllFields(t *testing.T) {
	res := parseFile(t, "devices-all-fields.csv")
	if len(res.Failed) != 0 || len(res.Devices) != 2 {
		t.Fatalf("devices %d, failed %+v", len(res.Devices), res.Failed)
	}
	if len(res.IgnoredColumns) != 0 {
		t.Errorf("ignored columns %v", res.IgnoredColumns)
	}
	data, err := os.ReadFile(filepath.Join(examplesDir(t), "devices-all-fields.csv"))
	if err != nil {
		t.Fatal(err)
	}
	header := strings.Split(strings.SplitN(string(data), "\n", 2)[0], ";")
	if len(header) != len(fieldNames) {
		t.Errorf("the example has %d columns, the format knows %d", len(header), len(fieldNames))
	}
	d := res.Devices[0]
	v := reflect.ValueOf(d)
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch name {
		case "ServerPublicKey": // certificates are not served: PSK only
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("meter_0001: %s is not set by the example", name)
		}
	}
	if d.AwakeTime == nil || *d.AwakeTime != time.Minute || d.BootstrapShortServerID == nil || *d.BootstrapShortServerID != 100 ||
		d.RequestTimeout == nil || *d.RequestTimeout != 30*time.Second || d.BinaryDeliveryEncoding != EncodingTLV || d.FwUpdateURL != "http://127.0.0.1:8000/firmware/" {
		t.Errorf("meter_0001: %+v", d)
	}
}

func TestExampleBad(t *testing.T) {
	res := parseFile(t, "devices-bad.csv")
	var good []int
	for _, d := range res.Devices {
		if d.ID != "ok_device" {
			t.Errorf("line %d (%s) accepted", d.Line, d.ID)
		}
		good = append(good, d.Line)
	}
	if !reflect.DeepEqual(good, []int{2, 10}) {
		t.Errorf("good lines %v, want [2 10]", good)
	}
	want := []struct {
		line   int
		id     string
		reason string
	}{
		{3, "weak_password", CredentialsRule},
		{4, "endpoint_mismatch", `endpoint id "other_name" must equal ID "endpoint_mismatch"`},
		{5, "psk_without_key", "lwm2m psk_key is missing: securityMode PSK needs it"},
		{6, "psk_bad_hex", "lwm2m psk_key is not hexadecimal: only 0-9 and a-f are allowed"},
		{7, "nosec_with_key", "securityMode NO_SEC must not carry keys, but lwm2m psk_id, lwm2m psk_key are given"},
		{8, "bad_mode", `securityMode "RPK_MAYBE" must be NO_SEC or PSK`},
		{9, "wrong_type", `TYPE "c8y_mqtt" must be c8y_lwm2m`},
		{11, "", "ID is missing; endpoint id is missing"},
	}
	if len(res.Failed) != len(want) {
		t.Fatalf("failed %d lines, want %d: %+v", len(res.Failed), len(want), res.Failed)
	}
	for i, w := range want {
		got := res.Failed[i]
		if got.Line != w.line || got.DeviceID != w.id || got.Reason() != w.reason {
			t.Errorf("failed[%d] = line %d id %q reason %q; want line %d id %q reason %q",
				i, got.Line, got.DeviceID, got.Reason(), w.line, w.id, w.reason)
		}
	}
}

const hdr = "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode"
const okLine = "dev1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;dev1;coap://h:5783;NO_SEC"

// withCols builds a file whose header has the mandatory columns plus extra
// ones, and one line of okLine's values plus vals.
func withCols(extraHdr, vals string) string {
	return hdr + ";" + extraHdr + "\n" + okLine + ";" + vals + "\n"
}

func pskLine(extraHdr, vals string) string {
	return hdr + ";lwm2m psk_id;lwm2m psk_key;" + extraHdr + "\n" +
		"dev1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;dev1;coaps://h:5784;PSK;id1;00ff;" + vals + "\n"
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		opts    Options
		reason  string // joined reasons of the only failed line; "" for success
		check   func(t *testing.T, d Device)
		ignored []string
	}{
		{name: "minimal", in: hdr + "\n" + okLine + "\n", check: func(t *testing.T, d Device) {
			if d.ID != "dev1" || d.Line != 2 || d.BinaryDeliveryEncoding != EncodingOpaque || d.Shell || d.Agent {
				t.Errorf("%+v", d)
			}
		}},
		{name: "bom crlf and blank lines", in: "\ufeff" + hdr + "\r\n\r\n" + okLine + "\r\n\r\n", check: func(t *testing.T, d Device) {
			if d.ID != "dev1" || d.Line != 3 || d.SecurityMode != SecurityNoSec {
				t.Errorf("%+v", d)
			}
		}},
		{name: "comma separator", in: strings.ReplaceAll(hdr+"\n"+okLine+"\n", ";", ","), check: func(t *testing.T, d Device) {
			if d.ServerURI != "coap://h:5783" {
				t.Errorf("%+v", d)
			}
		}},
		{name: "quoted separator and quote", in: withCols("NAME", `"a;b ""c"", d"`), check: func(t *testing.T, d Device) {
			if d.Name != `a;b "c", d` {
				t.Errorf("name %q", d.Name)
			}
		}},
		{name: "header spellings and spaces", in: " id ; idType;Credentials;type; ENDPOINTID ;lwm2mServerUri;SECURITY_MODE;Lwm2m_Psk_Id\n" + okLine + ";\n"},
		{name: "unknown columns ignored", in: withCols("colour;size", "red;3"), ignored: []string{"colour", "size"}},
		{name: "all optional fields", in: pskLine(
			"NAME;SHELL;c8y_GenericUi;com_cumulocity_model_Agent;awakeTimeRegistrationParameter;serverPublicKey;generateBootstrapServerConfig;securityInstanceOffset;bootstrapShortServerId;lwm2mShortServerId;registrationLifetime;defaultMinimumPeriod;defaultMaximumPeriod;bindingMode;notificationIfDisabled;disableTimeout;binaryDeliveryEncoding;lwm2mRequestTimeout;bootstrap psk_id;bootstrap psk_key;fwUpdateDeliveryMethod;fwUpdateSupportedDeviceProtocol;fwUpdateResetMechanism;fwUpdateURL",
			`Dev;0;"{""a"":1}";false;0;pk;TRUE;2;100;65534;86400;10;60;U;false;86400;tlv;30000;bs1;0102;BOTH;COAPS;PACKAGE_URI;https://fw.example/x.bin`),
			check: func(t *testing.T, d Device) {
				want := Device{ID: "dev1", IDType: "c8y_Id", Credentials: "Secret-pass-1234!", Name: "Dev", Type: "c8y_lwm2m",
					GenericUI: `{"a":1}`, EndpointID: "dev1", ServerURI: "coaps://h:5784", SecurityMode: SecurityPSK,
					AwakeTime: ptr(time.Duration(0)), ServerPublicKey: "pk", GenerateBootstrapServerConfig: ptr(true),
					SecurityInstanceOffset: ptr(2), BootstrapShortServerID: ptr(100), LwM2MShortServerID: ptr(65534),
					RegistrationLifetime: ptr(86400), DefaultMinimumPeriod: ptr(10), DefaultMaximumPeriod: ptr(60),
					BindingMode: "U", NotificationIfDisabled: ptr(false), DisableTimeout: ptr(86400), BinaryDeliveryEncoding: EncodingTLV,
					RequestTimeout: ptr(30 * time.Second), PSKID: "id1", PSKKey: []byte{0, 0xff}, BootstrapPSKID: "bs1", BootstrapPSKKey: []byte{1, 2},
					FwUpdateDeliveryMethod: "BOTH", FwUpdateSupportedDeviceProtocol: "COAPS", FwUpdateResetMechanism: "PACKAGE_URI",
					FwUpdateURL: "https://fw.example/x.bin", Line: 2}
				if !reflect.DeepEqual(d, want) {
					t.Errorf("got  %+v\nwant %+v", d, want)
				}
			}},
		{name: "bootstrapShortServerId 0 out of range", in: withCols("bootstrapShortServerId", "0"), reason: "bootstrapShortServerId 0 must be between 1 and 65534"},
		{name: "unknown encoding means opaque", in: withCols("binaryDeliveryEncoding", "CBOR"), check: func(t *testing.T, d Device) {
			if d.BinaryDeliveryEncoding != EncodingOpaque {
				t.Errorf("encoding %q", d.BinaryDeliveryEncoding)
			}
		}},
		{name: "shell true agent 1", in: withCols("SHELL;com_cumulocity_model_Agent", "true;1"), check: func(t *testing.T, d Device) {
			if !d.Shell || !d.Agent {
				t.Errorf("%+v", d)
			}
		}},

		{name: "ipv6 server uri", in: strings.Replace(hdr+"\n"+okLine, "coap://h:5783", "coap://[::1]:5783", 1), check: func(t *testing.T, d Device) {
			if d.ServerURI != "coap://[::1]:5783" {
				t.Errorf("uri %q", d.ServerURI)
			}
		}},
		{name: "trailing separator in header and line", in: hdr + ";\n" + okLine + ";\n"},
		{name: "server uri opaque", in: strings.Replace(hdr+"\n"+okLine, "coap://h:5783", "coap:h", 1), reason: `lwm2m server uri "coap:h" must be a URL like coap://host:port`},
		{name: "wrong field count", in: hdr + "\n" + okLine + ";extra\n", reason: "has 8 fields, the header has 7"},
		{name: "bare quote", in: hdr + "\n" + `dev1;c8y_Id;Sec"ret-pass-1234!;c8y_lwm2m;dev1;coap://h:5783;NO_SEC` + "\n", reason: `not valid CSV: bare " in non-quoted-field`},
		{name: "idtype", in: strings.Replace(hdr+"\n"+okLine, "c8y_Id", "c8y_Serial", 1), reason: `IDTYPE "c8y_Serial" must be c8y_Id`},
		{name: "missing fields", in: hdr + "\n;;;;;;\n", reason: "ID is missing; IDTYPE is missing; CREDENTIALS is missing; TYPE is missing; endpoint id is missing; lwm2m server uri is missing; securityMode is missing"},
		{name: "credentials short", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "Sh0rt!x", 1), reason: CredentialsRule},
		{name: "credentials no special", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "Secretpass1234", 1), reason: CredentialsRule},
		{name: "credentials no upper", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "secret-pass-1234!", 1), reason: CredentialsRule},
		{name: "credentials no digit", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "Secret-pass-!!!!", 1), reason: CredentialsRule},
		{name: "credentials too long", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "Secret-pass-1234!"+strings.Repeat("x", 56), 1), reason: "CREDENTIALS: must be at most 72 bytes, this is 73"},
		{name: "credentials longest", in: strings.Replace(hdr+"\n"+okLine, "Secret-pass-1234!", "Secret-pass-1234!"+strings.Repeat("x", 55), 1)},
		{name: "server uri scheme", in: strings.Replace(hdr+"\n"+okLine, "coap://h:5783", "http://h:5783", 1), reason: `lwm2m server uri "http://h:5783" must start with coap:// or coaps://`},
		{name: "server uri no host", in: strings.Replace(hdr+"\n"+okLine, "coap://h:5783", "coap://:5783", 1), reason: `lwm2m server uri "coap://:5783" must be a URL like coap://host:port`},
		{name: "server uri bad port", in: strings.Replace(hdr+"\n"+okLine, "coap://h:5783", "coap://h:99999", 1), reason: `lwm2m server uri "coap://h:99999" has an invalid port`},
		{name: "psk on plain uri", in: strings.Replace(pskLine("NAME", "x"), "coaps://", "coap://", 1), reason: `lwm2m server uri "coap://h:5784" must start with coaps:// for securityMode PSK`},
		{name: "nosec on coaps uri", in: strings.Replace(hdr+"\n"+okLine, "coap://", "coaps://", 1), reason: `lwm2m server uri "coaps://h:5783" must start with coap:// for securityMode NO_SEC`},
		{name: "psk missing id", in: strings.Replace(pskLine("NAME", "x"), ";id1;", ";;", 1), reason: "lwm2m psk_id is missing: securityMode PSK needs it"},
		{name: "psk odd hex", in: strings.Replace(pskLine("NAME", "x"), ";00ff;", ";00f;", 1), reason: "lwm2m psk_key is not hexadecimal: it has an odd number of digits"},
		{name: "psk bootstrap needed", in: pskLine("generateBootstrapServerConfig", "true"), reason: "bootstrap psk_id is missing: a PSK device with a bootstrap account needs it; bootstrap psk_key is missing: a PSK device with a bootstrap account needs it"},
		{name: "psk bootstrap id without key", in: pskLine("bootstrap psk_id", "bs"), reason: "bootstrap psk_key is missing: a PSK device with a bootstrap account needs it"},
		{name: "psk bootstrap bad hex", in: pskLine("bootstrap psk_id;bootstrap psk_key", "bs;xyz0"), reason: "bootstrap psk_key is not hexadecimal: only 0-9 and a-f are allowed"},
		{name: "nosec with bootstrap key", in: withCols("bootstrap psk_key", "00"), reason: "securityMode NO_SEC must not carry keys, but bootstrap psk_key is given"},
		{name: "integer with space", in: withCols("registrationLifetime", `"6 0"`), reason: `registrationLifetime "6 0" is not a whole number`},
		{name: "integer float", in: withCols("registrationLifetime", "60.5"), reason: `registrationLifetime "60.5" is not a whole number`},
		{name: "integer plus sign", in: withCols("registrationLifetime", "+60"), reason: `registrationLifetime "+60" is not a whole number`},
		{name: "integer overflow", in: withCols("registrationLifetime", "99999999999999999999"), reason: `registrationLifetime "99999999999999999999" is not a whole number`},
		{name: "lifetime zero", in: withCols("registrationLifetime", "0"), reason: "registrationLifetime 0 must be 1 or more"},
		{name: "negative period", in: withCols("defaultMinimumPeriod", "-1"), reason: "defaultMinimumPeriod -1 must be 0 or more"},
		{name: "negative awake time", in: withCols("awakeTimeRegistrationParameter", "-5"), reason: "awakeTimeRegistrationParameter -5 must be 0 or more"},
		{name: "min above max", in: withCols("defaultMinimumPeriod;defaultMaximumPeriod", "61;60"), reason: "defaultMinimumPeriod 61 must not be above defaultMaximumPeriod 60"},
		{name: "short server id too large", in: withCols("lwm2mShortServerId", "65535"), reason: "lwm2mShortServerId 65535 must be between 1 and 65534"},
		{name: "security instance offset leaves no ID for the bootstrap account", in: withCols("securityInstanceOffset", "65534"), reason: "securityInstanceOffset 65534 must be between 0 and 65533"},
		{name: "same short server ids", in: withCols("lwm2mShortServerId;bootstrapShortServerId", "7;7"), reason: "bootstrapShortServerId and lwm2mShortServerId must differ, both are 7"},
		{name: "binding", in: withCols("bindingMode", "UQS"), reason: `bindingMode "UQS" must be U or UQ`},
		{name: "bool", in: withCols("notificationIfDisabled", "1"), reason: `notificationIfDisabled "1" must be true or false`},
		{name: "shell bool", in: withCols("SHELL", "yes"), reason: `SHELL "yes" must be true, false, 1 or 0`},
		{name: "generic ui json", in: withCols("c8y_GenericUi", "{"), reason: "c8y_GenericUi is not valid JSON"},
		{name: "request timeout above max", in: withCols("lwm2mRequestTimeout", "60001"), opts: Options{MaxRequestTimeout: time.Minute}, reason: "lwm2mRequestTimeout 60001 ms is above the maximum of 60000 ms"},
		{name: "request timeout at max", in: withCols("lwm2mRequestTimeout", "60000"), opts: Options{MaxRequestTimeout: time.Minute}, check: func(t *testing.T, d Device) {
			if *d.RequestTimeout != time.Minute {
				t.Errorf("timeout %v", *d.RequestTimeout)
			}
		}},
		{name: "request timeout zero", in: withCols("lwm2mRequestTimeout", "0"), reason: "lwm2mRequestTimeout 0 must be 1 or more"},
		{name: "fw delivery", in: withCols("fwUpdateDeliveryMethod", "push"), reason: `fwUpdateDeliveryMethod "push" must be one of PULL, PUSH, BOTH`},
		{name: "fw protocol", in: withCols("fwUpdateSupportedDeviceProtocol", "FTP"), reason: `fwUpdateSupportedDeviceProtocol "FTP" must be one of COAP, COAPS, HTTP, HTTPS`},
		{name: "fw reset", in: withCols("fwUpdateResetMechanism", "REBOOT"), reason: `fwUpdateResetMechanism "REBOOT" must be one of PACKAGE, PACKAGE_URI`},
		{name: "fw url", in: withCols("fwUpdateURL", "ftp://x/y"), reason: `fwUpdateURL "ftp://x/y" must start with http:// or https:// or coap:// or coaps://`},
		{name: "several problems together", in: withCols("registrationLifetime;bindingMode", "x;Q"), reason: `registrationLifetime "x" is not a whole number; bindingMode "Q" must be U or UQ`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseCSV(strings.NewReader(tc.in), tc.opts)
			if err != nil {
				t.Fatalf("ParseCSV: %v", err)
			}
			if !slices.Equal(res.IgnoredColumns, tc.ignored) {
				t.Errorf("ignored %v, want %v", res.IgnoredColumns, tc.ignored)
			}
			if tc.reason != "" {
				if len(res.Failed) != 1 || len(res.Devices) != 0 {
					t.Fatalf("devices %+v failed %+v; want one failure", res.Devices, res.Failed)
				}
				if got := res.Failed[0].Reason(); got != tc.reason {
					t.Errorf("reason\n got %q\nwant %q", got, tc.reason)
				}
				if res.Failed[0].Line != 2 {
					t.Errorf("line %d, want 2", res.Failed[0].Line)
				}
				return
			}
			if len(res.Failed) != 0 || len(res.Devices) != 1 {
				t.Fatalf("devices %d, failed %+v; want one device", len(res.Devices), res.Failed)
			}
			if tc.check != nil {
				tc.check(t, res.Devices[0])
			}
		})
	}
}

func TestParseMultiLine(t *testing.T) {
	// A quoted field spanning lines: the next record's line number counts
	// physical lines.
	in := hdr + ";NAME\n" + okLine + ";\"two\nlines\"\n" + strings.ReplaceAll(okLine, "dev1", "dev2") + ";x\n"
	res, err := ParseCSV(strings.NewReader(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Devices) != 2 || res.Devices[0].Name != "two\nlines" || res.Devices[1].Line != 4 {
		t.Errorf("%+v %+v", res.Devices, res.Failed)
	}
}

func TestDuplicates(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		devices []int
		failed  map[int]string
	}{
		{name: "identical repeat is accepted", lines: []string{okLine, okLine}, devices: []int{2, 3}},
		{name: "different repeat fails on the later line",
			lines:   []string{okLine, strings.Replace(okLine, "Secret-pass-1234!", "Other-pass-1234!", 1)},
			devices: []int{2}, failed: map[int]string{3: `ID "dev1" already appears on line 2 with different values`}},
		{name: "a corrected line after a failed one is accepted",
			lines:   []string{strings.Replace(okLine, "NO_SEC", "X", 1), okLine},
			devices: []int{3}, failed: map[int]string{2: `securityMode "X" must be NO_SEC or PSK`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseCSV(strings.NewReader(hdr+"\n"+strings.Join(tc.lines, "\n")), Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, d := range res.Devices {
				got = append(got, d.Line)
			}
			if !slices.Equal(got, tc.devices) {
				t.Errorf("device lines %v, want %v", got, tc.devices)
			}
			if len(res.Failed) != len(tc.failed) {
				t.Fatalf("failed %+v, want %v", res.Failed, tc.failed)
			}
			for _, f := range res.Failed {
				if tc.failed[f.Line] != f.Reason() {
					t.Errorf("line %d reason %q, want %q", f.Line, f.Reason(), tc.failed[f.Line])
				}
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		opts Options
		want error
		msg  string
	}{
		{name: "empty", in: "", want: ErrNoHeader},
		{name: "only blank lines", in: "\n\r\n\n", want: ErrNoHeader},
		{name: "not utf-8", in: hdr + "\n\xff\xfe\n", want: ErrEncoding},
		{name: "too many bytes", in: hdr + "\n" + okLine + "\n", opts: Options{MaxBytes: 10}, want: ErrTooLarge},
		{name: "too many lines", in: hdr + "\n" + okLine + "\n" + okLine + "\n", opts: Options{MaxLines: 1}, want: ErrTooLarge},
		{name: "missing columns", in: "ID;IDTYPE;CREDENTIALS\n", want: ErrMissingColumns, msg: "TYPE, endpoint id, lwm2m server uri, securityMode"},
		{name: "duplicate column", in: hdr + ";endpointId\n", want: ErrHeader, msg: `column "endpoint id" appears twice (columns 5 and 8)`},
		{name: "broken header quoting", in: `ID;"IDTYPE` + "\n", want: ErrHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCSV(strings.NewReader(tc.in), tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err %q does not name %q", err, tc.msg)
			}
		})
	}
}

func TestLineErrorReason(t *testing.T) {
	e := LineError{Line: 4, DeviceID: "d", Reasons: []string{"a is missing", "b is wrong"}}
	if e.Reason() != "a is missing; b is wrong" || e.Error() != "line 4: a is missing; b is wrong" {
		t.Errorf("%q / %q", e.Reason(), e.Error())
	}
}

func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{
		hdr + "\n" + okLine + "\n",
		pskLine("bootstrap psk_id;bootstrap psk_key;registrationLifetime", "bs;0102;60"),
		withCols("NAME", `"a;b"`),
		"\ufeff" + strings.ReplaceAll(hdr+"\r\n"+okLine, ";", ","),
		hdr + "\n" + `a;"b` + "\n",
	} {
		f.Add([]byte(s))
	}
	for _, n := range []string{"devices-nosec.csv", "devices-psk.csv", "devices-all-fields.csv", "devices-bad.csv"} {
		b, err := os.ReadFile(filepath.Join(examplesDir(f), n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseCSV(bytes.NewReader(data), Options{MaxLines: 1000})
		if err != nil {
			return
		}
		for _, le := range res.Failed {
			if len(le.Reasons) == 0 || le.Reason() == "" {
				t.Fatalf("line %d failed without a reason", le.Line)
			}
		}
		for _, d := range res.Devices {
			if d.ID == "" || d.ID != d.EndpointID || d.Line < 2 {
				t.Fatalf("invalid device accepted: %+v", d)
			}
		}
	})
}

func BenchmarkParseCSV100k(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("ID;IDTYPE;CREDENTIALS;NAME;TYPE;SHELL;c8y_GenericUi;com_cumulocity_model_Agent;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;registrationLifetime;bindingMode\n")
	for i := range 100_000 {
		fmt.Fprintf(&buf, "dev%06d;c8y_Id;Secret-pass-1234!;dev%06d;c8y_lwm2m;1;{};1;dev%06d;coaps://127.0.0.1:5784;PSK;psk%06d;000102030405060708090a0b0c0d0e0f;300;UQ\n", i, i, i, i)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := ParseCSV(bytes.NewReader(data), Options{})
		if err != nil || len(res.Devices) != 100_000 {
			b.Fatalf("err %v devices %d failed %+v", err, len(res.Devices), res.Failed[:min(3, len(res.Failed))])
		}
	}
}
