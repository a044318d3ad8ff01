package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// When one part of the agent cannot run, the whole agent stops and says
// why, instead of running on without it.
func TestFailingPartStopsAgent(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-pass-1234!"
	cfg.PprofAddr = busy.Addr().String()         // taken: the profiler cannot listen
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, wait, err := Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "pprof") {
			t.Errorf("agent stopped with %v, want the profiler's listen error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent kept running without one of its parts")
	}
}

// A restart with another LWM2M_AGENT_ADMIN_PASSWORD changes the stored
// one and says so; the API then takes the new password only.
func TestAdminPasswordChangedAtStart(t *testing.T) {
	dir := t.TempDir()
	start := func(password string) (string, *logbuf.Buffer, func()) {
		cfg := config.Default()
		cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "", "127.0.0.1:0"
		cfg.BootstrapAddr, cfg.BootstrapSAddr = "", ""
		cfg.DataDir = dir
		cfg.AdminPassword = password
		cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
		logs := &logbuf.Buffer{}
		ctx, cancel := context.WithCancel(context.Background())
		a, wait, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		return "http://" + a.HTTPAddr.String(), logs, func() { cancel(); _ = wait() }
	}
	status := func(base, password string) int {
		req, _ := http.NewRequest("GET", base+"/inventory/managedObjects", nil)
		req.SetBasicAuth("management/admin", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const changed = "password of management/admin changed to the configured one"

	base, logs, stop := start("First-pass-1234!")
	if c := status(base, "First-pass-1234!"); c != 200 {
		t.Fatalf("first password: HTTP %d", c)
	}
	stop()
	if strings.Contains(logs.String(), changed) {
		t.Errorf("first start says the password changed")
	}

	base, logs, stop = start("Second-pass-1234!")
	if c := status(base, "Second-pass-1234!"); c != 200 {
		t.Errorf("new password: HTTP %d", c)
	}
	if c := status(base, "First-pass-1234!"); c != 401 {
		t.Errorf("old password: HTTP %d, want 401", c)
	}
	stop()
	if !strings.Contains(logs.String(), changed) {
		t.Errorf("the change is not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "Second-pass-1234!") || strings.Contains(logs.String(), "First-pass-1234!") {
		t.Errorf("a password is in the log")
	}

	// without a configured password the stored one stays
	base, _, stop = start("")
	defer stop()
	if c := status(base, "Second-pass-1234!"); c != 200 {
		t.Errorf("start without a password: the stored one answers HTTP %d", c)
	}
}

// An agent logging everything at debug level writes no PSK key, credential or password while devices with
// keys are imported and read.
func TestDebugLogsHoldNoSecrets(t *testing.T) {
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.BootstrapAddr, cfg.BootstrapSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = "Admin-secret-1234!"
	cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
	var logs logbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	base := "http://" + a.HTTPAddr.String()
	csv := "ID;IDTYPE;CREDENTIALS;TYPE;endpoint id;lwm2m server uri;securityMode;lwm2m psk_id;lwm2m psk_key;bootstrap psk_id;bootstrap psk_key\n" +
		"keyed;c8y_Id;Device-secret-5678!;c8y_lwm2m;keyed;coaps://127.0.0.1:5784;PSK;keyed-id;5ec2e7a1b2c3d4e5f60718293a4b5c6d;keyed-bs;feedfacecafebeef0011223344556677\n"
	req, _ := http.NewRequest("POST", base+"/devicecontrol/bulkNewDeviceRequests", strings.NewReader(csv))
	req.SetBasicAuth("management/admin", "Admin-secret-1234!")
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("import: HTTP %d", resp.StatusCode)
	}
	cancel()
	_ = wait()
	text := logs.String()
	for _, secret := range []string{"5ec2e7a1b2c3d4e5f60718293a4b5c6d", "XsLnobLD1OX2BxgpOktcbQ", "feedfacecafebeef0011223344556677", "/u36zsr+vu8AESIzRFVmdw", "Device-secret-5678!", "Admin-secret-1234!"} {
		if strings.Contains(strings.ToLower(text), strings.ToLower(secret)) {
			t.Errorf("the agent's debug log holds the secret %q", secret)
		}
	}
}

// The API's links start with the external URL, or with the address the
// agent listens on, whatever Host a client sends.
func TestAPILinks(t *testing.T) {
	tests := []struct {
		name     string
		external string
		want     func(httpAddr net.Addr) string
	}{
		{"external url", "https://agent.example.com/lwm2m", func(net.Addr) string { return "https://agent.example.com/lwm2m" }},
		{"listen address", "", func(a net.Addr) string { return "http://" + a.String() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.CoAPAddr, cfg.CoAPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "", "127.0.0.1:0"
			cfg.BootstrapAddr, cfg.BootstrapSAddr = "", ""
			cfg.DataDir = t.TempDir()
			cfg.AdminPassword = "Admin-pass-1234!"
			cfg.ExternalURL = tt.external
			cfg.BundledPlugins = config.BundledInProcess // this test binary is not the agent
			ctx, cancel := context.WithCancel(context.Background())
			a, wait, err := Start(ctx, cfg, nil)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			defer func() { cancel(); _ = wait() }()
			req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr.String()+"/inventory/managedObjects", nil)
			req.Host = "evil.example"
			req.SetBasicAuth("management/admin", "Admin-pass-1234!")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Self string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("HTTP %d: %v", resp.StatusCode, err)
			}
			if want := tt.want(a.HTTPAddr) + "/inventory/managedObjects?"; !strings.HasPrefix(body.Self, want) {
				t.Fatalf("self = %q, want it to start with %s", body.Self, want)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8080}, "10.0.0.5:8080"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "[::1]:8080"},
	}
	for _, tt := range tests {
		if got := reachable(tt.addr); got != tt.want {
			t.Errorf("reachable(%v) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}
