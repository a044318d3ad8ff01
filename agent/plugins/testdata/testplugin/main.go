// Command testplugin is a plugin that misbehaves on request, for the
// host's tests: its first argument is the kind it serves. As a decoder it
// answers the first byte of a value as a measurement, except for the
// values "hang" (never answers), "crash" (exits), "panic" (panics),
// "badalarm" (answers an alarm of an unknown severity), "pid" (answers
// its process ID) and "log" (logs a line at each level, the text of each
// the level's name, and answers 1). Arguments after the kind: delay=D
// makes a decoder take D for each value (less if the call is cancelled),
// down=FILE makes the plugin exit at start while FILE exists (a plugin
// that is down until it is fixed).
package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

var delay time.Duration

func decode(ctx context.Context, req sdk.DecodeRequest) (sdk.DecodeResult, error) {
	if delay > 0 {
		select {
		case <-ctx.Done():
			return sdk.DecodeResult{}, ctx.Err()
		case <-time.After(delay):
		}
	}
	switch string(req.Value) {
	case "hang":
		select {} // ignores its context, as a stuck plugin does
	case "crash":
		os.Exit(3)
	case "panic":
		panic("the value the decoder has a bug for")
	case "log":
		log := sdk.Logger()
		log.Debug("debug", "n", 1)
		log.Info("info", "n", 2)
		log.Warn("warn", "n", 3)
		log.Error("error", "n", 4)
		return sdk.DecodeResult{Success: true, Measurements: []sdk.Measurement{{Type: "v", Series: "v", Value: 1}}}, nil
	case "badalarm":
		return sdk.DecodeResult{Success: true, Alarms: []sdk.Alarm{{Type: "x", Severity: "HUGE"}}}, nil
	case "pid":
		return sdk.DecodeResult{Success: true, Measurements: []sdk.Measurement{{Type: "pid", Series: "pid", Value: float64(os.Getpid())}}}, nil
	case "":
		return sdk.DecodeResult{}, errors.New("empty value")
	}
	return sdk.DecodeResult{Success: true, Measurements: []sdk.Measurement{{Type: "v", Series: "v", Value: float64(req.Value[0])}}}, nil
}

func mapValues(_ context.Context, values []sdk.ResourceValue) (sdk.Result, error) {
	var r sdk.Result
	for i, v := range values {
		f, ok := sdk.Number(v.Value)
		if !ok {
			r.Fail(i, values, errors.New("not a number"))
			continue
		}
		r.Measurements = append(r.Measurements, sdk.Measurement{Type: "c8y_" + v.Path.String(), Series: "v", Value: f, Source: v.DeviceID, Time: v.Time})
	}
	return r, nil
}

func run(_ context.Context, req sdk.ActionRequest) (sdk.Result, error) {
	return sdk.Result{Events: []sdk.Event{{Type: req.Action, Text: req.Argument, Fragments: sdk.Fragments{"values": len(req.Values)}}}}, nil
}

func main() {
	kind := sdk.KindDecoder
	if len(os.Args) > 1 {
		kind = os.Args[1]
	}
	for _, a := range os.Args[min(len(os.Args), 2):] {
		switch k, v, _ := strings.Cut(a, "="); k {
		case "delay":
			delay, _ = time.ParseDuration(v)
		case "down":
			if _, err := os.Stat(v); err == nil {
				os.Exit(4)
			}
		}
	}
	switch kind {
	case sdk.KindMapping:
		sdk.ServeMapping(sdk.MapperFunc(mapValues))
	case sdk.KindCustomAction:
		sdk.ServeCustomAction(sdk.CustomActionFunc(run))
	default:
		sdk.ServeDecoder(sdk.DecoderFunc(decode))
	}
}
