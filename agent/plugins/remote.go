package plugins

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// remote is a plugin service at a gRPC address. gRPC reconnects by itself
// (with its own backoff); calls while the service is unreachable fail at
// once with Unavailable, which the host reports as retryable.
type remote struct {
	cc     *grpc.ClientConn
	client any
}

func newRemote(s Spec) (*remote, error) {
	// Plain gRPC: decoder services run beside the agent, in its network;
	// TLS would be a setting of its own.
	cc, err := grpc.NewClient(s.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.Address, err)
	}
	r := &remote{cc: cc}
	switch s.Kind {
	case sdk.KindMapping:
		r.client = sdk.NewMapperClient(cc)
	case sdk.KindCustomAction:
		r.client = sdk.NewCustomActionClient(cc)
	default:
		r.client = sdk.NewDecoderClient(cc)
	}
	cc.Connect()
	return r, nil
}

func (r *remote) impl() (any, error) { return r.client, nil }
func (r *remote) failed(bool)        {}
func (r *remote) succeeded()         {}
func (r *remote) pid() int           { return 0 }
func (r *remote) via() string        { return "grpc" }
func (r *remote) close()             { _ = r.cc.Close() }

func (r *remote) up() bool {
	st := r.cc.GetState()
	return st == connectivity.Ready || st == connectivity.Idle
}
