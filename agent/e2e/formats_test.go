package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// lastRequest is the format of the last answered request of method on
// path a simulated device saw.
func lastRequest(t *testing.T, d *simulator.Device, method, path string) (codec.Format, bool) {
	t.Helper()
	reqs := d.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if r := reqs[i]; r.Method == method && r.Path == path && r.Answered {
			return r.Format, true
		}
	}
	return 0, false
}

// createdPath is the instance an operation's "Created /O/I" result names.
func createdPath(t *testing.T, op operation) node.Path {
	t.Helper()
	if op.Status != "SUCCESSFUL" || !strings.HasPrefix(op.Command.Result, "Created /") {
		t.Fatalf("create: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}
	p, err := node.ParsePath(strings.TrimPrefix(op.Command.Result, "Created "))
	if err != nil || p.Depth != 2 {
		t.Fatalf("create result %q names no instance", op.Command.Result)
	}
	return p
}

// Values of resources the agent has no definition for (object 10268 and
// 19 are not among its definitions; the simulated devices know them) are
// typed by their JSON: a device whose resource is an integer takes the
// integer, as the strictly typed clients of each version do. create /O
// without values makes an instance in every version's default format.
func TestCreateAndWriteWithoutDefinition(t *testing.T) {
	for _, version := range []string{"1.0", "1.1", "1.2"} {
		t.Run("lwm2m-"+version, func(t *testing.T) {
			h := startAgent(t)
			sim := h.simulate(1, func(c *simulator.Config) {
				c.Version = version
				c.Strict10 = version == "1.0"
				c.Record = 100
			})
			ep := sim.Endpoints()[0]
			dev := sim.Device(ep)
			id := h.device(ep).str("id")

			inst := createdPath(t, h.shell(id, `create /10268 {"6000": 5}`, 10*time.Second))
			if v, ok := dev.Value(inst.Child(6000)); !ok || !v.Equal(node.Int(5)) {
				t.Errorf("device holds %v/6000 = %v %q, want the integer 5", inst, v.Type, v.Text())
			}

			inst = createdPath(t, h.shell(id, "create /3303", 10*time.Second))
			if _, ok := dev.Value(inst.Child(5700)); !ok {
				t.Errorf("device has no %v after an empty create", inst)
			}

			// A write's text without a definition goes as text/plain; the
			// device reads it by its own type.
			op := h.shell(id, "write /19/0/3 0042", 10*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("write /19/0/3: %s %s", op.Status, op.FailureReason)
			}
			if v, _ := dev.Value(node.MustParsePath("/19/0/3")); !v.Equal(node.String("0042")) {
				t.Errorf("device holds /19/0/3 = %v %q, want the string 0042", v.Type, v.Text())
			}
			if f, ok := lastRequest(t, dev, "PUT", "/19/0/3"); !ok || f != codec.Text {
				t.Errorf("write /19/0/3 in %v (seen %v), want text/plain", f, ok)
			}
		})
	}
}

// An LwM2M 1.0 client that declares the 1.0 JSON format (ct=11543) and
// reads JSON as strictly as wakaama's: reads come in JSON; writes and
// creates go in TLV by default, and in JSON of the 1.0 specification's
// shape once the operator sets serialization JSON; text works for single
// resources, with creates falling back to TLV.
func TestV10JSONDevice(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) {
		c.Version = "1.0"
		c.Format = codec.LwM2MJSON
		c.Strict10 = true
		c.Record = 100
	})
	ep := sim.Endpoints()[0]
	dev := sim.Device(ep)
	id := h.device(ep).str("id")

	op := h.shell(id, "read /3/0", 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "/3/0/0 (Manufacturer) = lwm2m-agent") {
		t.Fatalf("read /3/0: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}

	check := func(serialization string, want codec.Format, createWant codec.Format) {
		t.Helper()
		writes := []struct {
			cmd, path string
			v         node.Value
		}{
			{"write /3/0/14 +03:00", "/3/0/14", node.String("+03:00")},
			{"write /1/0/2 7", "/1/0/2", node.Int(7)},
			{"write /1/0/6 true", "/1/0/6", node.Bool(true)},
			{"write /3/0/13 1700000000", "/3/0/13", node.TimeValue(time.Unix(1700000000, 0).UTC())},
		}
		for _, w := range writes {
			op := h.shell(id, w.cmd, 10*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Errorf("%s: %s: %s %s", serialization, w.cmd, op.Status, op.FailureReason)
				continue
			}
			if f, _ := lastRequest(t, dev, "PUT", w.path); f != want {
				t.Errorf("%s: %s went in %v, want %v", serialization, w.cmd, f, want)
			}
			if w.path == "/3/0/13" {
				continue // the device's clock runs on from the written time
			}
			if v, _ := dev.Value(node.MustParsePath(w.path)); !v.Equal(w.v) {
				t.Errorf("%s: %s: device holds %v %q", serialization, w.cmd, v.Type, v.Text())
			}
		}
		inst := createdPath(t, h.shell(id, `create /3303 {"5700": 12.5, "5701": "Cel"}`, 10*time.Second))
		if f, _ := lastRequest(t, dev, "POST", "/3303"); f != createWant {
			t.Errorf("%s: create went in %v, want %v", serialization, f, createWant)
		}
		if v, _ := dev.Value(inst.Child(5701)); !v.Equal(node.String("Cel")) {
			t.Errorf("%s: device holds %v/5701 = %q after create", serialization, inst, v.Text())
		}
		inst = createdPath(t, h.shell(id, "create /3303", 10*time.Second))
		if _, ok := dev.Value(inst.Child(5700)); !ok {
			t.Errorf("%s: device has no %v after an empty create", serialization, inst)
		}
	}

	check("default", codec.TLV, codec.TLV)

	for _, s := range []struct {
		name           string
		write, created codec.Format
	}{
		{"JSON", codec.LwM2MJSON, codec.LwM2MJSON},
		{"TEXT", codec.Text, codec.TLV},
		{"TLV", codec.TLV, codec.TLV},
	} {
		op := h.shell(id, "serialization "+s.name, 10*time.Second)
		if op.Status != "SUCCESSFUL" {
			t.Fatalf("serialization %s: %s %s", s.name, op.Status, op.FailureReason)
		}
		check(s.name, s.write, s.created)
	}

	// Reads keep working in the declared JSON after all of it.
	op = h.shell(id, "serialization DEFAULT", 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "later reads use application/vnd.oma.lwm2m+json") ||
		!strings.Contains(op.Command.Result, "writes and creates application/vnd.oma.lwm2m+tlv") {
		t.Fatalf("serialization DEFAULT: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}
	op = h.shell(id, "read /1/0", 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "/1/0/2 (Default Minimum Period) = 7") {
		t.Errorf("read /1/0: %s %q %s", op.Status, op.Command.Result, op.FailureReason)
	}
}
