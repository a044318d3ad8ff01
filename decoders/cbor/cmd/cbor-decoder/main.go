// Command cbor-decoder decodes CBOR maps into measurements (see package
// cbor): as a plugin of the agent, or with --listen ADDR as a gRPC decoder
// service. --type names the measurement type; the argument of the
// functionality that routes a value here overrides it
// (decoder:<name>:c8y_Env).
package main

import (
	"flag"

	"github.com/lwm2m-agent/lwm2m-agent/decoders/cbor"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

func main() {
	typ := flag.String("type", cbor.DefaultType, "measurement type of the decoded values")
	listen := flag.String("listen", "", "serve as a gRPC decoder service on this address instead of as an agent plugin")
	flag.Parse()
	sdk.RunDecoderAt(*listen, cbor.Decoder{Type: *typ})
}
