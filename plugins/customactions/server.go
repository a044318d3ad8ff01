package customactions

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// Server is the bundled CustomAction service. It is safe for concurrent
// use and keeps nothing between calls.
type Server struct {
	pb.UnimplementedCustomActionServer
}

// Run runs the custom actions of a batch. With req.Action set, that action
// applies to every value; empty, each value's functionality names its own
// (customAction) and says whether empty values are ignored. A value the
// action cannot use (the signal strength as text) is answered as an error
// naming its index. Each device's inventory fields come back as one
// update.
func (Server) Run(_ context.Context, req *pb.ActionRequest) (*pb.MapResponse, error) {
	rules := mapping.Rules(req.GetFunctionalities())
	values := req.GetValues()
	if req.GetAction() != "" && len(rules) == 0 {
		// a plain request (no table): every value refers to rule 0, the
		// named action
		rules = []mapping.Rule{{Functionality: mapping.Functionality{CustomAction: req.GetAction()}}}
	}
	ins, idx, errs := mapping.Inputs(values, rules)
	resp := &pb.MapResponse{Errors: errs}
	inv := inventories{}
	for k, in := range ins {
		name := req.GetAction()
		if name == "" {
			name = in.Rule.CustomAction
		}
		fail := func(format string, a ...any) {
			resp.Errors = append(resp.Errors, &pb.ValueError{Index: uint32(idx[k]), Path: in.Path.String(), Message: fmt.Sprintf(format, a...)})
		}
		a, err := lookup(name)
		if err != nil {
			fail("%v", err)
			continue
		}
		if in.Rule.IgnoreEmptyValues && mapping.Empty(in.Value) {
			continue
		}
		if ms := a.measurement; ms != nil {
			if f, ok := mapping.Number(in.Value); ok {
				resp.Measurements = append(resp.Measurements, &pb.Measurement{
					Type: ms.Type, Series: ms.Series, Value: f, Unit: ms.Unit, Time: timestamppb.New(in.Time), Source: in.DeviceID,
				})
			} else {
				fail("measurement %s.%s needs a number", ms.Type, ms.Series)
			}
			continue
		}
		var x any = mapping.Text(in.Value)
		if a.numeric {
			f, ok := mapping.Number(in.Value)
			if !ok {
				fail("%s.%s needs a number", a.fragment, a.field)
				continue
			}
			x = f
		}
		inv.set(in.DeviceID, a, x)
	}
	for _, d := range inv.order {
		u := inv.byDevice[d]
		b, err := json.Marshal(u.fragments)
		if err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", d, err)
		}
		resp.InventoryUpdates = append(resp.InventoryUpdates, &pb.InventoryUpdate{Device: d, FragmentsJson: b, NameFromHardware: u.rename})
	}
	return resp, nil
}

// inventories gathers a batch's inventory fields per device, in the order
// the devices came.
type inventories struct {
	order    []string
	byDevice map[string]*inventory
}

type inventory struct {
	fragments map[string]map[string]any
	rename    bool
}

func (s *inventories) set(device string, a *action, v any) {
	if s.byDevice == nil {
		s.byDevice = map[string]*inventory{}
	}
	u := s.byDevice[device]
	if u == nil {
		u = &inventory{fragments: map[string]map[string]any{}}
		s.byDevice[device] = u
		s.order = append(s.order, device)
	}
	f := u.fragments[a.fragment]
	if f == nil {
		f = map[string]any{}
		u.fragments[a.fragment] = f
	}
	f[a.field] = v
	u.rename = u.rename || a.rename
}

var _ pb.CustomActionServer = Server{}
