// Package pluginv1 keeps the plugin contracts' former import path
// compiling: the generated code moved into the SDK module
// (github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1), so that a
// plugin built on the SDK depends on nothing of the agent. Every name here
// is the SDK's own; new code imports the SDK's package.
package pluginv1

import (
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

type (
	ActionRequest                   = pb.ActionRequest
	Alarm                           = pb.Alarm
	CustomActionClient              = pb.CustomActionClient
	CustomActionServer              = pb.CustomActionServer
	DataFragment                    = pb.DataFragment
	DecodeBatchRequest              = pb.DecodeBatchRequest
	DecodeBatchResponse             = pb.DecodeBatchResponse
	DecodeRequest                   = pb.DecodeRequest
	DecodeResult                    = pb.DecodeResult
	DecoderClient                   = pb.DecoderClient
	DecoderServer                   = pb.DecoderServer
	Event                           = pb.Event
	InventoryUpdate                 = pb.InventoryUpdate
	MapRequest                      = pb.MapRequest
	MapResponse                     = pb.MapResponse
	MappingClient                   = pb.MappingClient
	MappingServer                   = pb.MappingServer
	Measurement                     = pb.Measurement
	ObjectLink                      = pb.ObjectLink
	Operation                       = pb.Operation
	ResourceValue                   = pb.ResourceValue
	UnimplementedCustomActionServer = pb.UnimplementedCustomActionServer
	UnimplementedDecoderServer      = pb.UnimplementedDecoderServer
	UnimplementedMappingServer      = pb.UnimplementedMappingServer
	UnsafeCustomActionServer        = pb.UnsafeCustomActionServer
	UnsafeDecoderServer             = pb.UnsafeDecoderServer
	UnsafeMappingServer             = pb.UnsafeMappingServer
	Value                           = pb.Value
	ValueError                      = pb.ValueError
	Value_Bool                      = pb.Value_Bool
	Value_Corelnk                   = pb.Value_Corelnk
	Value_Float                     = pb.Value_Float
	Value_Int                       = pb.Value_Int
	Value_Objlnk                    = pb.Value_Objlnk
	Value_Opaque                    = pb.Value_Opaque
	Value_String_                   = pb.Value_String_
	Value_Time                      = pb.Value_Time
	Value_Uint                      = pb.Value_Uint
)

const (
	CustomAction_Run_FullMethodName    = pb.CustomAction_Run_FullMethodName
	Decoder_DecodeBatch_FullMethodName = pb.Decoder_DecodeBatch_FullMethodName
	Decoder_Decode_FullMethodName      = pb.Decoder_Decode_FullMethodName
	Mapping_Map_FullMethodName         = pb.Mapping_Map_FullMethodName
)

var (
	NewCustomActionClient             = pb.NewCustomActionClient
	NewDecoderClient                  = pb.NewDecoderClient
	NewMappingClient                  = pb.NewMappingClient
	RegisterCustomActionServer        = pb.RegisterCustomActionServer
	RegisterDecoderServer             = pb.RegisterDecoderServer
	RegisterMappingServer             = pb.RegisterMappingServer
	CustomAction_ServiceDesc          = pb.CustomAction_ServiceDesc
	Decoder_ServiceDesc               = pb.Decoder_ServiceDesc
	File_lwm2m_plugin_v1_plugin_proto = pb.File_lwm2m_plugin_v1_plugin_proto
	Mapping_ServiceDesc               = pb.Mapping_ServiceDesc
)
