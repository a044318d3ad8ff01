package storetest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// dumpCases hold an engine's dumps to the contract: a store filled with
// every kind the engine supports comes out of an export and into a
// fresh engine of the same kind as what the contract reads back, and bad
// dumps are refused line by line. Each case opens the engines it needs
// beyond the one it is given.
func dumpCases(open func(*testing.T) store.Engine) []suiteCase {
	return []suiteCase{
		{"RoundTrip", func(t *testing.T, s store.Engine) { testDumpRoundTrip(t, s, open) }},
		{"IntoFirstStart", func(t *testing.T, s store.Engine) { testDumpIntoFirstStart(t, s, open) }},
		{"RefusesStoreWithData", func(t *testing.T, s store.Engine) { testDumpRefusesData(t, s, open) }},
		{"BadDumps", func(t *testing.T, s store.Engine) { testBadDumps(t, s, open) }},
		{"BatchAllOrNothing", func(t *testing.T, s store.Engine) { testDumpBatchAllOrNothing(t, s, open) }},
		{"ExportStopsAtError", testDumpExportStops},
		{"BulkClaimFinished", func(t *testing.T, s store.Engine) { testDumpBulkClaim(t, open) }},
	}
}

// supported says whether err is the answer of a concern the engine does
// not implement yet; any other error fails the test.
func supported(t *testing.T, err error) bool {
	t.Helper()
	if errors.Is(err, errors.ErrUnsupported) {
		return false
	}
	check(t, err)
	return true
}

// filled is what fill wrote, for compare to read back.
type filled struct {
	kinds   map[string]bool // what the engine took
	tenants []string
	users   []filledUser
	devices map[string][]string // tenant -> object ids
	// endpoints and identities by name, to look up
	endpoints  []string
	identities [][2]string // kind, identity
	keys       map[string][]byte
	alarm      [3]string // tenant, source, type of an open alarm
	binaries   map[string][]string
	ids        []int64 // every id of the id sequence written
	// refs are the objects with child references: parents by kind,
	// and children whose parents were added out of id order.
	refs struct{ parents, children [][3]string } // tenant, kind, id
	// bulk is a bulk operation left running after its first step, and
	// its devices.
	bulk        store.BulkOperation
	bulkDevices []string
}

type filledUser struct{ tenant, name, password string }

func (f *filled) id(t *testing.T, id string) string {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("id %q is not a number", id)
	}
	f.ids = append(f.ids, n)
	return id
}

// fill writes every kind the engine supports into s: several tenants and
// users, objects with fragments of every JSON shape, external IDs,
// endpoints, PSK identities with keys, registration records (complete,
// only a serialization, cut short), operations in every status,
// post-registration commands, measurements across buckets, events,
// alarms open and cleared, last values of every type, binaries.
func fill(t *testing.T, s store.Engine) *filled {
	t.Helper()
	f := &filled{kinds: map[string]bool{}, devices: map[string][]string{}, keys: map[string][]byte{}, binaries: map[string][]string{}}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	must(s.EnsureManagement(ctx, "Mgmt-pass-1234!"))
	f.tenants = append(f.tenants, store.ManagementTenant)
	f.users = append(f.users, filledUser{store.ManagementTenant, "admin", "Mgmt-pass-1234!"})
	check(t, s.CreateUser(ctx, store.ManagementTenant, "ops", "Ops-pass-1234!", []string{"ROLE_OPS", "ROLE_READ"}))
	f.users = append(f.users, filledUser{store.ManagementTenant, "ops", "Ops-pass-1234!"})
	for _, tn := range []string{"acme", "beta"} {
		must(s.CreateTenant(ctx, tn, "admin", tn+"-Pass-1234!"))
		f.tenants = append(f.tenants, tn)
		f.users = append(f.users, filledUser{tn, "admin", tn + "-Pass-1234!"})
	}
	check(t, s.CreateUser(ctx, "acme", "viewer", "View-pass-1234!", nil))
	f.users = append(f.users, filledUser{"acme", "viewer", "View-pass-1234!"})
	f.kinds[store.KindTenant], f.kinds[store.KindUser] = true, true

	for _, tn := range []string{"acme", "beta"} {
		for i := range 4 {
			mo, err := s.CreateManagedObject(ctx, tn, store.ManagedObject{Name: fmt.Sprint(tn, "-", i), Type: store.DeviceType, Fragments: map[string]any{
				"c8y_IsDevice": map[string]any{},
				"c8y_Hardware": map[string]any{"model": "m" + strconv.Itoa(i), "revision": int64(i), "ratio": 21.0, "half": 0.5},
				"tags":         []any{"a", int64(1), 2.5, true, nil, map[string]any{"deep": []any{"x"}}},
				"flag":         i%2 == 0,
				"nothing":      nil,
			}})
			if !supported(t, err) {
				return f
			}
			f.devices[tn] = append(f.devices[tn], f.id(t, mo.ID))
		}
	}
	f.kinds[store.KindManagedObject], f.kinds[store.KindCounter] = true, true
	acme, beta := f.devices["acme"], f.devices["beta"]
	check(t, s.UpdateFragments(ctx, "acme", acme[0], map[string]any{"lwm2m": map[string]any{
		"endpoint": "acme-0", "registrationId": "r1", "lifetime": int64(300), "lastUpdate": at, "objects": []any{"/3/0"},
	}}))

	for tn, ids := range f.devices {
		for i, id := range ids {
			check(t, s.CreateExternalID(ctx, tn, store.ExternalID{Type: store.ExternalIDDevice, ExternalID: fmt.Sprint(tn, "-", i), ManagedObjectID: id}))
		}
		check(t, s.CreateExternalID(ctx, tn, store.ExternalID{Type: "c8y_Serial", ExternalID: "s/" + tn, ManagedObjectID: ids[1]}))
	}
	f.kinds[store.KindExternalID] = true

	// An endpoint is bound by the creation of a device.
	if id, err := s.CreateDevice(ctx, "beta", "beta-auto"); supported(t, err) {
		f.devices["beta"] = append(f.devices["beta"], f.id(t, id))
		f.endpoints = append(f.endpoints, "beta-auto")
		f.kinds[store.KindEndpoint] = true
	}

	for i, d := range []struct{ tenant, id string }{{"acme", acme[0]}, {"acme", acme[1]}, {"beta", beta[0]}} {
		ident, key := fmt.Sprint("psk-", d.tenant, "-", i), []byte{byte(i), 0xA5, 0x5A, byte(i * 7)}
		check(t, s.BindPSKIdentity(ctx, store.PSKServer, ident, d.tenant, d.id))
		check(t, s.BindPSKIdentity(ctx, store.PSKBootstrap, "bs-"+ident, d.tenant, d.id))
		f.identities = append(f.identities, [2]string{store.PSKServer, ident}, [2]string{store.PSKBootstrap, "bs-" + ident})
		f.keys[ident] = key
		check(t, s.SaveDeviceRegistration(ctx, d.tenant, d.id, store.DeviceRegistration{
			Params: map[string]any{store.ParamEndpointID: fmt.Sprint(d.tenant, "-", i), store.ParamSecurityMode: store.SecurityPSK,
				"lwm2mPskId": ident, "bootstrapPskId": "bs-" + ident, "lwm2mRequestTimeout": int64(5000), "ratio": 0.25,
				"servers": []any{"coaps://a", "coaps://b"}},
			PSKKey: key, BootstrapPSKKey: append([]byte{9}, key...), CredentialsHash: []byte("hash-" + ident),
		}))
	}
	check(t, s.SetDeviceSerialization(ctx, "acme", acme[0], "TLV"))
	check(t, s.SetDeviceSerialization(ctx, "acme", acme[2], "SENML_JSON")) // a record of only this
	check(t, s.SaveDeviceRegistration(ctx, "beta", beta[1], store.DeviceRegistration{
		Params: map[string]any{store.ParamEndpointID: "beta-1"}, Incomplete: true, Release: map[string]string{store.PSKServer: "gone"},
	}))
	check(t, s.SaveDeviceRegistration(ctx, "beta", beta[2], store.DeviceRegistration{Params: map[string]any{}}))
	f.kinds[store.KindPSKIdentity], f.kinds[store.KindRegistration] = true, true

	ops, err := s.CreateOperations(ctx, "acme", []store.Operation{
		{DeviceID: acme[0], HasCommand: true, Text: "read /3/0"},
		{DeviceID: acme[0], HasCommand: true, Text: "write /3/0/14 +02"},
		{DeviceID: acme[0], Fragments: map[string]any{"c8y_Restart": map[string]any{}}},
		{DeviceID: acme[1], HasCommand: true, Text: "execute /3/0/4"},
		{DeviceID: acme[1], Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw", "version": "2.0"}}},
	})
	if supported(t, err) {
		for _, op := range ops {
			f.id(t, op.ID)
		}
		check(t, s.SetStatus(ctx, "acme", ops[0].ID, store.OpExecuting, "", ""))
		check(t, s.SetStatus(ctx, "acme", ops[0].ID, store.OpSuccessful, "Manufacturer=x", ""))
		check(t, s.SetStatus(ctx, "acme", ops[1].ID, store.OpExecuting, "", ""))
		check(t, s.SetStatus(ctx, "acme", ops[1].ID, store.OpFailed, "", "4.05 Method Not Allowed"))
		check(t, s.SetStatus(ctx, "acme", ops[4].ID, store.OpExecuting, "", ""))
		check(t, s.SetOperationFragment(ctx, "acme", ops[4].ID, "lwm2mFirmwareUpdate", map[string]any{"step": "download", "at": int64(3)}))
		must(s.CreateOperation(ctx, "beta", store.Operation{DeviceID: beta[0], HasCommand: true, Text: "read /1/0"}))
		f.kinds[store.KindOperation] = true
	}
	for _, r := range []store.ProtocolRecord{
		{Tenant: "acme", ObjectID: 3303, Source: "3303.xml", Updated: at,
			Definition:      json.RawMessage(`{"name":"Temperature","multiple":true,"resources":[{"id":5700,"name":"Sensor Value","type":"FLOAT"}]}`),
			Functionalities: json.RawMessage(`{"5700":{"measurement":{"type":"c8y_Temperature","series":"T","unit":"C"}}}`),
			Validation:      json.RawMessage(`{"5750":[{"rules":[{"type":"NUMBER","rule":"GREATER_THAN","value":1.5},{"type":"NUMBER","rule":"LOWER_THAN","value":40}]}]}`)},
		{Tenant: store.ManagementTenant, ObjectID: 3, Source: "core", Updated: at, Definition: json.RawMessage(`{"name":"Device"}`)},
	} {
		if err := s.PutProtocolRecord(ctx, r); !supported(t, err) {
			break
		}
		f.kinds[store.KindProtocol] = true
	}
	if err := s.SetPostOperations(ctx, "acme", []string{"read /3/0", "observe /3303"}); supported(t, err) {
		f.kinds[store.KindPostOperations] = true
	}

	// Across the MongoDB engine's buckets (1,000) and import batches.
	var ms []store.Measurement
	for i := range 2300 {
		ms = append(ms, store.Measurement{Source: acme[i%2], Type: "c8y_Temperature",
			Time:      at.Add(time.Duration(i) * time.Second),
			Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(float64(20+i%5), "C")}, "n": int64(i)}})
	}
	if _, err := s.AddMeasurements(ctx, "acme", ms); supported(t, err) {
		must(s.AddMeasurements(ctx, "acme", []store.Measurement{{Source: acme[0], Type: "c8y_Humidity", Time: at,
			Fragments: map[string]any{"c8y_Humidity": map[string]any{"H": store.SeriesValue(40, "%")}}}}))
		must(s.AddMeasurements(ctx, "beta", ms[:3]))
		f.kinds[store.KindMeasurement] = true
	}
	if evs, err := s.CreateEvents(ctx, "acme", []store.Event{
		{Source: acme[0], Type: "c8y_Registration", Text: "registered", Time: at, Fragments: map[string]any{"peer": "10.0.0.1", "n": 1.5}},
		{Source: acme[1], Type: "c8y_Update", Text: "updated", Time: at.Add(time.Minute)},
	}); supported(t, err) {
		for _, e := range evs {
			f.id(t, e.ID)
		}
		f.kinds[store.KindEvent] = true
	}
	if a, err := s.RaiseAlarm(ctx, "acme", store.Alarm{Source: acme[0], Type: "c8y_HighTemp", Text: "hot", Severity: store.SeverityMajor, Time: at,
		Fragments: map[string]any{"threshold": 30.0}}); supported(t, err) {
		f.id(t, a.ID)
		must(s.RaiseAlarm(ctx, "acme", store.Alarm{Source: acme[0], Type: "c8y_HighTemp", Text: "hotter", Time: at.Add(time.Minute)}))
		b := must(s.RaiseAlarm(ctx, "acme", store.Alarm{Source: acme[1], Type: "c8y_Low", Severity: store.SeverityMinor, Time: at}))
		must(s.UpdateAlarm(ctx, "acme", b.ID, store.AlarmUpdate{Status: store.AlarmAcknowledged}))
		must(s.RaiseAlarm(ctx, "acme", store.Alarm{Source: acme[1], Type: "c8y_Gone", Time: at}))
		must(s.ClearAlarm(ctx, "acme", acme[1], "c8y_Gone"))
		f.alarm = [3]string{"acme", acme[0], "c8y_HighTemp"}
		f.kinds[store.KindAlarm] = true
	}
	if err := s.SaveValues(ctx, "acme", acme[0], []store.ResourceValue{
		{Path: "/3/0/0", Value: "lwm2m-agent", Type: "STRING", Time: at},
		{Path: "/3303/0/5700", Value: 21.0, Type: "FLOAT", Time: at},
		{Path: "/3/0/9", Value: int64(80), Type: "INTEGER", Time: at},
		{Path: "/3/0/13", Value: at.Add(time.Hour), Type: "TIME", Time: at},
		{Path: "/1/0/6", Value: true, Type: "BOOLEAN", Time: at},
		{Path: "/3/0/11/1", Value: int64(0), Type: "INTEGER", Time: at},
	}); supported(t, err) {
		f.kinds[store.KindValues] = true
	}
	for i, size := range []int{0, 2*store.BinaryChunkSize + 77} {
		b, err := s.CreateBinary(ctx, "acme", store.Binary{Name: fmt.Sprint("fw-", i, ".bin"), ContentType: "application/octet-stream",
			Owner: "admin", Fragments: map[string]any{"c8y_Firmware": map[string]any{"version": "2." + strconv.Itoa(i)}}},
			bytes.NewReader(randomBytes(size, uint64(i))), 1<<30)
		if !supported(t, err) {
			break
		}
		f.binaries["acme"] = append(f.binaries["acme"], f.id(t, b.ID))
		f.kinds[store.KindBinary] = true
	}
	fillGroups(t, s, f, at)
	return f
}

// fillGroups writes child references and bulk operations: two groups,
// the second a subgroup of the first, sharing a device whose parents
// were added in the other order than their ids; a firmware with a
// version as child addition; a bulk operation running after its first
// step and one canceled.
func fillGroups(t *testing.T, s store.Engine, f *filled, at time.Time) {
	t.Helper()
	acme := f.devices["acme"]
	var g []string
	for _, name := range []string{"north", "south"} {
		mo := must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: name, Type: store.GroupType,
			Fragments: map[string]any{store.GroupFragment: map[string]any{}}}))
		g = append(g, f.id(t, mo.ID))
	}
	fw := must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "fw", Type: store.FirmwareType,
		Fragments: map[string]any{"c8y_Filter": map[string]any{"type": "c8y_lwm2m"}}}))
	ver := must(s.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "fw", Type: store.FirmwareBinaryType,
		Fragments: map[string]any{"c8y_Firmware": map[string]any{"version": "2.0", "url": "https://fw.example/2.0"}}}))
	f.id(t, fw.ID)
	f.id(t, ver.ID)
	for _, r := range [][3]string{
		{store.ChildAssets, g[1], acme[1]}, // south first: the child's parents are south, north
		{store.ChildAssets, g[0], acme[0]},
		{store.ChildAssets, g[0], acme[1]},
		{store.ChildAssets, g[0], g[1]},
		{store.ChildAdditions, fw.ID, ver.ID},
		{store.ChildDevices, acme[0], acme[2]},
	} {
		if err := s.AddChildReference(ctx, "acme", r[0], r[1], r[2]); !supported(t, err) {
			return
		}
	}
	f.kinds[store.KindChildReference] = true
	f.refs.parents = [][3]string{{"acme", store.ChildAssets, g[0]}, {"acme", store.ChildAssets, g[1]},
		{"acme", store.ChildAdditions, fw.ID}, {"acme", store.ChildDevices, acme[0]}}
	f.refs.children = [][3]string{{"acme", store.ChildAssets, acme[1]}, {"acme", store.ChildAssets, g[1]},
		{"acme", store.ChildAdditions, ver.ID}, {"acme", store.ChildDevices, acme[2]}}

	bulk := func(targets []string, ramp time.Duration) store.BulkOperation {
		b := must(s.CreateBulkOperation(ctx, "acme", store.BulkOperation{GroupID: g[0], StartDate: at, CreationRamp: ramp, Targets: targets,
			Prototype: map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}, "description": "maker", "weight": 1.5},
			Fragments: map[string]any{"note": "fleet", "at": at}}))
		f.id(t, b.ID)
		return b
	}
	f.bulkDevices = []string{acme[0], acme[1], acme[3], acme[2]}
	b := bulk(f.bulkDevices, 90*time.Second)
	op := must(s.CreateBulkStep(ctx, "acme", b, at.Add(90*time.Second)))
	f.id(t, op.ID)
	check(t, s.SetStatus(ctx, "acme", op.ID, store.OpExecuting, "", ""))
	f.bulk = must(s.GetBulkOperation(ctx, "acme", b.ID))
	c := bulk(acme[:2], 0)
	must(s.SetBulkStatus(ctx, "acme", c.ID, store.BulkCanceled))
	f.kinds[store.KindBulkOperation] = true
}

// compareGroups finds in dst the child references and bulk operations
// of src, in their order, and the running bulk operation going on with
// its next device.
func compareGroups(t *testing.T, src, dst store.Engine, f *filled) {
	t.Helper()
	if f.kinds[store.KindChildReference] {
		for _, p := range f.refs.parents {
			list := func(s store.Engine) func(pg store.Page) ([]store.ManagedObject, int64, error) {
				return func(pg store.Page) ([]store.ManagedObject, int64, error) {
					return s.ListChildren(ctx, p[0], p[1], p[2], pg)
				}
			}
			same(t, p[1]+" of "+p[2], pages(t, list(src)), pages(t, list(dst)))
		}
		for _, c := range f.refs.children {
			same(t, "parents by "+c[1]+" of "+c[2], must(src.ParentsOf(ctx, c[0], c[1], c[2], 0)), must(dst.ParentsOf(ctx, c[0], c[1], c[2], 0)))
		}
	}
	if f.kinds[store.KindBulkOperation] {
		list := func(s store.Engine) func(p store.Page) ([]store.BulkOperation, int64, error) {
			return func(p store.Page) ([]store.BulkOperation, int64, error) { return s.ListBulkOperations(ctx, "acme", p) }
		}
		same(t, "bulk operations", pages(t, list(src)), pages(t, list(dst)))
		far := f.bulk.NextAt.Add(time.Hour)
		same(t, "due bulk operations", must(src.DueBulkOperations(ctx, far, 0)), must(dst.DueBulkOperations(ctx, far, 0)))
		for _, st := range []string{store.OpPending, store.OpExecuting} {
			same(t, st+" operations of the bulk operation", must(src.BulkOperationIDs(ctx, "acme", f.bulk.ID, st, 0)),
				must(dst.BulkOperationIDs(ctx, "acme", f.bulk.ID, st, 0)))
		}
	}
}

// continueBulk runs the imported bulk operation's steps in dst: the
// position it had is taken, and the devices after it get one operation
// each, in order.
func continueBulk(t *testing.T, dst store.Engine, f *filled) {
	t.Helper()
	if !f.kinds[store.KindBulkOperation] {
		return
	}
	if _, err := dst.CreateBulkStep(ctx, "acme", f.bulk, time.Now()); err != nil {
		t.Fatalf("the imported bulk operation's next step: %v", err)
	}
	stale := f.bulk // the position as the dump had it, taken now
	if _, err := dst.CreateBulkStep(ctx, "acme", stale, time.Now()); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second claim of the imported position: %v, want ErrConflict", err)
	}
	for {
		due := must(dst.DueBulkOperations(ctx, time.Now().Add(time.Hour), 0))
		if len(due) == 0 {
			break
		}
		if len(due) != 1 || due[0].ID != f.bulk.ID {
			t.Fatalf("due after the import: %+v, want only bulk operation %s", due, f.bulk.ID)
		}
		if _, err := dst.CreateBulkStep(ctx, "acme", due[0].BulkOperation, time.Now()); err != nil {
			t.Fatalf("step %d: %v", due[0].Position, err)
		}
	}
	b := must(dst.GetBulkOperation(ctx, "acme", f.bulk.ID))
	if b.Position != len(f.bulkDevices) || b.Progress.Created() != int64(len(f.bulkDevices)) {
		t.Fatalf("after the import's steps: position %d, %d operations, want %d each", b.Position, b.Progress.Created(), len(f.bulkDevices))
	}
	var devs []string
	for _, st := range []string{store.OpExecuting, store.OpPending} {
		for _, id := range must(dst.BulkOperationIDs(ctx, "acme", f.bulk.ID, st, 0)) {
			devs = append(devs, must(dst.GetOperation(ctx, "acme", id)).DeviceID)
		}
	}
	if !slices.Equal(devs, f.bulkDevices) {
		t.Errorf("devices of the bulk operation's operations %v, want each of %v once, in order", devs, f.bulkDevices)
	}
}

// canon turns what the engines read into one shape to compare: slices
// of any named type as []any, times as RFC 3339 text (their zones and
// monotonic readings aside), the numbers as they are.
func canon(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		return "time " + x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = canon(e)
		}
		return out
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = canon(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = canon(it.Value().Interface())
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		for i := range rv.NumField() {
			if rv.Type().Field(i).IsExported() {
				out[rv.Type().Field(i).Name] = canon(rv.Field(i).Interface())
			}
		}
		return out
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return canon(rv.Elem().Interface())
	}
	return v
}

// same fails the test unless what src and dst read is the same.
func same(t *testing.T, what string, src, dst any) {
	t.Helper()
	if a, b := canon(src), canon(dst); !reflect.DeepEqual(a, b) {
		t.Errorf("%s differs:\nsource %v\ntarget %v", what, a, b)
	}
}

// pages reads every page of a list.
func pages[T any](t *testing.T, list func(store.Page) ([]T, int64, error)) []T {
	t.Helper()
	var all []T
	for p := 1; ; p++ {
		got, _, err := list(store.Page{Size: store.MaxPageSize, Current: p})
		check(t, err)
		all = append(all, got...)
		if len(got) < store.MaxPageSize {
			return all
		}
	}
}

// measurementMatch is how alike two engines' measurements must be: an
// engine keeps its own ids and order, and the MongoDB engine, which
// lists measurements bucket by bucket, lists those of another engine in
// another order, and numbers anew those whose ids do not fit its
// buckets.
type measurementMatch int

const (
	sameList   measurementMatch = iota // ids and order
	sameIDs                            // ids, any order
	sameValues                         // any ids, any order
)

func compareMeasurements(t *testing.T, src, dst store.Engine, tenant string, how measurementMatch) {
	t.Helper()
	list := func(s store.Engine) []store.Measurement {
		return pages(t, func(p store.Page) ([]store.Measurement, int64, error) {
			return s.ListMeasurements(ctx, tenant, store.MeasurementFilter{Page: p})
		})
	}
	a, b := list(src), list(dst)
	if how != sameList {
		for _, ms := range [][]store.Measurement{a, b} {
			if how == sameValues {
				for i := range ms {
					ms[i].ID = ""
				}
			}
			slices.SortFunc(ms, func(x, y store.Measurement) int {
				return cmp.Or(strings.Compare(x.Source, y.Source), x.Time.Compare(y.Time), strings.Compare(x.ID, y.ID),
					strings.Compare(fmt.Sprint(canon(x.Fragments)), fmt.Sprint(canon(y.Fragments))))
			})
		}
	}
	same(t, "measurements of "+tenant, a, b)
	if how != sameValues {
		for _, m := range a[:min(len(a), 3)] {
			got, err := dst.GetMeasurement(ctx, tenant, m.ID)
			check(t, err)
			same(t, "measurement "+m.ID, m, got)
		}
	}
}

// compare reads back from dst everything fill wrote into src, through
// the contract, and finds it as src answers it; measurements as ms says.
func compare(t *testing.T, src, dst store.Engine, f *filled, ms measurementMatch) {
	t.Helper()
	for _, tn := range f.tenants {
		same(t, "tenant "+tn, must(src.GetTenant(ctx, tn)), must(dst.GetTenant(ctx, tn)))
	}
	for _, u := range f.users {
		a := must(src.Login(ctx, u.tenant, u.name, u.password))
		b, err := dst.Login(ctx, u.tenant, u.name, u.password)
		if err != nil {
			t.Errorf("user %s/%s does not log in with the source's password: %v", u.tenant, u.name, err)
			continue
		}
		same(t, "user "+u.tenant+"/"+u.name, a, b)
		if err := dst.Authenticate(ctx, u.tenant, u.name, u.password+"x"); !errors.Is(err, store.ErrUnauthorized) {
			t.Errorf("user %s/%s with a wrong password: %v", u.tenant, u.name, err)
		}
	}
	for _, tn := range f.tenants {
		list := func(s store.Engine) func(p store.Page) ([]store.ManagedObject, int64, error) {
			return func(p store.Page) ([]store.ManagedObject, int64, error) {
				return s.ListManagedObjects(ctx, tn, store.ManagedObjectFilter{Page: p})
			}
		}
		same(t, "managed objects of "+tn, pages(t, list(src)), pages(t, list(dst)))
	}
	for tn, ids := range f.devices {
		for _, id := range ids {
			same(t, "external ids of "+id, must(src.ExternalIDsOf(ctx, tn, id)), must(dst.ExternalIDsOf(ctx, tn, id)))
			a, aerr := src.DeviceSettings(ctx, tn, id)
			b, berr := dst.DeviceSettings(ctx, tn, id)
			same(t, "registration record of "+tn+"/"+id, []any{a, errors.Is(aerr, store.ErrNotFound)}, []any{b, errors.Is(berr, store.ErrNotFound)})
			a, aerr = src.DeviceRegistrationOf(ctx, tn, id)
			b, berr = dst.DeviceRegistrationOf(ctx, tn, id)
			same(t, "registration of "+tn+"/"+id, []any{a, errors.Is(aerr, store.ErrNotFound)}, []any{b, errors.Is(berr, store.ErrNotFound)})
		}
		same(t, "external id of "+tn, must(src.GetExternalID(ctx, tn, "c8y_Serial", "s/"+tn)), must(dst.GetExternalID(ctx, tn, "c8y_Serial", "s/"+tn)))
	}
	for _, ep := range f.endpoints {
		at, aid := mustPair(src.DeviceByEndpoint(ctx, ep))
		bt, bid := mustPair(dst.DeviceByEndpoint(ctx, ep))
		same(t, "endpoint "+ep, []string{at, aid}, []string{bt, bid})
	}
	for _, k := range f.identities {
		at, aid := mustPair(src.DeviceByPSKIdentity(ctx, k[0], k[1]))
		bt, bid := mustPair(dst.DeviceByPSKIdentity(ctx, k[0], k[1]))
		same(t, k[0]+" identity", []string{at, aid}, []string{bt, bid})
		// what a DTLS handshake does: the identity names the device,
		// whose record holds the key
		if key, ok := f.keys[k[1]]; ok {
			r, err := dst.DeviceRegistrationOf(ctx, bt, bid)
			if err != nil || !bytes.Equal(r.PSKKey, key) {
				t.Errorf("the device of an identity does not authenticate: key %x (%v), want %x", r.PSKKey, err, key)
			}
		}
	}
	var lsrc, ldst []store.LiveRegistration
	errSrc := src.LiveRegistrations(ctx, func(l store.LiveRegistration) error { lsrc = append(lsrc, l); return nil })
	errDst := dst.LiveRegistrations(ctx, func(l store.LiveRegistration) error { ldst = append(ldst, l); return nil })
	if supported(t, errSrc) && supported(t, errDst) {
		byDevice := func(a, b store.LiveRegistration) int {
			return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.DeviceID, b.DeviceID))
		}
		slices.SortFunc(lsrc, byDevice)
		slices.SortFunc(ldst, byDevice)
		same(t, "live registrations", lsrc, ldst)
	}
	if f.kinds[store.KindProtocol] {
		for _, tn := range f.tenants {
			list := func(s store.Engine) func(p store.Page) ([]store.ProtocolRecord, int64, error) {
				return func(p store.Page) ([]store.ProtocolRecord, int64, error) { return s.ListProtocolRecords(ctx, tn, p) }
			}
			same(t, "protocols of "+tn, protocolValues(t, pages(t, list(src))), protocolValues(t, pages(t, list(dst))))
		}
	}
	if f.kinds[store.KindOperation] {
		compareOperations(t, src, dst, f)
	}
	if f.kinds[store.KindPostOperations] {
		same(t, "post-registration commands", must(src.PostOperations(ctx, "acme")), must(dst.PostOperations(ctx, "acme")))
	}
	for _, tn := range f.tenants {
		if f.kinds[store.KindMeasurement] {
			compareMeasurements(t, src, dst, tn, ms)
		}
		if f.kinds[store.KindEvent] {
			list := func(s store.Engine) func(p store.Page) ([]store.Event, int64, error) {
				return func(p store.Page) ([]store.Event, int64, error) {
					return s.ListEvents(ctx, tn, store.EventFilter{Page: p})
				}
			}
			same(t, "events of "+tn, pages(t, list(src)), pages(t, list(dst)))
		}
		if f.kinds[store.KindAlarm] {
			list := func(s store.Engine) func(p store.Page) ([]store.Alarm, int64, error) {
				return func(p store.Page) ([]store.Alarm, int64, error) {
					return s.ListAlarms(ctx, tn, store.AlarmFilter{Page: p})
				}
			}
			same(t, "alarms of "+tn, pages(t, list(src)), pages(t, list(dst)))
		}
		if f.kinds[store.KindBinary] {
			list := func(s store.Engine) func(p store.Page) ([]store.Binary, int64, error) {
				return func(p store.Page) ([]store.Binary, int64, error) { return s.ListBinaries(ctx, tn, p) }
			}
			same(t, "binaries of "+tn, pages(t, list(src)), pages(t, list(dst)))
		}
	}
	if f.kinds[store.KindValues] {
		for tn, ids := range f.devices {
			for _, id := range ids {
				same(t, "values of "+id, must(src.Values(ctx, tn, id)), must(dst.Values(ctx, tn, id)))
			}
		}
	}
	compareGroups(t, src, dst, f)
	for tn, ids := range f.binaries {
		for _, id := range ids {
			ab, a := mustPair(src.ReadBinary(ctx, tn, id, 1<<30))
			bb, b := mustPair(dst.ReadBinary(ctx, tn, id, 1<<30))
			same(t, "binary "+id, ab, bb)
			if !bytes.Equal(a, b) {
				t.Errorf("bytes of binary %s: %d bytes, want %d", id, len(b), len(a))
			}
		}
	}
}

// protocolValues are records with their JSON decoded: engines answer
// equivalent JSON, not the same bytes.
func protocolValues(t *testing.T, rs []store.ProtocolRecord) []any {
	t.Helper()
	out := make([]any, len(rs))
	for i, r := range rs {
		v := []any{r.Tenant, r.ObjectID, r.Source, r.Updated}
		for _, j := range []json.RawMessage{r.Definition, r.Functionalities, r.Validation} {
			var x any
			check(t, json.Unmarshal(j, &x))
			v = append(v, x)
		}
		out[i] = v
	}
	return out
}

func mustPair[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func compareOperations(t *testing.T, src, dst store.Engine, f *filled) {
	t.Helper()
	for _, tn := range f.tenants {
		list := func(s store.Engine) func(p store.Page) ([]store.Operation, int64, error) {
			return func(p store.Page) ([]store.Operation, int64, error) {
				return s.ListOperations(ctx, tn, store.OperationFilter{Page: p})
			}
		}
		same(t, "operations of "+tn, pages(t, list(src)), pages(t, list(dst)))
	}
	for tn, ids := range f.devices {
		for _, id := range ids {
			same(t, "pending operations of "+id, must(src.Pending(ctx, tn, id, 0)), must(dst.Pending(ctx, tn, id, 0)))
			same(t, "pending count of "+id, must(src.PendingCount(ctx, tn, id)), must(dst.PendingCount(ctx, tn, id)))
			same(t, "recent operations of "+id, must(src.RecentOperations(ctx, tn, id, 10)), must(dst.RecentOperations(ctx, tn, id, 10)))
		}
	}
	queued := func(s store.Engine) (out []string) {
		check(t, s.QueuedDevices(ctx, func(tenant, id string) error { out = append(out, tenant+"/"+id); return nil }))
		slices.Sort(out)
		return out
	}
	same(t, "devices with queued operations", queued(src), queued(dst))
	// in no order the contract names: the MongoDB engine's is its queues'
	byID := func(ops []store.TenantOperation) []store.TenantOperation {
		slices.SortFunc(ops, func(a, b store.TenantOperation) int {
			return cmp.Or(strings.Compare(a.Tenant, b.Tenant), cmp.Compare(len(a.ID), len(b.ID)), strings.Compare(a.ID, b.ID))
		})
		return ops
	}
	same(t, "operations executing", byID(must(src.Executing(ctx, 0))), byID(must(dst.Executing(ctx, 0))))
	future := time.Now().Add(time.Hour)
	same(t, "operations executing before", byID(must(src.ExecutingBefore(ctx, future, 0))), byID(must(dst.ExecutingBefore(ctx, future, 0))))
}

// exportTo exports s into a dump in memory, checks it reads whole, and
// returns it.
func exportTo(t *testing.T, s store.Engine) []byte {
	t.Helper()
	var buf bytes.Buffer
	counts, err := store.ExportDump(ctx, s, &buf, store.DumpHeader{Engine: "test"}, nil)
	check(t, err)
	_, read, err := store.VerifyDump(bytes.NewReader(buf.Bytes()))
	check(t, err)
	same(t, "counts of the dump", counts, read)
	return buf.Bytes()
}

// importInto imports a dump in small batches, so that batches cut
// through every kind (the MongoDB engine's measurement buckets too).
func importInto(t *testing.T, s store.Engine, dump []byte) store.Counts {
	t.Helper()
	n, err := store.ImportDump(ctx, s, bytes.NewReader(dump), store.ImportOptions{BatchRecords: 97})
	check(t, err)
	return n
}

func testDumpRoundTrip(t *testing.T, src store.Engine, open func(*testing.T) store.Engine) {
	f := fill(t, src)
	dump := exportTo(t, src)
	dst := open(t)
	counts := importInto(t, dst, dump)
	t.Logf("imported %v", counts)
	for kind := range f.kinds {
		if counts[kind] == 0 {
			t.Errorf("the engine took %s records but exported none: give its table a dumper", kind)
		}
	}
	for kind := range counts {
		if !slices.Contains(dst.DumpKinds(), kind) {
			t.Errorf("imported %s records, which DumpKinds does not name", kind)
		}
	}
	compare(t, src, dst, f, sameList)
	// A dump of the copy is the same dump, header aside.
	if again := exportTo(t, dst); len(dumpLines(again)) != len(dumpLines(dump)) {
		t.Errorf("a dump of the copy has %d lines, the source's %d", len(dumpLines(again)), len(dumpLines(dump)))
	}

	// What the target hands out next never takes an imported id.
	mo := must(dst.CreateManagedObject(ctx, "acme", store.ManagedObject{Name: "new"}))
	n, _ := strconv.ParseInt(mo.ID, 10, 64)
	if top := slices.Max(f.ids); n <= top {
		t.Errorf("new object's id %d is not above the imported ids (up to %d)", n, top)
	}
	continueBulk(t, dst, f)
	if f.kinds[store.KindAlarm] {
		// the open alarm is open in the target: a raise counts on it
		a := must(dst.RaiseAlarm(ctx, f.alarm[0], store.Alarm{Source: f.alarm[1], Type: f.alarm[2]}))
		if a.Count != 3 {
			t.Errorf("a raise of an imported open alarm: count %d, want 3", a.Count)
		}
	}
}

// RunCrossEngine moves a store from embedded to mongo and back to a
// fresh embedded, and finds at each step what the first holds, for the
// kinds the embedded engine supports.
func RunCrossEngine(t *testing.T, embedded, mongo func(*testing.T) store.Engine) {
	src := embedded(t)
	f := fill(t, src)
	m := mongo(t)
	importInto(t, m, exportTo(t, src))
	t.Run("ToMongoDB", func(t *testing.T) { compare(t, src, m, f, sameValues) })
	back := embedded(t)
	importInto(t, back, exportTo(t, m))
	t.Run("BackToEmbedded", func(t *testing.T) {
		compare(t, m, back, f, sameIDs)
		compare(t, src, back, f, sameValues)
	})
	// copied without a file, the other way round
	m2 := mongo(t)
	check(t, errOf(store.CopyStore(ctx, back, m2, store.DumpHeader{}, store.ImportOptions{BatchRecords: 50})))
	t.Run("Copied", func(t *testing.T) { compare(t, back, m2, f, sameIDs) })
}

func errOf[T any](_ T, err error) error { return err }

// The target of a first start (an empty management tenant with its
// admin) takes a dump, whose management tenant replaces its own.
func testDumpIntoFirstStart(t *testing.T, src store.Engine, open func(*testing.T) store.Engine) {
	must(src.EnsureManagement(ctx, "Source-pass-1234!"))
	must(src.CreateTenant(ctx, "acme", "admin", "Acme-pass-1234!"))
	dst := open(t)
	must(dst.EnsureManagement(ctx, "Target-pass-1234!"))
	check(t, dst.Authenticate(ctx, store.ManagementTenant, "admin", "Target-pass-1234!")) // cached now
	importInto(t, dst, exportTo(t, src))
	check(t, dst.Authenticate(ctx, store.ManagementTenant, "admin", "Source-pass-1234!"))
	if err := dst.Authenticate(ctx, store.ManagementTenant, "admin", "Target-pass-1234!"); !errors.Is(err, store.ErrUnauthorized) {
		t.Errorf("the target's own admin password after the import: %v, want ErrUnauthorized", err)
	}
	check(t, dst.Authenticate(ctx, "acme", "admin", "Acme-pass-1234!"))
	same(t, "management tenant", must(src.GetTenant(ctx, store.ManagementTenant)), must(dst.GetTenant(ctx, store.ManagementTenant)))
}

// A store that holds data refuses an import whole.
func testDumpRefusesData(t *testing.T, src store.Engine, open func(*testing.T) store.Engine) {
	must(src.CreateTenant(ctx, "acme", "admin", "Acme-pass-1234!"))
	dump := exportTo(t, src)
	tests := []struct {
		name  string
		setup func(s store.Engine) error
	}{
		{"another tenant", func(s store.Engine) error { return errOf(s.CreateTenant(ctx, "other", "admin", "Other-pass-1234!")) }},
		{"a user of another tenant", func(s store.Engine) error {
			return s.CreateUser(ctx, "ghost", "u", "Ghost-pass-1234!", nil)
		}},
		{"an object of the management tenant", func(s store.Engine) error {
			if _, err := s.EnsureManagement(ctx, "Mgmt-pass-1234!"); err != nil {
				return err
			}
			return errOf(s.CreateManagedObject(ctx, store.ManagementTenant, store.ManagedObject{Name: "x"}))
		}},
		{"a psk identity", func(s store.Engine) error { return s.BindPSKIdentity(ctx, store.PSKServer, "id", "x", "1") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := open(t)
			check(t, tc.setup(dst))
			_, err := store.ImportDump(ctx, dst, bytes.NewReader(dump), store.ImportOptions{})
			if !errors.Is(err, store.ErrNotEmpty) {
				t.Fatalf("import into a store with %s: %v, want ErrNotEmpty", tc.name, err)
			}
			if _, err := dst.GetTenant(ctx, "acme"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("refused, yet tenant acme is there: %v", err)
			}
			_, err = store.CopyStore(ctx, src, dst, store.DumpHeader{}, store.ImportOptions{})
			if !errors.Is(err, store.ErrNotEmpty) {
				t.Fatalf("copy into a store with %s: %v, want ErrNotEmpty", tc.name, err)
			}
		})
	}
}

// dumpLines is a dump cut into its lines, without the last newline.
func dumpLines(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }

func joinLines(lines []string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

// Bad dumps are refused with the line that is wrong; whole batches
// before it stay imported, nothing after.
func testBadDumps(t *testing.T, src store.Engine, open func(*testing.T) store.Engine) {
	must(src.EnsureManagement(ctx, "Mgmt-pass-1234!"))
	for i := range 6 {
		must(src.CreateTenant(ctx, fmt.Sprint("t", i), "admin", "Tenant-pass-1234!"))
	}
	good := dumpLines(exportTo(t, src))
	// header, 7 tenants (lines 2 to 8), 7 users (9 to 15), end (16)
	if len(good) != 16 || !strings.Contains(good[1], `"kind":"tenant"`) || !strings.Contains(good[15], `"kind":"end"`) {
		t.Fatalf("unexpected dump:\n%s", strings.Join(good, "\n"))
	}
	edit := func(f func(l []string) []string) []byte { return joinLines(f(slices.Clone(good))) }
	tests := []struct {
		name string
		dump []byte
		line int    // the line the error names
		want string // in its text
		// imported are the tenants that batches of 4 records wrote
		// before the bad line
		imported int
	}{
		{"not a dump", []byte("hello\n"), 1, "not a dump header", 0},
		{"empty", nil, 0, "empty input", 0},
		{"another format", edit(func(l []string) []string { l[0] = `{"format":"other","version":1}`; return l }), 1, "not a dump of lwm2m-agent's store", 0},
		{"newer version", edit(func(l []string) []string {
			l[0] = strings.Replace(l[0], `"version":`+strconv.Itoa(store.DumpVersion), `"version":`+strconv.Itoa(store.DumpVersion+1), 1)
			return l
		}), 1, "version " + strconv.Itoa(store.DumpVersion+1) + " is newer", 0},
		{"truncated: no end line", edit(func(l []string) []string { return l[:15] }), 15, "truncated", 7},
		{"truncated in a line", []byte(strings.Join(good[:10], "\n") + "\n" + good[10][:len(good[10])/2]), 11, "line 11 (user)", 7},
		{"unknown kind", edit(func(l []string) []string { l[5] = `{"kind":"gadget","id":"1"}`; return l }), 6, `unknown record kind "gadget"`, 4},
		{"bad json", edit(func(l []string) []string { l[6] = `{"kind":"tenant","id":`; return l }), 7, "line 7 (tenant)", 4},
		{"unknown member", edit(func(l []string) []string { l[3] = strings.Replace(l[3], `"domain"`, `"domian"`, 1); return l }), 4, "unknown field", 0},
		{"out of order", edit(func(l []string) []string { l[7], l[9] = l[9], l[7]; return l }), 10, "out of order", 6},
		{"counts differ", edit(func(l []string) []string { return append(l[:14], l[15]) }), 15, "the end line counts 14 records", 7},
		{"after the end", edit(func(l []string) []string { return append(l, good[1]) }), 17, "after the end line", 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, verr := store.VerifyDump(bytes.NewReader(tc.dump))
			dst := open(t)
			n, err := store.ImportDump(ctx, dst, bytes.NewReader(tc.dump), store.ImportOptions{BatchRecords: 4})
			for _, e := range []error{verr, err} {
				var le *store.LineError
				if !errors.Is(e, store.ErrDump) || (tc.line > 0 && (!errors.As(e, &le) || le.Line != tc.line)) || !strings.Contains(e.Error(), tc.want) {
					t.Fatalf("error %v, want ErrDump at line %d saying %q", e, tc.line, tc.want)
				}
			}
			if n[store.KindTenant] != int64(tc.imported) {
				t.Errorf("imported %v, want %d tenants", n, tc.imported)
			}
			var in int
			for _, line := range good[1:8] {
				r := must(store.DecodeRecord([]byte(line))).(*store.TenantRecord)
				if _, err := dst.GetTenant(ctx, r.ID); err == nil {
					in++
				}
			}
			if in != tc.imported {
				t.Errorf("the target holds %d of the tenants, want %d (the whole batches before the bad line)", in, tc.imported)
			}
			if tc.imported > 0 && !strings.Contains(err.Error(), "empty the store before importing again") {
				t.Errorf("a partial import does not say so: %v", err)
			}
		})
	}
}

// A batch that fails at one record writes none of its records; the
// batches before it stay, the error names the record's line.
func testDumpBatchAllOrNothing(t *testing.T, src store.Engine, open func(*testing.T) store.Engine) {
	must(src.EnsureManagement(ctx, "Mgmt-pass-1234!"))
	var ids []string
	for i := range 12 {
		mo, err := src.CreateManagedObject(ctx, store.ManagementTenant, store.ManagedObject{Name: fmt.Sprint("o", i)})
		if !supported(t, err) {
			t.Skip("the engine does not store managed objects yet")
		}
		ids = append(ids, mo.ID)
	}
	lines := dumpLines(exportTo(t, src))
	first := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, `"kind":"managedObject"`) })
	if first < 0 {
		t.Fatal("no managed object in the dump")
	}
	// The object on the 9th line of objects again in place of the 10th's:
	// with batches of 5 records, from line 2 on, the duplicate is in the
	// third batch of objects.
	dup := first + 9
	gone := must(store.DecodeRecord([]byte(lines[dup]))).(*store.ManagedObjectRecord).ID
	lines[dup] = lines[dup-1]
	dst := open(t)
	n, err := store.ImportDump(ctx, dst, bytes.NewReader(joinLines(lines)), store.ImportOptions{BatchRecords: 5})
	var le *store.LineError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &le) || le.Line != dup+1 {
		t.Fatalf("error %v, want ErrConflict at line %d", err, dup+1)
	}
	batch := ((dup-1)/5)*5 + 1 // the index in lines of the failed batch's first record
	for i, line := range lines[first : first+len(ids)] {
		id := must(store.DecodeRecord([]byte(line))).(*store.ManagedObjectRecord).ID
		_, err := dst.GetManagedObject(ctx, store.ManagementTenant, id)
		switch at := first + i; {
		case at < batch && err != nil:
			t.Errorf("object %s of a batch before the failed one: %v", id, err)
		case at >= batch && at < batch+5 && !errors.Is(err, store.ErrNotFound):
			t.Errorf("object %s of the failed batch was written: %v", id, err)
		}
	}
	if _, err := dst.GetManagedObject(ctx, store.ManagementTenant, gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("object %s, not in the dump: %v", gone, err)
	}
	if n.Total() != int64(batch-1) {
		t.Errorf("imported %v (%d), want the %d records of the batches before", n, n.Total(), batch-1)
	}
}

// An error of Export's fn stops it and comes back.
func testDumpExportStops(t *testing.T, s store.Engine) {
	must(s.CreateTenant(ctx, "a", "admin", "Admin-pass-1234!"))
	must(s.CreateTenant(ctx, "b", "admin", "Admin-pass-1234!"))
	stop := errors.New("stop")
	n := 0
	if err := s.Export(ctx, func(store.Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Export: %v after %d records, want the error of fn after 1", err, n)
	}
	// What it streams is in dump order, of the kinds it names.
	last := -1
	check(t, s.Export(ctx, func(r store.Record) error {
		i := slices.Index(store.DumpKinds, r.Kind())
		if r.Kind() == store.KindBinaryChunk {
			i = slices.Index(store.DumpKinds, store.KindBinary)
		}
		if i < last || !slices.Contains(s.DumpKinds(), r.Kind()) {
			return fmt.Errorf("%s record out of order or not named by DumpKinds", r.Kind())
		}
		last = i
		return nil
	}))
}

// A bulk operation's claim in a dump (an engine without transactions
// dumped while a claimer had taken a device and not yet stored its
// operation) is finished by the import: the operation is stored under
// the claim's id, unless the dump holds it or its device is gone, and
// the bulk operation goes on with the device after it.
func testDumpBulkClaim(t *testing.T, open func(*testing.T) store.Engine) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	device := func(id string) store.Record {
		return &store.ManagedObjectRecord{Tenant: "acme", ID: id, Name: "d" + id, Type: store.DeviceType, CreationTime: store.DumpTime(at),
			LastUpdated: store.DumpTime(at), Fragments: store.DumpDoc{store.DeviceFragment: map[string]any{}}}
	}
	done := func(id, dev string) store.Record {
		return &store.OperationRecord{Tenant: "acme", ID: id, DeviceID: dev, Status: store.OpSuccessful, CreationTime: store.DumpTime(at),
			LastUpdated: store.DumpTime(at), Command: &store.CommandRecord{Text: "read /3/0/0", Result: "x"}, Attempts: 1,
			Fragments: store.DumpDoc{store.BulkOperationIDField: "20"}}
	}
	bulk := &store.BulkOperationRecord{Tenant: "acme", ID: "20", GroupID: "5", StartDate: store.DumpTime(at), CreationRamp: 1000,
		Prototype: store.DumpDoc{"c8y_Command": map[string]any{"text": "read /3/0/0"}}, Status: store.BulkInProgress,
		Targets: []string{"10", "11", "12"}, Position: 2, NextAt: store.DumpTime(at.Add(2 * time.Second)),
		CreationTime: store.DumpTime(at), LastUpdated: store.DumpTime(at), Fragments: store.DumpDoc{},
		Claim: &store.BulkClaimRecord{OperationID: "30", DeviceID: "11", At: store.DumpTime(at.Add(time.Second))}}
	tests := []struct {
		name    string
		records []store.Record
		want    store.BulkProgress // once imported
		status  string             // of operation 30; "" for none
	}{
		{"operation not stored", []store.Record{device("10"), device("11"), device("12"), done("29", "10")},
			store.BulkProgress{Pending: 1, Successful: 1}, store.OpPending},
		{"operation stored", []store.Record{device("10"), device("11"), device("12"), done("29", "10"), done("30", "11")},
			store.BulkProgress{Successful: 2}, store.OpSuccessful},
		{"device deleted", []store.Record{device("10"), device("12"), done("29", "10")},
			store.BulkProgress{Successful: 1}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := must(store.NewDumpWriter(&buf, store.DumpHeader{Engine: "test"}))
			recs := append([]store.Record{&store.TenantRecord{ID: "acme", Domain: "acme", CreationTime: store.DumpTime(at)},
				&store.CounterRecord{Name: store.CounterIDs, Value: 20}}, tc.records...)
			for _, r := range append(recs, bulk) {
				check(t, w.Write(r))
			}
			check(t, w.Close())
			dst := open(t)
			if _, err := store.ImportDump(ctx, dst, &buf, store.ImportOptions{BatchRecords: 3}); !supported(t, err) {
				t.Skip("the engine does not import bulk operations")
			}
			b := must(dst.GetBulkOperation(ctx, "acme", "20"))
			if b.Position != 2 || b.Total != 3 || b.Progress != tc.want || b.Status != store.BulkInProgress {
				t.Errorf("imported: position %d of %d, %s, progress %+v; want 2 of 3, IN_PROGRESS, %+v", b.Position, b.Total, b.Status, b.Progress, tc.want)
			}
			op, err := dst.GetOperation(ctx, "acme", "30")
			switch {
			case tc.status == "" && !errors.Is(err, store.ErrNotFound):
				t.Errorf("operation of a deleted device's claim: %+v, %v", op, err)
			case tc.status != "" && (err != nil || op.Status != tc.status || op.DeviceID != "11" || op.Fragments[store.BulkOperationIDField] != "20"):
				t.Errorf("operation of the claim: %+v, %v; want %s for device 11", op, err, tc.status)
			}
			pending := must(dst.Pending(ctx, "acme", "11", 0))
			if queued := len(pending) == 1 && pending[0].ID == "30"; queued != (tc.status == store.OpPending) {
				t.Errorf("device 11's queue %+v", pending)
			}
			next := must(dst.CreateBulkStep(ctx, "acme", b, time.Now()))
			if n, _ := strconv.ParseInt(next.ID, 10, 64); next.DeviceID != "12" || n <= 30 {
				t.Errorf("the step after the claim: operation %s for device %s, want one above 30 for 12", next.ID, next.DeviceID)
			}
		})
	}
}
