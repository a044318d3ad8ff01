package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// The conversions between the Go types and the wire. Both sides use them;
// what comes from the other side is validated, since a plugin is code the
// agent does not control (and the agent is code a plugin does not).

func pbTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func goTime(ts *timestamppb.Timestamp) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, err
	}
	return ts.AsTime(), nil
}

func pbValue(v Value) *pb.Value {
	switch v.Type {
	case TypeString:
		return &pb.Value{Kind: &pb.Value_String_{String_: v.Str}}
	case TypeCorelnk:
		return &pb.Value{Kind: &pb.Value_Corelnk{Corelnk: v.Str}}
	case TypeInteger:
		return &pb.Value{Kind: &pb.Value_Int{Int: v.Int}}
	case TypeUnsignedInteger:
		return &pb.Value{Kind: &pb.Value_Uint{Uint: v.Uint}}
	case TypeFloat:
		return &pb.Value{Kind: &pb.Value_Float{Float: v.Float}}
	case TypeBoolean:
		return &pb.Value{Kind: &pb.Value_Bool{Bool: v.Bool}}
	case TypeTime:
		return &pb.Value{Kind: &pb.Value_Time{Time: timestamppb.New(v.Time)}}
	case TypeObjlnk:
		return &pb.Value{Kind: &pb.Value_Objlnk{Objlnk: &pb.ObjectLink{Object: uint32(v.Link.Object), Instance: uint32(v.Link.Instance)}}}
	case TypeOpaque:
		return &pb.Value{Kind: &pb.Value_Opaque{Opaque: v.Bytes}}
	}
	// TypeNone: an executable resource, or raw bytes of an unknown type.
	if len(v.Bytes) > 0 {
		return &pb.Value{Kind: &pb.Value_Opaque{Opaque: v.Bytes}}
	}
	return &pb.Value{}
}

func goValue(v *pb.Value) (Value, error) {
	switch k := v.GetKind().(type) {
	case nil:
		return Value{}, nil
	case *pb.Value_String_:
		return String(k.String_), nil
	case *pb.Value_Corelnk:
		return CoreLink(k.Corelnk), nil
	case *pb.Value_Int:
		return Int(k.Int), nil
	case *pb.Value_Uint:
		return Uint(k.Uint), nil
	case *pb.Value_Float:
		return Float(k.Float), nil
	case *pb.Value_Bool:
		return Bool(k.Bool), nil
	case *pb.Value_Opaque:
		return Opaque(k.Opaque), nil
	case *pb.Value_Time:
		t, err := goTime(k.Time)
		if err != nil {
			return Value{}, fmt.Errorf("time value: %w", err)
		}
		return Time(t), nil
	case *pb.Value_Objlnk:
		if k.Objlnk.GetObject() > math.MaxUint16 || k.Objlnk.GetInstance() > math.MaxUint16 {
			return Value{}, fmt.Errorf("object link %d:%d out of range", k.Objlnk.GetObject(), k.Objlnk.GetInstance())
		}
		return Link(uint16(k.Objlnk.GetObject()), uint16(k.Objlnk.GetInstance())), nil
	}
	return Value{}, fmt.Errorf("unknown value kind %T", v.GetKind())
}

func pbResourceValues(vs []ResourceValue) []*pb.ResourceValue {
	out := make([]*pb.ResourceValue, len(vs))
	for i, v := range vs {
		out[i] = &pb.ResourceValue{
			Tenant: v.Tenant, DeviceId: v.DeviceID, Endpoint: v.Endpoint,
			Path: v.Path.String(), Value: pbValue(v.Value), Time: pbTime(v.Time),
		}
	}
	return out
}

func goResourceValues(vs []*pb.ResourceValue) ([]ResourceValue, error) {
	out := make([]ResourceValue, len(vs))
	for i, v := range vs {
		p, err := ParsePath(v.GetPath())
		if err != nil {
			return nil, fmt.Errorf("value %d: %w", i, err)
		}
		val, err := goValue(v.GetValue())
		if err != nil {
			return nil, fmt.Errorf("value %d at %s: %w", i, p, err)
		}
		t, err := goTime(v.GetTime())
		if err != nil {
			return nil, fmt.Errorf("value %d at %s: time: %w", i, p, err)
		}
		out[i] = ResourceValue{Tenant: v.GetTenant(), DeviceID: v.GetDeviceId(), Endpoint: v.GetEndpoint(), Path: p, Value: val, Time: t}
	}
	return out, nil
}

func marshalFragments(f Fragments) ([]byte, error) {
	if len(f) == 0 {
		return nil, nil
	}
	return json.Marshal(f)
}

func unmarshalFragments(b []byte) (Fragments, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var f Fragments
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&f); err != nil {
		return nil, badAnswer("fragments are not a JSON object: %v", err)
	}
	if d.More() {
		return nil, badAnswer("fragments have data after the JSON object")
	}
	return f, nil
}

func pbMeasurements(ms []Measurement) []*pb.Measurement {
	out := make([]*pb.Measurement, len(ms))
	for i, m := range ms {
		out[i] = &pb.Measurement{Type: m.Type, Fragment: m.Fragment, Series: m.Series, Value: m.Value, Unit: m.Unit, Time: pbTime(m.Time), Source: m.Source}
	}
	return out
}

func goMeasurements(ms []*pb.Measurement) ([]Measurement, error) {
	out := make([]Measurement, len(ms))
	for i, m := range ms {
		if m.GetType() == "" && m.GetFragment() == "" {
			return nil, badAnswer("measurement %d has neither type nor fragment", i)
		}
		if m.GetSeries() == "" {
			return nil, badAnswer("measurement %d has no series", i)
		}
		if math.IsNaN(m.GetValue()) || math.IsInf(m.GetValue(), 0) {
			return nil, badAnswer("measurement %d value %v is not a finite number", i, m.GetValue())
		}
		t, err := goTime(m.GetTime())
		if err != nil {
			return nil, badAnswer("measurement %d time: %v", i, err)
		}
		out[i] = Measurement{Type: m.GetType(), Fragment: m.GetFragment(), Series: m.GetSeries(), Value: m.GetValue(), Unit: m.GetUnit(), Time: t, Source: m.GetSource()}
	}
	return out, nil
}

func pbEvents(es []Event) ([]*pb.Event, error) {
	out := make([]*pb.Event, len(es))
	for i, e := range es {
		f, err := marshalFragments(e.Fragments)
		if err != nil {
			return nil, fmt.Errorf("event %d fragments: %w", i, err)
		}
		out[i] = &pb.Event{Type: e.Type, Text: e.Text, Time: pbTime(e.Time), Source: e.Source, FragmentsJson: f}
	}
	return out, nil
}

func goEvents(es []*pb.Event) ([]Event, error) {
	out := make([]Event, len(es))
	for i, e := range es {
		if e.GetType() == "" {
			return nil, badAnswer("event %d has no type", i)
		}
		f, err := unmarshalFragments(e.GetFragmentsJson())
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		t, err := goTime(e.GetTime())
		if err != nil {
			return nil, badAnswer("event %d time: %v", i, err)
		}
		out[i] = Event{Type: e.GetType(), Text: e.GetText(), Time: t, Source: e.GetSource(), Fragments: f}
	}
	return out, nil
}

func pbAlarms(as []Alarm) ([]*pb.Alarm, error) {
	out := make([]*pb.Alarm, len(as))
	for i, a := range as {
		f, err := marshalFragments(a.Fragments)
		if err != nil {
			return nil, fmt.Errorf("alarm %d fragments: %w", i, err)
		}
		out[i] = &pb.Alarm{Type: a.Type, Severity: a.Severity, Text: a.Text, Status: a.Status, Time: pbTime(a.Time), Source: a.Source, FragmentsJson: f}
	}
	return out, nil
}

func goAlarms(as []*pb.Alarm) ([]Alarm, error) {
	out := make([]Alarm, len(as))
	for i, a := range as {
		if a.GetType() == "" {
			return nil, badAnswer("alarm %d has no type", i)
		}
		sev := a.GetSeverity()
		switch sev {
		case "":
			sev = SeverityMajor
		case SeverityCritical, SeverityMajor, SeverityMinor, SeverityWarning:
		default:
			return nil, badAnswer("alarm %d severity %q is not CRITICAL, MAJOR, MINOR or WARNING", i, sev)
		}
		st := a.GetStatus()
		switch st {
		case "":
			st = StatusActive
		case StatusActive, StatusAcknowledged, StatusCleared:
		default:
			return nil, badAnswer("alarm %d status %q is not ACTIVE, ACKNOWLEDGED or CLEARED", i, st)
		}
		f, err := unmarshalFragments(a.GetFragmentsJson())
		if err != nil {
			return nil, fmt.Errorf("alarm %d: %w", i, err)
		}
		t, err := goTime(a.GetTime())
		if err != nil {
			return nil, badAnswer("alarm %d time: %v", i, err)
		}
		out[i] = Alarm{Type: a.GetType(), Severity: sev, Text: a.GetText(), Status: st, Time: t, Source: a.GetSource(), Fragments: f}
	}
	return out, nil
}

func pbResult(r Result) (*pb.MapResponse, error) {
	ev, err := pbEvents(r.Events)
	if err != nil {
		return nil, err
	}
	al, err := pbAlarms(r.Alarms)
	if err != nil {
		return nil, err
	}
	resp := &pb.MapResponse{Measurements: pbMeasurements(r.Measurements), Events: ev, Alarms: al}
	for i, u := range r.InventoryUpdates {
		f, err := marshalFragments(u.Fragments)
		if err != nil {
			return nil, fmt.Errorf("inventory update %d fragments: %w", i, err)
		}
		resp.InventoryUpdates = append(resp.InventoryUpdates, &pb.InventoryUpdate{Device: u.Device, FragmentsJson: f})
	}
	for i, o := range r.Operations {
		f, err := marshalFragments(o.Fragments)
		if err != nil {
			return nil, fmt.Errorf("operation %d fragments: %w", i, err)
		}
		resp.Operations = append(resp.Operations, &pb.Operation{Device: o.Device, Description: o.Description, FragmentsJson: f})
	}
	for _, e := range r.Errors {
		if e.Index < 0 {
			return nil, fmt.Errorf("value error index %d is negative", e.Index)
		}
		resp.Errors = append(resp.Errors, &pb.ValueError{Index: uint32(e.Index), Path: e.Path, Message: e.Message})
	}
	return resp, nil
}

// goResult converts and checks an answer to a batch of n values.
func goResult(r *pb.MapResponse, n int) (Result, error) {
	var res Result
	var err error
	if res.Measurements, err = goMeasurements(r.GetMeasurements()); err != nil {
		return Result{}, err
	}
	if res.Events, err = goEvents(r.GetEvents()); err != nil {
		return Result{}, err
	}
	if res.Alarms, err = goAlarms(r.GetAlarms()); err != nil {
		return Result{}, err
	}
	for i, u := range r.GetInventoryUpdates() {
		f, err := unmarshalFragments(u.GetFragmentsJson())
		if err != nil {
			return Result{}, fmt.Errorf("inventory update %d: %w", i, err)
		}
		if len(f) == 0 {
			return Result{}, badAnswer("inventory update %d has no fragments", i)
		}
		res.InventoryUpdates = append(res.InventoryUpdates, InventoryUpdate{Device: u.GetDevice(), Fragments: f})
	}
	for i, o := range r.GetOperations() {
		f, err := unmarshalFragments(o.GetFragmentsJson())
		if err != nil {
			return Result{}, fmt.Errorf("operation %d: %w", i, err)
		}
		if len(f) == 0 {
			return Result{}, badAnswer("operation %d has no fragments", i)
		}
		res.Operations = append(res.Operations, Operation{Device: o.GetDevice(), Description: o.GetDescription(), Fragments: f})
	}
	for _, e := range r.GetErrors() {
		if int64(e.GetIndex()) >= int64(n) {
			return Result{}, badAnswer("value error index %d outside the batch of %d", e.GetIndex(), n)
		}
		res.Errors = append(res.Errors, ValueError{Index: int(e.GetIndex()), Path: e.GetPath(), Message: e.GetMessage()})
	}
	return res, nil
}

// argResourcePath is the argument that carries the resource path, as the
// Cumulocity decoder interface names it.
const argResourcePath = "resourcePath"

func pbDecodeRequest(r DecodeRequest) *pb.DecodeRequest {
	args := make(map[string]string, len(r.Args)+1)
	for k, v := range r.Args {
		args[k] = v
	}
	if r.ResourcePath != "" {
		args[argResourcePath] = r.ResourcePath
	}
	return &pb.DecodeRequest{
		Args: args, Tenant: r.Tenant, DeviceId: r.DeviceID, Endpoint: r.Endpoint,
		ServiceKey: r.ServiceKey, Value: r.Value, ContentFormat: uint32(r.ContentFormat), Time: pbTime(r.Time),
	}
}

func goDecodeRequest(r *pb.DecodeRequest) (DecodeRequest, error) {
	if r.GetContentFormat() > math.MaxUint16 {
		return DecodeRequest{}, fmt.Errorf("content format %d out of range", r.GetContentFormat())
	}
	t, err := goTime(r.GetTime())
	if err != nil {
		return DecodeRequest{}, fmt.Errorf("time: %w", err)
	}
	var args map[string]string
	for k, v := range r.GetArgs() {
		if k == argResourcePath {
			continue
		}
		if args == nil {
			args = make(map[string]string, len(r.GetArgs()))
		}
		args[k] = v
	}
	return DecodeRequest{
		ResourcePath: r.GetArgs()[argResourcePath], Args: args, Tenant: r.GetTenant(), DeviceID: r.GetDeviceId(),
		Endpoint: r.GetEndpoint(), ServiceKey: r.GetServiceKey(), Value: r.GetValue(),
		ContentFormat: uint16(r.GetContentFormat()), Time: t,
	}, nil
}

func pbDecodeResult(r DecodeResult) (*pb.DecodeResult, error) {
	ev, err := pbEvents(r.Events)
	if err != nil {
		return nil, err
	}
	al, err := pbAlarms(r.Alarms)
	if err != nil {
		return nil, err
	}
	out := &pb.DecodeResult{Measurements: pbMeasurements(r.Measurements), Events: ev, Alarms: al, Success: r.Success, Message: r.Message}
	for i, f := range r.DataFragments {
		b, err := json.Marshal(f.Value)
		if err != nil {
			return nil, fmt.Errorf("data fragment %d %q: %w", i, f.Key, err)
		}
		out.DataFragments = append(out.DataFragments, &pb.DataFragment{Key: f.Key, ValueJson: b})
	}
	return out, nil
}

func goDecodeResult(r *pb.DecodeResult) (DecodeResult, error) {
	res := DecodeResult{Success: r.GetSuccess(), Message: r.GetMessage()}
	var err error
	if res.Measurements, err = goMeasurements(r.GetMeasurements()); err != nil {
		return DecodeResult{}, err
	}
	if res.Events, err = goEvents(r.GetEvents()); err != nil {
		return DecodeResult{}, err
	}
	if res.Alarms, err = goAlarms(r.GetAlarms()); err != nil {
		return DecodeResult{}, err
	}
	for i, f := range r.GetDataFragments() {
		if f.GetKey() == "" {
			return DecodeResult{}, badAnswer("data fragment %d has no key", i)
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(f.GetValueJson()))
		d.UseNumber()
		if err := d.Decode(&v); err != nil || d.More() {
			return DecodeResult{}, badAnswer("data fragment %q is not one JSON value", f.GetKey())
		}
		res.DataFragments = append(res.DataFragments, DataFragment{Key: f.GetKey(), Value: v})
	}
	return res, nil
}
