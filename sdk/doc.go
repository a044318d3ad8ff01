// Package sdk is what plugin and decoder authors import. A plugin is a
// program that implements one of three small interfaces (Mapper,
// CustomAction, Decoder) and hands it to ServeMapping, ServeCustomAction or
// ServeDecoder; the agent starts it as a subprocess and talks to it over
// gRPC (through github.com/hashicorp/go-plugin). A decoder can also run as
// a standalone gRPC service (ListenDecoder) that the agent dials.
//
// The SDK is a Go module of its own (github.com/lwm2m-agent/lwm2m-agent/sdk,
// tagged sdk/vX.Y.Z) that depends on nothing of the agent: the generated
// contracts (proto/lwm2m/plugin/v1) and the LwM2M data model (node) are
// part of it, and the agent imports them from here.
//
// The types here are plain Go: values are node's typed values, and
// results are the measurements, events, alarms, inventory updates and
// operations the agent stores. The agent uses the same types and the same
// gRPC adapters (NewMapperClient, NewCustomActionClient, NewDecoderClient),
// so a plugin sees exactly what the agent sends. See README.md beside this
// file for a guide.
package sdk
