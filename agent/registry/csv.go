// Package registry reads the bulk device registration file that operators
// upload (the Cumulocity LWM2M bulk registration CSV) into typed devices.
//
// It is pure: it parses and validates, and leaves storing, hashing of
// credentials and answering HTTP to its callers. Every problem of a line is
// reported with the line, so that an operator can fix a file of thousands of
// devices in one pass instead of one error at a time.
package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults for Options fields left at zero.
const (
	// DefaultMaxRequestTimeout caps lwm2mRequestTimeout. Five minutes is far
	// above any round trip a sleepy device on NB-IoT needs, yet short enough
	// that a forgotten request does not hold an operation for hours.
	DefaultMaxRequestTimeout = 5 * time.Minute
	// DefaultMaxLines is the largest number of device lines in one file.
	DefaultMaxLines = 100_000
	// DefaultMaxBytes is the largest file read; 100,000 lines with every
	// column filled stay well below it.
	DefaultMaxBytes int64 = 64 << 20
)

// Errors for a file that cannot be read at all. Problems of single lines are
// never returned as errors; they are in Result.Failed.
var (
	ErrNoHeader       = errors.New("no header line")
	ErrEncoding       = errors.New("file is not UTF-8 text")
	ErrTooLarge       = errors.New("file too large")
	ErrMissingColumns = errors.New("mandatory columns missing")
	ErrHeader         = errors.New("invalid header")
)

// Options bound what ParseCSV accepts. Zero values take the defaults above.
type Options struct {
	// MaxRequestTimeout is the largest lwm2mRequestTimeout a line may ask
	// for (the agent's global maximum).
	MaxRequestTimeout time.Duration
	// MaxLines is the largest number of device lines (the header and blank
	// lines not counted).
	MaxLines int
	// MaxBytes is the largest file size in bytes.
	MaxBytes int64
	// MaxLineBytes bounds the bytes of one record (a line, or the lines
	// a quoted field spans).
	MaxLineBytes int
	// MaxFields bounds the fields of one record.
	MaxFields int
}

func (o Options) withDefaults() Options {
	if o.MaxRequestTimeout <= 0 {
		o.MaxRequestTimeout = DefaultMaxRequestTimeout
	}
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxFields <= 0 {
		o.MaxFields = DefaultMaxFields
	}
	return o
}

// Result is what a file holds: the lines that are valid devices, and the
// lines that are not, each with every reason.
type Result struct {
	// Devices are the valid lines in file order.
	Devices []Device
	// Failed are the invalid lines in file order.
	Failed []LineError
	// IgnoredColumns are header names the agent does not know, as written
	// in the file; their values are not read.
	IgnoredColumns []string
}

// LineError is one line that cannot become a device.
type LineError struct {
	// Line is the 1-based physical line in the file where the record
	// starts; the header is line 1.
	Line int
	// DeviceID is the line's ID column, empty when missing.
	DeviceID string
	// Reasons are all problems of the line, each a sentence for a person.
	Reasons []string
}

// Reason joins all reasons of the line with "; ", as failureReason of the
// bulk registration answer.
func (e LineError) Reason() string { return strings.Join(e.Reasons, "; ") }

// Error makes a LineError usable where an error is expected.
func (e LineError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Reason())
}

// ParseCSV reads a bulk registration file. The separator (";" or ",") is
// taken from the header line; quoting follows RFC 4180; a UTF-8 byte order
// mark, blank lines and CRLF line ends are accepted. The error is non-nil
// only when the file cannot be read at all: it is too large, has a record
// over a limit (*LimitError, as soon as that record arrives), is not
// UTF-8, has no header, or its header lacks a mandatory column.
func ParseCSV(r io.Reader, opts Options) (Result, error) {
	opts = opts.withDefaults()
	data, err := readFile(r, opts)
	if err != nil {
		return Result{}, err
	}
	if !utf8.Valid(data) {
		return Result{}, fmt.Errorf("registration file: %w", ErrEncoding)
	}

	cr := csv.NewReader(bytes.NewReader(data))
	cr.Comma = detectSeparator(data)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = false
	cr.ReuseRecord = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Result{}, fmt.Errorf("registration file: %w", ErrNoHeader)
	}
	if err != nil {
		return Result{}, fmt.Errorf("registration file: %w: %w", ErrHeader, err)
	}
	cols, ignored, err := mapHeader(header)
	if err != nil {
		return Result{}, fmt.Errorf("registration file: %w", err)
	}

	res := Result{IgnoredColumns: ignored}
	// Sized from the line count so that a large file does not copy its
	// devices over and over while the slice grows.
	capacity := min(bytes.Count(data, []byte{'\n'}), opts.MaxLines)
	res.Devices = make([]Device, 0, capacity)
	seen := make(map[string]int, capacity)
	lines := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		lines++
		if lines > opts.MaxLines {
			return Result{}, fmt.Errorf("registration file: %w: more than %d device lines", ErrTooLarge, opts.MaxLines)
		}
		if err != nil {
			var pe *csv.ParseError
			line := 0
			if errors.As(err, &pe) {
				line = pe.StartLine
				err = pe.Err
			}
			res.Failed = append(res.Failed, LineError{Line: line, Reasons: []string{"not valid CSV: " + err.Error()}})
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			le := LineError{Line: line, Reasons: []string{fmt.Sprintf("has %d fields, the header has %d", len(rec), len(header))}}
			if cols[fID] >= 0 && cols[fID] < len(rec) {
				le.DeviceID = strings.TrimSpace(rec[cols[fID]])
			}
			res.Failed = append(res.Failed, le)
			continue
		}
		var raw [numFields]string
		for f, c := range cols {
			if c < 0 {
				continue
			}
			v := rec[c]
			if field(f) != fCredentials {
				v = strings.TrimSpace(v)
			}
			raw[f] = v
		}
		dev, reasons := parseDevice(&raw, opts, false)
		dev.Line = line
		if len(reasons) == 0 {
			// An identical repeat is harmless (importing it again updates the
			// device to the same values); a different one is a mistake in
			// the file, and the first line wins.
			if i, ok := seen[dev.ID]; ok {
				prev := res.Devices[i]
				if !sameDevice(prev, dev) {
					reasons = append(reasons, fmt.Sprintf("ID %q already appears on line %d with different values", dev.ID, prev.Line))
				}
			} else {
				seen[dev.ID] = len(res.Devices)
			}
		}
		if len(reasons) > 0 {
			res.Failed = append(res.Failed, LineError{Line: line, DeviceID: raw[fID], Reasons: reasons})
			continue
		}
		res.Devices = append(res.Devices, dev)
	}
	return res, nil
}

// sameDevice reports whether two lines describe the same device with the
// same values.
func sameDevice(a, b Device) bool {
	a.Line, b.Line = 0, 0
	return reflect.DeepEqual(a, b)
}

// detectSeparator counts ";" and "," outside quotes on the first non-blank
// line; the more frequent wins, ";" on a tie because Cumulocity's template
// uses it.
func detectSeparator(data []byte) rune {
	var h headerScan
	h.feed(data)
	return h.sep()
}

// mapHeader returns, for each known field, the column holding it (-1 when
// absent), and the header names it does not know.
func mapHeader(header []string) ([numFields]int, []string, error) {
	var cols [numFields]int
	for i := range cols {
		cols[i] = -1
	}
	var ignored []string
	for i, name := range header {
		f, ok := headerIndex[normalizeHeader(name)]
		if !ok {
			if t := strings.TrimSpace(name); t != "" {
				ignored = append(ignored, t)
			}
			continue
		}
		if cols[f] >= 0 {
			return cols, nil, fmt.Errorf("%w: column %q appears twice (columns %d and %d)", ErrHeader, fieldNames[f], cols[f]+1, i+1)
		}
		cols[f] = i
	}
	var missing []string
	for _, f := range mandatory {
		if cols[f] < 0 {
			missing = append(missing, fieldNames[f])
		}
	}
	if len(missing) > 0 {
		return cols, nil, fmt.Errorf("%w: %s", ErrMissingColumns, strings.Join(missing, ", "))
	}
	return cols, ignored, nil
}

// normalizeHeader folds the ways operators write a column name ("endpoint
// id", "endpointId", "ENDPOINT_ID") into one key.
func normalizeHeader(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if r == ' ' || r == '_' || r == '-' || r == '\t' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

var headerIndex = func() map[string]field {
	m := make(map[string]field, numFields)
	for f, name := range fieldNames {
		m[normalizeHeader(name)] = field(f)
	}
	// Short forms seen in operators' files.
	m["lwm2mpskid"] = fPSKID
	m["pskid"] = fPSKID
	m["lwm2mpskkey"] = fPSKKey
	m["pskkey"] = fPSKKey
	m["bootstrappskid"] = fBootstrapPSKID
	m["bootstrappskkey"] = fBootstrapPSKKey
	m["serveruri"] = fServerURI
	return m
}()
