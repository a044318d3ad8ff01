package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/app"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// `import devices` against a running agent: what operators see, and the
// exit status scripts rely on.
func TestImportDevices(t *testing.T) {
	a := startTestAgent(t, false)

	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	bad := filepath.Join(dir, "bad.csv")
	_ = os.WriteFile(good, []byte("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode\n"+
		"m1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;m1;coap://h:5783;NO_SEC\n"), 0o600)
	_ = os.WriteFile(bad, []byte("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode\n"+
		"m2;c8y_Id;weak;c8y_lwm2m;m2;coap://h:5783;NO_SEC\n"), 0o600)

	run := func(file string) (string, error) {
		cmd := importCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"devices", file, "--url", "http://" + a.HTTPAddr.String(), "--password", "Admin-pass-1234!", "--timeout", "30s"})
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		err := cmd.ExecuteContext(cctx)
		return out.String(), err
	}
	out, err := run(good)
	if err != nil || !strings.Contains(out, "1 lines, 1 devices created, 0 updated, 0 failed") {
		t.Errorf("good file: %v\n%s", err, out)
	}
	out, err = run(bad)
	if err == nil || !strings.Contains(out, "line 2 (m2): CREDENTIALS") {
		t.Errorf("bad file: %v\n%s", err, out)
	}
}

// `shell` finds a device by its endpoint, runs the command and prints what
// the device answered.
func TestShellCommand(t *testing.T) {
	a := startTestAgent(t, true)
	sim, err := simulator.New(simulator.Config{Server: a.CoAPAddr.String(), Prefix: "cli", Version: "1.1"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(sctx) }()
	defer func() { scancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); sim.Registered() != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("simulated device did not register")
		}
	}
	run := func(args ...string) (string, error) {
		cmd := shellCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append(args, "--url", "http://"+a.HTTPAddr.String(), "--password", "Admin-pass-1234!", "--timeout", "20s"))
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	var out string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		// the device's c8y_Id exists as soon as it registered; its state may lag
		if out, err = run("cli-0", "read /3/0/0"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(out, "/3/0/0 (Manufacturer) = lwm2m-agent") {
		t.Errorf("shell read: %v\n%s", err, out)
	}
	if _, err := run("cli-0", "write /3/0/0 nope"); err == nil || !strings.Contains(err.Error(), "4.05") {
		t.Errorf("shell write to a read-only resource: %v, want the device's 4.05", err)
	}
	if _, err := run("cli-0", "raed /3/0"); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("malformed command: %v", err)
	}
}

// startTestAgent runs an agent on loopback ports with a fresh embedded
// store (admin password Admin-pass-1234!) until the test ends.
func startTestAgent(t *testing.T, autoRegister bool) *app.Agent {
	t.Helper()
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	cfg.AutoRegister = autoRegister
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := app.Start(ctx, cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = wait() })
	return a
}

// `--version` and `version` print the same line.
func TestVersionFlag(t *testing.T) {
	run := func(args ...string) string {
		root := rootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	flag, cmd := run("--version"), run("version")
	if flag != cmd || !strings.HasPrefix(flag, "lwm2m-agent ") || strings.TrimSpace(flag) == "lwm2m-agent" {
		t.Errorf("--version %q, version %q", flag, cmd)
	}
}

// A refused login says which variables hold the credentials, instead of a
// bare 401.
func TestShellUnauthorized(t *testing.T) {
	a := startTestAgent(t, true)
	for _, tc := range []struct {
		name, password, want string
	}{
		{"no password", "", "no password given for management/admin: set LWM2M_AGENT_PASSWORD"},
		{"wrong password", "Wrong-pass-1234!", "the API refused user management/admin with the password given: check LWM2M_AGENT_PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LWM2M_AGENT_PASSWORD", "")
			cmd := shellCmd()
			cmd.SetOut(&bytes.Buffer{})
			cmd.SetArgs([]string{"sim-0", "read /3/0", "--url", "http://" + a.HTTPAddr.String(), "--password", tc.password, "--timeout", "20s"})
			err := cmd.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want 401 and %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "neither a managed object id") {
				t.Errorf("a 401 reads as an unknown device: %v", err)
			}
		})
	}
}

// A command for a device that is not registered says at once that the
// operation waits, and in the end that it stays PENDING, with its ID.
func TestShellDeviceOffline(t *testing.T) {
	a := startTestAgent(t, false)
	imp := importCmd()
	imp.SetOut(&bytes.Buffer{})
	file := filepath.Join(t.TempDir(), "d.csv")
	_ = os.WriteFile(file, []byte("ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode\n"+
		"offline-1;c8y_Id;Secret-pass-1234!;c8y_lwm2m;offline-1;coap://h:5783;NO_SEC\n"), 0o600)
	imp.SetArgs([]string{"devices", file, "--url", "http://" + a.HTTPAddr.String(), "--password", "Admin-pass-1234!"})
	if err := imp.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	cmd := shellCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"offline-1", "read /3/0", "--url", "http://" + a.HTTPAddr.String(), "--password", "Admin-pass-1234!", "--timeout", "1s"})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stays PENDING: device offline-1 is not registered (offline); it is sent at the device's next Register or Update") ||
		strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(errOut.String(), "is PENDING: device offline-1 is not registered (offline); waiting") {
		t.Errorf("no note while waiting: %q", errOut.String())
	}
}

func TestPendingReason(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	window := func(last time.Time, awake time.Duration) func() (time.Time, time.Duration) {
		return func() (time.Time, time.Duration) { return last, awake }
	}
	for _, tc := range []struct {
		name       string
		connection string
		registered bool
		window     func() (time.Time, time.Duration)
		want       string
	}{
		{"never registered", "", false, nil, "is not registered (offline)"},
		{"de-registered", "DISCONNECTED", true, nil, "is not registered (offline)"},
		{"always online", "CONNECTED", true, window(now.Add(-time.Hour), 0), ""},
		{"awake", "CONNECTED", true, window(now.Add(-time.Second), 10*time.Second), ""},
		{"asleep", "CONNECTED", true, window(now.Add(-time.Minute), 10*time.Second),
			"is asleep (it listens 10s after each Register or Update; the last was at 2026-01-02T03:03:05Z)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pendingReason(tc.connection, tc.registered, tc.window, now); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// `health` is the container's health check: 0 for an agent that answers
// UP, an error for an address where none listens.
func TestHealthCommand(t *testing.T) {
	a := startTestAgent(t, false)
	run := func(args ...string) (string, error) {
		cmd := healthCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	_, port, _ := strings.Cut(a.HTTPAddr.String(), ":")
	t.Setenv("LWM2M_AGENT_HTTP_ADDR", ":"+port) // as a container sets it: every interface
	if out, err := run(); err != nil || out != "UP\n" {
		t.Errorf("health of the configured agent: %q %v", out, err)
	}
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	if _, err := run("--url", "http://"+addr, "--timeout", "2s"); err == nil {
		t.Errorf("health of %s, where nothing listens: no error", addr)
	}
	if out, err := run("--ready"); err != nil || out != "UP\n" {
		t.Errorf("readiness of the started agent: %q %v", out, err)
	}
	a.Drain()
	if out, err := run("--ready"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("readiness of a draining agent: %q %v, want an error with 503", out, err)
	}
	if out, err := run(); err != nil || out != "UP\n" {
		t.Errorf("health of a draining agent: %q %v, want UP: it is alive", out, err)
	}
}
