package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// c8yClientDir holds the Node script and the package files that pin
// Cumulocity's official client.
const c8yClientDir = "testdata/c8yclient"

// installC8yClient installs the pinned @c8y/client (npm ci) into a
// directory of the test's with the script, and returns it. It skips the
// test when node or npm are missing (.ci/run installs them).
func installC8yClient(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the @c8y/client test needs Node.js and npm (.ci/run installs them: apt-get install nodejs npm)", tool)
		}
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "realtime.mjs"} {
		data, err := os.ReadFile(filepath.Join(c8yClientDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci of %s: %v\n%s", c8yClientDir, err, out)
	}
	return dir
}

// Cumulocity's official client, @c8y/client, subscribes with its
// Realtime service (BasicAuth, FetchClient, CometD underneath) to a
// device's measurements, every device's operations and the device's
// managed object, over WebSocket and over long-polling, and receives a
// measurement and an operation created and the device updated through
// the API, each as the REST API shows it.
func TestC8yClientRealtime(t *testing.T) {
	dir := installC8yClient(t)
	h := startAgent(t)
	for i, transport := range []string{"websocket", "long-polling"} {
		t.Run(transport, func(t *testing.T) {
			defer func(parent *testing.T) { h.t = parent }(h.t)
			h.t = t // the harness's failures are the subtest's
			c8yClientRun(t, h, dir, transport, fmt.Sprintf("c8y-meter-%d", i))
		})
	}
}

func c8yClientRun(t *testing.T, h *harness, dir, transport, name string) {
	var dev map[string]any
	if code := h.call("POST", "/inventory/managedObjects", map[string]any{"name": name, "c8y_IsDevice": map[string]any{}}, &dev); code != 201 {
		t.Fatalf("create device: HTTP %d", code)
	}
	id := dev["id"].(string)

	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	channels := []string{"/measurements/" + id, "/operations/" + id, "/managedobjects/" + id}
	cmd := exec.CommandContext(ctx, "node", append([]string{"realtime.mjs", h.base, "management", "admin", adminPassword, transport, "3", "90"}, channels...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	h.eventually(60*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("the client exited before subscribing: %v\n%s\n%s", err, stdout.String(), stderr.String())
		default:
		}
		if n := h.metric("lwm2m_agent_realtime_subscriptions"); n != float64(len(channels)) {
			return fmt.Errorf("%v subscriptions", n)
		}
		return nil
	})

	var m, op, mo map[string]any
	if code := h.call("POST", "/measurement/measurements", map[string]any{"source": map[string]any{"id": id}, "type": "c8y_Temperature",
		"c8y_Temperature": map[string]any{"T": map[string]any{"value": 21.5, "unit": "C"}}}, &m); code != 201 {
		t.Fatalf("measurement: HTTP %d", code)
	}
	if code := h.call("POST", "/devicecontrol/operations", map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/0"}}, &op); code != 201 {
		t.Fatalf("operation: HTTP %d", code)
	}
	if code := h.call("PUT", "/inventory/managedObjects/"+id, map[string]any{"c8y_Notes": "checked"}, &mo); code != 200 {
		t.Fatalf("update device: HTTP %d", code)
	}

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the client failed: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("the client did not end: %s\n%s", stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "transport "+transport) {
		t.Fatalf("the client's transport was not %s: %s", transport, stderr.String())
	}
	type note struct {
		Channel string `json:"channel"`
		Data    struct {
			RealtimeAction string         `json:"realtimeAction"`
			Data           map[string]any `json:"data"`
		} `json:"data"`
	}
	var got []note
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var n note
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, n)
	}
	if len(got) != 3 {
		t.Fatalf("%d notifications, want 3:\n%s", len(got), stdout.String())
	}
	// the operation is PENDING still (the device never registered) and
	// shown as GET shows it now
	var opNow map[string]any
	h.call("GET", "/devicecontrol/operations/"+op["id"].(string), nil, &opNow)
	want := []struct {
		channel, action string
		data            map[string]any
	}{
		{"/measurements/" + id, "CREATE", m},
		{"/operations/" + id, "CREATE", opNow},
		{"/managedobjects/" + id, "UPDATE", mo},
	}
	for i, w := range want {
		g := got[i]
		if g.Channel != w.channel || g.Data.RealtimeAction != w.action || !sameJSON(g.Data.Data, w.data) {
			t.Errorf("notification %d: %s %s %v\nwant %s %s %v", i, g.Data.RealtimeAction, g.Channel, g.Data.Data, w.action, w.channel, w.data)
		}
	}
}
