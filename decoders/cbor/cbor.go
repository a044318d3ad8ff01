// Package cbor decodes opaque values that carry a CBOR map into
// measurements: {"T": 21.5, "H": 40} gives series T and H of one
// measurement type; a nested map {"c8y_Temperature": {"T": 21.5}} gives
// fragment c8y_Temperature, series T. Numbers (and booleans as 0 and 1)
// become values; text and other values are skipped. The package is pure;
// cmd/cbor-decoder serves it as a decoder plugin or service.
package cbor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"

	"github.com/fxamacker/cbor/v2"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// ArgType is the former key of the measurement type in a request's Args,
// still read when the request has no argument (sdk.ArgumentKey): the
// agent never sent it, as a device protocol cannot set it, but a caller of
// the decoder service may.
const ArgType = "type"

// DefaultType is the measurement type when none is configured.
const DefaultType = "c8y_CBOR"

// Limits on what a device may send: a value of an LwM2M resource is small.
const (
	maxPairs  = 1024
	maxNested = 4
)

var decMode = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		MaxNestedLevels:  maxNested + 2,
		MaxMapPairs:      maxPairs,
		MaxArrayElements: maxPairs,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// ErrNotMap is wrapped by the error of a value that is not a CBOR map.
var ErrNotMap = errors.New("not a CBOR map")

// Decode decodes b into measurements of type typ (DefaultType when
// empty), ordered by fragment and series.
func Decode(b []byte, typ string) ([]sdk.Measurement, error) {
	if typ == "" {
		typ = DefaultType
	}
	var top any
	if err := decMode.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("cbor: %w", err)
	}
	m, ok := top.(map[any]any)
	if !ok {
		return nil, fmt.Errorf("cbor: %w (a %T)", ErrNotMap, top)
	}
	var out []sdk.Measurement
	for k, v := range m {
		key, err := keyString(k)
		if err != nil {
			return nil, err
		}
		if inner, ok := v.(map[any]any); ok {
			for ik, iv := range inner {
				series, err := keyString(ik)
				if err != nil {
					return nil, err
				}
				if _, deeper := iv.(map[any]any); deeper {
					return nil, fmt.Errorf("cbor: %s.%s: maps nest at most as fragment.series", key, series)
				}
				if f, ok := number(iv); ok {
					out = append(out, sdk.Measurement{Type: typ, Fragment: key, Series: series, Value: f})
				}
			}
			continue
		}
		if f, ok := number(v); ok {
			out = append(out, sdk.Measurement{Type: typ, Series: key, Value: f})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Fragment != out[j].Fragment {
			return out[i].Fragment < out[j].Fragment
		}
		return out[i].Series < out[j].Series
	})
	return out, nil
}

func keyString(k any) (string, error) {
	switch k := k.(type) {
	case string:
		if k == "" {
			return "", errors.New("cbor: empty key")
		}
		return k, nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	}
	return "", fmt.Errorf("cbor: key of type %T, want text or integer", k)
}

func number(v any) (float64, bool) {
	var f float64
	switch v := v.(type) {
	case uint64:
		f = float64(v)
	case int64:
		f = float64(v)
	case float64:
		f = v
	case float32:
		f = float64(v)
	case bool:
		if v {
			f = 1
		}
	case big.Int:
		f, _ = new(big.Float).SetInt(&v).Float64()
	case *big.Int:
		f, _ = new(big.Float).SetInt(v).Float64()
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// Decoder serves Decode as an sdk.Decoder.
type Decoder struct {
	// Type is the measurement type unless the request's argument names
	// another: customAction decoder:<name>:c8y_Env in a device protocol.
	Type string
}

var _ sdk.Decoder = Decoder{}

// Decode decodes req.Value; the measurements carry the request's time.
func (d Decoder) Decode(_ context.Context, req sdk.DecodeRequest) (sdk.DecodeResult, error) {
	typ := d.Type
	if t := req.Argument(); t != "" {
		typ = t
	} else if t := req.Args[ArgType]; t != "" {
		typ = t
	}
	ms, err := Decode(req.Value, typ)
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode %s: %w", req.ResourcePath, err)
	}
	for i := range ms {
		ms[i].Time = req.Time
	}
	return sdk.DecodeResult{Success: true, Measurements: ms}, nil
}
