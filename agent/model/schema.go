package model

import (
	"bytes"
	"io"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// ParseDDFStrict parses a DDF document like ParseDDF after checking it
// against the LWM2M.xsd schema, 1.0 or 1.1 (1.1 only adds the types
// "Unsigned Integer" and "Corelnk", so one check accepts both): the root
// <LWM2M> holding <Object>s, each element the schema names (in any order,
// see sequence), no unknown elements, the required ObjectType and ID attributes,
// and the enumerations of MultipleInstances, Mandatory, Operations and Type
// spelled as the schema spells them. Whitespace around a value is accepted,
// as every tool that edits these files adds some.
//
// It is for documents that users upload: a definition the agent stores
// should be one that every other LwM2M tool reads the same way. Errors are
// *ParseError values naming the line and the element.
func ParseDDFStrict(r io.Reader) ([]ObjectDef, error) {
	return ParseDDFWith(r, Options{Strict: true})
}

// field is one element of a schema sequence.
type field struct {
	name     string
	optional bool
	check    func(e *elem) error // nil: any text
}

func enumeration(what string, values ...string) func(e *elem) error {
	return func(e *elem) error {
		v := e.value()
		for _, ok := range values {
			if v == ok {
				return nil
			}
		}
		quoted := make([]string, len(values))
		for i, s := range values {
			quoted[i] = strconv.Quote(s)
		}
		return e.errf("%s %q is not one of %s", what, v, strings.Join(quoted, ", "))
	}
}

func unsignedShort(what string) func(e *elem) error {
	return func(e *elem) error {
		if _, ok := parseID(e.value()); !ok {
			return e.errf("%s %q is not a number from 0 to %d", what, e.value(), node.MaxID)
		}
		return nil
	}
}

var (
	multipleInstances = enumeration("MultipleInstances", "Multiple", "Single")
	mandatory         = enumeration("Mandatory", "Mandatory", "Optional")

	objectSequence = []field{
		{name: "Name"},
		{name: "Description1"},
		{name: "ObjectID", check: unsignedShort("ObjectID")},
		{name: "ObjectURN"},
		{name: "LWM2MVersion", optional: true},
		{name: "ObjectVersion", optional: true},
		{name: "MultipleInstances", check: multipleInstances},
		{name: "Mandatory", check: mandatory},
		{name: "Resources"},
		{name: "Description2"},
	}
	itemSequence = []field{
		{name: "Name"},
		{name: "Operations", check: enumeration("Operations", "R", "W", "RW", "E", "")},
		{name: "MultipleInstances", check: multipleInstances},
		{name: "Mandatory", check: mandatory},
		{name: "Type", check: enumeration("Type", "String", "Integer", "Float", "Boolean", "Opaque", "Time", "Objlnk", "Unsigned Integer", "Corelnk", "")},
		// required by the schema, absent from registry files (3410, 3432,
		// ...): an empty range and no unit is what they mean
		{name: "RangeEnumeration", optional: true},
		{name: "Units", optional: true},
		{name: "Description"},
	}
)

// checkSchema checks the tree against LWM2M.xsd.
func checkSchema(root *elem) error {
	if root.name != "LWM2M" {
		return root.errf("root element is <%s>; a DDF document has <LWM2M>", root.name)
	}
	if err := noText(root); err != nil {
		return err
	}
	if len(root.kids) == 0 {
		return root.errf("no <Object> in the document")
	}
	for _, o := range root.kids {
		if o.name != "Object" {
			return o.errf("unknown element in <LWM2M>: only <Object> is allowed here")
		}
		if err := checkObject(o); err != nil {
			return err
		}
	}
	return nil
}

func checkObject(o *elem) error {
	if _, ok := o.attr("ObjectType"); !ok {
		return o.errf("the ObjectType attribute is required (ObjectType=\"MODefinition\")")
	}
	if err := noText(o); err != nil {
		return err
	}
	kids, err := sequence(o, objectSequence)
	if err != nil {
		return err
	}
	rs := kids["Resources"]
	if err := noText(rs); err != nil {
		return err
	}
	if len(rs.kids) == 0 {
		return rs.errf("no <Item>: an object defines at least one resource")
	}
	for _, it := range rs.kids {
		if it.name != "Item" {
			return it.errf("unknown element in <Resources>: only <Item> is allowed here")
		}
		if err := checkItem(it); err != nil {
			return err
		}
	}
	return nil
}

func checkItem(it *elem) error {
	id, ok := it.attr("ID")
	if !ok {
		return it.errf("the ID attribute is required")
	}
	if _, ok := parseID(id); !ok {
		return it.errf("ID %q is not a number from 0 to %d", id, node.MaxID)
	}
	if err := noText(it); err != nil {
		return err
	}
	_, err := sequence(it, itemSequence)
	return err
}

// sequence checks that the children of parent are the schema's fields,
// each at most once, the required ones present, and that leaf fields hold
// only text with a valid value. It returns the children by name.
//
// The schema's order is not enforced: files of the OMA registry itself
// (3410, 3432, 3451 to 3461, 511, ...) put Type before Operations or
// Description2 before ObjectID, and every LwM2M tool reads them; refusing
// them would refuse the registry.
func sequence(parent *elem, seq []field) (map[string]*elem, error) {
	got := make(map[string]*elem, len(seq))
	for _, k := range parent.kids {
		if prev, ok := got[k.name]; ok {
			return nil, k.errf("given twice in <%s> (first at line %d)", parent.name, prev.line)
		}
		j := 0
		for j < len(seq) && seq[j].name != k.name {
			j++
		}
		if j == len(seq) {
			return nil, k.errf("unknown element in <%s>: expected %s", parent.name, expected(seq))
		}
		f := seq[j]
		if f.name != "Resources" {
			if len(k.kids) > 0 {
				return nil, k.kids[0].errf("an element inside <%s>, which holds only text", k.name)
			}
			if f.check != nil {
				if err := f.check(k); err != nil {
					return nil, err
				}
			}
		}
		got[k.name] = k
	}
	for _, f := range seq {
		if _, ok := got[f.name]; !ok && !f.optional {
			return nil, parent.errf("missing <%s>", f.name)
		}
	}
	return got, nil
}

// expected names the elements seq allows.
func expected(seq []field) string {
	names := make([]string, len(seq))
	for i, f := range seq {
		names[i] = "<" + f.name + ">"
	}
	return "one of " + strings.Join(names, ", ")
}

// noText refuses text between the elements of an element that holds only
// elements.
func noText(e *elem) error {
	if len(bytes.TrimSpace(e.text)) > 0 {
		return e.errf("text %q where only elements are allowed", truncate(e.value(), 40))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
