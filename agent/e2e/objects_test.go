package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

type viewOp struct {
	ID            string `json:"id"`
	Text          string `json:"text"`
	Status        string `json:"status"`
	Result        string `json:"result"`
	FailureReason string `json:"failureReason"`
	CreationTime  string `json:"creationTime"`
	LastUpdated   string `json:"lastUpdated"`
	Attempts      *int   `json:"attempts"`
}

type viewOps struct {
	Pending struct {
		Count      int      `json:"count"`
		Operations []viewOp `json:"operations"`
	} `json:"pending"`
	History []viewOp `json:"history"`
}

type objectsView struct {
	PendingOperations   int `json:"pendingOperations"`
	ExecutingOperations int `json:"executingOperations"`
	OperationsScanned   struct {
		Pending  int  `json:"pending"`
		Ended    int  `json:"ended"`
		Complete bool `json:"complete"`
	} `json:"operationsScanned"`
	Objects []struct {
		Path       string  `json:"path"`
		Operations viewOps `json:"operations"`
		Instances  []struct {
			Path       string  `json:"path"`
			Operations viewOps `json:"operations"`
		} `json:"instances"`
	} `json:"objects"`
}

// ops returns the operations listed at an object or instance path.
func (v objectsView) ops(t *testing.T, path string) viewOps {
	t.Helper()
	for _, o := range v.Objects {
		if o.Path == path {
			return o.Operations
		}
		for _, i := range o.Instances {
			if i.Path == path {
				return i.Operations
			}
		}
	}
	t.Fatalf("the objects view has no %s", path)
	return viewOps{}
}

func texts(ops []viewOp) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.Text
	}
	return out
}

// The objects view lists, per instance, the operations waiting for the
// device and the last ones that ended; an operation on a whole object (or
// on an instance the device does not have) is listed at the object, and
// a composite one under every instance it names.
func TestObjectsViewOperations(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")

	for _, tc := range []struct{ text, status string }{
		{"read /3/0/0", "SUCCESSFUL"},
		{"read /3303/0/5700", "SUCCESSFUL"},
		{"cread /3/0/1 /3303/0/5701", "SUCCESSFUL"},
		{"read /3303/9", "FAILED"}, // no such instance: 4.04
	} {
		if op := h.shell(id, tc.text, 15*time.Second); op.Status != tc.status {
			t.Fatalf("%s: %s %q, want %s", tc.text, op.Status, op.FailureReason, tc.status)
		}
	}

	// the device leaves; what is queued now waits for it
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sim.Device(ep).Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, func() error {
		if s := h.device(ep).str("c8y_Availability", "status"); s != "UNAVAILABLE" {
			return fmt.Errorf("availability %q", s)
		}
		return nil
	})
	queue := []string{"write /3/0/14 +01:00", "read /3303", "serialization TLV"}
	for i := range 11 {
		queue = append(queue, fmt.Sprintf("read /3/0/%d", i))
	}
	for _, text := range queue {
		var op operation
		body := map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": text}}
		if code := h.call("POST", "/devicecontrol/operations", body, &op); code != 201 {
			t.Fatalf("create %q: HTTP %d", text, code)
		}
	}

	var v objectsView
	if code := h.call("GET", "/lwm2m/devices/"+id+"/objects", nil, &v); code != 200 {
		t.Fatalf("objects view: HTTP %d", code)
	}
	if v.PendingOperations != len(queue) || v.OperationsScanned.Pending != len(queue) || v.OperationsScanned.Ended != 4 || !v.OperationsScanned.Complete {
		t.Fatalf("pendingOperations %d, scanned %+v; want %d pending, 4 ended, complete", v.PendingOperations, v.OperationsScanned, len(queue))
	}

	dev := v.ops(t, "/3/0")
	if dev.Pending.Count != 12 || len(dev.Pending.Operations) != 10 {
		t.Fatalf("/3/0 pending: count %d, %d listed; want 12 (the write and 11 reads), 10 listed", dev.Pending.Count, len(dev.Pending.Operations))
	}
	first := dev.Pending.Operations[0]
	if first.Text != "write /3/0/14 +01:00" || first.CreationTime == "" || first.Attempts == nil || *first.Attempts != 0 || first.Status != "PENDING" {
		t.Fatalf("/3/0 oldest pending: %+v", first)
	}
	if got, want := texts(dev.History), []string{"cread /3/0/1 /3303/0/5701", "read /3/0/0"}; !slices.Equal(got, want) {
		t.Fatalf("/3/0 history %q, want %q (newest first)", got, want)
	}
	if h0 := dev.History[1]; h0.Status != "SUCCESSFUL" || !strings.Contains(h0.Result, "/3/0/0") || h0.LastUpdated == "" {
		t.Fatalf("/3/0 history entry %+v", h0)
	}

	temp := v.ops(t, "/3303/0")
	if got, want := texts(temp.History), []string{"cread /3/0/1 /3303/0/5701", "read /3303/0/5700"}; !slices.Equal(got, want) || temp.Pending.Count != 0 {
		t.Fatalf("/3303/0: history %q (want %q), %d pending", got, want, temp.Pending.Count)
	}

	obj := v.ops(t, "/3303")
	if obj.Pending.Count != 1 || obj.Pending.Operations[0].Text != "read /3303" {
		t.Fatalf("/3303 pending %+v, want the object-level read", obj.Pending)
	}
	if len(obj.History) != 1 || obj.History[0].Text != "read /3303/9" || obj.History[0].Status != "FAILED" || !strings.Contains(obj.History[0].FailureReason, "4.04") {
		t.Fatalf("/3303 history %+v, want the failed read of the missing instance with its 4.04", obj.History)
	}
	for _, o := range v.Objects {
		for _, i := range o.Instances {
			for _, op := range append(i.Operations.Pending.Operations, i.Operations.History...) {
				if op.Text == "serialization TLV" {
					t.Fatalf("serialization, which names no object, is listed under %s", i.Path)
				}
			}
		}
	}
}

// An operation under way (EXECUTING: sent, no answer yet) is listed
// first among the instance's operations that have not ended, with its
// status, and counted at the top.
func TestObjectsViewExecuting(t *testing.T) {
	h := startAgent(t, withRequestTimeout(3*time.Second))
	sim := h.simulate(1, func(c *simulator.Config) { c.NotifyInterval = 0 })
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	sim.Device(ep).Ignore(node.MustParsePath("/3/0/0"), 1) // the first read goes unanswered
	opID := h.postOp(map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/0"}})
	queued := h.postOp(map[string]any{"deviceId": id, "c8y_Command": map[string]string{"text": "read /3/0/1"}})

	var v objectsView
	h.eventually(3*time.Second, func() error {
		v = objectsView{}
		if code := h.call("GET", "/lwm2m/devices/"+id+"/objects", nil, &v); code != 200 {
			return fmt.Errorf("objects view: HTTP %d", code)
		}
		if v.ExecutingOperations != 1 {
			return fmt.Errorf("%d operations executing", v.ExecutingOperations)
		}
		return nil
	})
	ops := v.ops(t, "/3/0")
	if len(ops.Pending.Operations) != 2 || ops.Pending.Count != 2 {
		t.Fatalf("/3/0 operations not ended: count %d, %+v; want the executing read and the queued one", ops.Pending.Count, ops.Pending.Operations)
	}
	first, second := ops.Pending.Operations[0], ops.Pending.Operations[1]
	if first.ID != opID || first.Status != "EXECUTING" || second.ID != queued || second.Status != "PENDING" {
		t.Errorf("/3/0 operations not ended: %+v then %+v; want %s EXECUTING then %s PENDING", first, second, opID, queued)
	}
}
