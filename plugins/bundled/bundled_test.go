package bundled

import (
	"context"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// Both bundled plugins through go-plugin's own harness: the server glue
// registers each service, and the client glue dispenses, by plugin kind,
// a client of that service.
func TestGlue(t *testing.T) {
	set := plugin.PluginSet{}
	for _, name := range Names {
		set[Kind(name)] = &grpcPlugin{name: name}
	}
	c, _ := plugin.TestPluginGRPCConn(t, false, set)
	defer c.Close()

	tab, err := mapping.MarshalTable(
		mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T"}},
		mapping.Functionality{CustomAction: "connectivity:updateRssi"})
	if err != nil {
		t.Fatal(err)
	}
	v := func(path string, fn uint32) *pb.ResourceValue {
		return &pb.ResourceValue{DeviceId: "1", Path: path, Value: sdk.ProtoValue(node.Int(-70)), Functionality: fn}
	}
	raw, err := c.Dispense(sdk.KindMapping)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := raw.(pb.MappingClient).Map(context.Background(), &pb.MapRequest{Functionalities: tab, Values: []*pb.ResourceValue{v("/3303/0/5700", 0)}})
	if err != nil || len(resp.GetMeasurements()) != 1 || resp.GetMeasurements()[0].GetType() != "c8y_Temperature" {
		t.Errorf("mapping: %v, %v", resp, err)
	}
	raw, err = c.Dispense(sdk.KindCustomAction)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = raw.(pb.CustomActionClient).Run(context.Background(), &pb.ActionRequest{Functionalities: tab, Values: []*pb.ResourceValue{v("/4/0/2", 1)}})
	if err != nil || len(resp.GetMeasurements()) != 1 || resp.GetMeasurements()[0].GetType() != "c8y_SignalStrength" {
		t.Errorf("custom actions: %v, %v", resp, err)
	}
	if err := Serve("validation"); err == nil {
		t.Error("Serve of an unknown plugin did not fail")
	}
}
