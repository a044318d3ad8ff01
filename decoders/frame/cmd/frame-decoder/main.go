// Command frame-decoder decodes binary frames by a JSON layout (see
// package frame): `frame-decoder --config layout.json` as a plugin of the
// agent, or with --listen ADDR as a gRPC decoder service.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/lwm2m-agent/lwm2m-agent/decoders/frame"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

func main() {
	config := flag.String("config", "", "JSON file of the frame layout (required)")
	listen := flag.String("listen", "", "serve as a gRPC decoder service on this address instead of as an agent plugin")
	flag.Parse()
	c, err := frame.LoadConfig(*config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "frame-decoder:", err)
		os.Exit(2)
	}
	d, err := frame.NewDecoder(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "frame-decoder:", err)
		os.Exit(2)
	}
	sdk.RunDecoderAt(*listen, d)
}
