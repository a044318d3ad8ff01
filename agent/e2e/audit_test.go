package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

type auditResource struct {
	Path           string `json:"path"`
	ID             int    `json:"id"`
	Name           string `json:"name"`
	Writable       bool   `json:"writable"`
	Same           bool   `json:"same"`
	Value          any    `json:"value"`
	ReferenceValue any    `json:"referenceValue"`
}

type auditInstance struct {
	Path      string          `json:"path"`
	ObjectID  int             `json:"objectId"`
	Name      string          `json:"name"`
	Same      int             `json:"same"`
	Different int             `json:"different"`
	Resources []auditResource `json:"resources"`
}

type auditAnswer struct {
	DeviceID    string          `json:"deviceId"`
	ReferenceID string          `json:"referenceId"`
	Same        int             `json:"same"`
	Different   int             `json:"different"`
	Instances   []auditInstance `json:"instances"`
}

func (a auditAnswer) instance(path string) (auditInstance, bool) {
	for _, i := range a.Instances {
		if i.Path == path {
			return i, true
		}
	}
	return auditInstance{}, false
}

func (a auditAnswer) resource(path string) (auditResource, bool) {
	for _, i := range a.Instances {
		for _, r := range i.Resources {
			if r.Path == path {
				return r, true
			}
		}
	}
	return auditResource{}, false
}

func (h *harness) audit(deviceID, refID string) auditAnswer {
	h.t.Helper()
	var a auditAnswer
	if code := h.call("GET", "/lwm2m/devices/"+deviceID+"/audit?reference="+url.QueryEscape(refID), nil, &a); code != 200 {
		h.t.Fatalf("audit: HTTP %d", code)
	}
	return a
}

// syncAs posts an audit sync and returns the status, the operations and
// the error message.
func (h *harness) syncAs(user, pass, deviceID, refID string, paths ...string) (int, []map[string]any, string) {
	h.t.Helper()
	code, raw := h.send(user, pass, "POST", "/lwm2m/devices/"+deviceID+"/audit/sync", map[string]any{"reference": refID, "paths": paths})
	var ans struct {
		Operations []map[string]any `json:"operations"`
		Message    string           `json:"message"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		h.t.Fatalf("sync answer %q: %v", raw, err)
	}
	return code, ans.Operations, ans.Message
}

// An audit compares two simulated devices' last known values per
// instance; a sync writes the reference's values to the device through
// queued operations, each validated; nothing of a refused sync is queued.
func TestAuditAgainstReferenceDevice(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(2, nil)
	devEP, refEP := sim.Endpoints()[0], sim.Endpoints()[1]
	dev, ref := h.device(devEP).str("id"), h.device(refEP).str("id")

	// the reference is set up for Tokyo, the device for Berlin; only the
	// reference reports its temperature sensor
	set := func(ep, path string, v node.Value) { sim.Device(ep).SetValue(node.MustParsePath(path), v) }
	set(devEP, "/3/0/14", node.String("+01:00"))
	set(devEP, "/3/0/15", node.String("Europe/Berlin"))
	set(refEP, "/3/0/14", node.String("+09:00"))
	set(refEP, "/3/0/15", node.String("Asia/Tokyo"))
	h.okShell(dev, "read /3/0")
	h.okShell(ref, "read /3/0")
	h.okShell(ref, "read /3303/0")

	var a auditAnswer
	h.eventually(10*time.Second, func() error {
		a = h.audit(dev, ref)
		r, _ := a.resource("/3/0/15")
		if r.Value != "Europe/Berlin" || r.ReferenceValue != "Asia/Tokyo" {
			return fmt.Errorf("/3/0/15 compared as %+v", r)
		}
		if _, ok := a.instance("/3303/0"); !ok {
			return fmt.Errorf("no /3303/0 in %+v", a)
		}
		return nil
	})
	if a.DeviceID != dev || a.ReferenceID != ref {
		t.Errorf("audit of %s against %s", a.DeviceID, a.ReferenceID)
	}
	for _, tc := range []struct {
		path            string
		same, writable  bool
		value, refValue any
	}{
		{"/3/0/14", false, true, "+01:00", "+09:00"},
		{"/3/0/15", false, true, "Europe/Berlin", "Asia/Tokyo"},
		{"/3/0/0", true, false, "lwm2m-agent", "lwm2m-agent"},
		{"/3/0/2", false, false, devEP, refEP}, // serial numbers differ
	} {
		r, ok := a.resource(tc.path)
		if !ok || r.Same != tc.same || r.Writable != tc.writable || r.Value != tc.value || r.ReferenceValue != tc.refValue {
			t.Errorf("%s: %+v, want same %v writable %v values %v / %v", tc.path, r, tc.same, tc.writable, tc.value, tc.refValue)
		}
	}
	if r, _ := a.resource("/3/0/14"); r.Name != "UTC Offset" {
		t.Errorf("/3/0/14 named %q", r.Name)
	}
	// counts per instance and in total; what only the reference has
	// counts as different
	sum := 0
	for _, in := range a.Instances {
		same := 0
		for _, r := range in.Resources {
			if r.Same {
				same++
			}
		}
		if in.Same != same || in.Different != len(in.Resources)-same {
			t.Errorf("%s counts %d same, %d different; its resources say %d of %d", in.Path, in.Same, in.Different, same, len(in.Resources))
		}
		sum += len(in.Resources)
	}
	if a.Same+a.Different != sum || a.Different == 0 || a.Same == 0 {
		t.Errorf("totals %d same, %d different over %d values", a.Same, a.Different, sum)
	}
	temp, _ := a.instance("/3303/0")
	if temp.Same != 0 || temp.Different != len(temp.Resources) || temp.Name != "Temperature" {
		t.Errorf("/3303/0, only the reference's: %+v", temp)
	}
	for _, r := range temp.Resources {
		if r.Value != nil || r.ReferenceValue == nil {
			t.Errorf("%s: value %v, reference %v; want only the reference's", r.Path, r.Value, r.ReferenceValue)
		}
	}

	// refused syncs queue nothing
	const admin = "management/admin"
	opsBefore := len(h.deviceOps(admin, adminPassword, dev))
	h.setRules(3, 14, []map[string]any{rule("REGEX", "EQUALS", `[+-]0[0-8]:00`)})
	for _, tc := range []struct {
		name  string
		paths []string
		ref   string
		want  []string
	}{
		{"validation", []string{"/3/0/15", "/3/0/14"}, ref, []string{`validation of /3/0/14 failed: group 1: REGEX EQUALS "[+-]0[0-8]:00"`}},
		{"read-only resource", []string{"/3/0/15", "/3/0/0"}, ref, []string{"/3/0/0 (Manufacturer) is not writable"}},
		{"no reference value", []string{"/1/0/3"}, ref, []string{"/1/0/3: the reference has no last known value"}},
		{"not a resource path", []string{"/3/0"}, ref, []string{`"/3/0" is not a resource path`}},
		{"twice", []string{"/3/0/15", "/3/0/15"}, ref, []string{"/3/0/15 is given twice"}},
		{"no paths", nil, ref, []string{"paths is required"}},
		{"no reference", []string{"/3/0/15"}, "", []string{"reference is required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, ops, msg := h.syncAs(admin, adminPassword, dev, tc.ref, tc.paths...)
			if code != 422 || len(ops) != 0 {
				t.Fatalf("HTTP %d %v %q, want 422", code, ops, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not name %q", msg, w)
				}
			}
		})
	}
	if n := len(h.deviceOps(admin, adminPassword, dev)); n != opsBefore {
		t.Fatalf("%d operations after refused syncs, %d before", n, opsBefore)
	}
	if v, _ := sim.Device(devEP).Value(node.MustParsePath("/3/0/15")); v.Str != "Europe/Berlin" {
		t.Errorf("a refused sync changed the device's /3/0/15 to %q", v.Str)
	}

	// a sync the rules allow: one write per path, delivered by the runner
	h.setRules(3, 14, []map[string]any{rule("REGEX", "EQUALS", `[+-][0-9]{2}:00`)})
	code, ops, msg := h.syncAs(admin, adminPassword, dev, ref, "/3/0/14", "/3/0/15")
	if code != 201 || len(ops) != 2 {
		t.Fatalf("sync: HTTP %d %v %q", code, ops, msg)
	}
	for i, want := range []string{"write /3/0/14 +09:00", "write /3/0/15 Asia/Tokyo"} {
		cmd, _ := ops[i]["c8y_Command"].(map[string]any)
		mark, _ := ops[i]["lwm2m_AuditSync"].(map[string]any)
		if cmd["text"] != want || ops[i]["deviceId"] != dev || mark["reference"] != ref {
			t.Errorf("operation %d: %v, want %q for %s from %s", i, ops[i], want, dev, ref)
		}
	}
	for _, op := range ops {
		var got operation
		h.eventually(15*time.Second, func() error {
			h.call("GET", "/devicecontrol/operations/"+op["id"].(string), nil, &got)
			if got.Status != "SUCCESSFUL" {
				return fmt.Errorf("%s %q is %s %s", got.ID, got.Command.Text, got.Status, got.FailureReason)
			}
			return nil
		})
	}
	for path, want := range map[string]string{"/3/0/14": "+09:00", "/3/0/15": "Asia/Tokyo"} {
		if v, _ := sim.Device(devEP).Value(node.MustParsePath(path)); v.Str != want {
			t.Errorf("the device holds %s = %q after the sync, want %q", path, v.Str, want)
		}
	}
	if op := h.okShell(dev, "read /3/0/15"); !strings.Contains(op.Command.Result, "= Asia/Tokyo") {
		t.Errorf("read back: %q", op.Command.Result)
	}
	h.eventually(10*time.Second, func() error {
		a := h.audit(dev, ref)
		for _, p := range []string{"/3/0/14", "/3/0/15"} {
			if r, _ := a.resource(p); !r.Same {
				return fmt.Errorf("%s after the sync: %+v", p, r)
			}
		}
		return nil
	})
}

// Tenants never see each other's devices: an audit or a sync naming
// another tenant's device, as the device or as the reference, answers
// 404 and queues nothing.
func TestAuditAcrossTenants(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	dev := h.device(sim.Endpoints()[0]).str("id")
	h.okShell(dev, "read /3/0")
	const admin, bUser, bPass = "management/admin", "beta/admin", "Beta-pass-1234!"
	if c := h.call("POST", "/tenant/tenants", map[string]any{"id": "beta", "adminName": "admin", "adminPass": bPass}, nil); c != 201 {
		t.Fatalf("create tenant beta: HTTP %d", c)
	}
	var mo map[string]any
	if c := h.callAs(bUser, bPass, "POST", "/inventory/managedObjects", map[string]any{"name": "beta meter"}, &mo); c != 201 {
		t.Fatalf("beta device: HTTP %d", c)
	}
	beta, _ := mo["id"].(string)
	before := len(h.deviceOps(admin, adminPassword, dev))

	for _, tc := range []struct {
		name, user, pass, device, ref string
	}{
		{"beta audits management's device", bUser, bPass, dev, beta},
		{"beta compares with management's device", bUser, bPass, beta, dev},
		{"management compares with beta's device", admin, adminPassword, dev, beta},
		{"management audits beta's device", admin, adminPassword, beta, dev},
		{"unknown reference", admin, adminPassword, dev, "999999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := h.send(tc.user, tc.pass, "GET", "/lwm2m/devices/"+tc.device+"/audit?reference="+tc.ref, nil)
			if code != 404 {
				t.Errorf("audit: HTTP %d %s, want 404", code, raw)
			}
			if code, ops, msg := h.syncAs(tc.user, tc.pass, tc.device, tc.ref, "/3/0/14"); code != 404 || len(ops) != 0 {
				t.Errorf("sync: HTTP %d %v %q, want 404", code, ops, msg)
			}
		})
	}
	if n := len(h.deviceOps(admin, adminPassword, dev)); n != before {
		t.Errorf("%d operations of the device after refused syncs, %d before", n, before)
	}
	// and its own devices it audits: the same device as its own reference
	// has nothing different
	h.eventually(10*time.Second, func() error {
		a := h.audit(dev, dev)
		if a.Different != 0 || a.Same == 0 {
			return fmt.Errorf("a device against itself: %d same, %d different", a.Same, a.Different)
		}
		return nil
	})
}
