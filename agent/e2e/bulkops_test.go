package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/sqlite"
)

type bulkOperation struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	GeneralStatus string `json:"generalStatus"`
	Progress      struct {
		All, Pending, Executing, Successful, Failed int
	} `json:"progress"`
}

// fleetGroup makes a group of the devices of eps: the first two its own
// child assets, the others those of a subgroup.
func (h *harness) fleetGroup(eps []string) (group string, devices []string) {
	h.t.Helper()
	mk := func(name string) string {
		var mo managedObject
		if code := h.call("POST", "/inventory/managedObjects", map[string]any{"name": name, "type": "c8y_DeviceGroup", "c8y_IsDeviceGroup": map[string]any{}}, &mo); code != 201 {
			h.t.Fatalf("create group: HTTP %d", code)
		}
		return mo.str("id")
	}
	add := func(parent, child string) {
		if code := h.call("POST", "/inventory/managedObjects/"+parent+"/childAssets", map[string]any{"managedObject": map[string]any{"id": child}}, nil); code != 201 {
			h.t.Fatalf("add %s to %s: HTTP %d", child, parent, code)
		}
	}
	group, sub := mk("fleet"), mk("fleet east")
	add(group, sub)
	for i, ep := range eps {
		id := h.device(ep).str("id")
		devices = append(devices, id)
		if i < 2 {
			add(group, id)
		} else {
			add(sub, id)
		}
	}
	return group, devices
}

func (h *harness) startBulk(group string, ramp float64) string {
	h.t.Helper()
	var b bulkOperation
	code := h.call("POST", "/devicecontrol/bulkoperations", map[string]any{
		"groupId": group, "startDate": time.Now().UTC().Format(time.RFC3339Nano), "creationRamp": ramp,
		"operationPrototype": map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}, "description": "read the maker"},
	}, &b)
	if code != 201 {
		h.t.Fatalf("create bulk operation: HTTP %d", code)
	}
	return b.ID
}

func (h *harness) bulk(id string) bulkOperation {
	h.t.Helper()
	var b bulkOperation
	if code := h.call("GET", "/devicecontrol/bulkoperations/"+id, nil, &b); code != 200 {
		h.t.Fatalf("bulk operation %s: HTTP %d", id, code)
	}
	return b
}

// bulkDevices lists, per device, the operations a bulk operation made.
func (h *harness) bulkDevices(id string, devices []string) map[string][]map[string]any {
	h.t.Helper()
	out := map[string][]map[string]any{}
	for _, d := range devices {
		var res struct {
			Operations []map[string]any `json:"operations"`
		}
		if code := h.call("GET", "/devicecontrol/operations?pageSize=100&deviceId="+d, nil, &res); code != 200 {
			h.t.Fatalf("operations of %s: HTTP %d", d, code)
		}
		for _, op := range res.Operations {
			if op["bulkOperationId"] == id {
				out[d] = append(out[d], op)
			}
		}
	}
	return out
}

// A bulk operation over a group with a subgroup reads every device once,
// and completes when every operation did.
func TestBulkOperationOverGroup(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(4, func(c *simulator.Config) { c.NotifyInterval = 0 })
	group, devices := h.fleetGroup(sim.Endpoints())
	id := h.startBulk(group, 0)
	h.eventually(30*time.Second, func() error {
		if b := h.bulk(id); b.Status != "COMPLETED" || b.GeneralStatus != "SUCCESSFUL" || b.Progress.Successful != 4 || b.Progress.All != 4 {
			return fmt.Errorf("bulk operation %+v", b)
		}
		return nil
	})
	for d, ops := range h.bulkDevices(id, devices) {
		if len(ops) != 1 || ops[0]["status"] != "SUCCESSFUL" || ops[0]["description"] != "read the maker" {
			t.Errorf("device %s: %v", d, ops)
		}
	}
}

// A bulk operation stopped by an agent restart between two devices of
// its ramp goes on after it, each device getting its operation once; a
// cancel creates no more.
func TestBulkOperationRestartAndCancel(t *testing.T) {
	dir, coap := t.TempDir(), freeUDPAddr(t)
	h, stop := startAgentIn(t, dir, coap)
	sim := h.simulate(4, func(c *simulator.Config) { c.NotifyInterval = 0 })
	group, devices := h.fleetGroup(sim.Endpoints())
	id := h.startBulk(group, 2)
	h.eventually(10*time.Second, func() error {
		if b := h.bulk(id); b.Progress.Successful < 1 {
			return fmt.Errorf("bulk operation %+v", b)
		}
		return nil
	})
	stop()
	if b := storedBulk(t, dir, id); b.Status != store.BulkInProgress || b.Position >= b.Total {
		t.Fatalf("stopped mid-ramp: %+v", b)
	}

	h2, _ := startAgentIn(t, dir, coap)
	h2.eventually(30*time.Second, func() error {
		if b := h2.bulk(id); b.Status != "COMPLETED" || b.Progress.Successful != 4 {
			return fmt.Errorf("bulk operation %+v", b)
		}
		return nil
	})
	per := h2.bulkDevices(id, devices)
	for _, d := range devices {
		if len(per[d]) != 1 {
			t.Errorf("device %s has %d operations of the bulk operation, want 1", d, len(per[d]))
		}
	}

	// a slow ramp: the first device's operation at once, then a cancel
	slow := h2.startBulk(group, 3600)
	h2.eventually(10*time.Second, func() error {
		if b := h2.bulk(slow); b.Progress.Successful != 1 {
			return fmt.Errorf("bulk operation %+v", b)
		}
		return nil
	})
	var b bulkOperation
	if code := h2.call("PUT", "/devicecontrol/bulkoperations/"+slow, map[string]any{"status": "CANCELED"}, &b); code != 200 {
		t.Fatalf("cancel: HTTP %d", code)
	}
	if b.Status != "CANCELED" || b.Progress.Successful != 1 || b.Progress.Pending+b.Progress.Executing+b.Progress.Failed != 0 {
		t.Errorf("canceled: %+v", b)
	}
	var got []string
	for d, ops := range h2.bulkDevices(slow, devices) {
		if len(ops) > 0 {
			got = append(got, d)
		}
	}
	if !slices.Equal(got, devices[:1]) {
		t.Errorf("devices with an operation of the canceled bulk operation: %v, want %v", got, devices[:1])
	}
}

// storedBulk reads a bulk operation from the store of a stopped agent.
func storedBulk(t *testing.T, dir, id string) store.BulkOperation {
	t.Helper()
	st, err := sqlite.OpenEngine(context.Background(), sqlite.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	b, err := st.GetBulkOperation(context.Background(), store.ManagementTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
