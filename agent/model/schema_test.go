package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDDFStrict(t *testing.T) {
	// tempDoc is schema-valid: ParseDDFStrict answers what ParseDDF does.
	defs, err := ParseDDFStrict(strings.NewReader(tempDoc))
	if err != nil || len(defs) != 1 || defs[0].ID != 3303 || len(defs[0].Resources) != 2 {
		t.Fatalf("valid document: %v %+v", err, defs)
	}
	tests := []struct {
		name    string
		old     string // replaced in tempDoc by new
		new     string
		line    int
		element string
		msg     string
	}{
		{"malformed XML", "</Name>", "</Nam>", 4, "Name", "malformed XML: element <Name> closed by </Nam>"},
		{"root", "<LWM2M>", "<DDFList>", 2, "DDFList", "root element is <DDFList>"},
		{"bare object", "<LWM2M>", "", 3, "Object", "a DDF document has <LWM2M>"},
		{"no ObjectType", ` ObjectType="MODefinition"`, "", 3, "Object", "ObjectType attribute is required"},
		{"unknown element in Object", "<ObjectURN>", "<Vendor>x</Vendor><ObjectURN>", 7, "Vendor", "unknown element in <Object>: expected one of <Name>, <Description1>, <ObjectID>"},
		{"missing Description1", "<Description1>A sensor.</Description1>", "", 3, "Object", "missing <Description1>"},
		{"Name twice", "<Description1>A sensor.</Description1>", "<Description1>A sensor.</Description1><Name>T</Name>", 5, "Name", "given twice in <Object>"},
		{"ObjectID not a number", "<ObjectID>3303</ObjectID>", "<ObjectID>temp</ObjectID>", 6, "ObjectID", `ObjectID "temp" is not a number`},
		{"ObjectID too large", "<ObjectID>3303</ObjectID>", "<ObjectID>65536</ObjectID>", 6, "ObjectID", "not a number from 0 to 65534"},
		{"MultipleInstances value", "<MultipleInstances>Multiple</MultipleInstances>\n    <Mandatory>", "<MultipleInstances>Many</MultipleInstances>\n    <Mandatory>", 8, "MultipleInstances", `MultipleInstances "Many" is not one of "Multiple", "Single"`},
		{"object Mandatory value", "<Mandatory>Optional</Mandatory>\n    <Resources>", "<Mandatory>yes</Mandatory>\n    <Resources>", 9, "Mandatory", `Mandatory "yes"`},
		{"no Description2", "<Description2></Description2>", "", 3, "Object", "missing <Description2>"},
		{"Description2 twice", "<Description2></Description2>", "<Description2></Description2><Description2/>", 32, "Description2", "given twice in <Object> (first at line 32)"},
		{"no Items", "<Resources>", "<Resources></Resources><Description2/></Object><Object ObjectType=\"x\"><Resources>", 10, "Resources", "no <Item>"},
		{"unknown element in Resources", `<Item ID="5605">`, `<Thing/><Item ID="5605">`, 21, "Thing", "only <Item> is allowed"},
		{"Item without ID", `<Item ID="5605">`, `<Item>`, 21, "Item", "ID attribute is required"},
		{"Item ID not a number", `<Item ID="5605">`, `<Item ID="x">`, 21, "Item", `ID "x" is not a number`},
		{"Operations value", "<Operations>R</Operations>", "<Operations>RX</Operations>", 13, "Operations", `Operations "RX" is not one of "R", "W", "RW", "E", ""`},
		{"Operations lower case", "<Operations>R</Operations>", "<Operations>r</Operations>", 13, "Operations", `Operations "r"`},
		{"Type value", "<Type>Float</Type>", "<Type>Double</Type>", 16, "Type", `Type "Double" is not one of`},
		{"resource Mandatory value", "<Mandatory>Mandatory</Mandatory>", "<Mandatory>Must</Mandatory>", 15, "Mandatory", `Mandatory "Must"`},
		{"resource MultipleInstances value", "<MultipleInstances>Single</MultipleInstances>\n        <Mandatory>Mandatory", "<MultipleInstances>One</MultipleInstances>\n        <Mandatory>Mandatory", 14, "MultipleInstances", `"One"`},
		{"Item without Operations", "<Operations>R</Operations>", "", 11, "Item", "missing <Operations>"},
		{"Item field at the end missing", "<Description>Reset.</Description>", "", 21, "Item", "missing <Description>"},
		{"element in a text field", "<Units>Cel</Units>", "<Units><b>Cel</b></Units>", 18, "b", "holds only text"},
		{"text between elements", "<Resources>", "<Resources>stray", 10, "Resources", `text "stray"`},
		{"duplicate resource", `<Item ID="5605">`, `<Item ID="5700">`, 21, "Item", "defined twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(tempDoc, tc.old, tc.new, 1)
			if tc.old == "<LWM2M>" {
				// the root's end tag changes with it
				doc = strings.Replace(doc, "</LWM2M>", strings.Replace(tc.new, "<", "</", 1), 1)
			}
			if doc == tempDoc {
				t.Fatalf("%q is not in the document", tc.old)
			}
			_, err := ParseDDFStrict(strings.NewReader(doc))
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrDDF) {
				t.Fatalf("got %v, want a *ParseError", err)
			}
			if (tc.line != 0 && pe.Line != tc.line) || pe.Element != tc.element || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got line %d <%s> %q\nwant line %d <%s> containing %q", pe.Line, pe.Element, pe.Msg, tc.line, tc.element, tc.msg)
			}
		})
	}
}

// Every object file of the OMA registry passes the check, including those
// that order their elements differently or leave out RangeEnumeration and
// Units; the registry's files that are not object definitions are refused.
func TestParseDDFStrictRegistryFiles(t *testing.T) {
	dir := registryDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for _, f := range files {
		base := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseDDFStrict(bytes.NewReader(data))
		if _, notObject := notObjectFiles[base]; notObject {
			if err == nil {
				t.Errorf("%s: accepted", base)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		accepted++
	}
	if want := len(files) - len(notObjectFiles); accepted != want {
		t.Errorf("%d object files accepted, want %d", accepted, want)
	}
}

func FuzzParseDDFStrict(f *testing.F) {
	f.Add([]byte(tempDoc))
	f.Add([]byte(strings.Replace(tempDoc, "<Units>Cel</Units>", "", 1)))
	f.Add([]byte(`<LWM2M><Object ObjectType="x"><Name>X</Name></Object></LWM2M>`))
	if dir, ok := findRegistryDir(); ok {
		for _, n := range []string{"3.xml", "3410.xml", "511.xml"} {
			if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseDDFStrict(bytes.NewReader(data))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		// What the strict parser accepts, the tolerant one reads the same.
		loose, err := ParseDDF(bytes.NewReader(data))
		if err != nil || len(loose) != len(defs) {
			t.Fatalf("strict accepted, tolerant: %v", err)
		}
		for _, d := range defs {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted a definition that does not validate: %v", err)
			}
		}
	})
}

// What the registry's own files do is accepted: elements in another
// order than the schema's, and no RangeEnumeration or Units.
func TestParseDDFStrictAcceptsRegistryHabits(t *testing.T) {
	for name, doc := range map[string]string{
		"Item fields reordered": strings.Replace(tempDoc, "<Operations>R</Operations>\n        <MultipleInstances>Single</MultipleInstances>",
			"<MultipleInstances>Single</MultipleInstances>\n        <Operations>R</Operations>", 1),
		"Object fields reordered": strings.Replace(tempDoc, "<Name>Temperature</Name>\n    <Description1>A sensor.</Description1>",
			"<Description1>A sensor.</Description1>\n    <Name>Temperature</Name>", 1),
		"no Units": strings.Replace(tempDoc, "<Units>Cel</Units>", "", 1),
	} {
		if doc == tempDoc {
			t.Fatalf("%s: the document did not change", name)
		}
		defs, err := ParseDDFStrict(strings.NewReader(doc))
		if err != nil || len(defs) != 1 || defs[0].ID != 3303 {
			t.Errorf("%s: %v %v", name, defs, err)
		}
	}
}
