package api_test

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func (e *env) object(tenant string, body map[string]any) string {
	e.t.Helper()
	return e.want(e.do("POST", "/inventory/managedObjects", tenant, body), 201).body["id"].(string)
}

func (e *env) group(tenant, name string, children ...string) string {
	e.t.Helper()
	g := e.object(tenant, map[string]any{"name": name, "type": store.GroupType, store.GroupFragment: map[string]any{}})
	for _, c := range children {
		e.want(e.do("POST", "/inventory/managedObjects/"+g+"/childAssets", tenant, map[string]any{"managedObject": map[string]any{"id": c}}), 201)
	}
	return g
}

func refIDs(v any) []string {
	m, _ := v.(map[string]any)
	refs, _ := m["references"].([]any)
	var out []string
	for _, r := range refs {
		mo, _ := r.(map[string]any)["managedObject"].(map[string]any)
		out = append(out, fmt.Sprint(mo["id"]))
	}
	return out
}

func TestChildReferences(t *testing.T) {
	e := newEnv(t)
	dev1, _ := e.s.CreateDevice(ctx, "a", "ep-1")
	sub := e.group("a", "sub")
	g := e.group("a", "fleet")
	path := "/inventory/managedObjects/" + g + "/childAssets"

	one := e.want(e.do("POST", path, "a", map[string]any{"managedObject": map[string]any{"id": dev1}}), 201)
	if mo, _ := one.body["managedObject"].(map[string]any); mo["id"] != dev1 || !strings.HasSuffix(one.body["self"].(string), path+"/"+dev1) {
		t.Errorf("reference answer %v", one.body)
	}
	many := e.want(e.do("POST", path, "a", `{"references":[{"managedObject":{"id":"`+sub+`"}}]}`), 201)
	if ids := refIDs(many.body); !slices.Equal(ids, []string{sub}) {
		t.Errorf("collection answer %v", many.body)
	}
	e.want(e.do("POST", path, "a", map[string]any{"managedObject": map[string]any{"id": dev1}}), 201)
	got := e.want(e.do("GET", path+"?withTotalPages=true", "a", nil), 200)
	if ids := refIDs(got.body); !slices.Equal(ids, []string{dev1, sub}) {
		t.Errorf("child assets %v, want [%s %s]", ids, dev1, sub)
	}
	if st, _ := got.body["statistics"].(map[string]any); fmt.Sprint(st["totalElements"]) != "2" {
		t.Errorf("statistics %v", got.body["statistics"])
	}
	obj := e.want(e.do("GET", "/inventory/managedObjects/"+g, "a", nil), 200)
	if ids := refIDs(obj.body["childAssets"]); !slices.Equal(ids, []string{dev1, sub}) {
		t.Errorf("the group shows childAssets %v", obj.body["childAssets"])
	}
	if _, ok := obj.body["childAdditions"].(map[string]any)["self"]; !ok {
		t.Errorf("the group shows no childAdditions: %v", obj.body)
	}
	dev := e.want(e.do("GET", "/inventory/managedObjects/"+dev1, "a", nil), 200)
	if ids := refIDs(dev.body["assetParents"]); !slices.Equal(ids, []string{g}) {
		t.Errorf("the device shows assetParents %v", dev.body["assetParents"])
	}

	theirs := e.object("b", map[string]any{"name": "theirs"})
	for _, c := range []struct {
		name, tenant, path string
		body               any
		code               int
	}{
		{"missing child", "a", path, map[string]any{"managedObject": map[string]any{"id": "999999"}}, 422},
		{"another tenant's child", "a", path, map[string]any{"managedObject": map[string]any{"id": theirs}}, 422},
		{"itself", "a", path, map[string]any{"managedObject": map[string]any{"id": g}}, 422},
		{"no child", "a", path, map[string]any{}, 422},
		{"missing parent", "a", "/inventory/managedObjects/999999/childAssets", map[string]any{"managedObject": map[string]any{"id": dev1}}, 404},
		{"another tenant's parent", "b", path, map[string]any{"managedObject": map[string]any{"id": theirs}}, 404},
	} {
		if a := e.do("POST", c.path, c.tenant, c.body); a.code != c.code {
			t.Errorf("%s: %d, want %d: %v", c.name, a.code, c.code, a.body)
		}
	}
	e.want(e.do("GET", path, "b", nil), 404)
	e.want(e.do("DELETE", path+"/"+dev1, "b", nil), 404)
	e.want(e.do("DELETE", path+"/"+dev1, "a", nil), 204)
	e.want(e.do("DELETE", path+"/"+dev1, "a", nil), 404)
	if ids := refIDs(e.want(e.do("GET", path, "a", nil), 200).body); !slices.Equal(ids, []string{sub}) {
		t.Errorf("after the delete: %v", ids)
	}
}

func TestFirmwareRepository(t *testing.T) {
	e := newEnv(t)
	bin, err := e.s.CreateBinary(ctx, "a", store.Binary{Name: "sensor_2.0.bin"}, bytes.NewReader([]byte("fw")), 100)
	if err != nil {
		t.Fatal(err)
	}
	fw := e.object("a", map[string]any{"name": "sensor", "type": store.FirmwareType, "description": "sensor firmware",
		"c8y_Filter": map[string]any{"type": "sensor-x"}})
	version := func(v, url string) map[string]any {
		return map[string]any{"type": store.FirmwareBinaryType, "c8y_Firmware": map[string]any{"version": v, "url": url}}
	}
	for _, c := range []struct {
		name string
		body map[string]any
		code int
	}{
		{"firmware without a name", map[string]any{"type": store.FirmwareType}, 422},
		{"version without c8y_Firmware", map[string]any{"type": store.FirmwareBinaryType}, 422},
		{"version without url", map[string]any{"type": store.FirmwareBinaryType, "c8y_Firmware": map[string]any{"version": "1"}}, 422},
		{"ftp url", version("1", "ftp://example.com/fw.bin"), 422},
		{"relative url", version("1", "/fw.bin"), 422},
		{"missing binary", version("1", "binary:999999"), 422},
		{"external url", version("1.0", "https://example.com/sensor_1.0.bin"), 201},
		{"coaps url", version("1.1", "coaps://example.com/sensor_1.1.bin"), 201},
		{"agent binary", version("2.0", "binary:"+bin.ID), 201},
		{"agent binary url", version("2.1", e.srv.URL+"/inventory/binaries/"+bin.ID), 201},
	} {
		a := e.do("POST", "/inventory/managedObjects", "a", c.body)
		if a.code != c.code {
			t.Errorf("%s: %d, want %d: %v", c.name, a.code, c.code, a.body)
			continue
		}
		if a.code == 201 {
			e.want(e.do("POST", "/inventory/managedObjects/"+fw+"/childAdditions", "a", map[string]any{"managedObject": map[string]any{"id": a.body["id"]}}), 201)
		}
	}
	versions := list(e.want(e.do("GET", "/inventory/managedObjects/"+fw+"/childAdditions?pageSize=10", "a", nil), 200), "references")
	if len(versions) != 4 {
		t.Fatalf("%d versions, want 4", len(versions))
	}
	v0, _ := versions[0]["managedObject"].(map[string]any)
	if f, _ := v0["c8y_Firmware"].(map[string]any); f["version"] != "1.0" {
		t.Errorf("first version %v", v0)
	}
	e.want(e.do("PUT", "/inventory/managedObjects/"+fmt.Sprint(v0["id"]), "a", map[string]any{"c8y_Firmware": map[string]any{"version": "", "url": "x"}}), 422)
	e.want(e.do("PUT", "/inventory/managedObjects/"+fmt.Sprint(v0["id"]), "a", map[string]any{"description": "first"}), 200)
	e.want(e.do("PUT", "/inventory/managedObjects/"+fw, "a", map[string]any{"name": ""}), 422)

	for _, q := range []string{"type=c8y_Firmware", "query=" + url.QueryEscape("$filter=(type eq 'c8y_Firmware' and c8y_Filter.type eq 'sensor-x')")} {
		found := list(e.want(e.do("GET", "/inventory/managedObjects?"+q, "a", nil), 200), "managedObjects")
		if len(found) != 1 || found[0]["id"] != fw {
			t.Errorf("%s: %v", q, found)
		}
	}
}

func TestBulkOperationsAPI(t *testing.T) {
	e := newEnv(t)
	var devs []string
	for i := range 3 {
		d, _ := e.s.CreateDevice(ctx, "a", fmt.Sprintf("ep-%d", i))
		devs = append(devs, d)
	}
	sub := e.group("a", "sub", devs[1], devs[2])
	g := e.group("a", "fleet", devs[0], sub)
	// a cycle, and a device met twice
	e.want(e.do("POST", "/inventory/managedObjects/"+sub+"/childAssets", "a", map[string]any{"managedObject": map[string]any{"id": g}}), 201)
	e.want(e.do("POST", "/inventory/managedObjects/"+sub+"/childAssets", "a", map[string]any{"managedObject": map[string]any{"id": devs[0]}}), 201)
	empty := e.group("a", "empty")
	plain := e.object("a", map[string]any{"name": "not a group"})
	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cmd := map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}}
	body := func(mod func(map[string]any)) map[string]any {
		b := map[string]any{"groupId": g, "startDate": start, "creationRamp": 1.5, "operationPrototype": cmd, "note": "campaign"}
		if mod != nil {
			mod(b)
		}
		return b
	}
	for _, c := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"no group", body(func(b map[string]any) { delete(b, "groupId") }), "groupId is required"},
		{"unknown group", body(func(b map[string]any) { b["groupId"] = "999999" }), `group "999999" does not exist`},
		{"another tenant's group", body(func(b map[string]any) { b["groupId"] = e.group("b", "theirs") }), "does not exist"},
		{"not a group", body(func(b map[string]any) { b["groupId"] = plain }), "is not a device group"},
		{"no devices", body(func(b map[string]any) { b["groupId"] = empty }), "has no devices"},
		{"no prototype", body(func(b map[string]any) { delete(b, "operationPrototype") }), "operationPrototype is required"},
		{"unknown prototype", body(func(b map[string]any) { b["operationPrototype"] = map[string]any{"c8y_Restart": map[string]any{}} }), "needs c8y_Command"},
		{"two commands", body(func(b map[string]any) {
			b["operationPrototype"] = map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0\nread /3/0/1"}}
		}), "holds 2 commands"},
		{"bad command", body(func(b map[string]any) {
			b["operationPrototype"] = map[string]any{"c8y_Command": map[string]any{"text": "frobnicate /3"}}
		}), "operationPrototype"},
		{"firmware without url", body(func(b map[string]any) {
			b["operationPrototype"] = map[string]any{"c8y_Firmware": map[string]any{"name": "s", "version": "2"}}
		}), "c8y_Firmware.url is required"},
		{"negative ramp", body(func(b map[string]any) { b["creationRamp"] = -1 }), "creationRamp -1 must be"},
		{"ramp not a number", body(func(b map[string]any) { b["creationRamp"] = "5" }), "creationRamp must be a number"},
		{"bad date", body(func(b map[string]any) { b["startDate"] = "tomorrow" }), `startDate "tomorrow" is not`},
		{"no date", body(func(b map[string]any) { delete(b, "startDate") }), "startDate is required"},
	} {
		a := e.do("POST", "/devicecontrol/bulkoperations", "a", c.body)
		if msg, _ := a.body["message"].(string); a.code != 422 || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 422 saying %q", c.name, a.code, msg, c.want)
		}
	}
	if n, _, _ := e.s.ListBulkOperations(ctx, "a", store.Page{}); len(n) != 0 {
		t.Fatalf("refused bulk operations were stored: %v", n)
	}

	b := e.want(e.do("POST", "/devicecontrol/bulkoperations", "a", body(nil)), 201).body
	id := b["id"].(string)
	progress := func(b map[string]any) string { return fmt.Sprint(b["progress"]) }
	if b["status"] != "ACTIVE" || b["generalStatus"] != "SCHEDULED" || b["groupId"] != g || b["creationRamp"] != 1.5 ||
		b["note"] != "campaign" || progress(b) != "map[all:3 executing:0 failed:0 pending:0 successful:0]" {
		t.Errorf("created %v", b)
	}
	if got := e.want(e.do("GET", "/devicecontrol/bulkoperations/"+id, "a", nil), 200).body; got["id"] != id {
		t.Errorf("get %v", got)
	}
	if l := list(e.want(e.do("GET", "/devicecontrol/bulkoperations", "a", nil), 200), "bulkOperations"); len(l) != 1 || l[0]["id"] != id {
		t.Errorf("list %v", l)
	}
	e.want(e.do("GET", "/devicecontrol/bulkoperations/"+id, "b", nil), 404)
	e.want(e.do("PUT", "/devicecontrol/bulkoperations/"+id, "b", map[string]any{"status": "CANCELED"}), 404)
	e.want(e.do("DELETE", "/devicecontrol/bulkoperations/"+id, "b", nil), 404)

	// one device's operation created, as the scheduler does; the group's
	// devices, nested ones and each once, in the order met
	stored, _ := e.s.GetBulkOperation(ctx, "a", id)
	op, err := e.s.CreateBulkStep(ctx, "a", stored, time.Now())
	if err != nil || op.DeviceID != devs[0] {
		t.Fatalf("first step: %+v, %v", op, err)
	}
	e.want(e.do("PUT", "/devicecontrol/bulkoperations/"+id, "a", map[string]any{"status": "ACTIVE"}), 422)
	c := e.want(e.do("PUT", "/devicecontrol/bulkoperations/"+id, "a", map[string]any{"status": "CANCELED"}), 200).body
	if c["status"] != "CANCELED" || c["generalStatus"] != "CANCELED" || progress(c) != "map[all:3 executing:0 failed:1 pending:0 successful:0]" {
		t.Errorf("canceled %v", c)
	}
	if got, _ := e.s.GetOperation(ctx, "a", op.ID); got.Status != store.OpFailed || got.FailureReason != "bulk operation "+id+" was canceled" {
		t.Errorf("its pending operation: %s %q", got.Status, got.FailureReason)
	}
	e.want(e.do("PUT", "/devicecontrol/bulkoperations/"+id, "a", map[string]any{"status": "CANCELED"}), 422)
	e.want(e.do("DELETE", "/devicecontrol/bulkoperations/"+id, "a", nil), 204)
	if got := e.want(e.do("GET", "/devicecontrol/bulkoperations/"+id, "a", nil), 200).body; got["status"] != "DELETED" {
		t.Errorf("after delete: %v", got["status"])
	}
	// an operation posted by a client cannot count in a bulk operation
	posted := e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{"deviceId": devs[1], "bulkOperationId": id, "c8y_Command": cmd["c8y_Command"]}), 201)
	if _, ok := posted.body["bulkOperationId"]; ok {
		t.Errorf("a client set bulkOperationId: %v", posted.body)
	}
}
