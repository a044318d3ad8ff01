// Package bundled serves the agent's bundled plugins (the mapping and
// custom action code of plugins/mapping and plugins/customactions) through
// hashicorp/go-plugin, and gives the agent's plugin host their clients.
// The agent runs them as its own executable re-executed in plugin mode
// (`lwm2m-agent plugin mapping`); they speak the generated contracts
// directly, with the per-batch table of functionalities the SDK's types do
// not carry.
package bundled

import (
	"context"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/customactions"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// The bundled plugins' names, as the plugin host and its metrics call
// them and as `lwm2m-agent plugin NAME` serves them.
const (
	Mapping       = "mapping"
	CustomActions = "customactions"
)

// Names lists the bundled plugins.
var Names = []string{Mapping, CustomActions}

// Kind is the plugin kind (sdk.KindMapping or sdk.KindCustomAction) of a
// bundled plugin.
func Kind(name string) string {
	if name == CustomActions {
		return sdk.KindCustomAction
	}
	return sdk.KindMapping
}

// Handshake is the SDK's: a bundled plugin is a plugin of the same
// contracts, and started by hand it says it must be started by the agent.
var Handshake = sdk.Handshake

// grpcPlugin is the go-plugin glue of one bundled plugin: the server side
// registers the implementation, the client side returns the generated
// client.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	name string
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	switch p.name {
	case Mapping:
		pb.RegisterMappingServer(s, mapping.Server{})
	case CustomActions:
		pb.RegisterCustomActionServer(s, customactions.Server{})
	default:
		return fmt.Errorf("no bundled plugin %q", p.name)
	}
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	switch p.name {
	case Mapping:
		return pb.NewMappingClient(cc), nil
	case CustomActions:
		return pb.NewCustomActionClient(cc), nil
	}
	return nil, fmt.Errorf("no bundled plugin %q", p.name)
}

// ClientPlugins is the go-plugin plugin set of the agent's side, keyed by
// the plugin kind (what the host dispenses): KindMapping gives a
// pb.MappingClient, KindCustomAction a pb.CustomActionClient.
func ClientPlugins() plugin.PluginSet {
	return plugin.PluginSet{
		sdk.KindMapping:      &grpcPlugin{name: Mapping},
		sdk.KindCustomAction: &grpcPlugin{name: CustomActions},
	}
}

// Serve serves the bundled plugin name to the agent that started this
// process and returns when the agent ends it. Started by hand, go-plugin
// prints that the program must be started by the agent and exits.
func Serve(name string) error {
	if name != Mapping && name != CustomActions {
		return fmt.Errorf("no bundled plugin %q (want %s or %s)", name, Mapping, CustomActions)
	}
	sdk.ExitWithHost()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{Kind(name): &grpcPlugin{name: name}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Output: os.Stderr, JSONFormat: true, Level: hclog.Info, Name: name,
		}),
	})
	return nil
}
