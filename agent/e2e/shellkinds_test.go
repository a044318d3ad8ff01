package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// The shell's composite observation and execute with arguments, through
// the operations API to a simulated LwM2M 1.1 device: cobserve makes the
// objects view follow the values, cancelobservation with the same paths
// stops the notifications, and execute's arguments reach the device as
// written.
func TestCompositeObserveAndExecuteArguments(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")

	op := h.shell(id, "cobserve /3303/0/5700 /3/0/9", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("cobserve: %s: %s", op.Status, op.FailureReason)
	}
	if !strings.Contains(op.Command.Result, "Observing /3303/0/5700 /3/0/9") || !strings.Contains(op.Command.Result, "/3303/0/5700") {
		t.Errorf("cobserve result:\n%s", op.Command.Result)
	}
	// the temperature changes every 100 ms on the device
	seen := map[string]bool{}
	h.eventually(10*time.Second, func() error {
		if v, _ := h.objectValue(id, "/3303/0/5700"); v != "" {
			seen[v] = true
		}
		if len(seen) < 3 {
			return fmt.Errorf("objects view showed %d distinct values of /3303/0/5700 so far", len(seen))
		}
		return nil
	})

	op = h.shell(id, "cancelobservation /3303/0/5700 /3/0/9", 10*time.Second)
	if op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "Composite observation") {
		t.Fatalf("cancelobservation of the composite: %s: %s %s", op.Status, op.FailureReason, op.Command.Result)
	}
	time.Sleep(500 * time.Millisecond) // notifications in flight land
	n0 := h.agent.Server.Stats().Notifications
	time.Sleep(1 * time.Second) // ten changes of the value on the device
	if n := h.agent.Server.Stats().Notifications - n0; n != 0 {
		t.Errorf("%d notifications accepted after the composite observation was cancelled", n)
	}

	op = h.shell(id, "execute /3303/0/5605 0='reset',1", 10*time.Second)
	if op.Status != "SUCCESSFUL" {
		t.Fatalf("execute with arguments: %s: %s", op.Status, op.FailureReason)
	}
	if args, ok := sim.Device(ep).Executed(node.MustParsePath("/3303/0/5605")); !ok || args != "0='reset',1" {
		t.Errorf("device got execute arguments %q (executed %v), want 0='reset',1", args, ok)
	}
}
