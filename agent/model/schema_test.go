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
		{"unknown element in Object", "<ObjectURN>", "<Vendor>x</Vendor><ObjectURN>", 7, "Vendor", "unknown element in <Object>: expected <ObjectURN>"},
		{"missing Description1", "<Description1>A sensor.</Description1>", "", 6, "ObjectID", "<Description1> is missing before it"},
		{"order in Object", "<Name>Temperature</Name>\n    <Description1>A sensor.</Description1>", "<Description1>A sensor.</Description1>\n    <Name>Temperature</Name>", 4, "Description1", "<Name> is missing before it"},
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
		{"Item field order", "<Operations>R</Operations>\n        <MultipleInstances>Single</MultipleInstances>", "<MultipleInstances>Single</MultipleInstances>\n        <Operations>R</Operations>", 13, "MultipleInstances", "<Operations> is missing before it in <Item>"},
		{"Item without Units", "<Units>Cel</Units>", "", 19, "Description", "<Units> is missing before it in <Item>"},
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

// The OMA registry's own files mostly follow the schema; the exceptions
// are known, and each is refused for the order or absence of elements,
// never for a value.
func TestParseDDFStrictRegistryFiles(t *testing.T) {
	dir := registryDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	accepted, refused := 0, 0
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
		if err == nil {
			accepted++
			continue
		}
		refused++
		if !strings.Contains(err.Error(), "is missing before it") {
			t.Errorf("%s: %v", base, err)
		}
		// The tolerant parser reads every one of them.
		if _, err := ParseDDF(bytes.NewReader(data)); err != nil {
			t.Errorf("%s: tolerant parser: %v", base, err)
		}
	}
	t.Logf("%d files follow the schema, %d do not", accepted, refused)
	if accepted < 300 || refused > 25 {
		t.Errorf("%d files accepted, %d refused", accepted, refused)
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
