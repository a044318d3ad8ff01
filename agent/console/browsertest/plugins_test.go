package browsertest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/console/browsertest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testproc"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// latestPayload is Temperature Readings' Latest Payload (10268/0/6029),
// an opaque resource the frame decoder decodes.
var latestPayload = node.ResourcePath(10268, 0, 6029)

// The Plugins page shows a decoder that nobody answers as down, with the
// values that wait for it; once the decoder service starts they drain,
// and the page shows it up with nothing waiting.
func TestPluginsDecodeBacklog(t *testing.T) {
	ddf := sharedFile(t, "lwm2m-registry", "10268.xml")
	bin := filepath.Join(t.TempDir(), "frame-decoder")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, "./decoders/frame/cmd/frame-decoder")
	build.Dir = "../../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the frame decoder: %v\n%s", err, out)
	}
	dir := t.TempDir()
	layout := filepath.Join(dir, "temperature.json")
	plugins := filepath.Join(dir, "plugins.json")
	svc := testproc.FreeTCPAddr(t)
	write(t, layout, `{"fields":[{"measurement":"c8y_Temperature","series":"T","offset":0,"type":"int16","scale":0.01,"unit":"C"}]}`)
	write(t, plugins, fmt.Sprintf(`{"plugins":[{"name":"frame-svc","kind":"decoder","address":%q,"timeout":"2s","minBackoff":"50ms","maxBackoff":"500ms"}]}`, svc))

	a := browsertest.StartAgent(t, func(c *config.Config) {
		c.PluginsConfig = plugins
		c.DecodeMaxBackoff = 500 * time.Millisecond
	})
	postDDF(t, a, ddf)
	if code := a.Admin("PUT", "/lwm2m/deviceprotocols/10268/resources/6029/functionalities", map[string]any{"customAction": "decoder:frame-svc"}, nil); code != 200 {
		t.Fatalf("set the decoder: HTTP %d", code)
	}
	sim := a.Simulate(1, "frames", func(c *simulator.Config) { c.NotifyInterval = 0 })
	dev := sim.Device(sim.Endpoints()[0])
	ctx, cancel := context.WithTimeout(context.Background(), browsertest.Wait)
	defer cancel()
	const sent = 5
	for i := range sent {
		dev.SetValue(latestPayload, node.Opaque(binary.LittleEndian.AppendUint16(nil, uint16(2100+i))))
		if err := dev.Send(ctx, latestPayload); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}

	b := browsertest.AdminBrowser(t, a, "/plugins")
	row := `tr[data-decoder="frame-svc"]`
	b.WaitText(`tr[data-plugin="frame-svc"] td.plugin-status`, "DOWN")
	b.WaitText(row+" td.waiting", fmt.Sprint(sent))
	b.WaitText(row+" td.oldest", " s")
	b.Screenshot("plugins")

	testproc.ServeAt(t, svc, bin, "--config", layout, "--listen", svc)
	b.WaitFor("nothing waiting for frame-svc", `document.querySelector('`+row+` td.waiting').innerText.trim() === '0'`)
	b.WaitText(`tr[data-plugin="frame-svc"] td.plugin-status`, "UP")
	b.WaitText(".dropped", "0 backlog full")

	// a tenant's administrator sees the plugins, not the backlog of all tenants
	a.CreateTenant("acme", "acme-Pass-1!")
	b.Login("acme", "admin", "acme-Pass-1!")
	b.Go("/plugins")
	b.WaitVisible(`tr[data-plugin="frame-svc"]`)
	b.WaitText("#main .callout", "only the administrators of the management tenant")
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sharedFile is a file of the shared folder above the repository (the
// OMA registry's object definitions); the test skips without it.
func sharedFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "shared", dir, name)); err == nil {
			return b
		}
	}
	t.Skipf("shared/%s/%s not found above %s", dir, name, wd)
	return nil
}

func postDDF(t *testing.T, a *browsertest.Agent, doc []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", a.URL+"/lwm2m/deviceprotocols", bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("management/admin", browsertest.AdminPassword)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload DDF: HTTP %d", resp.StatusCode)
	}
}
