package sdk

import (
	"fmt"

	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// ProtoValue is v as the contracts carry it. Code that speaks the
// generated contracts directly (the agent's bundled plugins) converts
// values the way the SDK does, so both sides agree on every type.
func ProtoValue(v Value) *pb.Value { return pbValue(v) }

// ValueFromProto is the typed value of a wire value; it fails on a value
// that breaks the contract (an invalid time, an object link out of range).
func ValueFromProto(v *pb.Value) (Value, error) { return goValue(v) }

// ResourceValueFromProto is the Go form of a wire resource value; it fails
// on a bad path, value or time.
func ResourceValueFromProto(v *pb.ResourceValue) (ResourceValue, error) {
	p, err := ParsePath(v.GetPath())
	if err != nil {
		return ResourceValue{}, err
	}
	val, err := goValue(v.GetValue())
	if err != nil {
		return ResourceValue{}, fmt.Errorf("%s: %w", p, err)
	}
	t, err := goTime(v.GetTime())
	if err != nil {
		return ResourceValue{}, fmt.Errorf("%s: time: %w", p, err)
	}
	return ResourceValue{Tenant: v.GetTenant(), DeviceID: v.GetDeviceId(), Endpoint: v.GetEndpoint(), Path: p, Value: val, Time: t}, nil
}
