// Package frame decodes fixed binary frames, as sensors send them in
// opaque resources, into measurements. A Config names each field's place
// and encoding; the package is pure (bytes in, measurements out) so that
// it can be tested and fuzzed alone, and cmd/frame-decoder serves it as a
// decoder plugin or service.
package frame

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Field is one value of the frame: Size() bytes of Type at Offset,
// read in Endian byte order, then value*Scale+Add, stored as
// Measurement.Series [Unit] (fragment Fragment, default Measurement).
type Field struct {
	Measurement string `json:"measurement"`
	Fragment    string `json:"fragment,omitempty"`
	Series      string `json:"series"`
	Offset      int    `json:"offset"`
	// Type is int8, uint8, int16, uint16, int32, uint32, float32 or float64.
	Type string `json:"type"`
	// Endian is "little" (the default) or "big".
	Endian string `json:"endian,omitempty"`
	// Scale multiplies the raw value; 0 (unset) is 1.
	Scale float64 `json:"scale,omitempty"`
	// Add is added after scaling.
	Add  float64 `json:"add,omitempty"`
	Unit string  `json:"unit,omitempty"`
}

// Config is the layout of a frame.
type Config struct {
	Fields []Field `json:"fields"`
	// Exact refuses frames longer than the last field reaches (a frame
	// of another layout); by default trailing bytes are ignored.
	Exact bool `json:"exact,omitempty"`
}

var sizes = map[string]int{"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "float32": 4, "float64": 8}

// maxOffset bounds a field's offset: a frame in an LwM2M resource is
// small, and a huge offset is a typo.
const maxOffset = 1 << 16

// Validate checks a layout, naming each field at fault.
func (c Config) Validate() error {
	var errs []error
	if len(c.Fields) == 0 {
		errs = append(errs, errors.New("fields: none"))
	}
	for i, f := range c.Fields {
		at := fmt.Sprintf("fields[%d] (%s)", i, f.Series)
		if f.Measurement == "" || f.Series == "" {
			errs = append(errs, fmt.Errorf("%s: measurement and series are needed", at))
		}
		if _, ok := sizes[f.Type]; !ok {
			errs = append(errs, fmt.Errorf("%s: type %q is not int8, uint8, int16, uint16, int32, uint32, float32 or float64", at, f.Type))
		}
		if f.Offset < 0 || f.Offset > maxOffset {
			errs = append(errs, fmt.Errorf("%s: offset %d is not between 0 and %d", at, f.Offset, maxOffset))
		}
		switch strings.ToLower(f.Endian) {
		case "", "little", "big":
		default:
			errs = append(errs, fmt.Errorf("%s: endian %q is not little or big", at, f.Endian))
		}
		if math.IsNaN(f.Scale) || math.IsInf(f.Scale, 0) || math.IsNaN(f.Add) || math.IsInf(f.Add, 0) {
			errs = append(errs, fmt.Errorf("%s: scale and add must be finite", at))
		}
	}
	return errors.Join(errs...)
}

// ParseConfig reads a layout from JSON and validates it.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("frame config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("frame config: %w", err)
	}
	return c, nil
}

// LoadConfig reads a layout file.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("frame config: %w", err)
	}
	return ParseConfig(b)
}

// ErrShort is wrapped by the error of a frame too short for its fields.
var ErrShort = errors.New("frame too short")

// Decode reads the fields of c from b. c must be valid.
func (c Config) Decode(b []byte) ([]sdk.Measurement, error) {
	out := make([]sdk.Measurement, 0, len(c.Fields))
	end := 0
	for _, f := range c.Fields {
		size := sizes[f.Type]
		if f.Offset+size > len(b) {
			return nil, fmt.Errorf("%w: %d bytes, field %s needs bytes %d to %d", ErrShort, len(b), f.Series, f.Offset, f.Offset+size-1)
		}
		end = max(end, f.Offset+size)
		var order binary.ByteOrder = binary.LittleEndian
		if strings.EqualFold(f.Endian, "big") {
			order = binary.BigEndian
		}
		p := b[f.Offset : f.Offset+size]
		var v float64
		switch f.Type {
		case "int8":
			v = float64(int8(p[0]))
		case "uint8":
			v = float64(p[0])
		case "int16":
			v = float64(int16(order.Uint16(p)))
		case "uint16":
			v = float64(order.Uint16(p))
		case "int32":
			v = float64(int32(order.Uint32(p)))
		case "uint32":
			v = float64(order.Uint32(p))
		case "float32":
			v = float64(math.Float32frombits(order.Uint32(p)))
		case "float64":
			v = math.Float64frombits(order.Uint64(p))
		}
		scale := f.Scale
		if scale == 0 {
			scale = 1
		}
		v = v*scale + f.Add
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("field %s: %v is not a finite number", f.Series, v)
		}
		out = append(out, sdk.Measurement{Type: f.Measurement, Fragment: f.Fragment, Series: f.Series, Value: v, Unit: f.Unit})
	}
	if c.Exact && len(b) != end {
		return nil, fmt.Errorf("frame of %d bytes, the layout has %d", len(b), end)
	}
	return out, nil
}

// Decoder serves a layout as an sdk.Decoder.
type Decoder struct{ c Config }

var _ sdk.Decoder = (*Decoder)(nil)

// NewDecoder validates c and returns its decoder.
func NewDecoder(c Config) (*Decoder, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("frame config: %w", err)
	}
	return &Decoder{c: c}, nil
}

// Decode decodes req.Value; the measurements carry the request's time.
func (d *Decoder) Decode(_ context.Context, req sdk.DecodeRequest) (sdk.DecodeResult, error) {
	ms, err := d.c.Decode(req.Value)
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode %s: %w", req.ResourcePath, err)
	}
	for i := range ms {
		ms[i].Time = req.Time
	}
	return sdk.DecodeResult{Success: true, Measurements: ms}, nil
}
