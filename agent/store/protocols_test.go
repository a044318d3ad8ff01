package store_test

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

type protocols = store.Protocols[mapping.Functionality]

// onEachEngine runs a test of the device protocols over each engine's
// ProtocolRecords: what Protocols answers must not depend on the engine.
func onEachEngine(t *testing.T, test func(t *testing.T, s *protocols)) {
	engines := []struct {
		name string
		open func(t *testing.T) store.ProtocolRecords
	}{
		{"MongoDB", func(t *testing.T) store.ProtocolRecords { return storetest.OpenMongo(t) }},
		{"embedded", func(t *testing.T) store.ProtocolRecords { return storetest.OpenEmbedded(t) }},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) { test(t, store.NewProtocols[mapping.Functionality](e.open(t))) })
	}
}

func coreDef(t *testing.T, id uint16) model.ObjectDef {
	t.Helper()
	d, ok := model.Core().Object(id)
	if !ok {
		t.Fatalf("no built-in object %d", id)
	}
	return d
}

// without returns def without resource id.
func without(def model.ObjectDef, id uint16) model.ObjectDef {
	out := def
	out.Resources = nil
	for _, r := range def.Resources {
		if r.ID != id {
			out.Resources = append(out.Resources, r)
		}
	}
	return out
}

// withOperations returns def with resource id's operations changed.
func withOperations(def model.ObjectDef, id uint16, ops string) model.ObjectDef {
	out := def
	out.Resources = append([]model.ResourceDef(nil), def.Resources...)
	for i := range out.Resources {
		if out.Resources[i].ID == id {
			out.Resources[i].Operations = ops
		}
	}
	return out
}

var (
	tempMeasurement = mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}}
	tempAlarm       = mapping.Functionality{Alarm: &mapping.Alarm{Type: "c8y_HighTemperature", Severity: "MAJOR", Text: "Temperature {value}", RaiseWhen: "value > 40"}, AutoObserve: true}
	notTest         = store.ValidationRules{Groups: [][]store.ValidationRule{
		{{Type: "STRING", Rule: "EQUALS_NOT", Value: "test"}},
		{{Type: "REGEX", Rule: "EQUALS", Value: ".*asd$"}, {Type: "STRING", Rule: "EQUALS", Resource: "/3/0/15"}},
	}}
)

func TestProtocolSaveAndReplace(t *testing.T) { onEachEngine(t, testProtocolSaveAndReplace) }

func testProtocolSaveAndReplace(t *testing.T, s *protocols) {
	def := coreDef(t, 3303)
	p := must(s.SaveProtocol(ctx, "acme", def, "3303.xml"))
	if p.Tenant != "acme" || p.Source != "3303.xml" || p.Builtin() {
		t.Fatalf("saved: %+v", p)
	}
	got := must(s.OwnProtocol(ctx, "acme", 3303))
	if !reflect.DeepEqual(got.Object, def) || got.Source != "3303.xml" || len(got.Functionalities) != 0 {
		t.Fatalf("read back:\n%+v\nwant\n%+v", got.Object, def)
	}

	must(s.SetFunctionality(ctx, "acme", 3303, 5700, tempMeasurement))
	must(s.SetFunctionality(ctx, "acme", 3303, 5601, tempAlarm))
	// 5750 (Application Type) is the writable resource of 3303
	must(s.SetValidation(ctx, "acme", 3303, 5750, notTest))
	got = must(s.OwnProtocol(ctx, "acme", 3303))
	if !reflect.DeepEqual(got.Functionalities[5700], tempMeasurement) || !reflect.DeepEqual(got.Functionalities[5601], tempAlarm) {
		t.Fatalf("functionalities: %+v", got.Functionalities)
	}
	if !reflect.DeepEqual(got.Validation[5750], notTest) {
		t.Fatalf("validation read back: %#v\nwant %#v", got.Validation[5750], notTest)
	}

	// A new upload without 5601 and with 5750 read-only keeps 5700's
	// functionality and drops the others.
	next := withOperations(without(def, 5601), 5750, "R")
	p = must(s.SaveProtocol(ctx, "acme", next, "3303-v2.xml"))
	got = must(s.OwnProtocol(ctx, "acme", 3303))
	if len(got.Functionalities) != 1 || !reflect.DeepEqual(got.Functionalities[5700], tempMeasurement) {
		t.Errorf("after re-upload: functionalities %+v", got.Functionalities)
	}
	if len(got.Validation) != 0 {
		t.Errorf("validation of a resource that became read-only kept: %+v", got.Validation)
	}
	if _, ok := got.Object.Resource(5601); ok || got.Source != "3303-v2.xml" {
		t.Errorf("definition not replaced: %+v", got)
	}

	// A zero functionality removes it.
	must(s.SetFunctionality(ctx, "acme", 3303, 5700, mapping.Functionality{}))
	if f := must(s.Functionalities(ctx, "acme", 3303)); len(f) != 0 {
		t.Errorf("after removal: %+v", f)
	}

	check(t, s.DeleteProtocol(ctx, "acme", 3303))
	if _, err := s.OwnProtocol(ctx, "acme", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteProtocol(ctx, "acme", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	bad := def
	bad.Name = ""
	if _, err := s.SaveProtocol(ctx, "acme", bad, "x.xml"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("invalid definition: %v", err)
	}
}

func TestProtocolInheritance(t *testing.T) { onEachEngine(t, testProtocolInheritance) }

func testProtocolInheritance(t *testing.T, s *protocols) {
	def := coreDef(t, 3303)

	// Nothing uploaded: the built-in definition, without functionalities.
	p := must(s.Protocol(ctx, "acme", 3303))
	if !p.Builtin() || p.Source != store.SourceCore || len(p.Functionalities) != 0 {
		t.Fatalf("built-in: %+v", p)
	}
	if _, err := s.Protocol(ctx, "acme", 10241); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("object nobody defined: %v", err)
	}
	if f, err := s.Functionalities(ctx, "acme", 10241); err != nil || len(f) != 0 {
		t.Fatalf("functionalities of an object nobody defined: %v %v", f, err)
	}

	// The management tenant's definition is everyone's default; the
	// cache must not hide it.
	must(s.SaveProtocol(ctx, store.ManagementTenant, def, "mgmt.xml"))
	must(s.SetFunctionality(ctx, store.ManagementTenant, 3303, 5700, tempMeasurement))
	p = must(s.Protocol(ctx, "acme", 3303))
	if p.Tenant != store.ManagementTenant || !reflect.DeepEqual(must(s.Functionalities(ctx, "acme", 3303))[5700], tempMeasurement) {
		t.Fatalf("inherited from management: %+v", p)
	}

	// acme's own definition wins, with its own (no) functionalities.
	must(s.SaveProtocol(ctx, "acme", without(def, 5601), "acme.xml"))
	if p := must(s.Protocol(ctx, "acme", 3303)); p.Tenant != "acme" {
		t.Fatalf("own definition: %+v", p)
	}
	if f := must(s.Functionalities(ctx, "acme", 3303)); len(f) != 0 {
		t.Fatalf("own definition's functionalities: %+v", f)
	}
	// another tenant still inherits management's
	if p := must(s.Protocol(ctx, "other", 3303)); p.Tenant != store.ManagementTenant {
		t.Fatalf("other tenant: %+v", p)
	}
	// deleting acme's own inherits again
	check(t, s.DeleteProtocol(ctx, "acme", 3303))
	if p := must(s.Protocol(ctx, "acme", 3303)); p.Tenant != store.ManagementTenant {
		t.Fatalf("after deleting its own: %+v", p)
	}
}

func TestProtocolConfigureInheritedTakesACopy(t *testing.T) {
	onEachEngine(t, testProtocolConfigureInheritedTakesACopy)
}

func testProtocolConfigureInheritedTakesACopy(t *testing.T, s *protocols) {
	def := coreDef(t, 3303)
	must(s.SaveProtocol(ctx, store.ManagementTenant, def, "mgmt.xml"))
	must(s.SetFunctionality(ctx, store.ManagementTenant, 3303, 5700, tempMeasurement))

	p := must(s.SetFunctionality(ctx, "acme", 3303, 5601, tempAlarm))
	if p.Tenant != "acme" || !strings.Contains(p.Source, "copy of management (mgmt.xml)") {
		t.Fatalf("copy: %+v", p)
	}
	f := must(s.Functionalities(ctx, "acme", 3303))
	if len(f) != 2 || !reflect.DeepEqual(f[5700], tempMeasurement) || !reflect.DeepEqual(f[5601], tempAlarm) {
		t.Fatalf("copy's functionalities: %+v", f)
	}
	if f := must(s.Functionalities(ctx, store.ManagementTenant, 3303)); len(f) != 1 {
		t.Fatalf("management's changed: %+v", f)
	}
	if f := must(s.Functionalities(ctx, "other", 3303)); len(f) != 1 {
		t.Fatalf("another tenant's view changed: %+v", f)
	}

	// A built-in object is copied the same way.
	p = must(s.SetFunctionality(ctx, "acme", 3, 0, mapping.Functionality{CustomAction: "device:updateManufacturer"}))
	if p.Tenant != "acme" || p.Source != "copy of core (core)" {
		t.Fatalf("copy of a built-in: %+v", p)
	}
	if p := must(s.Protocol(ctx, "other", 3)); !p.Builtin() {
		t.Fatalf("another tenant's object 3: %+v", p)
	}
}

// Changes of different resources of one protocol, made at once, are all
// kept: each reads the protocol, changes one resource and writes it
// back, so unless they take turns one writes back a read that misses
// another's change.
func TestProtocolConcurrentChanges(t *testing.T) { onEachEngine(t, testProtocolConcurrentChanges) }

func testProtocolConcurrentChanges(t *testing.T, s *protocols) {
	def := coreDef(t, 3303)
	var resources []uint16
	for _, r := range def.Resources {
		if !r.Executable() {
			resources = append(resources, r.ID)
		}
	}
	if len(resources) < 8 {
		t.Fatalf("object 3303 has %d resources with values", len(resources))
	}
	var wg sync.WaitGroup
	for _, id := range resources {
		wg.Go(func() {
			if _, err := s.SetFunctionality(ctx, "acme", 3303, id, tempMeasurement); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if f := must(s.OwnProtocol(ctx, "acme", 3303)).Functionalities; len(f) != len(resources) {
		t.Fatalf("%d functionalities kept of %d set at once", len(f), len(resources))
	}
}

func TestProtocolChangeErrors(t *testing.T) { onEachEngine(t, testProtocolChangeErrors) }

func testProtocolChangeErrors(t *testing.T, s *protocols) {
	must(s.SaveProtocol(ctx, "acme", coreDef(t, 3303), "3303.xml"))
	tests := []struct {
		name   string
		change func() error
		want   error
		msg    string
	}{
		{"unknown object", func() error { _, err := s.SetFunctionality(ctx, "acme", 10241, 0, tempMeasurement); return err }, store.ErrNotFound, ""},
		{"unknown resource", func() error { _, err := s.SetFunctionality(ctx, "acme", 3303, 9999, tempMeasurement); return err }, store.ErrNotFound, "/3303/x/9999"},
		{"autoObserve alone", func() error {
			_, err := s.SetFunctionality(ctx, "acme", 3303, 5700, mapping.Functionality{AutoObserve: true})
			return err
		}, store.ErrInvalid, "autoObserve needs"},
		{"executable resource", func() error { _, err := s.SetFunctionality(ctx, "acme", 3303, 5605, tempMeasurement); return err }, store.ErrInvalid, "executable"},
		{"validation of a read-only resource", func() error { _, err := s.SetValidation(ctx, "acme", 3303, 5700, notTest); return err }, store.ErrInvalid, "not writable"},
		{"validation of an executable resource", func() error { _, err := s.SetValidation(ctx, "acme", 3303, 5605, notTest); return err }, store.ErrInvalid, "not writable"},
		{"bad validation", func() error {
			_, err := s.SetValidation(ctx, "acme", 3303, 5750, store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: "REGEX", Rule: "EQUALS", Value: "("}}}})
			return err
		}, store.ErrInvalid, "does not compile"},
		{"validation of an unknown resource", func() error { _, err := s.SetValidation(ctx, "acme", 3303, 1, notTest); return err }, store.ErrNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.change()
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
	if p := must(s.OwnProtocol(ctx, "acme", 3303)); len(p.Functionalities) != 0 || len(p.Validation) != 0 {
		t.Fatalf("a refused change was stored: %+v", p)
	}
}

func TestProtocolListAndIsolation(t *testing.T) { onEachEngine(t, testProtocolListAndIsolation) }

func testProtocolListAndIsolation(t *testing.T, s *protocols) {
	for _, id := range []uint16{3303, 3, 1} {
		must(s.SaveProtocol(ctx, "acme", coreDef(t, id), "acme.xml"))
	}
	must(s.SaveProtocol(ctx, store.ManagementTenant, coreDef(t, 4), "mgmt.xml"))
	ids := func(ps []store.Protocol[mapping.Functionality]) (out []uint16) {
		for _, p := range ps {
			out = append(out, p.Object.ID)
		}
		return out
	}
	own, total := must2(s.ListProtocols(ctx, "acme", store.ProtocolFilter{Page: store.Page{Size: 2, WithTotal: true}}))
	if !reflect.DeepEqual(ids(own), []uint16{1, 3}) || total != 3 {
		t.Fatalf("own, page 1: %v total %d", ids(own), total)
	}
	own, _ = must2(s.ListProtocols(ctx, "acme", store.ProtocolFilter{Page: store.Page{Size: 2, Current: 2}}))
	if !reflect.DeepEqual(ids(own), []uint16{3303}) {
		t.Fatalf("own, page 2: %v", ids(own))
	}
	all, total := must2(s.ListProtocols(ctx, "acme", store.ProtocolFilter{Inherited: true, Page: store.Page{Size: 100, WithTotal: true}}))
	if !reflect.DeepEqual(ids(all), []uint16{0, 1, 2, 3, 4, 5, 6, 7, 3303}) || total != 9 {
		t.Fatalf("with inherited: %v total %d", ids(all), total)
	}
	for _, p := range all {
		want := ""
		switch p.Object.ID {
		case 1, 3, 3303:
			want = "acme"
		case 4:
			want = store.ManagementTenant
		}
		if p.Tenant != want {
			t.Errorf("object %d from %q, want %q", p.Object.ID, p.Tenant, want)
		}
	}
	// another tenant sees none of acme's
	other, total := must2(s.ListProtocols(ctx, "other", store.ProtocolFilter{Page: store.Page{WithTotal: true}}))
	if len(other) != 0 || total != 0 {
		t.Fatalf("other tenant lists %v", ids(other))
	}
	if _, err := s.OwnProtocol(ctx, "other", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant reads acme's: %v", err)
	}
	if err := s.DeleteProtocol(ctx, "other", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant deletes acme's: %v", err)
	}
	must(s.SetFunctionality(ctx, "other", 3303, 5700, tempMeasurement)) // its own copy of the built-in
	if p := must(s.OwnProtocol(ctx, "acme", 3303)); len(p.Functionalities) != 0 || p.Source != "acme.xml" {
		t.Fatalf("acme's changed by another tenant: %+v", p)
	}
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func TestProtocolTypes(t *testing.T) { onEachEngine(t, testProtocolTypes) }

func testProtocolTypes(t *testing.T, s *protocols) {
	custom := model.ObjectDef{ID: 10241, Name: "Custom", Resources: []model.ResourceDef{
		{ID: 0, Name: "Level", Operations: "R", Type: node.TypeFloat},
		{ID: 1, Name: "Label", Operations: "RW", Type: node.TypeString},
	}}
	other := custom
	other.Resources = []model.ResourceDef{{ID: 0, Name: "Level", Operations: "R", Type: node.TypeInteger}}
	must(s.SaveProtocol(ctx, "acme", custom, "acme.xml"))
	must(s.SaveProtocol(ctx, "zeta", other, "zeta.xml"))

	p := node.ResourcePath
	tests := []struct {
		name     string
		resolver node.Resolver
		path     node.Path
		want     node.Type
		known    bool
	}{
		{"acme: its own", s.TypesFor("acme"), p(10241, 0, 0), node.TypeFloat, true},
		{"zeta: its own", s.TypesFor("zeta"), p(10241, 0, 0), node.TypeInteger, true},
		{"zeta: not in its definition", s.TypesFor("zeta"), p(10241, 0, 1), node.TypeNone, false},
		{"nobody: not defined", s.TypesFor("nobody"), p(10241, 0, 0), node.TypeNone, false},
		{"built-in", s.TypesFor("nobody"), p(3303, 0, 5700), node.TypeFloat, true},
		{"resource instance", s.TypesFor("acme"), node.ResourceInstancePath(10241, 0, 1, 2), node.TypeString, true},
		{"object path", s.TypesFor("acme"), node.InstancePath(10241, 0), node.TypeNone, false},
		{"global: first tenant by ID", s.GlobalTypes(), p(10241, 0, 0), node.TypeFloat, true},
		{"global: built-in", s.GlobalTypes(), p(3, 0, 13), node.TypeTime, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.resolver.ResourceType(tc.path)
			if got != tc.want || ok != tc.known {
				t.Fatalf("got %v %v, want %v %v", got, ok, tc.want, tc.known)
			}
		})
	}
	// The management tenant's definition wins in the global resolver, at
	// once (the write clears the cache).
	mgmt := custom
	mgmt.Resources = []model.ResourceDef{{ID: 0, Name: "Level", Operations: "R", Type: node.TypeBoolean}}
	must(s.SaveProtocol(ctx, store.ManagementTenant, mgmt, "mgmt.xml"))
	if got, ok := s.GlobalTypes().ResourceType(p(10241, 0, 0)); got != node.TypeBoolean || !ok {
		t.Fatalf("global after management's upload: %v %v", got, ok)
	}
	if got, _ := s.TypesFor("nobody").ResourceType(p(10241, 0, 0)); got != node.TypeBoolean {
		t.Fatalf("a tenant without its own after management's upload: %v", got)
	}
}

func TestValidationRulesCheck(t *testing.T) {
	rule := func(typ, r string, value any, resource string) store.ValidationRules {
		return store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: typ, Rule: r, Value: value, Resource: resource}}}}
	}
	tests := []struct {
		name  string
		rules store.ValidationRules
		msg   string // "" for valid
	}{
		{"API.md example", notTest, ""},
		{"no groups", store.ValidationRules{}, ""},
		{"number constant", rule("NUMBER", "GREATER_OR_EQUALS", 10.5, ""), ""},
		{"number as string", rule("NUMBER", "LOWER_THAN", "1e3", ""), ""},
		{"date", rule("DATE", "GREATER_THAN", "2024-05-01T12:00:00Z", ""), ""},
		{"date as seconds", rule("DATE", "LOWER_THAN", 1714564800.0, ""), ""},
		{"object link", rule("OBJECTLINK", "EQUALS", "3303:0", ""), ""},
		{"number from a resource", rule("NUMBER", "LOWER_THAN", nil, "/3303/0/5604"), ""},
		{"regex does not match", rule("REGEX", "EQUALS_NOT", "^[a-z]+$", ""), ""},
		{"empty group", store.ValidationRules{Groups: [][]store.ValidationRule{{}}}, "groups[0] is empty"},
		{"unknown type", rule("BOOLEAN", "EQUALS", "true", ""), `groups[0][0].type "BOOLEAN" is not one of STRING, NUMBER, DATE, OBJECTLINK, REGEX`},
		{"unknown rule", rule("NUMBER", "BETWEEN", 1.0, ""), `rule "BETWEEN" does not apply to type NUMBER`},
		{"ordering of strings", rule("STRING", "GREATER_THAN", "a", ""), "use EQUALS, EQUALS_NOT"},
		{"neither value nor resource", rule("STRING", "EQUALS", nil, ""), "either a constant value or a resource"},
		{"both value and resource", rule("STRING", "EQUALS", "a", "/3/0/1"), "either a constant value or a resource"},
		{"bad resource path", rule("STRING", "EQUALS", nil, "/3/0"), `resource "/3/0" is not a resource path`},
		{"regex from a resource", rule("REGEX", "EQUALS", nil, "/3/0/1"), "needs a constant pattern"},
		{"regex does not compile", rule("REGEX", "EQUALS", "a(b", ""), `value "a(b" does not compile`},
		{"not a number", rule("NUMBER", "EQUALS", "ten", ""), `value "ten" is not a number`},
		{"not a date", rule("DATE", "EQUALS", "yesterday", ""), "not an ISO 8601 date"},
		{"not an object link", rule("OBJECTLINK", "EQUALS", "3303/0", ""), "not an object link"},
		{"object link out of range", rule("OBJECTLINK", "EQUALS", "70000:0", ""), "not an object link"},
		{"number for a string rule", rule("STRING", "EQUALS", 5.0, ""), "a STRING rule compares with a string"},
		{"boolean value", rule("STRING", "EQUALS", true, ""), "neither a string nor a number"},
		{"value too long", rule("STRING", "EQUALS", strings.Repeat("x", 2000), ""), "longer than 1024"},
		{"too many groups", store.ValidationRules{Groups: make([][]store.ValidationRule, 33)}, "33 groups, at most 32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rules.Check()
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("valid rules refused: %v", err)
				}
				return
			}
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrInvalid with %q", err, tc.msg)
			}
		})
	}
}

// A protocol document as the MongoDB engine wrote it before protocols
// went through ProtocolRecords (BSON of the Go types, a double for a
// whole number) reads the same now, and what is written now has its
// shape: the same members in the same order, documents where there were
// documents. Only the type of a number can differ: a whole number goes
// through JSON and is stored as an integer where a float64 was a double;
// both read back as the same float64.
func TestProtocolStoredShape(t *testing.T) {
	uri := ferrettest.Start(t)
	s := storetest.OpenMongoAt(t, uri)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	check(t, err)
	t.Cleanup(func() { _ = client.Disconnect(ctx) })
	coll := client.Database("lwm2m").Collection("deviceProtocols")
	updated := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	_, err = coll.InsertOne(ctx, bson.D{
		{Key: "_id", Value: "acme/3303"}, {Key: "tenant", Value: "acme"}, {Key: "objectId", Value: int32(3303)},
		{Key: "definition", Value: bson.D{
			{Key: "name", Value: "Temperature"}, {Key: "multiple", Value: true}, {Key: "mandatory", Value: false},
			{Key: "resources", Value: bson.A{
				bson.D{{Key: "id", Value: int32(5700)}, {Key: "name", Value: "Sensor Value"}, {Key: "operations", Value: "R"},
					{Key: "multiple", Value: false}, {Key: "mandatory", Value: true}, {Key: "type", Value: "Float"}},
				bson.D{{Key: "id", Value: int32(5750)}, {Key: "name", Value: "Application Type"}, {Key: "operations", Value: "RW"},
					{Key: "multiple", Value: false}, {Key: "mandatory", Value: false}, {Key: "type", Value: "String"},
					{Key: "description", Value: "what it measures"}},
			}},
		}},
		{Key: "source", Value: "old.xml"},
		{Key: "functionalities", Value: bson.D{{Key: "5700", Value: bson.D{
			{Key: "measurement", Value: bson.D{{Key: "type", Value: "c8y_Temperature"}, {Key: "series", Value: "T"}, {Key: "unit", Value: "C"}}},
		}}}},
		{Key: "validation", Value: bson.D{{Key: "5750", Value: bson.A{bson.D{{Key: "rules", Value: bson.A{
			bson.D{{Key: "type", Value: "NUMBER"}, {Key: "rule", Value: "LOWER_THAN"}, {Key: "value", Value: 10.0}},
		}}}}}}},
		{Key: "updated", Value: updated},
	})
	check(t, err)

	ps := store.NewProtocols[mapping.Functionality](s)
	p := must(ps.OwnProtocol(ctx, "acme", 3303))
	want := model.ObjectDef{ID: 3303, Name: "Temperature", Multiple: true, Resources: []model.ResourceDef{
		{ID: 5700, Name: "Sensor Value", Operations: "R", Mandatory: true, Type: node.TypeFloat},
		{ID: 5750, Name: "Application Type", Operations: "RW", Type: node.TypeString, Description: "what it measures"},
	}}
	if !reflect.DeepEqual(p.Object, want) || p.Source != "old.xml" || !p.Updated.Equal(updated) {
		t.Fatalf("old document read as\n%+v\nwant\n%+v", p, want)
	}
	if !reflect.DeepEqual(p.Functionalities, map[uint16]mapping.Functionality{5700: tempMeasurement}) {
		t.Fatalf("functionalities %+v", p.Functionalities)
	}
	rules := store.ValidationRules{Groups: [][]store.ValidationRule{{{Type: "NUMBER", Rule: "LOWER_THAN", Value: 10.0}}}}
	if !reflect.DeepEqual(p.Validation[5750], rules) {
		t.Fatalf("validation %#v", p.Validation)
	}

	// Written again now: the same members, in the same order.
	must(ps.SaveProtocol(ctx, "acme", want, "new.xml"))
	var raw bson.Raw
	check(t, coll.FindOne(ctx, bson.D{{Key: "_id", Value: "acme/3303"}}).Decode(&raw))
	var names []string
	elems, err := raw.Elements()
	check(t, err)
	for _, e := range elems {
		names = append(names, e.Key())
	}
	if want := []string{"_id", "tenant", "objectId", "definition", "source", "functionalities", "validation", "updated"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("members %v, want %v", names, want)
	}
	for path, typ := range map[string]bson.Type{
		"objectId": bson.TypeInt32, "definition": bson.TypeEmbeddedDocument, "definition.resources": bson.TypeArray,
		"definition.resources.0.id": bson.TypeInt32, "functionalities.5700.measurement": bson.TypeEmbeddedDocument,
		"validation.5750.0.rules.0.value": bson.TypeInt32, "updated": bson.TypeDateTime,
	} {
		v, err := raw.LookupErr(strings.Split(path, ".")...)
		if err != nil || v.Type != typ {
			t.Errorf("%s: %v (%v), want %v", path, v.Type, err, typ)
		}
	}
	// And it reads back as it was saved.
	if p := must(ps.OwnProtocol(ctx, "acme", 3303)); !reflect.DeepEqual(p.Validation[5750], rules) || p.Source != "new.xml" {
		t.Fatalf("read back %+v", p)
	}
}
