package customactions_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/customactions"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
	"github.com/lwm2m-agent/lwm2m-agent/sdk/sdktest"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func client(t testing.TB) pb.CustomActionClient {
	return pb.NewCustomActionClient(sdktest.Conn(t, func(s *grpc.Server) { pb.RegisterCustomActionServer(s, customactions.Server{}) }))
}

func value(device, path string, v node.Value, fn uint32) *pb.ResourceValue {
	return &pb.ResourceValue{Tenant: "acme", DeviceId: device, Endpoint: "ep-" + device, Path: path, Value: sdk.ProtoValue(v), Time: timestamppb.New(t0), Functionality: fn}
}

func actions(t testing.TB, names ...string) [][]byte {
	var fns []mapping.Functionality
	for _, n := range names {
		ignore := strings.HasPrefix(n, "!")
		fns = append(fns, mapping.Functionality{CustomAction: strings.TrimPrefix(n, "!"), IgnoreEmptyValues: ignore})
	}
	b, err := mapping.MarshalTable(fns...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func summary(r *pb.MapResponse) []string {
	var s []string
	for _, m := range r.GetMeasurements() {
		s = append(s, fmt.Sprintf("M %s.%s=%g %s %s", m.GetType(), m.GetSeries(), m.GetValue(), m.GetUnit(), m.GetSource()))
	}
	for _, u := range r.GetInventoryUpdates() {
		line := fmt.Sprintf("I %s %s", u.GetDevice(), u.GetFragmentsJson())
		if u.GetNameFromHardware() {
			line += " RENAME"
		}
		s = append(s, line)
	}
	for _, e := range r.GetErrors() {
		s = append(s, fmt.Sprintf("ERR %d %s: %s", e.GetIndex(), e.GetPath(), e.GetMessage()))
	}
	return s
}

func TestServerRun(t *testing.T) {
	tests := []struct {
		name   string
		action string
		table  [][]byte
		values []*pb.ResourceValue
		want   []string
	}{
		{"device actions fill c8y_Hardware and c8y_Firmware and name the device",
			"", actions(t, "device:updateManufacturer", "device:updateModelNumber", "device:updateSerialNumber", "device:updateFirmwareVersion"),
			[]*pb.ResourceValue{value("42", "/3/0/0", node.String("ACME"), 0), value("42", "/3/0/1", node.String("T-1000"), 1),
				value("42", "/3/0/2", node.String("SN-7"), 2), value("42", "/3/0/3", node.String("1.2.3"), 3)},
			[]string{`I 42 {"c8y_Firmware":{"version":"1.2.3"},"c8y_Hardware":{"manufacturer":"ACME","model":"T-1000","serialNumber":"SN-7"}} RENAME`}},
		{"connectivity actions fill c8y_Mobile and measure the signal",
			"", actions(t, "connectivity:updateRssi", "connectivity:updateCellId", "connectivity:updateSmnc", "connectivity:updateSmcc"),
			[]*pb.ResourceValue{value("42", "/4/0/2", node.Int(-87), 0), value("42", "/4/0/8", node.Int(12345), 1),
				value("42", "/4/0/9", node.Int(1), 2), value("42", "/4/0/10", node.Int(262), 3)},
			[]string{"M c8y_SignalStrength.rssi=-87 dBm 42", `I 42 {"c8y_Mobile":{"cellId":"12345","mcc":"262","mnc":"1"}}`}},
		{"the default mappings' inventory action, text and numbers",
			"", actions(t, customactions.Inventory("c8y_Hardware", "revision", false), customactions.Inventory("c8y_Position", "lat", true)),
			[]*pb.ResourceValue{value("42", "/3/0/18", node.String("rev-b"), 0), value("42", "/6/0/0", node.String("52.52"), 1), value("42", "/6/0/0", node.String("north"), 1)},
			[]string{`I 42 {"c8y_Hardware":{"revision":"rev-b"},"c8y_Position":{"lat":52.52}}`, "ERR 2 /6/0/0: c8y_Position.lat needs a number"}},
		{"one update per device, in the order they came",
			"", actions(t, "connectivity:updateCellId"),
			[]*pb.ResourceValue{value("7", "/4/0/8", node.Int(1), 0), value("42", "/4/0/8", node.Int(2), 0), value("7", "/4/0/8", node.Int(3), 0)},
			[]string{`I 7 {"c8y_Mobile":{"cellId":"3"}}`, `I 42 {"c8y_Mobile":{"cellId":"2"}}`}},
		{"signal strength that is not a number",
			"", actions(t, "connectivity:updateRssi"), []*pb.ResourceValue{value("42", "/4/0/2", node.String("strong"), 0)},
			[]string{"ERR 0 /4/0/2: measurement c8y_SignalStrength.rssi needs a number"}},
		{"ignoreEmptyValues keeps what the device reported before",
			"", actions(t, "!device:updateSerialNumber", "device:updateModelNumber"),
			[]*pb.ResourceValue{value("42", "/3/0/2", node.String(""), 0), value("42", "/3/0/1", node.String(""), 1)},
			[]string{`I 42 {"c8y_Hardware":{"model":""}} RENAME`}},
		{"one action named for the whole batch, no table",
			"connectivity:updateSmcc", nil, []*pb.ResourceValue{value("42", "/4/0/10", node.Uint(262), 0)},
			[]string{`I 42 {"c8y_Mobile":{"mcc":"262"}}`}},
		{"unknown and malformed actions",
			"", actions(t, "device:updateColour", "inventory:c8y_Hardware", "inventory:c8y_X.y:bool"),
			[]*pb.ResourceValue{value("42", "/3/0/0", node.String("red"), 0), value("42", "/3/0/0", node.String("x"), 1), value("42", "/3/0/0", node.String("x"), 2)},
			[]string{`ERR 0 /3/0/0: unknown custom action "device:updateColour"`,
				`ERR 1 /3/0/0: custom action "inventory:c8y_Hardware" is not inventory:<fragment>.<field>[:number]`,
				`ERR 2 /3/0/0: custom action "inventory:c8y_X.y:bool" is not inventory:<fragment>.<field>[:number]`}},
	}
	c := client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Run(context.Background(), &pb.ActionRequest{Action: tc.action, Values: tc.values, Functionalities: tc.table})
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(resp); !slices.Equal(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s\n(%s)", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"), protojson.Format(resp))
			}
		})
	}
}

// Every predefined action a functionality may name (what the API accepts)
// is one this plugin runs, and it runs nothing else but its inventory:
// actions.
func TestPredefinedActionsKnown(t *testing.T) {
	names := slices.Clone(mapping.CustomActions)
	sort.Strings(names)
	for _, n := range names {
		if !customactions.Known(n) {
			t.Errorf("%s is accepted in functionalities but not run", n)
		}
	}
	for _, n := range []string{"", "decoder:x", "plugin:x:y", "device:update"} {
		if customactions.Known(n) {
			t.Errorf("%q taken for a custom action of the plugin", n)
		}
	}
}
