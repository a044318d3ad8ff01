package model

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// MaxDDFSize bounds the document ParseDDF reads. The largest file of the
// OMA registry is about 200 KiB; a bound keeps an upload from holding
// unbounded memory.
const MaxDDFSize = 8 << 20

// maxDepth bounds element nesting; DDF needs four levels
// (LWM2M/Object/Resources/Item/field), the rest is slack for extensions.
const maxDepth = 32

// maxElements bounds the elements of one document, so that a document of
// many tiny elements cannot hold far more memory than its size. The whole
// OMA registry has about 40,000.
const maxElements = 200_000

// ErrDDF is wrapped by every error of ParseDDF, so callers can map any of
// them to one answer (400 in the API) with errors.Is.
var ErrDDF = errors.New("invalid DDF")

// ParseError is an error in a DDF document, with the line (from 1) and the
// element where it was found so that a person can fix the file.
type ParseError struct {
	Line    int    // 0 when the error is not tied to a place (e.g. too large)
	Element string // the element's name without brackets, "" if none
	Msg     string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("ddf")
	if e.Line > 0 {
		b.WriteString(": line ")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Element != "" {
		b.WriteString(": <")
		b.WriteString(e.Element)
		b.WriteString(">")
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrDDF) hold.
func (e *ParseError) Unwrap() error { return ErrDDF }

// elem is one element of the parsed document, kept with its line.
type elem struct {
	name  string
	line  int
	attrs []xml.Attr
	text  []byte
	kids  []*elem
}

func (e *elem) errf(format string, args ...any) error {
	return &ParseError{Line: e.line, Element: e.name, Msg: fmt.Sprintf(format, args...)}
}

func (e *elem) attr(name string) (string, bool) {
	for _, a := range e.attrs {
		if a.Name.Local == name {
			return a.Value, true
		}
	}
	return "", false
}

func (e *elem) value() string { return strings.TrimSpace(string(e.text)) }

// ParseDDF parses a DDF document of the LWM2M.xsd 1.0 or 1.1 schema (the
// 1.2 registry files use the same elements) holding one or more <Object>
// definitions. It is tolerant of what real files do: a byte-order mark,
// whitespace around values, letter case in enumerations, an empty <Type>
// for executable resources, a missing <Mandatory> (taken as Optional),
// HTML entities in descriptions and unknown elements (ignored). It is strict
// about what changes meaning: malformed XML, a missing or invalid ObjectID,
// Name, MultipleInstances, Item ID, Operations or Type, and duplicate IDs.
// Every error is a *ParseError naming the line and the element.
func ParseDDF(r io.Reader) ([]ObjectDef, error) {
	return ParseDDFWith(r, Options{})
}

// Options choose how ParseDDFWith reads a document.
type Options struct {
	// Strict checks the document against LWM2M.xsd first (ParseDDFStrict).
	Strict bool
	// Limits bound what the document may hold.
	Limits Limits
}

// Limits bound a DDF document; they are checked as its elements are read,
// so that a document over one is refused before the rest is parsed. A
// zero field is no limit.
type Limits struct {
	// Objects bounds the <Object>s of one document.
	Objects int
	// Resources bounds the <Item>s of one object.
	Resources int
}

// The causes of LimitError; they are the refusal causes the agent counts.
const (
	CauseObjects   = "ddf_objects"
	CauseResources = "ddf_resources"
)

// LimitError is a document over one of its Limits. It wraps ErrDDF.
type LimitError struct {
	Cause string // CauseObjects or CauseResources
	Limit int
	Line  int // of the element one past the limit
}

func (e *LimitError) Error() string {
	what := "objects in one document"
	if e.Cause == CauseResources {
		what = "resources in one object"
	}
	return fmt.Sprintf("ddf: line %d: more than %d %s", e.Line, e.Limit, what)
}

// Unwrap makes errors.Is(err, ErrDDF) hold.
func (e *LimitError) Unwrap() error { return ErrDDF }

// ParseDDFWith parses a DDF document as ParseDDF does, or as
// ParseDDFStrict does with o.Strict, refusing a document over o.Limits
// with a *LimitError.
func ParseDDFWith(r io.Reader, o Options) ([]ObjectDef, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxDDFSize+1))
	if err != nil {
		return nil, fmt.Errorf("read ddf: %w", err)
	}
	if len(data) > MaxDDFSize {
		return nil, &ParseError{Msg: fmt.Sprintf("document is larger than %d bytes", MaxDDFSize)}
	}
	root, err := parseTree(data, o.Limits)
	if err != nil {
		return nil, err
	}
	if o.Strict {
		if err := checkSchema(root); err != nil {
			return nil, err
		}
	}
	var objs []*elem
	switch root.name {
	case "LWM2M":
		for _, k := range root.kids {
			if k.name == "Object" {
				objs = append(objs, k)
			}
		}
		if len(objs) == 0 {
			return nil, root.errf("no <Object> in the document")
		}
	case "Object":
		// A bare object without the <LWM2M> wrapper: some tools export that.
		objs = []*elem{root}
	default:
		return nil, root.errf("root element is <%s>, a DDF document has <LWM2M>", root.name)
	}
	defs := make([]ObjectDef, 0, len(objs))
	seen := make(map[uint16]int, len(objs))
	for _, o := range objs {
		def, idLine, err := parseObject(o)
		if err != nil {
			return nil, err
		}
		if first, dup := seen[def.ID]; dup {
			return nil, &ParseError{Line: idLine, Element: "ObjectID", Msg: fmt.Sprintf("object %d is defined twice (first at line %d)", def.ID, first)}
		}
		seen[def.ID] = idLine
		defs = append(defs, def)
	}
	return defs, nil
}

// parseTree reads the document into elements, counting lines as it goes,
// and refuses it at the first element past one of the limits.
func parseTree(data []byte, limits Limits) (*elem, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Entity = xml.HTMLEntity
	d.CharsetReader = charsetReader

	line, counted := 1, 0
	lineAt := func(off int64) int {
		o := min(int(off), len(data))
		if o > counted {
			line += bytes.Count(data[counted:o], []byte{'\n'})
			counted = o
		}
		return line
	}

	var root *elem
	var stack []*elem
	elements, objects, resources := 0, 0, 0
	for {
		// The offset before the token is where the token starts, so a
		// start tag's line is where "<Name" is, not where its ">" is.
		start := lineAt(d.InputOffset())
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			pe := &ParseError{Line: start, Msg: "malformed XML: " + err.Error()}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				pe.Line, pe.Msg = se.Line, "malformed XML: "+se.Msg
			}
			if len(stack) > 0 {
				pe.Element = stack[len(stack)-1].name
			}
			return nil, pe
		}
		switch t := tok.(type) {
		case xml.StartElement:
			e := &elem{name: t.Name.Local, line: start, attrs: t.Attr}
			if elements++; elements > maxElements {
				return nil, e.errf("more than %d elements in the document", maxElements)
			}
			if len(stack) == 0 {
				if root != nil {
					return nil, e.errf("a second root element")
				}
				root = e
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, e)
			}
			stack = append(stack, e)
			if len(stack) > maxDepth {
				return nil, e.errf("elements nested deeper than %d levels", maxDepth)
			}
			switch {
			case isObject(stack):
				objects++
				resources = 0
				if limits.Objects > 0 && objects > limits.Objects {
					return nil, &LimitError{Cause: CauseObjects, Limit: limits.Objects, Line: start}
				}
			case isResource(stack):
				resources++
				if limits.Resources > 0 && resources > limits.Resources {
					return nil, &LimitError{Cause: CauseResources, Limit: limits.Resources, Line: start}
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.text = append(p.text, t...)
			}
		}
	}
	if root == nil {
		return nil, &ParseError{Line: lineAt(int64(len(data))), Msg: "no root element: the document is empty"}
	}
	return root, nil
}

// isObject reports whether the innermost element of stack is an object
// definition: <LWM2M><Object>, or a bare <Object> at the root.
func isObject(stack []*elem) bool {
	n := len(stack)
	return stack[n-1].name == "Object" && (n == 1 || (n == 2 && stack[0].name == "LWM2M"))
}

// isResource reports whether the innermost element of stack is a
// resource definition: <Item> in the <Resources> of an object.
func isResource(stack []*elem) bool {
	n := len(stack)
	return n >= 3 && stack[n-1].name == "Item" && stack[n-2].name == "Resources" && isObject(stack[:n-2])
}

// charsetReader accepts the encodings DDF files declare besides UTF-8.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "us-ascii", "ascii":
		return in, nil
	case "iso-8859-1", "latin1", "latin-1", "iso_8859-1":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(b)+len(b)/8)
		for _, c := range b {
			out = utf8.AppendRune(out, rune(c))
		}
		return bytes.NewReader(out), nil
	}
	return nil, fmt.Errorf("unsupported encoding %q (use UTF-8)", label)
}

// fieldSet indexes the child elements of interest, refusing duplicates
// because two <Type>s leave the meaning open.
func fieldSet(e *elem, names ...string) (map[string]*elem, error) {
	m := make(map[string]*elem, len(names))
	for _, k := range e.kids {
		for _, n := range names {
			if k.name != n {
				continue
			}
			if first, dup := m[n]; dup {
				return nil, k.errf("given twice (first at line %d)", first.line)
			}
			m[n] = k
		}
	}
	return m, nil
}

func required(parent *elem, f map[string]*elem, name, what string) (*elem, error) {
	e, ok := f[name]
	if !ok {
		return nil, &ParseError{Line: parent.line, Element: parent.name, Msg: fmt.Sprintf("%s: missing <%s>", what, name)}
	}
	return e, nil
}

func parseID(s string) (uint16, bool) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n > node.MaxID {
		return 0, false
	}
	return uint16(n), true
}

// parseMultiple reads a <MultipleInstances> value.
func parseMultiple(e *elem, what string) (bool, error) {
	switch strings.ToLower(e.value()) {
	case "multiple":
		return true, nil
	case "single":
		return false, nil
	}
	return false, e.errf("%s: %q is neither Multiple nor Single", what, e.value())
}

// parseMandatory reads an optional <Mandatory>; absent means Optional.
func parseMandatory(e *elem, what string) (bool, error) {
	if e == nil {
		return false, nil
	}
	switch strings.ToLower(e.value()) {
	case "mandatory":
		return true, nil
	case "optional":
		return false, nil
	}
	return false, e.errf("%s: %q is neither Mandatory nor Optional", what, e.value())
}

var objectFields = []string{"Name", "Description1", "ObjectID", "ObjectURN", "LWM2MVersion", "ObjectVersion", "MultipleInstances", "Mandatory", "Resources"}

// parseObject returns the definition and the line of its ObjectID.
func parseObject(o *elem) (ObjectDef, int, error) {
	f, err := fieldSet(o, objectFields...)
	if err != nil {
		return ObjectDef{}, 0, err
	}
	idE, err := required(o, f, "ObjectID", "object")
	if err != nil {
		return ObjectDef{}, 0, err
	}
	id, ok := parseID(idE.value())
	if !ok {
		return ObjectDef{}, 0, idE.errf("%q is not an object ID from 0 to %d", idE.value(), node.MaxID)
	}
	what := "object " + strconv.Itoa(int(id))
	def := ObjectDef{ID: id}
	nameE, err := required(o, f, "Name", what)
	if err != nil {
		return ObjectDef{}, 0, err
	}
	if def.Name = nameE.value(); def.Name == "" {
		return ObjectDef{}, 0, nameE.errf("%s: empty name", what)
	}
	if e := f["Description1"]; e != nil {
		def.Description = e.value()
	}
	if e := f["ObjectURN"]; e != nil {
		def.URN = e.value()
	}
	if e := f["LWM2MVersion"]; e != nil {
		def.LwM2MVersion = e.value()
	}
	if e := f["ObjectVersion"]; e != nil {
		def.Version = e.value()
	}
	mi, err := required(o, f, "MultipleInstances", what)
	if err != nil {
		return ObjectDef{}, 0, err
	}
	if def.Multiple, err = parseMultiple(mi, what); err != nil {
		return ObjectDef{}, 0, err
	}
	if def.Mandatory, err = parseMandatory(f["Mandatory"], what); err != nil {
		return ObjectDef{}, 0, err
	}
	// An object without <Resources> is odd but harmless: it has no
	// resources to type, and the schema's other checks still ran.
	if rs := f["Resources"]; rs != nil {
		seen := make(map[uint16]int)
		for _, it := range rs.kids {
			if it.name != "Item" {
				continue
			}
			r, err := parseItem(it, id)
			if err != nil {
				return ObjectDef{}, 0, err
			}
			if first, dup := seen[r.ID]; dup {
				return ObjectDef{}, 0, it.errf("%s: resource %d is defined twice (first at line %d)", what, r.ID, first)
			}
			seen[r.ID] = it.line
			def.Resources = append(def.Resources, r)
		}
	}
	def.SortResources()
	return def, idE.line, nil
}

var itemFields = []string{"Name", "Operations", "MultipleInstances", "Mandatory", "Type", "RangeEnumeration", "Units", "Description"}

func parseItem(it *elem, obj uint16) (ResourceDef, error) {
	idS, ok := it.attr("ID")
	if !ok {
		return ResourceDef{}, it.errf("object %d: resource without an ID attribute", obj)
	}
	id, ok := parseID(idS)
	if !ok {
		return ResourceDef{}, it.errf("object %d: ID %q is not a resource ID from 0 to %d", obj, idS, node.MaxID)
	}
	what := fmt.Sprintf("resource /%d/x/%d", obj, id)
	f, err := fieldSet(it, itemFields...)
	if err != nil {
		return ResourceDef{}, err
	}
	r := ResourceDef{ID: id}
	nameE, err := required(it, f, "Name", what)
	if err != nil {
		return ResourceDef{}, err
	}
	if r.Name = nameE.value(); r.Name == "" {
		return ResourceDef{}, nameE.errf("%s: empty name", what)
	}
	opE, err := required(it, f, "Operations", what)
	if err != nil {
		return ResourceDef{}, err
	}
	r.Operations = strings.ToUpper(opE.value())
	if r.Operations == "WR" {
		r.Operations = "RW"
	}
	if !validOperations(r.Operations) {
		return ResourceDef{}, opE.errf("%s: %q is not one of R, W, RW, E or empty", what, opE.value())
	}
	mi, err := required(it, f, "MultipleInstances", what)
	if err != nil {
		return ResourceDef{}, err
	}
	if r.Multiple, err = parseMultiple(mi, what); err != nil {
		return ResourceDef{}, err
	}
	if r.Mandatory, err = parseMandatory(f["Mandatory"], what); err != nil {
		return ResourceDef{}, err
	}
	tE, err := required(it, f, "Type", what)
	if err != nil {
		return ResourceDef{}, err
	}
	if r.Type, err = node.ParseType(tE.value()); err != nil {
		return ResourceDef{}, tE.errf("%s: %q is not a resource type (String, Integer, Unsigned Integer, Float, Boolean, Opaque, Time, Objlnk, Corelnk or empty)", what, tE.value())
	}
	if e := f["RangeEnumeration"]; e != nil {
		r.RangeEnumeration = e.value()
	}
	if e := f["Units"]; e != nil {
		r.Units = e.value()
	}
	if e := f["Description"]; e != nil {
		r.Description = e.value()
	}
	return r, nil
}
