package plugins

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// remote is a plugin service at a gRPC address. gRPC reconnects by itself,
// waiting from the spec's minBackoff to its maxBackoff between attempts
// (gRPC's own backoff would grow to two minutes, and a service back after
// an outage would wait that long for its values); calls while the service
// is unreachable fail at once with Unavailable, which the host reports as
// retryable. There is no process to restart: a service that hangs makes
// calls time out, which the host retries, and shows as down until it
// answers again.
type remote struct {
	cc      *grpc.ClientConn
	client  any
	timeout time.Duration
	silent  silence
}

func newRemote(s Spec) (*remote, error) {
	// Plain gRPC: decoder services run beside the agent, in its network;
	// TLS would be a setting of its own.
	cc, err := grpc.NewClient(s.Address, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: time.Duration(s.MinBackoff), Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Duration(s.MaxBackoff),
		}}))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.Address, err)
	}
	r := &remote{cc: cc, timeout: time.Duration(s.Timeout)}
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

func (r *remote) impl() (any, error)  { return r.client, nil }
func (r *remote) failed(timeout bool) { r.silent.failed(timeout) }
func (r *remote) succeeded()          { r.silent.succeeded() }
func (r *remote) pid() int            { return 0 }
func (r *remote) via() string         { return "grpc" }
func (r *remote) close()              { _ = r.cc.Close() }

func (r *remote) up() bool {
	st := r.cc.GetState()
	return (st == connectivity.Ready || st == connectivity.Idle) && !r.silent.now()
}

// answers asks the service's standard gRPC health service (sdk.ListenDecoder
// serves it); a service without one answered all the same.
func (r *remote) answers(ctx context.Context) bool {
	err := checkHealth(ctx, healthpb.NewHealthClient(r.cc), "", r.timeout)
	return err == nil || status.Code(err) == codes.Unimplemented
}

// checkHealth asks a gRPC health service whether service serves, within
// timeout.
func checkHealth(ctx context.Context, hc healthpb.HealthClient, service string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check: %s", s)
	}
	return nil
}

// silence is whether a plugin without a process of the agent's went
// unanswered: from a call that timed out or could not reach it until the
// next answer.
type silence struct{ down atomic.Bool }

func (s *silence) failed(bool) { s.down.Store(true) }
func (s *silence) succeeded()  { s.down.Store(false) }
func (s *silence) now() bool   { return s.down.Load() }
