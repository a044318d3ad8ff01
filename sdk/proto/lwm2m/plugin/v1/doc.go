// Package pluginv1 is the generated Go code of the plugin contracts in
// plugin.proto (package lwm2m.plugin.v1): the messages and the Mapping,
// CustomAction and Decoder gRPC services. Regenerate it with `make proto`;
// plugin authors use the sdk package instead of these types directly.
package pluginv1
