package sdk

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk/node"
)

// Value is a typed LwM2M resource value. The agent uses this very type
// (package node of this module), so a plugin and the agent agree on every
// type of the object model.
type Value = node.Value

// Type is a resource data type (INTEGER, FLOAT, OPAQUE, ...).
type Type = node.Type

// Path is an LwM2M path such as /3303/0/5700.
type Path = node.Path

// ObjLink is the value of an object link resource.
type ObjLink = node.ObjLink

// The resource data types.
const (
	TypeNone            = node.TypeNone
	TypeString          = node.TypeString
	TypeInteger         = node.TypeInteger
	TypeUnsignedInteger = node.TypeUnsignedInteger
	TypeFloat           = node.TypeFloat
	TypeBoolean         = node.TypeBoolean
	TypeOpaque          = node.TypeOpaque
	TypeTime            = node.TypeTime
	TypeObjlnk          = node.TypeObjlnk
	TypeCorelnk         = node.TypeCorelnk
)

// String returns a STRING value.
func String(s string) Value { return node.String(s) }

// Int returns an INTEGER value.
func Int(i int64) Value { return node.Int(i) }

// Uint returns an UNSIGNED_INTEGER value.
func Uint(u uint64) Value { return node.Uint(u) }

// Float returns a FLOAT value.
func Float(f float64) Value { return node.Float(f) }

// Bool returns a BOOLEAN value.
func Bool(b bool) Value { return node.Bool(b) }

// Opaque returns an OPAQUE value.
func Opaque(b []byte) Value { return node.Opaque(b) }

// Time returns a TIME value.
func Time(t time.Time) Value { return node.TimeValue(t) }

// Link returns an OBJLNK value.
func Link(object, instance uint16) Value { return node.Link(object, instance) }

// CoreLink returns a CORELNK value.
func CoreLink(s string) Value { return node.CoreLink(s) }

// ParsePath parses "/3303/0/5700".
func ParsePath(s string) (Path, error) { return node.ParsePath(s) }

// MustParsePath is ParsePath for constants; it panics on a bad path.
func MustParsePath(s string) Path { return node.MustParsePath(s) }

// Number returns a numeric value (INTEGER, UNSIGNED_INTEGER, FLOAT,
// BOOLEAN as 0 or 1, TIME as Unix seconds) as a float64 for a measurement,
// and false for the other types.
func Number(v Value) (float64, bool) {
	switch v.Type {
	case TypeInteger:
		return float64(v.Int), true
	case TypeUnsignedInteger:
		return float64(v.Uint), true
	case TypeFloat:
		return v.Float, !math.IsNaN(v.Float) && !math.IsInf(v.Float, 0)
	case TypeBoolean:
		if v.Bool {
			return 1, true
		}
		return 0, true
	case TypeTime:
		return float64(v.Time.Unix()), true
	}
	return 0, false
}

// Fragments is a JSON object of custom fragments: each value must be
// something encoding/json can marshal.
type Fragments = map[string]any

// ResourceValue is a value a device reported, with the device it came from.
type ResourceValue struct {
	Tenant string
	// DeviceID is the managed object ID of the device.
	DeviceID string
	// Endpoint is the device's LwM2M endpoint name.
	Endpoint string
	Path     Path
	Value    Value
	// Time is when the device measured the value, or when the agent
	// received it if the device gave no time.
	Time time.Time
}

// Measurement is one value of one series, stored at Fragment.Series
// {value, unit} of a measurement of type Type.
type Measurement struct {
	Type string
	// Fragment defaults to Type when empty.
	Fragment string
	Series   string
	Value    float64
	Unit     string
	// Time defaults to the time of the input when zero.
	Time time.Time
	// Source is the device's managed object ID; empty is the device of
	// the input.
	Source string
}

// Event is an event to create.
type Event struct {
	Type      string
	Text      string
	Time      time.Time
	Source    string
	Fragments Fragments
}

// Alarm severities and statuses.
const (
	SeverityCritical = "CRITICAL"
	SeverityMajor    = "MAJOR"
	SeverityMinor    = "MINOR"
	SeverityWarning  = "WARNING"

	StatusActive       = "ACTIVE"
	StatusAcknowledged = "ACKNOWLEDGED"
	StatusCleared      = "CLEARED"
)

// Alarm raises an alarm of Type on a device (Status empty or ACTIVE), or
// clears the active one (Status CLEARED).
type Alarm struct {
	Type string
	// Severity is CRITICAL, MAJOR, MINOR or WARNING; empty is MAJOR.
	Severity  string
	Text      string
	Status    string
	Time      time.Time
	Source    string
	Fragments Fragments
}

// InventoryUpdate merges Fragments into a device's managed object.
type InventoryUpdate struct {
	// Device is the managed object ID; empty is the device of the input.
	Device    string
	Fragments Fragments
}

// Operation is an operation to create for a device.
type Operation struct {
	// Device is the managed object ID; empty is the device of the input.
	Device      string
	Description string
	// Fragments are the operation's fragments, for example
	// {"c8y_Command": {"text": "read /3/0/9"}}.
	Fragments Fragments
}

// ValueError says why the input at Index could not be handled; the other
// inputs of the batch were.
type ValueError struct {
	Index   int
	Path    string
	Message string
}

// Result is what a batch of values maps to.
type Result struct {
	Measurements     []Measurement
	Events           []Event
	Alarms           []Alarm
	InventoryUpdates []InventoryUpdate
	Operations       []Operation
	Errors           []ValueError
}

// Fail records that the value at index of values could not be handled.
func (r *Result) Fail(index int, values []ResourceValue, err error) {
	e := ValueError{Index: index, Message: err.Error()}
	if index >= 0 && index < len(values) {
		e.Path = values[index].Path.String()
	}
	r.Errors = append(r.Errors, e)
}

// ActionRequest runs the custom action Action with Argument (both as the
// device protocol names them) over a batch of values.
type ActionRequest struct {
	Action   string
	Argument string
	Values   []ResourceValue
}

// ArgumentKey is the key of DecodeRequest.Args that holds the argument
// of the functionality that routed a value to the decoder: a device
// protocol's customAction decoder:<name>:<argument> sends <argument> under
// it. A device protocol can set nothing else, so a decoder reads its
// per-resource setting from here (DecodeRequest.Argument).
const ArgumentKey = "argument"

// DecodeRequest is one raw value to decode, with its context. It mirrors
// the Cumulocity decoder interface: Args (with "resourcePath"),
// DeviceID (sourceDeviceId), ServiceKey and Value.
type DecodeRequest struct {
	// ResourcePath is the path the value came from ("/3303/0/5700");
	// on the wire it is Args["resourcePath"].
	ResourcePath string
	// Args are the decoder's arguments: from the agent, ArgumentKey when
	// the functionality names an argument, and nothing else.
	Args       map[string]string
	Tenant     string
	DeviceID   string
	Endpoint   string
	ServiceKey string
	Value      []byte
	// ContentFormat is the CoAP content format of the value (0 if unknown).
	ContentFormat uint16
	// Time is when the device measured the value.
	Time time.Time
}

// Argument is the argument of the functionality that routed the value,
// "frame-v2" for decoder:meter:frame-v2, and "" when it names none.
func (r DecodeRequest) Argument() string { return r.Args[ArgumentKey] }

// DataFragment sets Key (a fragment, or "fragment.field") of the device's
// managed object to Value, which must marshal to JSON.
type DataFragment struct {
	Key   string
	Value any
}

// DecodeResult is what a value decodes to. Success false (with Message)
// means the value cannot be decoded; retrying the same bytes will not help.
type DecodeResult struct {
	Measurements  []Measurement
	Events        []Event
	Alarms        []Alarm
	DataFragments []DataFragment
	Success       bool
	Message       string
}

// Mapper is a mapping plugin. Map is called with batches, from several
// goroutines at once; it must not keep values after it returns. A value it
// cannot map goes into Result.Errors (see Result.Fail) so the rest of the
// batch still counts; an error fails the whole batch.
type Mapper interface {
	Map(ctx context.Context, values []ResourceValue) (Result, error)
}

// CustomAction is a custom action plugin; the rules of Mapper apply.
type CustomAction interface {
	Run(ctx context.Context, req ActionRequest) (Result, error)
}

// Decoder is a decoder. Decode is called from several goroutines at once.
// Bytes that are not what the decoder expects are an error (the agent
// records the failure and does not retry); wrap ErrTemporary for a failure
// that may pass (a backend down), which makes the agent retry later.
type Decoder interface {
	Decode(ctx context.Context, req DecodeRequest) (DecodeResult, error)
}

// MapperFunc adapts a function to Mapper.
type MapperFunc func(ctx context.Context, values []ResourceValue) (Result, error)

// Map calls f.
func (f MapperFunc) Map(ctx context.Context, values []ResourceValue) (Result, error) {
	return f(ctx, values)
}

// CustomActionFunc adapts a function to CustomAction.
type CustomActionFunc func(ctx context.Context, req ActionRequest) (Result, error)

// Run calls f.
func (f CustomActionFunc) Run(ctx context.Context, req ActionRequest) (Result, error) {
	return f(ctx, req)
}

// DecoderFunc adapts a function to Decoder.
type DecoderFunc func(ctx context.Context, req DecodeRequest) (DecodeResult, error)

// Decode calls f.
func (f DecoderFunc) Decode(ctx context.Context, req DecodeRequest) (DecodeResult, error) {
	return f(ctx, req)
}

// ErrTemporary marks a plugin failure that may pass: the agent retries the
// input later instead of recording it as failed.
var ErrTemporary = errors.New("temporary failure")

// ErrBadAnswer is wrapped by the errors of answers that break the contract
// (invalid JSON fragments, unknown severities, results that do not match
// the request).
var ErrBadAnswer = errors.New("plugin answer breaks the contract")

func badAnswer(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, a...))
}
