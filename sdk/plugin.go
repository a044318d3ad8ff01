package sdk

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The plugin kinds, as the agent's configuration names them.
const (
	KindMapping      = "mapping"
	KindCustomAction = "customaction"
	KindDecoder      = "decoder"
)

// Handshake is what the agent and a plugin check before they talk: a
// plugin built against another major version of the contracts refuses to
// start, and a plugin binary started by hand says it must be started by
// the agent.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "LWM2M_AGENT_PLUGIN",
	MagicCookieValue: "9d3b7c1e0f6a4e2b8c5d-lwm2m-plugin-v1",
}

// grpcPlugin is the go-plugin glue of one kind: the server side registers
// the implementation, the client side returns the gRPC adapter.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	kind     string
	register func(*grpc.Server)
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.register == nil {
		return fmt.Errorf("plugin %s: no implementation to serve", p.kind)
	}
	p.register(s)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	switch p.kind {
	case KindMapping:
		return NewMapperClient(cc), nil
	case KindCustomAction:
		return NewCustomActionClient(cc), nil
	case KindDecoder:
		return NewDecoderClient(cc), nil
	}
	return nil, fmt.Errorf("unknown plugin kind %q", p.kind)
}

// ClientPlugins is the go-plugin plugin set of the agent's side:
// dispensing KindMapping gives a Mapper, KindCustomAction a CustomAction,
// KindDecoder a DecoderClient.
func ClientPlugins() plugin.PluginSet {
	return plugin.PluginSet{
		KindMapping:      &grpcPlugin{kind: KindMapping},
		KindCustomAction: &grpcPlugin{kind: KindCustomAction},
		KindDecoder:      &grpcPlugin{kind: KindDecoder},
	}
}

// ServeMapping serves m to the agent that started this program and
// returns when the agent ends it. Started by hand, it exits with a message.
func ServeMapping(m Mapper) {
	serve(KindMapping, func(s *grpc.Server) { RegisterMapper(s, m) })
}

// ServeCustomAction serves a to the agent, as ServeMapping.
func ServeCustomAction(a CustomAction) {
	serve(KindCustomAction, func(s *grpc.Server) { RegisterCustomAction(s, a) })
}

// ServeDecoder serves d to the agent, as ServeMapping.
func ServeDecoder(d Decoder) {
	serve(KindDecoder, func(s *grpc.Server) { RegisterDecoder(s, d) })
}

func serve(kind string, register func(*grpc.Server)) {
	ExitWithHost()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{kind: &grpcPlugin{kind: kind, register: register}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Output: os.Stderr, JSONFormat: true, Level: hclog.Info, Name: "plugin",
		}),
	})
}

// ListenDecoder serves d as a standalone gRPC service (a decoder
// microservice) on addr, with the standard gRPC health service, until ctx
// ends; then it stops gracefully and returns nil.
func ListenDecoder(ctx context.Context, addr string, d Decoder) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen decoder: %w", err)
	}
	return ServeDecoderListener(ctx, lis, d)
}

// ServeDecoderListener is ListenDecoder on a listener the caller opened
// (":0" in tests); it closes lis.
func ServeDecoderListener(ctx context.Context, lis net.Listener, d Decoder) error {
	s := grpc.NewServer()
	RegisterDecoder(s, d)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(s, hs)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		hs.Shutdown()
		s.GracefulStop()
	}()
	err := s.Serve(lis)
	cancel()
	<-stopped
	if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve decoder: %w", err)
	}
	return nil
}

// RunDecoder is the whole main of a decoder program without flags of its
// own: it reads --listen ADDR from the command line and calls
// RunDecoderAt.
func RunDecoder(d Decoder) {
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	listen := fs.String("listen", "", "serve as a gRPC decoder service on this address (host:port) instead of as an agent plugin")
	_ = fs.Parse(os.Args[1:])
	RunDecoderAt(*listen, d)
}

// RunDecoderAt serves d as a gRPC decoder service on listen until SIGINT
// or SIGTERM, or, when listen is empty, as a plugin of the agent that
// started the program. It exits the program on error.
func RunDecoderAt(listen string, d Decoder) {
	if listen == "" {
		ServeDecoder(d)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := Logger()
	log.Info("decoder service listening", "addr", listen)
	if err := ListenDecoder(ctx, listen, d); err != nil {
		log.Error("decoder service failed", "err", err)
		os.Exit(1)
	}
}
