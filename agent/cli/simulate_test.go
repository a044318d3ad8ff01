package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	piondtls "github.com/pion/dtls/v3"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

const csvHeader = "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;bootstrap psk_id;bootstrap psk_key\n"

// csvLines: a NO_SEC device, a PSK device with bootstrap keys, a PSK
// device without, and a line the format refuses (a key that is not hex).
var csvLines = csvHeader +
	"plain;c8y_Id;Secret-pass-1234!;c8y_lwm2m;plain;coap://10.0.0.1:5783;NO_SEC;;;;\n" +
	"psk1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;psk1;coaps://10.0.0.1:5784;PSK;psk1-id;00112233;psk1-bs;44556677\n" +
	"psk2;c8y_Id;Secret-pass-1234!;c8y_lwm2m;psk2;coaps://10.0.0.1:5784;PSK;psk2-id;8899aabb;;\n" +
	"badkey;c8y_Id;Secret-pass-1234!;c8y_lwm2m;badkey;coaps://10.0.0.1:5784;PSK;badkey;zz;;\n"

func TestDevicesFromCSV(t *testing.T) {
	base := simulator.Config{Server: "127.0.0.1:5783"}
	for _, tc := range []struct {
		name string
		opts csvOptions
		want []simulator.DeviceConfig
	}{
		{"factory bootstrapped", csvOptions{}, []simulator.DeviceConfig{
			{Endpoint: "plain", ServerURI: "coap://10.0.0.1:5783"},
			{Endpoint: "psk1", ServerURI: "coaps://10.0.0.1:5784", PSKIdentity: "psk1-id", PSK: []byte{0, 0x11, 0x22, 0x33}},
			{Endpoint: "psk2", ServerURI: "coaps://10.0.0.1:5784", PSKIdentity: "psk2-id", PSK: []byte{0x88, 0x99, 0xaa, 0xbb}},
		}},
		{"bootstrap", csvOptions{bootstrap: true, bootstrapURI: "coap://bs:5683", bootstrapSecure: "coaps://bs:5684"}, []simulator.DeviceConfig{
			{Endpoint: "plain", BootstrapURI: "coap://bs:5683"},
			{Endpoint: "psk1", BootstrapURI: "coaps://bs:5684", BootstrapPSKIdentity: "psk1-bs", BootstrapPSK: []byte{0x44, 0x55, 0x66, 0x77}},
			// No bootstrap key of its own: the LwM2M PSK opens the session.
			{Endpoint: "psk2", BootstrapURI: "coaps://bs:5684", BootstrapPSKIdentity: "psk2-id", BootstrapPSK: []byte{0x88, 0x99, 0xaa, 0xbb}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs, problems, err := devicesFromCSV(strings.NewReader(csvLines), tc.opts, base)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || !strings.HasPrefix(problems[0], "line 5 (badkey): ") || !strings.Contains(problems[0], "psk_key") {
				t.Errorf("problems %q, want line 5 with its psk_key", problems)
			}
			if len(devs) != len(tc.want) {
				t.Fatalf("devices %+v, want %+v", devs, tc.want)
			}
			for i := range devs {
				g, w := devs[i], tc.want[i]
				if g.Endpoint != w.Endpoint || g.ServerURI != w.ServerURI || g.PSKIdentity != w.PSKIdentity || !bytes.Equal(g.PSK, w.PSK) ||
					g.BootstrapURI != w.BootstrapURI || g.BootstrapPSKIdentity != w.BootstrapPSKIdentity || !bytes.Equal(g.BootstrapPSK, w.BootstrapPSK) {
					t.Errorf("device %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
	if _, _, err := devicesFromCSV(strings.NewReader("no;header\n"), csvOptions{}, base); err == nil {
		t.Error("a file without the mandatory columns was accepted")
	}
}

func TestParseSuites(t *testing.T) {
	got, err := parseSuites("CBC_SHA256, TLS_PSK_WITH_AES_128_CCM_8")
	if err != nil {
		t.Fatal(err)
	}
	if want := []piondtls.CipherSuiteID{piondtls.TLS_PSK_WITH_AES_128_CBC_SHA256, piondtls.TLS_PSK_WITH_AES_128_CCM_8}; !slices.Equal(got, want) {
		t.Errorf("suites %v, want %v", got, want)
	}
	if _, err := parseSuites("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"); err == nil {
		t.Error("a certificate suite was accepted")
	}
}

// runSimulate runs the simulate command and returns what it printed.
func runSimulate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := simulateCmd()
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// closedPort is a loopback UDP port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	_ = c.Close()
	return addr
}

// A PSK device whose server does not answer fails its handshake; the
// command lists it and the skipped line, and exits with an error.
func TestSimulateCSVFailures(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "devices.csv")
	data := csvHeader +
		"lonely;c8y_Id;Secret-pass-1234!;c8y_lwm2m;lonely;coaps://" + closedPort(t) + ";PSK;lonely-id;00112233;;\n" +
		"broken;c8y_Id;weak;c8y_lwm2m;broken;coap://127.0.0.1:5783;NO_SEC;;;;\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSimulate(t, "--csv", file, "--handshake-timeout", "500ms", "--until-registered", "--stats-every", "1h")
	if err == nil || !strings.Contains(err.Error(), "1 of 1 devices failed") {
		t.Errorf("error %v, want the failed device counted", err)
	}
	for _, want := range []string{
		"skipped line 3 (broken): CREDENTIALS",
		"devices.csv: 1 devices, 1 lines skipped",
		"1 devices: 0 bootstrapped, 0 registered, 1 failed",
		`failed lonely: register: dtls handshake failed with coaps://`,
		`as PSK identity "lonely-id"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestSimulateCSVNothingValid(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(file, []byte(csvHeader+"x;c8y_Id;weak;c8y_lwm2m;x;coap://h:1;NO_SEC;;;;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runSimulate(t, "--csv", file)
	if err == nil || !strings.Contains(err.Error(), "no device to simulate (1 lines skipped)") {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(out, "skipped line 2 (x)") {
		t.Errorf("output %q", out)
	}
	if _, err := runSimulate(t, "--csv", filepath.Join(t.TempDir(), "missing.csv")); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := runSimulate(t, "--csv", file, "--cipher-suites", "RC4"); err == nil || !strings.Contains(err.Error(), "RC4") {
		t.Errorf("bad cipher suite: %v", err)
	}
}

// Flags that act only when given show no default in the help.
func TestSimulateHelpShowsNoInactiveDefaults(t *testing.T) {
	f := simulateCmd().Flags()
	for _, name := range []string{"bootstrap", "bootstrap-secure", "cipher-suites", "csv", "objects"} {
		if d := f.Lookup(name).DefValue; d != "" {
			t.Errorf("--%s shows the default %q, but acts only when given", name, d)
		}
	}
}

// A bad objects file stops the command before any device starts, with
// every problem of the file.
func TestSimulateObjectsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "objects.json")
	body := `{"ddf":["../../examples/simulator/frame-sensor.xml"],"resources":{"/32050/0/0":{"hex":"zz"},"/32050/0/1":{"counter":{"start":0,"step":1}}}}`
	ddf, err := filepath.Abs("../../examples/simulator/frame-sensor.xml")
	if err != nil {
		t.Fatal(err)
	}
	body = strings.Replace(body, "../../examples/simulator/frame-sensor.xml", ddf, 1)
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runSimulate(t, "--server", closedPort(t), "--objects", file)
	want := "objects " + file + `: /32050/0/0: hex: "zz" is not hex` + "\n/32050/0/1: every: needed, for the values to change"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
	// objects of DDF files alone: the device has them, and registers
	a := startTestAgent(t, true)
	out, err := runSimulate(t, "--server", a.CoAPAddr.String(), "--prefix", "ddf", "--ddf", ddf, "--until-registered", "--stats-every", "1h")
	if err != nil || !strings.Contains(out, "1 devices: 0 bootstrapped, 1 registered, 0 failed") {
		t.Fatalf("--ddf: %v\n%s", err, out)
	}
}

// The firmware flags reach the simulator, which refuses what cannot work
// before any device starts.
func TestSimulateFirmwareFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--fw-delivery", "mail"}, `firmware delivery: "mail" is not pull, push or both`},
		{[]string{"--fw-protocols", "coap,ftp"}, `firmware protocols: "ftp" is not one of coap, coaps, http, https`},
		{[]string{"--fw-fail", "12"}, "firmware fail: 12 is not an Update Result from 2 to 9"},
		{[]string{"--fw-block-size", "100"}, "firmware block size: 100 is not a power of two from 16 to 1024"},
	} {
		_, err := runSimulate(t, append([]string{"--server", closedPort(t)}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// SIGUSR1 makes every simulated device send an Update at once, paced by
// --update-rate: what load runs use to wake a whole fleet.
func TestSimulateUpdateOnSignal(t *testing.T) {
	a := startTestAgent(t, true)
	cmd := simulateCmd()
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	cmd.SetOut(io.Discard)
	cmd.SetArgs([]string{"--server", a.CoAPAddr.String(), "--prefix", "usr1", "--count", "3", "--notify-interval", "0",
		"--lifetime", "3600s", "--update-rate", "1000", "--stats-every", "1h"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("3 devices registered", func() bool { return a.Server.Stats().Registers >= 3 })
	// the handler is installed before the devices start
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	waitFor("3 Updates after SIGUSR1", func() bool { return a.Server.Stats().Updates >= 3 })
}
