package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// The SDK's walk-through, as an author follows it (sdk/README.md and
// sdk/examples/tempframe/README.md): the example decoder built from its
// own module and declared in the plugins file, its object definition
// uploaded and its opaque resource routed to it with decoder:tempframe;
// the bundled CBOR decoder routed with an argument, decoder:cbor:c8y_Env,
// which must arrive as the measurement type. A device sends a frame for
// each with LwM2M Send, and each becomes the measurement its decoder made.
// The simulated device has a fixed set of objects, without the example's
// 32001, so its frames travel in opaque resources it has: 19/0/0 and
// 10268/0/6029, routed the same way.
func TestSDKExampleWalkThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example decoder")
	}
	example := filepath.Join(t.TempDir(), "tempframe")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", example, ".")
	build.Dir = "../../sdk/examples/tempframe"
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the example: %v\n%s", err, out)
	}
	cborBin := buildProgram(t, "cbor-decoder", "./decoders/cbor/cmd/cbor-decoder")
	pluginsFile := writeFile(t, "plugins.json", fmt.Sprintf(`{"plugins":[
	  {"name":"tempframe","kind":"decoder","path":%q},
	  {"name":"cbor","kind":"decoder","path":%q,"args":["--type","c8y_CBOR"]}
	]}`, example, cborBin))
	h := startAgent(t, withPluginsConfig(pluginsFile))

	ddf, err := os.ReadFile("../../sdk/examples/tempframe/tempframe.xml")
	if err != nil {
		t.Fatal(err)
	}
	code, created, e := h.postDDF("management/admin", adminPassword, ddf, "?source=tempframe.xml")
	if code != 201 || len(created) != 1 || created[0].ObjectID != 32001 {
		t.Fatalf("upload tempframe.xml: HTTP %d %+v %+v, want object 32001 created", code, created, e)
	}
	if r, ok := created[0].resource(0); !ok || r.Type != "OPAQUE" {
		t.Fatalf("object 32001 resources %+v, want resource 0 OPAQUE", created[0].Resources)
	}
	h.uploadRegistry("19.xml", "10268.xml")
	frame := node.ResourcePath(19, 0, 0)     // Binary App Data Container: Data
	env := node.ResourcePath(10268, 0, 6029) // Temperature Readings: Latest Payload
	for _, fn := range []struct {
		object, resource uint16
		action           string
	}{{32001, 0, "decoder:tempframe"}, {frame.Object, frame.Resource, "decoder:tempframe"}, {env.Object, env.Resource, "decoder:cbor:c8y_Env"}} {
		url := fmt.Sprintf("/lwm2m/deviceprotocols/%d/resources/%d/functionalities", fn.object, fn.resource)
		code, p, e := h.put("management/admin", adminPassword, url, map[string]any{"customAction": fn.action})
		if r, _ := p.resource(int(fn.resource)); code != 200 || r.Functionalities.CustomAction != fn.action {
			t.Fatalf("PUT %s: HTTP %d %+v %+v", url, code, r, e)
		}
	}

	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.device(ep).str("id")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dev.SetValue(frame.Child(0), node.Opaque([]byte{0x66, 0x08}))              // 21.5 C; Data is a multiple resource
	dev.SetValue(env, node.Opaque([]byte{0xa1, 0x61, 0x54, 0xf9, 0x4d, 0x60})) // {"T": 21.5}
	for _, p := range []node.Path{frame, env} {
		if err := dev.Send(ctx, p); err != nil {
			t.Fatalf("send %v: %v", p, err)
		}
	}

	for _, want := range []struct{ typ, series string }{
		{"c8y_Temperature", "c8y_Temperature.T"},
		{"c8y_Env", "c8y_Env.T"},
	} {
		ms := h.waitMeasurements(id, want.typ)
		got, ok := ms[0].Series[want.series]
		if len(ms) != 1 || ms[0].Source != id || !ok || math.Abs(got.Value-21.5) > 1e-9 {
			t.Errorf("%s: %+v, want one measurement of %s with %s = 21.5", want.typ, ms, id, want.series)
		}
	}
}

// uploadRegistry uploads object definitions of the OMA registry (files of
// shared/lwm2m-registry) as the management tenant's device protocols.
func (h *harness) uploadRegistry(files ...string) {
	h.t.Helper()
	registry := sharedDir(h.t, "lwm2m-registry")
	for _, f := range files {
		doc, err := os.ReadFile(filepath.Join(registry, f))
		if err != nil {
			h.t.Fatal(err)
		}
		if code, _, e := h.postDDF("management/admin", adminPassword, doc, ""); code != 201 {
			h.t.Fatalf("upload %s: HTTP %d %+v", f, code, e)
		}
	}
}

// waitMeasurements waits until the device has measurements of a type, and
// returns them.
func (h *harness) waitMeasurements(id, typ string) []decodedMeasurement {
	h.t.Helper()
	var ms []decodedMeasurement
	h.eventually(15*time.Second, func() error {
		if ms = h.measurements(id, typ); len(ms) == 0 {
			return fmt.Errorf("no %s measurement of the device yet", typ)
		}
		return nil
	})
	return ms
}
