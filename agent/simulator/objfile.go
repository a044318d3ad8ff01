package simulator

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// objectsFile is the JSON of an objects file (`simulate --objects`):
//
//	{"ddf": ["sensor.xml"], "every": "2s", "report": "send",
//	 "resources": {
//	   "/32050/0/1": {"hex": ["0a1b2c", "0a1b2d"]},
//	   "/32050/0/2": {"walk": {"start": 21.5, "step": 0.2, "min": -40, "max": 85}},
//	   "/32050/0/3": {"counter": {"start": 0, "step": 1}, "report": "notify"},
//	   "/32050/0/4": {"file": "frame.bin", "every": "10s"},
//	   "/32050/0/5": {"randomBytes": 12},
//	   "/32050/0/6": {"value": "kitchen", "every": "0s"}}}
//
// "every" and "report" at the top are the defaults of every resource.
type objectsFile struct {
	DDF       []string                   `json:"ddf"`
	Every     string                     `json:"every"`
	Report    Report                     `json:"report"`
	Resources map[string]json.RawMessage `json:"resources"`
}

// resourceFile is one member of "resources": exactly one of the value
// members, and optionally its own period and way of reporting.
type resourceFile struct {
	Value       json.RawMessage `json:"value"`
	Hex         json.RawMessage `json:"hex"`
	File        string          `json:"file"`
	Counter     *Counter        `json:"counter"`
	Walk        *Walk           `json:"walk"`
	RandomBytes int             `json:"randomBytes"`
	Every       *string         `json:"every"`
	Report      Report          `json:"report"`
}

// maxValueFile bounds a value read from a file: one value of one
// resource, not a firmware image.
const maxValueFile = 64 << 10

// LoadObjects reads an objects file (file, "" for none) and the DDF files
// ddf name, for Config.Objects. The file's own DDF files are found
// relative to its folder, as are its value files. Every problem of the
// files is reported at once, each with its place.
func LoadObjects(file string, ddf []string) (Objects, error) {
	var o Objects
	var errs []error
	var f objectsFile
	dir := "."
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return Objects{}, fmt.Errorf("objects: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return Objects{}, fmt.Errorf("objects %s: %s", file, strings.TrimPrefix(err.Error(), "json: "))
		}
		dir = filepath.Dir(file)
		for _, p := range f.DDF {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			ddf = append(ddf, p)
		}
	}
	for _, p := range ddf {
		defs, err := readDDF(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o.Defs = append(o.Defs, defs...)
	}
	table := o.table()
	every := time.Duration(0)
	if f.Every != "" {
		d, err := time.ParseDuration(f.Every)
		if err != nil {
			errs = append(errs, fmt.Errorf("every: invalid duration %q", f.Every))
		}
		every = d
	}
	for _, key := range slices.Sorted(maps.Keys(f.Resources)) {
		r, rerrs := parseResource(key, f.Resources[key], table, dir, every, f.Report)
		errs = append(errs, rerrs...)
		if len(rerrs) == 0 {
			o.Resources = append(o.Resources, r)
		}
	}
	// what was read is checked as Config.Validate will, beside what could
	// not be read
	errs = append(errs, o.problems("")...)
	if len(errs) > 0 {
		// by path, whoever found them
		slices.SortStableFunc(errs, func(a, b error) int { return comparePlaces(a.Error(), b.Error()) })
		name := file
		if name == "" {
			name = strings.Join(ddf, ", ")
		}
		return Objects{}, fmt.Errorf("objects %s: %w", name, errors.Join(errs...))
	}
	return o, nil
}

// readDDF reads the object definitions of one DDF file.
func readDDF(path string) ([]model.ObjectDef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ddf: %w", err)
	}
	defer f.Close()
	defs, err := model.ParseDDF(f)
	if err != nil {
		return nil, fmt.Errorf("ddf %s: %w", path, err)
	}
	return defs, nil
}

// parseResource reads one member of "resources", typing its values by
// the resource's definition.
func parseResource(key string, raw json.RawMessage, table *objTable, dir string, every time.Duration, report Report) (Resource, []error) {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	p, err := node.ParsePath(key)
	if err != nil {
		fail("%v", err)
		return Resource{}, errs
	}
	var rf resourceFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rf); err != nil {
		fail("%s", strings.TrimPrefix(err.Error(), "json: "))
		return Resource{}, errs
	}
	r := Resource{Path: p, Counter: rf.Counter, Walk: rf.Walk, RandomBytes: rf.RandomBytes, Every: every, Report: report}
	if rf.Every != nil {
		if r.Every, err = time.ParseDuration(*rf.Every); err != nil {
			fail("every: invalid duration %q", *rf.Every)
		}
	}
	if rf.Report != "" {
		r.Report = rf.Report
	}
	if r.Report == "" {
		r.Report = ReportNotify
	}
	rd, err := r.target(table)
	if err != nil {
		fail("%v", err)
		return r, errs
	}
	literal := func(what string, raw json.RawMessage, parse func(json.RawMessage) (node.Value, error)) {
		if len(raw) == 0 {
			return
		}
		var list []json.RawMessage
		if raw[0] != '[' {
			list = []json.RawMessage{raw}
		} else if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
			fail("%s: an empty or broken list", what)
			return
		}
		for i, item := range list {
			v, err := parse(item)
			if err != nil {
				if len(list) > 1 {
					fail("%s %d: %v", what, i, err)
				} else {
					fail("%s: %v", what, err)
				}
				continue
			}
			r.Values = append(r.Values, v)
		}
	}
	literal("value", rf.Value, func(item json.RawMessage) (node.Value, error) { return parseLiteral(item, rd.typ) })
	literal("hex", rf.Hex, func(item json.RawMessage) (node.Value, error) {
		var s string
		if err := json.Unmarshal(item, &s); err != nil {
			return node.Value{}, fmt.Errorf("%s is not a string of hex digits", item)
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
		if err != nil {
			return node.Value{}, fmt.Errorf("%q is not hex", s)
		}
		return node.Opaque(b), nil
	})
	if rf.File != "" {
		path := rf.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		if v, err := readValueFile(path, rd.typ); err != nil {
			fail("file: %v", err)
		} else {
			r.Values = append(r.Values, v)
		}
	}
	return r, errs
}

// parseLiteral reads a JSON literal as a value of type t, as the
// text/plain format spells values (opaque bytes in hex).
func parseLiteral(raw json.RawMessage, t node.Type) (node.Value, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return node.Value{}, err
	}
	var text string
	switch v := x.(type) {
	case string:
		text = v
	case json.Number:
		text = v.String()
	case bool:
		text = fmt.Sprint(v)
	default:
		return node.Value{}, fmt.Errorf("%s is not a string, number or boolean", raw)
	}
	return node.ParseText(t, text)
}

// readValueFile reads a value from a file: its bytes for an opaque
// resource, its text for a string, else the text as the type spells it.
func readValueFile(path string, t node.Type) (node.Value, error) {
	f, err := os.Open(path)
	if err != nil {
		return node.Value{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxValueFile+1))
	if err != nil {
		return node.Value{}, err
	}
	if len(b) > maxValueFile {
		return node.Value{}, fmt.Errorf("%s is larger than %d bytes", path, maxValueFile)
	}
	switch t {
	case node.TypeOpaque:
		return node.Opaque(b), nil
	case node.TypeString:
		if !utf8.Valid(b) {
			return node.Value{}, fmt.Errorf("%s is not UTF-8 text", path)
		}
		return node.String(string(b)), nil
	}
	return node.ParseText(t, strings.TrimSpace(string(b)))
}

// comparePlaces orders problems by the path they begin with, numerically;
// problems of the file as a whole come first.
func comparePlaces(a, b string) int {
	place := func(s string) (node.Path, bool) {
		head, _, _ := strings.Cut(s, ": ")
		p, err := node.ParsePath(head)
		return p, err == nil && strings.HasPrefix(head, "/")
	}
	pa, oka := place(a)
	pb, okb := place(b)
	switch {
	case !oka || !okb:
		return cmp.Compare(btoi(oka), btoi(okb))
	case pa.Object != pb.Object:
		return cmp.Compare(pa.Object, pb.Object)
	case pa.Instance != pb.Instance:
		return cmp.Compare(pa.Instance, pb.Instance)
	case pa.Resource != pb.Resource:
		return cmp.Compare(pa.Resource, pb.Resource)
	}
	return cmp.Compare(pa.ResourceInstance, pb.ResourceInstance)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
