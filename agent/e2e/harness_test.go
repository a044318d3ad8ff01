package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/app"
	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/apitest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

const adminPassword = "e2e-Admin-pass-1!"

type harness struct {
	t     *testing.T
	agent *app.Agent
	base  string
	ctx   context.Context
}

type option func(*config.Config)

func withAutoRegister(on bool) option { return func(c *config.Config) { c.AutoRegister = on } }
func withRequestTimeout(d time.Duration) option {
	return func(c *config.Config) { c.RequestTimeout = d }
}

// startAgent runs a whole agent on loopback with a fresh embedded store.
func startAgent(t *testing.T, opts ...option) *harness {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.CoAPAddr = "127.0.0.1:0"
	cfg.CoAPSAddr = "127.0.0.1:0"
	cfg.BootstrapAddr = "127.0.0.1:0"
	cfg.BootstrapSAddr = "127.0.0.1:0"
	h, _ := runAgent(t, cfg, opts...)
	return h
}

// testConfig is the configuration of the tests' agents over dataDir:
// API on a free loopback port, auto-registration, the bundled plugins as
// processes of the built agent; no LwM2M port yet.
func testConfig(t *testing.T, dataDir string) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.BootstrapAddr, cfg.BootstrapSAddr = "", "", "", ""
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = dataDir
	cfg.AdminPassword = adminPassword
	cfg.AutoRegister = true
	cfg.RequestTimeout = 5 * time.Second
	bundledDefaults(t, &cfg)
	return cfg
}

// runAgent starts an agent with cfg changed by opts. stop stops it and
// waits; the test's end stops it too.
func runAgent(t *testing.T, cfg config.Config, opts ...option) (h *harness, stop func()) {
	t.Helper()
	for _, o := range opts {
		o(&cfg)
	}
	level := slog.LevelWarn
	if os.Getenv("E2E_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	a, wait, err := app.Start(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start agent: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := wait(); err != nil {
				t.Errorf("agent stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return &harness{t: t, agent: a, base: "http://" + a.HTTPAddr.String(), ctx: ctx}, stop
}

// simulate starts n simulated devices against the agent; they stop with
// the test.
func (h *harness) simulate(n int, mod func(*simulator.Config)) *simulator.Simulator {
	h.t.Helper()
	cfg := simulator.Config{
		Server:         h.agent.CoAPAddr.String(),
		Count:          n,
		Prefix:         strings.ReplaceAll(strings.ToLower(h.t.Name()), "/", "-"),
		Version:        "1.1",
		Lifetime:       60 * time.Second,
		NotifyInterval: 100 * time.Millisecond,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		h.t.Fatalf("simulator: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	h.t.Cleanup(func() {
		cancel()
		<-done
	})
	h.eventually(10*time.Second, func() error {
		if got := sim.Registered(); got != n {
			return fmt.Errorf("%d of %d devices registered", got, n)
		}
		return nil
	})
	return sim
}

// call makes an API request as management/admin and decodes the answer.
func (h *harness) call(method, path string, body any, out any) int {
	h.t.Helper()
	return h.callAs("management/admin", adminPassword, method, path, body, out)
}

func (h *harness) callAs(user, pass, method, path string, body any, out any) int {
	h.t.Helper()
	code, data := h.send(user, pass, method, path, body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: HTTP %d: decode %q: %v", method, path, code, data, err)
		}
	}
	return code
}

// send makes an API request with a JSON body and returns the status and
// the answer's body.
func (h *harness) send(user, pass, method, path string, body any) (int, []byte) {
	h.t.Helper()
	return apitest.Send(h.t, h.base, user, pass, method, path, body)
}

// eventually retries f until it returns nil or the time is up.
func (h *harness) eventually(d time.Duration, f func() error) {
	h.t.Helper()
	apitest.Eventually(h.t, d, f)
}

type managedObject map[string]any

func (m managedObject) str(path ...string) string {
	var cur any = map[string]any(m)
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// device finds a device by its endpoint through the identity API.
func (h *harness) device(endpoint string) managedObject {
	h.t.Helper()
	var ext struct {
		ManagedObject struct{ ID string } `json:"managedObject"`
	}
	if code := h.call("GET", "/identity/externalIds/c8y_Id/"+endpoint, nil, &ext); code != 200 {
		h.t.Fatalf("external id of %s: HTTP %d", endpoint, code)
	}
	var mo managedObject
	if code := h.call("GET", "/inventory/managedObjects/"+ext.ManagedObject.ID, nil, &mo); code != 200 {
		h.t.Fatalf("device %s: HTTP %d", ext.ManagedObject.ID, code)
	}
	return mo
}

type operation struct {
	ID            string `json:"id"`
	DeviceID      string `json:"deviceId"`
	Status        string `json:"status"`
	FailureReason string `json:"failureReason"`
	Command       struct {
		Text   string `json:"text"`
		Result string `json:"result"`
	} `json:"c8y_Command"`
}

// shell creates an operation and waits until it has ended.
func (h *harness) shell(deviceID, text string, wait time.Duration) operation {
	h.t.Helper()
	var op operation
	body := map[string]any{"deviceId": deviceID, "c8y_Command": map[string]string{"text": text}}
	if code := h.call("POST", "/devicecontrol/operations", body, &op); code != 201 {
		h.t.Fatalf("create operation %q: HTTP %d", text, code)
	}
	if op.Status != "PENDING" && op.Status != "EXECUTING" && op.Status != "SUCCESSFUL" && op.Status != "FAILED" {
		h.t.Fatalf("new operation has status %q", op.Status)
	}
	h.eventually(wait, func() error {
		if code := h.call("GET", "/devicecontrol/operations/"+op.ID, nil, &op); code != 200 {
			return fmt.Errorf("get operation: HTTP %d", code)
		}
		if op.Status != "SUCCESSFUL" && op.Status != "FAILED" {
			return fmt.Errorf("operation %q still %s", text, op.Status)
		}
		return nil
	})
	return op
}

// events lists the events of a device of a type.
func (h *harness) events(deviceID, typ string) []map[string]any {
	h.t.Helper()
	var res struct {
		Events []map[string]any `json:"events"`
	}
	if code := h.call("GET", "/event/events?pageSize=100&source="+deviceID+"&type="+typ, nil, &res); code != 200 {
		h.t.Fatalf("events: HTTP %d", code)
	}
	return res.Events
}

// objectValue reads one resource's last known value from the objects view.
func (h *harness) objectValue(deviceID, path string) (string, bool) {
	h.t.Helper()
	var view struct {
		Objects []struct {
			Instances []struct {
				Resources []struct {
					Path  string `json:"path"`
					Value any    `json:"value"`
				} `json:"resources"`
			} `json:"instances"`
		} `json:"objects"`
	}
	if code := h.call("GET", "/lwm2m/devices/"+deviceID+"/objects", nil, &view); code != 200 {
		h.t.Fatalf("objects view: HTTP %d", code)
	}
	for _, o := range view.Objects {
		for _, i := range o.Instances {
			for _, r := range i.Resources {
				if r.Path == path && r.Value != nil {
					return fmt.Sprint(r.Value), true
				}
			}
		}
	}
	return "", false
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// metrics returns the agent's /metrics page.
func (h *harness) metrics() (string, error) {
	resp, err := http.Get(h.base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/metrics: HTTP %d", resp.StatusCode)
	}
	return string(text), err
}
