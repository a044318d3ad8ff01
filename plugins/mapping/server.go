package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// statusCleared is the status of a raiseWhen alarm whose condition does
// not hold.
const statusCleared = "CLEARED"

// Rule is a functionality of a batch's table, parsed once per batch
// however many values refer to it.
type Rule struct {
	Functionality
	// Err says why the table entry is not a functionality; every value
	// referring to it fails with it.
	Err error
	// cond is the parsed raiseWhen, condErr why it does not parse.
	cond    *Condition
	condErr error
}

// Rules parses a batch's table of JSON functionalities.
func Rules(table [][]byte) []Rule {
	rules := make([]Rule, len(table))
	for i, raw := range table {
		r := &rules[i]
		if err := json.Unmarshal(raw, &r.Functionality); err != nil {
			r.Err = fmt.Errorf("functionality %d: %w", i, err)
			continue
		}
		if a := r.Alarm; a != nil && a.RaiseWhen != "" {
			r.cond, r.condErr = ParseCondition(a.RaiseWhen)
		}
	}
	return rules
}

// Input is one value of a batch with the rule that applies to it.
type Input struct {
	sdk.ResourceValue
	Rule *Rule
}

// Inputs decodes a batch's values and finds each one's rule; a value that
// breaks the contract (bad path, value, time or rule index) is reported in
// errs under its index and left out of ins.
func Inputs(values []*pb.ResourceValue, rules []Rule) (ins []Input, idx []int, errs []*pb.ValueError) {
	ins = make([]Input, 0, len(values))
	idx = make([]int, 0, len(values))
	for i, v := range values {
		fail := func(format string, a ...any) {
			errs = append(errs, &pb.ValueError{Index: uint32(i), Path: v.GetPath(), Message: fmt.Sprintf(format, a...)})
		}
		rv, err := sdk.ResourceValueFromProto(v)
		if err != nil {
			fail("value: %v", err)
			continue
		}
		n := int(v.GetFunctionality())
		if n >= len(rules) {
			fail("functionality %d of a table of %d", n, len(rules))
			continue
		}
		if err := rules[n].Err; err != nil {
			fail("%v", err)
			continue
		}
		if rv.Time.IsZero() {
			rv.Time = time.Now().UTC()
		}
		ins = append(ins, Input{ResourceValue: rv, Rule: &rules[n]})
		idx = append(idx, i)
	}
	return ins, idx, errs
}

// Server is the bundled Mapping service: each value is mapped by the
// measurement, event and alarm of its functionality (the custom action is
// the customactions plugin's). It keeps nothing between calls and is safe
// for concurrent use.
//
// A raiseWhen alarm comes back raised (ACTIVE) for every value for which
// the condition holds and CLEARED for every value for which it does not:
// which of those clears change anything depends on the alarm's state, and
// the agent, which stores the alarms, keeps that state and drops the
// repeated clears. So a restart of the plugin process changes nothing.
type Server struct {
	pb.UnimplementedMappingServer
}

// Map maps a batch. Values that cannot be mapped as their functionality
// asks (a measurement of text, a raiseWhen that does not parse) are
// answered as errors naming their index; the rest of the batch is mapped.
func (Server) Map(_ context.Context, req *pb.MapRequest) (*pb.MapResponse, error) {
	rules := Rules(req.GetFunctionalities())
	ins, idx, errs := Inputs(req.GetValues(), rules)
	resp := &pb.MapResponse{Errors: errs}
	for k, in := range ins {
		mapValue(resp, uint32(idx[k]), in)
	}
	return resp, nil
}

// mapValue maps one value by its rule into resp.
func mapValue(resp *pb.MapResponse, index uint32, in Input) {
	fn := &in.Rule.Functionality
	if fn.IgnoreEmptyValues && Empty(in.Value) {
		return
	}
	fail := func(format string, a ...any) {
		resp.Errors = append(resp.Errors, &pb.ValueError{Index: index, Path: in.Path.String(), Message: fmt.Sprintf(format, a...)})
	}
	ts := timestamppb.New(in.Time)
	if ms := fn.Measurement; ms != nil {
		if v, ok := Number(in.Value); ok {
			resp.Measurements = append(resp.Measurements, &pb.Measurement{Type: ms.Type, Series: ms.Series, Value: v, Unit: ms.Unit, Time: ts, Source: in.DeviceID})
		} else {
			fail("measurement %s.%s needs a number", ms.Type, ms.Series)
		}
	}
	tc := textContext{value: in.Value, path: in.Path, endpoint: in.Endpoint, device: in.DeviceID, time: in.Time}
	if ev := fn.Event; ev != nil {
		resp.Events = append(resp.Events, &pb.Event{Type: ev.Type, Text: expand(ev.Text, tc), Time: ts, Source: in.DeviceID})
	}
	if al := fn.Alarm; al != nil {
		raise := &pb.Alarm{Type: al.Type, Severity: al.Severity, Status: al.Status, Text: expand(al.Text, tc), Time: ts, Source: in.DeviceID}
		switch {
		case al.RaiseWhen == "":
			resp.Alarms = append(resp.Alarms, raise)
		case in.Rule.condErr != nil:
			fail("alarm %s: raiseWhen %q: %v", al.Type, al.RaiseWhen, in.Rule.condErr)
		case in.Rule.cond.Holds(ScalarOf(in.Value)):
			// raised while the condition holds: every such value counts
			resp.Alarms = append(resp.Alarms, raise)
		default:
			resp.Alarms = append(resp.Alarms, &pb.Alarm{Type: al.Type, Status: statusCleared, Time: ts, Source: in.DeviceID})
		}
	}
}

// MarshalTable is the JSON of functionalities as a batch's table carries
// them.
func MarshalTable(fns ...Functionality) ([][]byte, error) {
	out := make([][]byte, len(fns))
	for i, f := range fns {
		b, err := json.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("functionality %d: %w", i, err)
		}
		out[i] = b
	}
	return out, nil
}

var _ pb.MappingServer = Server{}
