package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// builtAgent is the agent's executable, built once for the package's
// tests: the agents the tests start run their bundled plugins as this
// program re-executed in plugin mode, as a deployed agent does with
// itself (a test binary is not the agent).
var builtAgent struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// A test here runs for a minute at most (TestQueueSleepingDevices with
// its 200 devices); one still running after four is stuck, and ends the
// binary with every goroutine's stack long before go test's -timeout
// would. A test that runs longer by design says so with testbound.Bound.
func TestMain(m *testing.M) {
	code := testbound.Run(m, 4*time.Minute)
	if builtAgent.dir != "" {
		_ = os.RemoveAll(builtAgent.dir)
	}
	os.Exit(code)
}

// agentExecutable builds the agent on first use; with -short it builds
// nothing and returns "".
func agentExecutable(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		return ""
	}
	builtAgent.once.Do(func() {
		if builtAgent.dir, builtAgent.err = os.MkdirTemp("", "lwm2m-agent-e2e-"); builtAgent.err != nil {
			return
		}
		builtAgent.path = filepath.Join(builtAgent.dir, "lwm2m-agent")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", builtAgent.path, "./agent/cmd/lwm2m-agent")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			builtAgent.err = fmt.Errorf("go build the agent: %v\n%s", err, out)
		}
	})
	if builtAgent.err != nil {
		t.Fatal(builtAgent.err)
	}
	return builtAgent.path
}

// bundledDefaults makes startAgent's agents run their bundled plugins as
// processes of the built agent, the default mode; with -short, where
// nothing is built, in process.
func bundledDefaults(t *testing.T, cfg *config.Config) {
	t.Helper()
	if exe := agentExecutable(t); exe != "" {
		cfg.BundledPlugins = config.BundledProcess
		cfg.BundledPluginsExecutable = exe
		return
	}
	cfg.BundledPlugins = config.BundledInProcess
}

// The agents of the end-to-end tests (TestFunctionalitiesEndToEnd and
// TestDefaultMappings among them) run the bundled mapping and custom
// action plugins as plugin processes: /metrics shows both up, each with
// its process, and counts their calls as values are mapped.
func TestBundledPluginsAsProcesses(t *testing.T) {
	h := startAgent(t)
	if testing.Short() {
		t.Skip("bundled plugins run in process with -short")
	}
	sim := h.simulate(1, nil)
	id := h.device(sim.Endpoints()[0]).str("id")
	// object 4 goes through the custom action plugin (default mappings),
	// 3303 through the mapping plugin (a functionality)
	h.setFunctionality("management/admin", adminPassword, "3303/resources/5700",
		map[string]any{"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}})
	for _, cmd := range []string{"read /4/0", "observe /3303/0/5700"} {
		if op := h.shell(id, cmd, 10*time.Second); op.Status != "SUCCESSFUL" {
			t.Fatalf("%s: %s %s", cmd, op.Status, op.FailureReason)
		}
	}
	h.eventually(10*time.Second, func() error {
		page, err := h.metrics()
		if err != nil {
			return err
		}
		for _, p := range []struct{ name, kind string }{{"mapping", "mapping"}, {"customactions", "customaction"}} {
			labels := []string{`plugin="` + p.name + `"`, `kind="` + p.kind + `"`}
			if up, _ := metricValue(page, "lwm2m_agent_plugin_up", labels...); up != 1 {
				return fmt.Errorf("plugin %s not up", p.name)
			}
			if pid, _ := metricValue(page, "lwm2m_agent_plugin_process_id", labels...); pid <= 0 || int(pid) == os.Getpid() {
				return fmt.Errorf("plugin %s: process id %v, want a process of its own", p.name, pid)
			}
			if calls, _ := metricValue(page, "lwm2m_agent_plugin_calls_total", labels...); calls < 1 {
				return fmt.Errorf("plugin %s: %v calls", p.name, calls)
			}
			if errs, _ := metricValue(page, "lwm2m_agent_plugin_errors_total", labels...); errs != 0 {
				return fmt.Errorf("plugin %s: %v failed calls", p.name, errs)
			}
		}
		if n := len(h.measurements(id, "c8y_Temperature")); n < 2 {
			return fmt.Errorf("%d temperature measurements (%d notifications received)", n, h.agent.Server.Stats().Notifications)
		}
		if n := len(h.measurements(id, "c8y_SignalStrength")); n < 1 {
			return fmt.Errorf("%d signal strength measurements", n)
		}
		return nil
	})
}

// The mapping plugin process killed in the middle of a stream of values:
// the agent restarts it, retries the batch it lost, and every value the
// device sent becomes exactly one measurement.
func TestBundledMappingPluginKilled(t *testing.T) {
	h := startAgent(t)
	if testing.Short() {
		t.Skip("bundled plugins run in process with -short")
	}
	h.setFunctionality("management/admin", adminPassword, "3303/resources/5700", map[string]any{
		"measurement": map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"}, "autoObserve": true,
	})
	sim := h.simulate(1, func(c *simulator.Config) {
		c.NotifyInterval = 0 // the test sets the values
		c.NotifyCON = true   // none lost on the way
	})
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	dev := sim.Device(ep)
	h.eventually(10*time.Second, func() error {
		if n := len(h.measurements(id, "c8y_Temperature")); n != 1 {
			return fmt.Errorf("%d measurements of the observation's first answer", n)
		}
		return nil
	})
	pidOf := func() (pid, restarts float64) {
		page, err := h.metrics()
		if err != nil {
			t.Fatal(err)
		}
		labels := []string{`plugin="mapping"`, `kind="mapping"`}
		pid, _ = metricValue(page, "lwm2m_agent_plugin_process_id", labels...)
		restarts, _ = metricValue(page, "lwm2m_agent_plugin_restarts_total", append(labels, `reason="crash"`)...)
		return pid, restarts
	}
	pid, _ := pidOf()
	if pid <= 0 {
		t.Fatalf("mapping plugin process id %v", pid)
	}

	const n = 300
	for i := range n {
		if i == n/3 {
			if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
				t.Fatalf("kill the mapping plugin (pid %v): %v", pid, err)
			}
		}
		dev.SetValue(node.ResourcePath(3303, 0, 5700), node.Float(1000+float64(i)))
		time.Sleep(15 * time.Millisecond) // below the agent's per-peer rate limit
	}
	h.eventually(30*time.Second, func() error {
		got := map[float64]int{}
		for _, m := range h.measurements(id, "c8y_Temperature") {
			got[m.Series["c8y_Temperature.T"].Value]++
		}
		missing, twice := 0, 0
		for i := range n {
			switch got[1000+float64(i)] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		if missing > 0 || twice > 0 {
			return fmt.Errorf("of %d values, %d have no measurement and %d more than one", n, missing, twice)
		}
		return nil
	})
	newPID, restarts := pidOf()
	if restarts < 1 || newPID <= 0 || newPID == pid {
		t.Errorf("mapping plugin after the kill: process id %v (was %v), %v restarts; want it restarted", newPID, pid, restarts)
	}
	page, err := h.metrics()
	if err != nil {
		t.Fatal(err)
	}
	// the values that came while it was down waited and were sent again
	if retries, _ := metricValue(page, "lwm2m_agent_pipeline_bundled_retries_total"); retries < 1 {
		t.Errorf("%v retried calls to the bundled plugins, want some while the mapping plugin was down", retries)
	}
	if failed, _ := metricValue(page, "lwm2m_agent_pipeline_bundled_failed_total"); failed != 0 {
		t.Errorf("%v values failed in the bundled plugins", failed)
	}
	var alarms struct {
		Alarms []map[string]any `json:"alarms"`
	}
	if h.call("GET", "/alarm/alarms?source="+id+"&type=c8y_LWM2MMappingError", nil, &alarms); len(alarms.Alarms) != 0 {
		t.Errorf("mapping alarms after the restart: %v", alarms.Alarms)
	}
}
