package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// RegisterMapper registers m as the Mapping service of s.
func RegisterMapper(s grpc.ServiceRegistrar, m Mapper) {
	pb.RegisterMappingServer(s, &mappingServer{impl: m})
}

// RegisterCustomAction registers a as the CustomAction service of s.
func RegisterCustomAction(s grpc.ServiceRegistrar, a CustomAction) {
	pb.RegisterCustomActionServer(s, &actionServer{impl: a})
}

// RegisterDecoder registers d as the Decoder service of s.
func RegisterDecoder(s grpc.ServiceRegistrar, d Decoder) {
	pb.RegisterDecoderServer(s, &decoderServer{impl: d})
}

// statusOf turns an implementation's error into the status the agent
// reads: ErrTemporary (and deadlines) become Unavailable, which the agent
// retries; anything else is a permanent failure of the input.
func statusOf(err error) error {
	switch {
	case errors.Is(err, ErrTemporary):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unknown, err.Error())
}

// guard turns a panic of the implementation into an Internal error, so one
// bad input does not take the plugin (and every call in flight) down.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = status.Errorf(codes.Internal, "plugin panicked: %v\n%s", r, debug.Stack())
	}
}

// recovered turns a panic of the implementation into fault (for the
// values of the call), and logs it with its stack: the plugin lives on.
func recovered(fault *string, what string) {
	if r := recover(); r != nil {
		*fault = fmt.Sprintf("plugin panicked: %v", r)
		Logger().Error("plugin panicked", "input", what, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	}
}

// breaksContract is the message of a value whose answer the agent would
// refuse.
func breaksContract(err error) string { return "answer breaks the contract: " + err.Error() }

type mappingServer struct {
	pb.UnimplementedMappingServer
	impl Mapper
}

func (s *mappingServer) Map(ctx context.Context, req *pb.MapRequest) (resp *pb.MapResponse, err error) {
	defer guard(&err)
	values, err := goResourceValues(req.GetValues())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return mapEach(ctx, values, s.impl.Map)
}

type actionServer struct {
	pb.UnimplementedCustomActionServer
	impl CustomAction
}

func (s *actionServer) Run(ctx context.Context, req *pb.ActionRequest) (resp *pb.MapResponse, err error) {
	defer guard(&err)
	values, err := goResourceValues(req.GetValues())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return mapEach(ctx, values, func(ctx context.Context, values []ResourceValue) (Result, error) {
		return s.impl.Run(ctx, ActionRequest{Action: req.GetAction(), Argument: req.GetArgument(), Values: values})
	})
}

// mapEach answers a batch of values with f. When f panics, or answers
// what the agent would refuse, it is called again with each half of the
// values, down to single values: the value at fault fails alone (a
// ValueError) and the answers of the others are kept. An error f returns
// still fails the whole batch, as Mapper says.
func mapEach(ctx context.Context, values []ResourceValue, f func(context.Context, []ResourceValue) (Result, error)) (*pb.MapResponse, error) {
	resp, fault, err := mapOnce(ctx, values, f)
	switch {
	case err != nil:
		return nil, err
	case fault == "":
		return resp, nil
	case len(values) == 0:
		return nil, status.Error(codes.Internal, fault)
	case len(values) == 1:
		return &pb.MapResponse{Errors: []*pb.ValueError{{Index: 0, Path: values[0].Path.String(), Message: fault}}}, nil
	}
	mid := len(values) / 2
	first, err := mapEach(ctx, values[:mid], f)
	if err != nil {
		return nil, err
	}
	second, err := mapEach(ctx, values[mid:], f)
	if err != nil {
		return nil, err
	}
	for _, e := range second.Errors {
		e.Index += uint32(mid)
	}
	first.Measurements = append(first.Measurements, second.Measurements...)
	first.Events = append(first.Events, second.Events...)
	first.Alarms = append(first.Alarms, second.Alarms...)
	first.InventoryUpdates = append(first.InventoryUpdates, second.InventoryUpdates...)
	first.Operations = append(first.Operations, second.Operations...)
	first.Errors = append(first.Errors, second.Errors...)
	return first, nil
}

// mapOnce calls f once: fault says why its answer cannot be used (a
// panic, or an answer the agent would refuse); err is f's own error.
func mapOnce(ctx context.Context, values []ResourceValue, f func(context.Context, []ResourceValue) (Result, error)) (resp *pb.MapResponse, fault string, err error) {
	what := fmt.Sprintf("%d values", len(values))
	if len(values) == 1 {
		what = values[0].Path.String()
	}
	defer recovered(&fault, what)
	res, err := f(ctx, values)
	if err != nil {
		return nil, "", statusOf(err)
	}
	if resp, err = pbResult(res); err == nil {
		_, err = goResult(resp, len(values))
	}
	if err != nil {
		return nil, breaksContract(err), nil
	}
	return resp, "", nil
}

type decoderServer struct {
	pb.UnimplementedDecoderServer
	impl Decoder
}

func (s *decoderServer) Decode(ctx context.Context, req *pb.DecodeRequest) (*pb.DecodeResult, error) {
	return s.decode(ctx, req)
}

// DecodeBatch decodes each value on its own: a value that the decoder
// refuses, panics on or answers badly for fails alone.
func (s *decoderServer) DecodeBatch(ctx context.Context, req *pb.DecodeBatchRequest) (*pb.DecodeBatchResponse, error) {
	resp := &pb.DecodeBatchResponse{Results: make([]*pb.DecodeResult, 0, len(req.GetRequests()))}
	for _, r := range req.GetRequests() {
		res, err := s.decode(ctx, r)
		if err != nil {
			// a temporary failure fails the batch: the agent retries it whole
			return nil, err
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// decode answers one value: an error only for a failure that may pass,
// any other failure is the value's (Success false with the reason).
func (s *decoderServer) decode(ctx context.Context, req *pb.DecodeRequest) (out *pb.DecodeResult, err error) {
	r, err := goDecodeRequest(req)
	if err != nil {
		return &pb.DecodeResult{Success: false, Message: "bad request: " + err.Error()}, nil
	}
	out, fault, err := s.decodeOnce(ctx, r)
	if err != nil {
		return nil, err
	}
	if fault != "" {
		return &pb.DecodeResult{Success: false, Message: fault}, nil
	}
	return out, nil
}

func (s *decoderServer) decodeOnce(ctx context.Context, r DecodeRequest) (out *pb.DecodeResult, fault string, err error) {
	defer recovered(&fault, r.ResourcePath)
	res, err := s.impl.Decode(ctx, r)
	if err != nil {
		if st := statusOf(err); status.Code(st) != codes.Unknown {
			return nil, "", st
		}
		// bytes the decoder does not understand: an answer, not a fault
		return nil, err.Error(), nil
	}
	if out, err = pbDecodeResult(res); err == nil {
		_, err = goDecodeResult(out)
	}
	if err != nil {
		return nil, breaksContract(err), nil
	}
	return out, "", nil
}

// wrapCallErr keeps the gRPC status (status.Code still reads it) and marks
// failures that may pass with ErrTemporary.
func wrapCallErr(ctx context.Context, method string, err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return fmt.Errorf("%s: %w: %w", method, ErrTemporary, err)
	case codes.Canceled:
		if ctx.Err() == nil {
			// the connection closed under the call (the plugin is being
			// restarted), not the caller giving up
			return fmt.Errorf("%s: %w: %w", method, ErrTemporary, err)
		}
	}
	return fmt.Errorf("%s: %w", method, err)
}

// DecoderClient is a Decoder reached over gRPC, which can also decode
// several values in one round trip.
type DecoderClient interface {
	Decoder
	// DecodeBatch decodes reqs and returns one result per request, in order.
	DecodeBatch(ctx context.Context, reqs []DecodeRequest) ([]DecodeResult, error)
}

// NewMapperClient returns a Mapper that calls the Mapping service on cc.
// Its errors wrap ErrTemporary when the call may succeed later, and
// ErrBadAnswer when the answer breaks the contract.
func NewMapperClient(cc grpc.ClientConnInterface) Mapper {
	return &mapperClient{c: pb.NewMappingClient(cc)}
}

// NewCustomActionClient returns a CustomAction that calls the CustomAction
// service on cc; errors as for NewMapperClient.
func NewCustomActionClient(cc grpc.ClientConnInterface) CustomAction {
	return &actionClient{c: pb.NewCustomActionClient(cc)}
}

// NewDecoderClient returns a DecoderClient that calls the Decoder service
// on cc; errors as for NewMapperClient.
func NewDecoderClient(cc grpc.ClientConnInterface) DecoderClient {
	return &decoderClient{c: pb.NewDecoderClient(cc)}
}

type mapperClient struct{ c pb.MappingClient }

func (m *mapperClient) Map(ctx context.Context, values []ResourceValue) (Result, error) {
	resp, err := m.c.Map(ctx, &pb.MapRequest{Values: pbResourceValues(values)})
	if err != nil {
		return Result{}, wrapCallErr(ctx, "map", err)
	}
	res, err := goResult(resp, len(values))
	if err != nil {
		return Result{}, fmt.Errorf("map: %w", err)
	}
	return res, nil
}

type actionClient struct{ c pb.CustomActionClient }

func (a *actionClient) Run(ctx context.Context, req ActionRequest) (Result, error) {
	resp, err := a.c.Run(ctx, &pb.ActionRequest{Action: req.Action, Argument: req.Argument, Values: pbResourceValues(req.Values)})
	if err != nil {
		return Result{}, wrapCallErr(ctx, "run "+req.Action, err)
	}
	res, err := goResult(resp, len(req.Values))
	if err != nil {
		return Result{}, fmt.Errorf("run %s: %w", req.Action, err)
	}
	return res, nil
}

type decoderClient struct{ c pb.DecoderClient }

func (d *decoderClient) Decode(ctx context.Context, req DecodeRequest) (DecodeResult, error) {
	resp, err := d.c.Decode(ctx, pbDecodeRequest(req))
	if err != nil {
		return DecodeResult{}, wrapCallErr(ctx, "decode", err)
	}
	res, err := goDecodeResult(resp)
	if err != nil {
		return DecodeResult{}, fmt.Errorf("decode: %w", err)
	}
	return res, nil
}

func (d *decoderClient) DecodeBatch(ctx context.Context, reqs []DecodeRequest) ([]DecodeResult, error) {
	in := &pb.DecodeBatchRequest{Requests: make([]*pb.DecodeRequest, len(reqs))}
	for i, r := range reqs {
		in.Requests[i] = pbDecodeRequest(r)
	}
	resp, err := d.c.DecodeBatch(ctx, in)
	if err != nil {
		return nil, wrapCallErr(ctx, "decode batch", err)
	}
	if len(resp.GetResults()) != len(reqs) {
		return nil, fmt.Errorf("decode batch: %w", badAnswer("%d results for %d requests", len(resp.GetResults()), len(reqs)))
	}
	out := make([]DecodeResult, len(reqs))
	for i, r := range resp.GetResults() {
		if out[i], err = goDecodeResult(r); err != nil {
			// the others' answers stand: this value fails alone
			out[i] = DecodeResult{Message: breaksContract(err)}
		}
	}
	return out, nil
}
