package model

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// A small valid document; line numbers in the error cases below count from
// its first line.
const tempDoc = `<?xml version="1.0" encoding="utf-8"?>
<LWM2M>
  <Object ObjectType="MODefinition">
    <Name>Temperature</Name>
    <Description1>A sensor.</Description1>
    <ObjectID>3303</ObjectID>
    <ObjectURN>urn:oma:lwm2m:ext:3303</ObjectURN>
    <MultipleInstances>Multiple</MultipleInstances>
    <Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="5700">
        <Name>Sensor Value</Name>
        <Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Mandatory</Mandatory>
        <Type>Float</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units>Cel</Units>
        <Description>Last value.</Description>
      </Item>
      <Item ID="5605">
        <Name>Reset Min and Max Measured Values</Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type></Type>
        <RangeEnumeration/>
        <Units/>
        <Description>Reset.</Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
`

var tempDef = ObjectDef{
	ID: 3303, Name: "Temperature", Description: "A sensor.", URN: "urn:oma:lwm2m:ext:3303", Multiple: true,
	Resources: []ResourceDef{
		{ID: 5605, Name: "Reset Min and Max Measured Values", Operations: "E", Type: node.TypeNone, Description: "Reset."},
		{ID: 5700, Name: "Sensor Value", Operations: "R", Mandatory: true, Type: node.TypeFloat, Units: "Cel", Description: "Last value."},
	},
}

func mustParse(t *testing.T, doc string) []ObjectDef {
	t.Helper()
	defs, err := ParseDDF(strings.NewReader(doc))
	if err != nil {
		t.Fatalf("ParseDDF: %v", err)
	}
	return defs
}

func TestParseDDF(t *testing.T) {
	latin1 := strings.Replace(strings.Replace(tempDoc, `encoding="utf-8"`, `encoding="ISO-8859-1"`, 1), "A sensor.", "A sensor \xb0C.", 1)
	latin1Def := tempDef
	latin1Def.Description = "A sensor °C."

	tolerant := strings.NewReplacer(
		"<Operations>R</Operations>", "<Operations> r </Operations>",
		"<MultipleInstances>Multiple</MultipleInstances>", "<MultipleInstances>\n\tMULTIPLE\n</MultipleInstances>",
		"<Type>Float</Type>", "<Type> float </Type>",
		"<Mandatory>Optional</Mandatory>\n    <Resources>", "<Resources>",
		"<Description1>A sensor.</Description1>", "<Description1><![CDATA[ A sensor.]]>\n</Description1><Extra>ignored</Extra>",
	).Replace(tempDoc)

	twoDef := ObjectDef{ID: 1, Name: "One", Resources: []ResourceDef{{ID: 0, Name: "R0", Operations: "RW", Type: node.TypeUnsignedInteger}}}
	twoDoc := strings.Replace(tempDoc, "</LWM2M>", `<Object><Name>One</Name><ObjectID>1</ObjectID><MultipleInstances>Single</MultipleInstances>
<Resources><Item ID="0"><Name>R0</Name><Operations>WR</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>Unsigned Integer</Type></Item></Resources></Object></LWM2M>`, 1)

	bare := tempDoc[strings.Index(tempDoc, "<Object "):strings.Index(tempDoc, "</LWM2M>")]

	tests := []struct {
		name string
		doc  string
		want []ObjectDef
	}{
		{"plain", tempDoc, []ObjectDef{tempDef}},
		{"byte order mark", "\xef\xbb\xbf" + tempDoc, []ObjectDef{tempDef}},
		{"whitespace, letter case, CDATA, no Mandatory, unknown element", tolerant, []ObjectDef{tempDef}},
		{"latin-1 encoding", latin1, []ObjectDef{latin1Def}},
		{"HTML entity", strings.Replace(tempDoc, "A sensor.", "A&nbsp;sensor.", 1), []ObjectDef{func() ObjectDef { d := tempDef; d.Description = "A\u00a0sensor."; return d }()}},
		{"two objects, WR", twoDoc, []ObjectDef{tempDef, twoDef}},
		{"bare object", bare, []ObjectDef{tempDef}},
		{"no resources", `<LWM2M><Object><Name>X</Name><ObjectID>9</ObjectID><MultipleInstances>Single</MultipleInstances></Object></LWM2M>`,
			[]ObjectDef{{ID: 9, Name: "X"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustParse(t, tc.doc)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			for _, d := range got {
				if err := d.Validate(); err != nil {
					t.Errorf("parsed definition does not validate: %v", err)
				}
			}
		})
	}
}

func TestParseDDFErrors(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		line    int
		element string
		msg     string // a part of the message
	}{
		{"empty", "", 1, "", "document is empty"},
		{"only whitespace", "\n\n  ", 3, "", "document is empty"},
		{"not XML", "hello", 1, "", "document is empty"},
		{"unclosed element", strings.Replace(tempDoc, "</Units>", "", 1), 20, "Units", "malformed XML"},
		{"mismatched end tag", strings.Replace(tempDoc, "</Name>\n        <Operations>R", "</Nme>\n        <Operations>R", 1), 12, "Name", "malformed XML"},
		{"wrong root", `<?xml version="1.0"?>` + "\n<DDFList><Item/></DDFList>", 2, "DDFList", "root element is <DDFList>"},
		{"no object", "<LWM2M>\n</LWM2M>", 1, "LWM2M", "no <Object>"},
		{"missing ObjectID", strings.Replace(tempDoc, "<ObjectID>3303</ObjectID>", "", 1), 3, "Object", "missing <ObjectID>"},
		{"bad ObjectID", strings.Replace(tempDoc, "<ObjectID>3303", "<ObjectID>33x03", 1), 6, "ObjectID", `"33x03" is not an object ID`},
		{"ObjectID 65535", strings.Replace(tempDoc, "<ObjectID>3303", "<ObjectID>65535", 1), 6, "ObjectID", "from 0 to 65534"},
		{"missing Name", strings.Replace(tempDoc, "<Name>Temperature</Name>", "", 1), 3, "Object", "object 3303: missing <Name>"},
		{"empty Name", strings.Replace(tempDoc, "<Name>Temperature</Name>", "<Name> </Name>", 1), 4, "Name", "object 3303: empty name"},
		{"missing object MultipleInstances", strings.Replace(tempDoc, "<MultipleInstances>Multiple</MultipleInstances>", "", 1), 3, "Object", "missing <MultipleInstances>"},
		{"bad object MultipleInstances", strings.Replace(tempDoc, ">Multiple<", ">Many<", 1), 8, "MultipleInstances", `"Many" is neither Multiple nor Single`},
		{"bad Mandatory", strings.Replace(tempDoc, "<Mandatory>Optional", "<Mandatory>Maybe", 1), 9, "Mandatory", `object 3303: "Maybe" is neither Mandatory nor Optional`},
		{"duplicate Name", strings.Replace(tempDoc, "<Description1>", "<Name>T2</Name><Description1>", 1), 5, "Name", "given twice (first at line 4)"},
		{"item without ID", strings.Replace(tempDoc, `<Item ID="5700">`, `<Item>`, 1), 11, "Item", "resource without an ID attribute"},
		{"item bad ID", strings.Replace(tempDoc, `<Item ID="5700">`, `<Item ID="-1">`, 1), 11, "Item", `ID "-1" is not a resource ID`},
		{"duplicate item", strings.Replace(tempDoc, `<Item ID="5605">`, `<Item ID="5700">`, 1), 21, "Item", "resource 5700 is defined twice (first at line 11)"},
		{"missing item Name", strings.Replace(tempDoc, "<Name>Sensor Value</Name>", "", 1), 11, "Item", "resource /3303/x/5700: missing <Name>"},
		{"missing Operations", strings.Replace(tempDoc, "<Operations>R</Operations>", "", 1), 11, "Item", "missing <Operations>"},
		{"bad Operations", strings.Replace(tempDoc, "<Operations>R</Operations>", "<Operations>RX</Operations>", 1), 13, "Operations", `resource /3303/x/5700: "RX" is not one of R, W, RW, E or empty`},
		{"missing item MultipleInstances", strings.Replace(tempDoc, "<MultipleInstances>Single</MultipleInstances>", "", 1), 11, "Item", "missing <MultipleInstances>"},
		{"missing Type", strings.Replace(tempDoc, "<Type>Float</Type>", "", 1), 11, "Item", "resource /3303/x/5700: missing <Type>"},
		{"bad Type", strings.Replace(tempDoc, "<Type>Float</Type>", "<Type>Double</Type>", 1), 16, "Type", `"Double" is not a resource type`},
		{"duplicate object", strings.Replace(tempDoc, "</LWM2M>", "<Object><Name>T</Name>\n<ObjectID>3303</ObjectID><MultipleInstances>Single</MultipleInstances></Object></LWM2M>", 1), 35, "ObjectID", "object 3303 is defined twice (first at line 6)"},
		{"unknown encoding", strings.Replace(tempDoc, "utf-8", "ebcdic", 1), 1, "", "unsupported encoding"},
		{"too many elements", "<LWM2M>\n" + strings.Repeat("<a/>", maxElements), 2, "a", "more than 200000 elements"},
		{"too deep", "<LWM2M>" + strings.Repeat("<a>", 40), 1, "a", "nested deeper than 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defs, err := ParseDDF(strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("no error, got %+v", defs)
			}
			if !errors.Is(err, ErrDDF) {
				t.Errorf("error %v does not wrap ErrDDF", err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.Line != tc.line || pe.Element != tc.element || !strings.Contains(pe.Msg, tc.msg) {
				t.Errorf("got line %d element %q msg %q\nwant line %d element %q msg containing %q", pe.Line, pe.Element, pe.Msg, tc.line, tc.element, tc.msg)
			}
			if tc.line > 0 && !strings.Contains(err.Error(), "line "+strconv.Itoa(tc.line)) {
				t.Errorf("message %q does not name line %d", err, tc.line)
			}
		})
	}
}

func TestParseDDFTooLarge(t *testing.T) {
	doc := tempDoc + strings.Repeat(" ", MaxDDFSize)
	_, err := ParseDDF(strings.NewReader(doc))
	if err == nil || !strings.Contains(err.Error(), "larger than") || !errors.Is(err, ErrDDF) {
		t.Fatalf("got %v, want a size error", err)
	}
}

// notObjectFiles are registry files that are not object definitions: the
// object index, the SenML units list and the reusable-resources catalogue
// (an <Object> without an ObjectID).
var notObjectFiles = map[string]string{
	"DDF.xml":               "root element is <DDFList>",
	"LWM2M_senml_units.xml": "root element is <units>",
	"Common.xml":            "missing <ObjectID>",
}

func TestParseDDFRegistryFiles(t *testing.T) {
	dir := registryDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 300 {
		t.Fatalf("only %d files in %s", len(files), dir)
	}
	numbered := regexp.MustCompile(`^(\d+)\.xml$`)
	objects := 0
	for _, f := range files {
		base := filepath.Base(f)
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		defs, err := ParseDDF(bytes.NewReader(data))
		if want, ok := notObjectFiles[base]; ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, want an error with %q", base, err, want)
			}
			continue
		}
		m := numbered.FindStringSubmatch(base)
		if m == nil {
			t.Errorf("%s: unexpected file; list it in notObjectFiles or name it <id>.xml", base)
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		if len(defs) != 1 || strconv.Itoa(int(defs[0].ID)) != m[1] {
			t.Errorf("%s: got %d objects, first ID %d", base, len(defs), defs[0].ID)
			continue
		}
		if err := defs[0].Validate(); err != nil {
			t.Errorf("%s: %v", base, err)
		}
		objects++
	}
	if objects < 300 {
		t.Errorf("parsed %d object files, want the whole registry", objects)
	}
}

func TestParseDDFRegistryFacts(t *testing.T) {
	dir := registryDir(t)
	tests := []struct {
		file       string
		object     uint16
		name       string
		multiple   bool
		resource   uint16
		resName    string
		typ        node.Type
		operations string
		resMulti   bool
		units      string
	}{
		{"3.xml", 3, "Device", false, 0, "Manufacturer", node.TypeString, "R", false, ""},
		{"3.xml", 3, "Device", false, 4, "Reboot", node.TypeNone, "E", false, ""},
		{"3.xml", 3, "Device", false, 7, "Power Source Voltage", node.TypeInteger, "R", true, ""},
		{"3.xml", 3, "Device", false, 13, "Current Time", node.TypeTime, "RW", false, ""},
		{"1.xml", 1, "LwM2M Server", true, 1, "Lifetime", node.TypeInteger, "RW", false, "s"},
		{"3303.xml", 3303, "Temperature", true, 5700, "Sensor Value", node.TypeFloat, "R", false, ""},
		{"3303.xml", 3303, "Temperature", true, 5701, "Sensor Units", node.TypeString, "R", false, ""},
		{"5.xml", 5, "Firmware Update", false, 1, "Package URI", node.TypeString, "RW", false, ""},
		{"0.xml", 0, "LWM2M Security", true, 0, "LWM2M  Server URI", node.TypeString, "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.resName, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defs, err := ParseDDF(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			o := defs[0]
			if o.ID != tc.object || o.Name != tc.name || o.Multiple != tc.multiple {
				t.Errorf("object: got %d %q multiple=%v", o.ID, o.Name, o.Multiple)
			}
			r, ok := o.Resource(tc.resource)
			if !ok {
				t.Fatalf("no resource %d", tc.resource)
			}
			if r.Name != tc.resName || r.Type != tc.typ || r.Operations != tc.operations || r.Multiple != tc.resMulti || r.Units != tc.units {
				t.Errorf("resource: got %q %v %q multiple=%v units=%q", r.Name, r.Type, r.Operations, r.Multiple, r.Units)
			}
		})
	}
}

func TestCoreMatchesRegistry(t *testing.T) {
	dir := registryDir(t)
	core := CoreObjects()
	var ids []uint16
	for _, o := range core {
		ids = append(ids, o.ID)
	}
	if want := []uint16{0, 1, 2, 3, 4, 5, 6, 7, 3303}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("built-in objects %v, want %v", ids, want)
	}
	for _, builtIn := range core {
		t.Run(strconv.Itoa(int(builtIn.ID)), func(t *testing.T) {
			if err := builtIn.Validate(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(int(builtIn.ID))+".xml"))
			if err != nil {
				t.Fatal(err)
			}
			defs, err := ParseDDF(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			file := defs[0]
			fileRes, builtRes := file.Resources, builtIn.Resources
			file.Resources, builtIn.Resources = nil, nil
			if !reflect.DeepEqual(builtIn, file) {
				t.Errorf("object fields differ:\nbuilt in %+v\nfile     %+v", builtIn, file)
			}
			if len(fileRes) != len(builtRes) {
				t.Errorf("%d resources built in, %d in the file", len(builtRes), len(fileRes))
			}
			for _, fr := range fileRes {
				br, ok := (ObjectDef{Resources: builtRes}).Resource(fr.ID)
				if !ok {
					t.Errorf("resource %d (%s) is not built in", fr.ID, fr.Name)
				} else if !reflect.DeepEqual(br, fr) {
					t.Errorf("resource %d differs:\nbuilt in %+v\nfile     %+v", fr.ID, br, fr)
				}
			}
		})
	}
}

func FuzzParseDDF(f *testing.F) {
	f.Add([]byte(tempDoc))
	f.Add([]byte("\xef\xbb\xbf" + tempDoc))
	f.Add([]byte(strings.Replace(tempDoc, "utf-8", "iso-8859-1", 1)))
	f.Add([]byte("<LWM2M><Object><Name>X</Name><ObjectID>9</ObjectID><MultipleInstances>Single</MultipleInstances></Object></LWM2M>"))
	f.Add([]byte("<Object/>"))
	f.Add([]byte("<LWM2M>" + strings.Repeat("<a>", 40)))
	if dir, ok := findRegistryDir(); ok {
		for _, n := range []string{"3.xml", "3303.xml", "10241.xml", "Common.xml"} {
			if b, err := os.ReadFile(filepath.Join(dir, n)); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defs, err := ParseDDF(bytes.NewReader(data))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		if len(defs) == 0 {
			t.Fatal("no error and no objects")
		}
		for _, d := range defs {
			if err := d.Validate(); err != nil {
				t.Fatalf("accepted a definition that does not validate: %v", err)
			}
		}
	})
}

func BenchmarkParseDDF(b *testing.B) {
	dir := registryDir(b)
	data, err := os.ReadFile(filepath.Join(dir, "3.xml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseDDF(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
