// Command tempframe is an example decoder: the device sends its
// temperature as a little-endian signed 16-bit count of 0.01 °C in an
// opaque resource, and the decoder turns it into a c8y_Temperature
// measurement. Run by the agent it is a plugin; with --listen ADDR it is a
// gRPC decoder service.
package main

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

func decode(_ context.Context, req sdk.DecodeRequest) (sdk.DecodeResult, error) {
	if len(req.Value) != 2 {
		return sdk.DecodeResult{}, fmt.Errorf("temperature frame: %d bytes, want 2", len(req.Value))
	}
	centi := int16(binary.LittleEndian.Uint16(req.Value))
	return sdk.DecodeResult{
		Success: true,
		Measurements: []sdk.Measurement{{
			Type: "c8y_Temperature", Series: "T", Value: float64(centi) / 100, Unit: "C", Time: req.Time,
		}},
	}, nil
}

func main() {
	sdk.RunDecoder(sdk.DecoderFunc(decode))
}
