package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
)

// sharedDir finds a folder of ../shared above the test.
func sharedDir(t *testing.T, name string) string {
	t.Helper()
	dir, _ := os.Getwd()
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", name)
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
	}
	t.Skipf("shared/%s not found above %s", name, dir)
	return ""
}

type protocolResource struct {
	ID               int                   `json:"id"`
	Name             string                `json:"name"`
	Operations       string                `json:"operations"`
	Type             string                `json:"type"`
	Unit             string                `json:"unit"`
	Multiple         bool                  `json:"multiple"`
	Mandatory        bool                  `json:"mandatory"`
	RangeEnumeration string                `json:"rangeEnumeration"`
	Functionalities  mapping.Functionality `json:"functionalities"`
	Validation       *struct {
		Groups [][]map[string]any `json:"groups"`
	} `json:"validation"`
}

type protocol struct {
	ObjectID          int                `json:"objectId"`
	Name              string             `json:"name"`
	Description       string             `json:"description"`
	MultipleInstances bool               `json:"multipleInstances"`
	Source            string             `json:"source"`
	Owner             string             `json:"owner"`
	Inherited         bool               `json:"inherited"`
	Resources         []protocolResource `json:"resources"`
}

func (p protocol) resource(id int) (protocolResource, bool) {
	for _, r := range p.Resources {
		if r.ID == id {
			return r, true
		}
	}
	return protocolResource{}, false
}

type ddfAnswer struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	Line    int    `json:"line"`
	Element string `json:"element"`
}

// postDDF uploads a DDF document as user and decodes the answer into
// created (201) or failed (otherwise).
func (h *harness) postDDF(user, pass string, doc []byte, query string) (code int, created []protocol, failed ddfAnswer) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.base+"/lwm2m/deviceprotocols"+query, bytes.NewReader(doc))
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/xml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusCreated {
		var res struct {
			DeviceProtocols []protocol `json:"deviceProtocols"`
		}
		if err := json.Unmarshal(raw, &res); err != nil {
			h.t.Fatalf("decode %s: %v", raw, err)
		}
		return resp.StatusCode, res.DeviceProtocols, ddfAnswer{}
	}
	_ = json.Unmarshal(raw, &failed)
	return resp.StatusCode, nil, failed
}

// A small schema-valid document; the error cases below change it, and
// their line numbers count from its first line.
const temperatureDDF = `<?xml version="1.0" encoding="utf-8"?>
<LWM2M>
  <Object ObjectType="MODefinition">
    <Name>Temperature</Name>
    <Description1>A temperature sensor.</Description1>
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
      <Item ID="5750">
        <Name>Application Type</Name>
        <Operations>RW</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type>String</Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description>What the sensor is used for.</Description>
      </Item>
      <Item ID="5605">
        <Name>Reset Min and Max Measured Values</Name>
        <Operations>E</Operations>
        <MultipleInstances>Single</MultipleInstances>
        <Mandatory>Optional</Mandatory>
        <Type></Type>
        <RangeEnumeration></RangeEnumeration>
        <Units></Units>
        <Description>Reset.</Description>
      </Item>
    </Resources>
    <Description2></Description2>
  </Object>
</LWM2M>
`

// Every file of the OMA registry goes through the API: the object files
// that follow LWM2M.xsd are stored as they are, those that do not are
// refused with the line and element and stored with ?lenient=true, and
// the files that hold no object definition are refused either way. In the
// end the tenant has one protocol per object file.
func TestImportRegistryProtocols(t *testing.T) {
	dir := sharedDir(t, "lwm2m-registry")
	h := startAgent(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil {
		t.Fatal(err)
	}
	numbered := regexp.MustCompile(`^(\d+)\.xml$`)
	objectFiles, notObjects := 0, 0
	for _, f := range files {
		base := filepath.Base(f)
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := numbered.FindStringSubmatch(base)
		code, created, failed := h.postDDF("management/admin", adminPassword, doc, "?source="+base)
		if m == nil {
			// DDF.xml, Common.xml, LWM2M_senml_units.xml
			if code != 400 || failed.Line == 0 || failed.Element == "" {
				t.Errorf("%s: HTTP %d %+v, want 400 with line and element", base, code, failed)
			}
			if code, _, _ := h.postDDF("management/admin", adminPassword, doc, "?lenient=true"); code != 400 {
				t.Errorf("%s with lenient=true: HTTP %d, want 400", base, code)
			}
			notObjects++
			continue
		}
		objectFiles++
		if code != 201 || len(created) != 1 || strconv.Itoa(created[0].ObjectID) != m[1] || created[0].Source != base || created[0].Inherited {
			t.Errorf("%s: HTTP %d %+v %+v", base, code, created, failed)
		}
	}
	t.Logf("%d object files stored; %d other files refused", objectFiles, notObjects)
	if objectFiles < 320 || notObjects != 3 {
		t.Errorf("%d object files, %d other files", objectFiles, notObjects)
	}

	var list struct {
		DeviceProtocols []protocol     `json:"deviceProtocols"`
		Statistics      map[string]int `json:"statistics"`
		Next            string         `json:"next"`
	}
	if c := h.call("GET", "/lwm2m/deviceprotocols?inherited=false&withTotalPages=true&pageSize=100", nil, &list); c != 200 {
		t.Fatalf("list: HTTP %d", c)
	}
	if list.Statistics["totalElements"] != objectFiles || len(list.DeviceProtocols) != 100 || list.Next == "" {
		t.Errorf("own protocols: %d in all, %d on the page, next %q; want %d", list.Statistics["totalElements"], len(list.DeviceProtocols), list.Next, objectFiles)
	}
	// the built-in objects are in the registry too: nothing more is inherited
	if c := h.call("GET", "/lwm2m/deviceprotocols?withTotalPages=true&pageSize=1", nil, &list); c != 200 || list.Statistics["totalElements"] != objectFiles || list.Statistics["totalPages"] != objectFiles {
		t.Errorf("with inherited: HTTP %d %v", c, list.Statistics)
	}

	var p protocol
	if c := h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p); c != 200 {
		t.Fatalf("GET 3303: HTTP %d", c)
	}
	r, ok := p.resource(5700)
	if p.Name != "Temperature" || !p.MultipleInstances || p.Owner != "management" || p.Source != "3303.xml" || !ok ||
		r.Name != "Sensor Value" || r.Type != "FLOAT" || r.Operations != "R" || !r.Mandatory || r.Multiple {
		t.Errorf("3303: %+v", p)
	}
	p = protocol{}
	if c := h.call("GET", "/lwm2m/deviceprotocols/3", nil, &p); c != 200 || p.Name != "Device" {
		t.Errorf("3: HTTP %d %+v", c, p)
	}
	if r, ok := p.resource(4); !ok || r.Name != "Reboot" || r.Operations != "E" || r.Type != "NONE" {
		t.Errorf("/3/x/4: %+v", r)
	}
}

// An upload that is not well-formed XML or breaks the schema is refused
// with the line and the element, and stores nothing.
func TestUploadProtocolErrors(t *testing.T) {
	h := startAgent(t)
	tests := []struct {
		name     string
		old, new string // replaced in temperatureDDF
		line     int
		element  string
		msg      string
	}{
		{"unclosed element", "</Name>\n    <Description1>", "\n    <Description1>", 43, "Name", "malformed XML: element <Name> closed by </Object>"},
		{"mismatched end tag", "</Units>", "</Unit>", 18, "Units", "closed by </Unit>"},
		{"undefined entity", "Last value.", "Last &value;", 19, "Description", "malformed XML"},
		{"not DDF", `<LWM2M>`, `<LWM2M><Foo/>`, 2, "Foo", "only <Object> is allowed"},
		{"unknown element in an item", "<Units>Cel</Units>", "<Units>Cel</Units><Color>red</Color>", 18, "Color", "unknown element in <Item>: expected one of <Name>"},
		{"missing ObjectID", "<ObjectID>3303</ObjectID>", "", 3, "Object", "missing <ObjectID>"},
		{"missing Name of an item", "<Name>Sensor Value</Name>", "", 11, "Item", "missing <Name>"},
		{"a field twice", "<Operations>R</Operations>", "<Operations>R</Operations><Operations>R</Operations>", 13, "Operations", "given twice in <Item>"},
		{"bad Operations", "<Operations>R</Operations>", "<Operations>RX</Operations>", 13, "Operations", `Operations "RX" is not one of`},
		{"bad Type", "<Type>Float</Type>", "<Type>Double</Type>", 16, "Type", `Type "Double"`},
		{"bad MultipleInstances", "<MultipleInstances>Multiple</MultipleInstances>", "<MultipleInstances>Many</MultipleInstances>", 8, "MultipleInstances", `"Many" is not one of "Multiple", "Single"`},
		{"bad Mandatory", "<Mandatory>Mandatory</Mandatory>", "<Mandatory>Required</Mandatory>", 15, "Mandatory", `"Required"`},
		{"bad ObjectID", "<ObjectID>3303</ObjectID>", "<ObjectID>70000</ObjectID>", 6, "ObjectID", "not a number from 0 to 65534"},
		{"bad resource ID", `<Item ID="5700">`, `<Item ID="-1">`, 11, "Item", `ID "-1"`},
		{"duplicate resource ID", `<Item ID="5750">`, `<Item ID="5700">`, 21, "Item", "defined twice"},
		{"no ObjectType", ` ObjectType="MODefinition"`, "", 3, "Object", "ObjectType attribute is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(temperatureDDF, tc.old, tc.new, 1)
			if doc == temperatureDDF {
				t.Fatalf("%q is not in the document", tc.old)
			}
			code, _, failed := h.postDDF("management/admin", adminPassword, []byte(doc), "")
			if code != 400 || failed.Error != "lwm2m/invalidDDF" {
				t.Fatalf("HTTP %d %+v, want 400", code, failed)
			}
			if failed.Line != tc.line || failed.Element != tc.element || !strings.Contains(failed.Message, tc.msg) ||
				!strings.Contains(failed.Message, "line "+strconv.Itoa(tc.line)) || !strings.Contains(failed.Message, "<"+tc.element+">") {
				t.Errorf("got line %d <%s> %q\nwant line %d <%s> with %q", failed.Line, failed.Element, failed.Message, tc.line, tc.element, tc.msg)
			}
		})
	}
	// nothing was stored
	var p protocol
	if c := h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p); c != 200 || p.Owner != "core" {
		t.Errorf("after refused uploads 3303 is HTTP %d from %q", c, p.Owner)
	}
	// a JSON body is not a DDF document
	if c := h.call("POST", "/lwm2m/deviceprotocols", map[string]any{"objectId": 1}, nil); c != 415 {
		t.Errorf("JSON body: HTTP %d, want 415", c)
	}
	if code, _, failed := h.postDDF("management/admin", adminPassword, nil, ""); code != 400 || !strings.Contains(failed.Message, "empty") {
		t.Errorf("empty body: HTTP %d %+v", code, failed)
	}
	// a document of two objects creates both
	obj := temperatureDDF[strings.Index(temperatureDDF, "  <Object"):strings.Index(temperatureDDF, "</LWM2M>")]
	two := strings.Replace(temperatureDDF, "</LWM2M>", strings.ReplaceAll(obj, "3303", "33030")+"</LWM2M>", 1)
	if code, created, failed := h.postDDF("management/admin", adminPassword, []byte(two), ""); code != 201 || len(created) != 2 || created[1].ObjectID != 33030 {
		t.Errorf("two objects: HTTP %d %+v %+v", code, created, failed)
	}
}

// sendText makes a request with a JSON body given as text (which may be
// broken on purpose) and returns the status and the answer.
func (h *harness) sendText(user, pass, method, path, body string) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// put sends body as JSON and decodes the protocol (200) or the error.
func (h *harness) put(user, pass, path string, body any) (int, protocol, ddfAnswer) {
	h.t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	code, raw := h.sendText(user, pass, "PUT", path, string(b))
	var p protocol
	var e ddfAnswer
	if code == 200 {
		_ = json.Unmarshal([]byte(raw), &p)
	} else {
		_ = json.Unmarshal([]byte(raw), &e)
	}
	return code, p, e
}

// js is v as JSON text.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestProtocolFunctionalitiesAndValidation(t *testing.T) {
	h := startAgent(t)
	if code, _, f := h.postDDF("management/admin", adminPassword, []byte(temperatureDDF), "?source=temperature.xml"); code != 201 {
		t.Fatalf("upload: HTTP %d %+v", code, f)
	}
	const admin = "management/admin"
	fpath := func(o, r string) string {
		return "/lwm2m/deviceprotocols/" + o + "/resources/" + r + "/functionalities"
	}
	vpath := func(o, r string) string { return "/lwm2m/deviceprotocols/" + o + "/resources/" + r + "/validation" }
	measurement := map[string]any{
		"measurement":       map[string]any{"type": "c8y_Temperature", "series": "T", "unit": "C"},
		"alarm":             map[string]any{"type": "c8y_HighTemperature", "severity": "MAJOR", "status": "ACTIVE", "text": "Temperature {value}", "raiseWhen": "value > 40"},
		"ignoreEmptyValues": true,
		"autoObserve":       true,
	}
	code, p, e := h.put(admin, adminPassword, fpath("3303", "5700"), measurement)
	r, _ := p.resource(5700)
	if code != 200 || r.Functionalities.Measurement == nil || r.Functionalities.Measurement.Series != "T" || r.Functionalities.Alarm.RaiseWhen != "value > 40" || !r.Functionalities.AutoObserve {
		t.Fatalf("valid functionalities: HTTP %d %+v %+v", code, r, e)
	}
	// GET shows them; the other resources have none
	p = protocol{}
	h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p)
	if r, _ := p.resource(5700); r.Functionalities.Measurement == nil {
		t.Errorf("GET after PUT: %+v", r)
	}
	if r, _ := p.resource(5750); r.Functionalities != (mapping.Functionality{}) {
		t.Errorf("5750 has functionalities %+v", r.Functionalities)
	}
	// the mapping pipeline's lookup sees them at once
	if f, err := h.agent.Protocols.Functionalities(h.ctx, "management", 3303); err != nil || f[5700].Measurement == nil {
		t.Errorf("Functionalities: %+v %v", f, err)
	}

	tests := []struct {
		name string
		path string
		body string
		code int
		msg  string
	}{
		{"autoObserve alone", fpath("3303", "5700"), js(map[string]any{"autoObserve": true}), 422, "autoObserve needs"},
		{"bad severity", fpath("3303", "5700"), js(map[string]any{"alarm": map[string]any{"type": "c8y_X", "severity": "HUGE", "text": "x"}}), 422, `alarm.severity "HUGE"`},
		{"bad raiseWhen", fpath("3303", "5700"), js(map[string]any{"alarm": map[string]any{"type": "c8y_X", "severity": "MAJOR", "text": "x", "raiseWhen": "value >"}}), 422, "alarm.raiseWhen"},
		{"unknown custom action", fpath("3303", "5700"), js(map[string]any{"customAction": "device:explode"}), 422, "customAction"},
		{"misspelled member", fpath("3303", "5700"), js(map[string]any{"measurment": map[string]any{"type": "c8y_T", "series": "T"}}), 422, `unknown field "measurment"`},
		{"wrong member type", fpath("3303", "5700"), js(map[string]any{"autoObserve": "yes"}), 422, "autoObserve"},
		{"not JSON", fpath("3303", "5700"), `{"measurement":`, 400, "not valid JSON"},
		{"unknown resource", fpath("3303", "9"), js(measurement), 404, "object 3303 (Temperature) has no resource 9"},
		{"unknown object", fpath("10241", "0"), js(measurement), 422,
			"object 10241 has no device protocol: upload its object definition (DDF XML) first, POST /lwm2m/deviceprotocols with the DDF file as the body"},
		{"validation of an unknown object", vpath("10241", "0"), js(map[string]any{"groups": []any{}}), 422, "object 10241 has no device protocol: upload its object definition"},
		{"decoder the agent does not have", fpath("3303", "5700"), js(map[string]any{"customAction": "decoder:frame"}), 422,
			`customAction "decoder:frame": no decoder "frame" is configured; the agent has no decoders: declare them in the plugins file (--plugins-config)`},
		{"custom action plugin the agent does not have", fpath("3303", "5700"), js(map[string]any{"customAction": "plugin:acts:x"}), 422,
			`no custom action plugin "acts" is configured; the agent has no custom action plugins`},
		{"object ID out of range", fpath("70000", "0"), js(measurement), 404, ""},
		{"executable resource", fpath("3303", "5605"), js(measurement), 422, "executable"},
		{"validation of a read-only resource", vpath("3303", "5700"), js(map[string]any{"groups": []any{[]any{map[string]any{"type": "NUMBER", "rule": "LOWER_THAN", "value": 5}}}}), 422, "not writable"},
		{"validation of an executable resource", vpath("3303", "5605"), js(map[string]any{"groups": []any{}}), 422, "not writable"},
		{"validation without groups", vpath("3303", "5750"), js(map[string]any{}), 422, `needs "groups"`},
		{"validation regex does not compile", vpath("3303", "5750"), js(map[string]any{"groups": []any{[]any{map[string]any{"type": "REGEX", "rule": "EQUALS", "value": "a("}}}}), 422, "does not compile"},
		{"validation unknown rule", vpath("3303", "5750"), js(map[string]any{"groups": []any{[]any{map[string]any{"type": "STRING", "rule": "LIKE", "value": "a"}}}}), 422, `rule "LIKE"`},
		{"validation unknown member", vpath("3303", "5750"), js(map[string]any{"groups": []any{[]any{map[string]any{"type": "STRING", "rule": "EQUALS", "valeu": "a"}}}}), 422, `unknown field "valeu"`},
		{"validation of an unknown resource", vpath("3303", "1"), js(map[string]any{"groups": []any{}}), 404, "object 3303 (Temperature) has no resource 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, raw := h.sendText(admin, adminPassword, "PUT", tc.path, tc.body)
			var e ddfAnswer
			_ = json.Unmarshal([]byte(raw), &e)
			if code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("HTTP %d %s, want %d with %q", code, raw, tc.code, tc.msg)
			}
		})
	}
	// none of the refused changes was stored
	p = protocol{}
	h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p)
	if r, _ := p.resource(5700); r.Functionalities.Measurement == nil || r.Functionalities.CustomAction != "" || r.Validation != nil {
		t.Errorf("after refused changes: %+v", r)
	}

	// validation rules of API.md on the writable resource
	rules := map[string]any{"groups": []any{
		[]any{map[string]any{"type": "STRING", "rule": "EQUALS_NOT", "value": "test"}},
		[]any{map[string]any{"type": "REGEX", "rule": "EQUALS", "value": ".*asd$"}, map[string]any{"type": "STRING", "rule": "EQUALS", "resource": "/3/0/15"}},
	}}
	code, p, e = h.put(admin, adminPassword, vpath("3303", "5750"), rules)
	if r, _ := p.resource(5750); code != 200 || r.Validation == nil || len(r.Validation.Groups) != 2 || r.Validation.Groups[1][1]["resource"] != "/3/0/15" {
		t.Fatalf("valid rules: HTTP %d %+v %+v", code, r, e)
	}
	// a new upload keeps the functionalities and rules of the resources
	// that remain
	if code, created, f := h.postDDF(admin, adminPassword, []byte(temperatureDDF), "?source=temperature-2.xml"); code != 201 || created[0].Source != "temperature-2.xml" {
		t.Fatalf("re-upload: HTTP %d %+v", code, f)
	} else if r, _ := created[0].resource(5700); r.Functionalities.Measurement == nil {
		t.Errorf("re-upload lost the functionalities: %+v", r)
	} else if r, _ := created[0].resource(5750); r.Validation == nil {
		t.Errorf("re-upload lost the validation rules: %+v", r)
	}
	// {} removes a resource's functionalities, no groups its rules
	if code, p, _ := h.put(admin, adminPassword, fpath("3303", "5700"), map[string]any{}); code != 200 {
		t.Errorf("remove functionalities: HTTP %d", code)
	} else if r, _ := p.resource(5700); r.Functionalities != (mapping.Functionality{}) {
		t.Errorf("after removal: %+v", r.Functionalities)
	}
	if code, p, _ := h.put(admin, adminPassword, vpath("3303", "5750"), map[string]any{"groups": []any{}}); code != 200 {
		t.Errorf("remove rules: HTTP %d", code)
	} else if r, _ := p.resource(5750); r.Validation != nil {
		t.Errorf("after removal: %+v", r.Validation)
	}
}

// The management tenant's protocols are every tenant's default: a tenant
// without its own sees them (and their functionalities), with its own it
// sees its own, and configuring an inherited one gives it a copy.
func TestProtocolInheritance(t *testing.T) {
	h := startAgent(t)
	const beta, betaPass = "beta/admin", "Beta-pass-1234!"
	if c := h.call("POST", "/tenant/tenants", map[string]any{"id": "beta", "adminName": "admin", "adminPass": betaPass}, nil); c != 201 {
		t.Fatalf("create tenant beta: HTTP %d", c)
	}
	var p protocol
	// the built-in definitions, before anything is uploaded
	for _, id := range []string{"3", "4", "5", "6"} {
		p = protocol{}
		if c := h.callAs(beta, betaPass, "GET", "/lwm2m/deviceprotocols/"+id, nil, &p); c != 200 || !p.Inherited || p.Owner != "core" || p.Source != "core" || len(p.Resources) == 0 {
			t.Errorf("built-in %s: HTTP %d %+v", id, c, p)
		}
		for _, r := range p.Resources {
			if r.Functionalities != (mapping.Functionality{}) {
				t.Errorf("built-in /%s/x/%d has functionalities %+v", id, r.ID, r.Functionalities)
			}
		}
	}
	var seen answers
	if c, raw := h.rawAs(&seen, beta, betaPass, "DELETE", "/lwm2m/deviceprotocols/3", nil); c != 422 || !strings.Contains(raw, "built-in") {
		t.Errorf("DELETE of a built-in: HTTP %d %s", c, raw)
	}

	// management uploads 3303 and configures 5700
	if code, _, f := h.postDDF("management/admin", adminPassword, []byte(temperatureDDF), "?source=mgmt.xml"); code != 201 {
		t.Fatalf("management upload: HTTP %d %+v", code, f)
	}
	fn := map[string]any{"measurement": map[string]any{"type": "c8y_Temperature", "series": "T"}}
	if code, _, e := h.put("management/admin", adminPassword, "/lwm2m/deviceprotocols/3303/resources/5700/functionalities", fn); code != 200 {
		t.Fatalf("management functionality: HTTP %d %+v", code, e)
	}
	// beta has none of its own: it sees management's, through the API and
	// through the lookup the mapping pipeline uses
	p = protocol{}
	if c := h.callAs(beta, betaPass, "GET", "/lwm2m/deviceprotocols/3303", nil, &p); c != 200 || !p.Inherited || p.Owner != "management" || p.Source != "mgmt.xml" {
		t.Fatalf("beta's 3303: HTTP %d %+v", c, p)
	}
	if r, _ := p.resource(5700); r.Functionalities.Measurement == nil {
		t.Errorf("beta does not see management's functionality: %+v", r)
	}
	if f, err := h.agent.Protocols.Functionalities(h.ctx, "beta", 3303); err != nil || f[5700].Measurement == nil || f[5700].Measurement.Type != "c8y_Temperature" {
		t.Errorf("beta's lookup: %+v %v", f, err)
	}
	if c, raw := h.rawAs(&seen, beta, betaPass, "DELETE", "/lwm2m/deviceprotocols/3303", nil); c != 422 || !strings.Contains(raw, "management") {
		t.Errorf("beta deleting management's: HTTP %d %s", c, raw)
	}

	// beta uploads its own 3303: it sees its own, without functionalities
	if code, created, f := h.postDDF(beta, betaPass, []byte(temperatureDDF), "?source=beta.xml"); code != 201 || created[0].Inherited || created[0].Owner != "beta" {
		t.Fatalf("beta upload: HTTP %d %+v %+v", code, created, f)
	}
	if f, err := h.agent.Protocols.Functionalities(h.ctx, "beta", 3303); err != nil || len(f) != 0 {
		t.Errorf("beta's lookup after its own upload: %+v %v", f, err)
	}
	p = protocol{}
	if c := h.callAs(beta, betaPass, "GET", "/lwm2m/deviceprotocols/3303", nil, &p); c != 200 || p.Inherited || p.Source != "beta.xml" {
		t.Errorf("beta's own 3303: HTTP %d %+v", c, p)
	}
	// management still has its own with the functionality
	if f, _ := h.agent.Protocols.Functionalities(h.ctx, "management", 3303); f[5700].Measurement == nil {
		t.Errorf("management's functionality gone: %+v", f)
	}
	// deleting its own, beta inherits again
	if c, raw := h.rawAs(&seen, beta, betaPass, "DELETE", "/lwm2m/deviceprotocols/3303", nil); c != 204 {
		t.Fatalf("beta deleting its own: HTTP %d %s", c, raw)
	}
	if f, _ := h.agent.Protocols.Functionalities(h.ctx, "beta", 3303); f[5700].Measurement == nil {
		t.Errorf("beta does not inherit again: %+v", f)
	}

	// configuring an inherited protocol gives beta its own copy, and
	// management's stays as it was
	alarm := map[string]any{"alarm": map[string]any{"type": "c8y_Hot", "severity": "MINOR", "text": "hot"}}
	code, p, e := h.put(beta, betaPass, "/lwm2m/deviceprotocols/3303/resources/5700/functionalities", alarm)
	if r, _ := p.resource(5700); code != 200 || p.Inherited || p.Owner != "beta" || !strings.HasPrefix(p.Source, "copy of management") || r.Functionalities.Alarm == nil || r.Functionalities.Measurement != nil {
		t.Fatalf("beta configures the inherited 3303: HTTP %d %+v %+v", code, p, e)
	}
	p = protocol{}
	h.call("GET", "/lwm2m/deviceprotocols/3303", nil, &p)
	if r, _ := p.resource(5700); r.Functionalities.Alarm != nil || r.Functionalities.Measurement == nil {
		t.Errorf("management's 3303 changed by beta: %+v", r)
	}
	// the same for a built-in object
	code, p, e = h.put(beta, betaPass, "/lwm2m/deviceprotocols/3/resources/0/functionalities", map[string]any{"customAction": "device:updateManufacturer"})
	if code != 200 || p.Owner != "beta" || p.Source != "copy of core (core)" {
		t.Errorf("beta configures built-in 3: HTTP %d %+v %+v", code, p, e)
	}
	p = protocol{}
	if c := h.call("GET", "/lwm2m/deviceprotocols/3", nil, &p); c != 200 || p.Owner != "core" {
		t.Errorf("management's 3 after beta's copy: HTTP %d %q", c, p.Owner)
	}
}

// A tenant's own protocols are invisible to other tenants, who can
// neither read, list, change nor delete them.
func TestProtocolTenantIsolation(t *testing.T) {
	h := startAgent(t)
	const beta, betaPass = "beta/admin", "Beta-pass-1234!"
	const gamma, gammaPass = "gamma/admin", "Gamma-pass-1234!"
	for _, tn := range []struct{ id, pass string }{{"beta", betaPass}, {"gamma", gammaPass}} {
		if c := h.call("POST", "/tenant/tenants", map[string]any{"id": tn.id, "adminName": "admin", "adminPass": tn.pass}, nil); c != 201 {
			t.Fatalf("create tenant %s: HTTP %d", tn.id, c)
		}
	}
	custom := strings.NewReplacer("<ObjectID>3303</ObjectID>", "<ObjectID>33033</ObjectID>", "<Name>Temperature</Name>", "<Name>Beta sensor</Name>").Replace(temperatureDDF)
	if code, _, f := h.postDDF(beta, betaPass, []byte(custom), ""); code != 201 {
		t.Fatalf("beta upload: HTTP %d %+v", code, f)
	}
	fn := map[string]any{"measurement": map[string]any{"type": "c8y_Beta", "series": "v"}}
	if code, _, e := h.put(beta, betaPass, "/lwm2m/deviceprotocols/33033/resources/5700/functionalities", fn); code != 200 {
		t.Fatalf("beta functionality: HTTP %d %+v", code, e)
	}
	var seen answers
	for _, other := range []struct{ user, pass string }{{"management/admin", adminPassword}, {gamma, gammaPass}} {
		for _, req := range []struct {
			method, path string
			body         any
			code         int
		}{
			{"GET", "/lwm2m/deviceprotocols/33033", nil, 404},
			{"DELETE", "/lwm2m/deviceprotocols/33033", nil, 404},
			// as for an object nobody described: upload its DDF
			{"PUT", "/lwm2m/deviceprotocols/33033/resources/5700/functionalities", map[string]any{"customAction": "decoder:x"}, 422},
			{"PUT", "/lwm2m/deviceprotocols/33033/resources/5750/validation", map[string]any{"groups": []any{}}, 422},
		} {
			c, raw := h.rawAs(&seen, other.user, other.pass, req.method, req.path, req.body)
			if c != req.code {
				t.Errorf("%s %s %s: HTTP %d %s, want %d", other.user, req.method, req.path, c, raw, req.code)
			}
			if c == 422 && !strings.Contains(raw, "object 33033 has no device protocol") {
				t.Errorf("%s %s %s: %s, not the answer for an object without protocol", other.user, req.method, req.path, raw)
			}
		}
		var list struct {
			DeviceProtocols []protocol `json:"deviceProtocols"`
		}
		h.callAs(other.user, other.pass, "GET", "/lwm2m/deviceprotocols?pageSize=2000", nil, &list)
		for _, p := range list.DeviceProtocols {
			if p.ObjectID == 33033 {
				t.Errorf("%s lists beta's protocol", other.user)
			}
		}
		if f, err := h.agent.Protocols.Functionalities(h.ctx, strings.Split(other.user, "/")[0], 33033); err != nil || len(f) != 0 {
			t.Errorf("%s's lookup finds beta's functionalities: %+v %v", other.user, f, err)
		}
	}
	if strings.Contains(seen.String(), "Beta sensor") || strings.Contains(seen.String(), "c8y_Beta") {
		t.Errorf("another tenant's answer shows beta's protocol: %s", seen.String())
	}
	// beta's is unchanged
	var p protocol
	if c := h.callAs(beta, betaPass, "GET", "/lwm2m/deviceprotocols/33033", nil, &p); c != 200 || p.Name != "Beta sensor" {
		t.Fatalf("beta's own: HTTP %d %+v", c, p)
	}
	if r, _ := p.resource(5700); r.Functionalities.Measurement == nil || r.Functionalities.CustomAction != "" {
		t.Errorf("beta's functionality changed: %+v", r.Functionalities)
	}
}
