package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

var ctx = context.Background()

const adminPass = "management-secret"

// recorder is an OperationRunner that remembers what it was given.
type recorder struct {
	mu  sync.Mutex
	ops []store.Operation
}

func (r *recorder) Submit(_ context.Context, tenant string, op store.Operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.DeviceID = tenant + ":" + op.DeviceID
	r.ops = append(r.ops, op)
}

func (r *recorder) calls() []store.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

type env struct {
	t      *testing.T
	s      store.Engine
	srv    *httptest.Server
	runner *recorder
}

func newEnv(t *testing.T, mods ...func(*api.Config)) *env {
	t.Helper()
	s := storetest.OpenTest(t)
	if _, err := s.EnsureManagement(ctx, adminPass); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []string{"a", "b"} {
		if _, err := s.CreateTenant(ctx, tn, "admin", tn+"-pass"); err != nil {
			t.Fatal(err)
		}
	}
	temp := model.ObjectDef{ID: 3303, Name: "Temperature", Multiple: true, Resources: []model.ResourceDef{
		{ID: 5700, Name: "Sensor Value", Operations: "R", Type: node.TypeFloat, Units: "Cel", Mandatory: true},
		{ID: 5701, Name: "Sensor Units", Operations: "R", Type: node.TypeString},
	}}
	reg := model.NewRegistry(append(model.CoreObjects(), temp)...)
	rec := &recorder{}
	cfg := api.Config{Store: s, Models: reg, Ops: rec, Metrics: prometheus.NewRegistry()}
	for _, m := range mods {
		m(&cfg)
	}
	srv := httptest.NewServer(api.New(cfg).Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, s: s, srv: srv, runner: rec}
}

type answer struct {
	code   int
	body   map[string]any
	header http.Header
}

// do sends a request as "tenant/admin" (user "" sends no credentials).
func (e *env) do(method, path, tenant string, body any) answer {
	e.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "application/json"
	default:
		j, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	switch tenant {
	case "":
	case store.ManagementTenant:
		req.SetBasicAuth("management/admin", adminPass)
	default:
		req.SetBasicAuth(tenant+"/admin", tenant+"-pass")
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) answer {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			e.t.Fatalf("%s %s: answer is not JSON: %s", req.Method, req.URL.Path, raw)
		}
	}
	return answer{res.StatusCode, m, res.Header}
}

func (e *env) want(a answer, code int) answer {
	e.t.Helper()
	if a.code != code {
		e.t.Fatalf("status %d, want %d: %v", a.code, code, a.body)
	}
	return a
}

func list(a answer, name string) []map[string]any {
	items, _ := a.body[name].([]any)
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i], _ = it.(map[string]any)
	}
	return out
}

func TestHealthMetricsAndAuthentication(t *testing.T) {
	e := newEnv(t)
	if a := e.want(e.do("GET", "/health", "", nil), 200); a.body["status"] != "UP" {
		t.Fatalf("health: %v", a.body)
	}
	tests := []struct {
		name string
		auth func(*http.Request)
		code int
	}{
		{"no credentials", func(*http.Request) {}, 401},
		{"wrong password", func(r *http.Request) { r.SetBasicAuth("a/admin", "nope") }, 401},
		{"no tenant", func(r *http.Request) { r.SetBasicAuth("admin", "a-pass") }, 401},
		{"other tenant's user", func(r *http.Request) { r.SetBasicAuth("b/admin", "a-pass") }, 401},
		{"unknown tenant", func(r *http.Request) { r.SetBasicAuth("zz/admin", "a-pass") }, 401},
		{"right", func(r *http.Request) { r.SetBasicAuth("a/admin", "a-pass") }, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/inventory/managedObjects", nil)
			tc.auth(req)
			a := e.send(req)
			if a.code != tc.code {
				t.Fatalf("status %d, want %d", a.code, tc.code)
			}
			if tc.code == 401 {
				if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic") || a.body["error"] != "security/Unauthorized" {
					t.Fatalf("401 without challenge or error body: %v %v", a.header, a.body)
				}
			}
		})
	}
	res, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	text, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(text), `lwm2m_agent_http_requests_total{code="401",method="GET",route="/inventory/managedObjects"}`) {
		t.Fatalf("metrics lack the request counter:\n%s", text)
	}
}

func TestTenants(t *testing.T) {
	e := newEnv(t)
	a := e.want(e.do("POST", "/tenant/tenants", store.ManagementTenant, map[string]any{"id": "acme", "adminName": "boss", "adminPass": "pw-1"}), 201)
	if a.body["id"] != "acme" || a.body["adminPass"] != nil {
		t.Fatalf("created tenant: %v", a.body)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/inventory/managedObjects", nil)
	req.SetBasicAuth("acme/boss", "pw-1")
	e.want(e.send(req), 200)

	e.want(e.do("POST", "/tenant/tenants", store.ManagementTenant, map[string]any{"id": "acme", "adminName": "x", "adminPass": "y"}), 409)
	e.want(e.do("POST", "/tenant/tenants", store.ManagementTenant, map[string]any{"id": "Bad Name", "adminName": "x", "adminPass": "y"}), 422)
	e.want(e.do("POST", "/tenant/tenants", "a", map[string]any{"id": "other", "adminName": "x", "adminPass": "y"}), 403)
	e.want(e.do("POST", "/tenant/tenants", store.ManagementTenant, `{"id":`), 400)

	// the management tenant's admin lists every tenant, by ID and a page
	// at a time; nobody else learns of other tenants
	l := e.want(e.do("GET", "/tenant/tenants?pageSize=2&withTotalPages=true", store.ManagementTenant, nil), 200)
	list, _ := l.body["tenants"].([]any)
	var ids []string
	for _, x := range list {
		m, _ := x.(map[string]any)
		if m["creationTime"] == nil || m["status"] != "ACTIVE" || m["adminPass"] != nil {
			t.Errorf("listed tenant %v", m)
		}
		ids = append(ids, fmt.Sprint(m["id"]))
	}
	if st, _ := l.body["statistics"].(map[string]any); strings.Join(ids, ",") != "a,acme" || st["totalPages"] != float64(2) {
		t.Fatalf("first page of tenants: %v, statistics %v; want a,acme of 2 pages", ids, l.body["statistics"])
	}
	l = e.want(e.do("GET", "/tenant/tenants?pageSize=2&currentPage=2", store.ManagementTenant, nil), 200)
	if list, _ := l.body["tenants"].([]any); len(list) != 2 {
		t.Fatalf("second page of tenants: %v, want b and management", l.body["tenants"])
	}
	e.want(e.do("GET", "/tenant/tenants", "a", nil), 403)
	e.want(e.do("GET", "/tenant/tenants", "", nil), 401)
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t)
	dev, err := e.s.CreateDevice(ctx, "a", "ep-a")
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := e.s.CreateEvent(ctx, "a", store.Event{Source: dev, Type: "x", Text: "t"})
	al, _ := e.s.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "x", Text: "t"})
	ms, _ := e.s.AddMeasurements(ctx, "a", []store.Measurement{{Source: dev, Type: "c8y_T", Fragments: map[string]any{"c8y_T": map[string]any{"T": store.SeriesValue(1, "C")}}}})
	op := e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0"}}), 201)
	opID := op.body["id"].(string)

	tests := []struct {
		name, method, path string
		body               any
	}{
		{"get device", "GET", "/inventory/managedObjects/" + dev, nil},
		{"update device", "PUT", "/inventory/managedObjects/" + dev, map[string]any{"x": 1}},
		{"delete device", "DELETE", "/inventory/managedObjects/" + dev, nil},
		{"external id", "GET", "/identity/externalIds/c8y_Id/ep-a", nil},
		{"external ids of device", "GET", "/identity/globalIds/" + dev + "/externalIds", nil},
		{"measurement", "GET", "/measurement/measurements/" + ms[0], nil},
		{"event", "GET", "/event/events/" + ev.ID, nil},
		{"alarm", "GET", "/alarm/alarms/" + al.ID, nil},
		{"update alarm", "PUT", "/alarm/alarms/" + al.ID, map[string]any{"status": "CLEARED"}},
		{"operation", "GET", "/devicecontrol/operations/" + opID, nil},
		{"operation for device", "POST", "/devicecontrol/operations", map[string]any{"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0"}}},
		{"objects view", "GET", "/lwm2m/devices/" + dev + "/objects", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.do(tc.method, tc.path, "b", tc.body)
			if a.code != 404 {
				t.Fatalf("tenant b: status %d, want 404: %v", a.code, a.body)
			}
			if s, _ := a.body["error"].(string); !strings.HasSuffix(s, "/Not Found") {
				t.Fatalf("error body: %v", a.body)
			}
		})
	}
	for _, l := range []struct{ path, name string }{
		{"/inventory/managedObjects", "managedObjects"}, {"/measurement/measurements?source=" + dev, "measurements"},
		{"/event/events", "events"}, {"/alarm/alarms", "alarms"}, {"/devicecontrol/operations", "operations"},
	} {
		t.Run("list "+l.name, func(t *testing.T) {
			if n := len(list(e.want(e.do("GET", l.path, "b", nil), 200), l.name)); n != 0 {
				t.Fatalf("tenant b lists %d of a's %s", n, l.name)
			}
			if n := len(list(e.want(e.do("GET", l.path, "a", nil), 200), l.name)); n != 1 {
				t.Fatalf("tenant a lists %d %s, want 1", n, l.name)
			}
		})
	}
	// a's objects are unchanged by b's attempts.
	if a := e.want(e.do("GET", "/alarm/alarms/"+al.ID, "a", nil), 200); a.body["status"] != "ACTIVE" {
		t.Fatalf("a's alarm: %v", a.body)
	}
	e.want(e.do("GET", "/inventory/managedObjects/"+dev, "a", nil), 200)
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		if _, err := e.s.CreateDevice(ctx, "a", fmt.Sprint("dev-", i)); err != nil {
			t.Fatal(err)
		}
	}
	names := func(a answer) (out []string) {
		for _, m := range list(a, "managedObjects") {
			out = append(out, m["name"].(string))
		}
		return out
	}
	tests := []struct {
		name       string
		query      string
		want       []string
		totalPages float64 // 0: not asked
		next, prev bool
	}{
		{"default page size", "", []string{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4"}, 0, true, false},
		{"page 2 of 3", "?pageSize=3&currentPage=2&withTotalPages=true", []string{"dev-3", "dev-4", "dev-5"}, 3, true, true},
		{"last page", "?pageSize=3&currentPage=3&withTotalPages=true", []string{"dev-6"}, 3, false, true},
		{"past the end", "?pageSize=3&currentPage=9", nil, 0, false, true},
		{"capped size", "?pageSize=5000", []string{"dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-5", "dev-6"}, 0, false, false},
		{"query", "?query=" + "name%20eq%20%27dev-6%27", []string{"dev-6"}, 0, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.want(e.do("GET", "/inventory/managedObjects"+tc.query, "a", nil), 200)
			if got := names(a); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			stats := a.body["statistics"].(map[string]any)
			if tp, _ := stats["totalPages"].(float64); tp != tc.totalPages {
				t.Fatalf("totalPages %v, want %v", stats["totalPages"], tc.totalPages)
			}
			if _, ok := a.body["next"]; ok != tc.next {
				t.Fatalf("next link present: %v, want %v", ok, tc.next)
			}
			if _, ok := a.body["prev"]; ok != tc.prev {
				t.Fatalf("prev link present: %v, want %v", ok, tc.prev)
			}
			if s, _ := a.body["self"].(string); !strings.HasPrefix(s, e.srv.URL+"/inventory/managedObjects?") {
				t.Fatalf("self %q", s)
			}
		})
	}
	if a := e.want(e.do("GET", "/inventory/managedObjects?pageSize=3&currentPage=2", "a", nil), 200); !strings.Contains(a.body["next"].(string), "currentPage=3") {
		t.Fatalf("next link %v", a.body["next"])
	}
	e.want(e.do("GET", "/inventory/managedObjects?pageSize=abc", "a", nil), 422)
	e.want(e.do("GET", "/inventory/managedObjects?query=name%20like%20'x'", "a", nil), 422)
}

// TestLinksIgnoreHost: links are built on the configured external URL,
// or on the address the agent listens on, never on the Host or
// X-Forwarded-Proto a client sends.
func TestLinksIgnoreHost(t *testing.T) {
	tests := []struct {
		name     string
		external string
		want     func(e *env) string // base every link must start with
	}{
		{"external url", "https://agent.example.com/lwm2m/", func(*env) string { return "https://agent.example.com/lwm2m" }},
		{"listen address", "", func(e *env) string { return e.srv.URL }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *api.Config) { c.ExternalURL = tt.external })
			var dev string
			for i := range 3 {
				id, err := e.s.CreateDevice(ctx, "a", fmt.Sprintf("links-%d", i))
				if err != nil {
					t.Fatal(err)
				}
				dev = id
			}
			base := tt.want(e)
			get := func(path string) answer {
				req, err := http.NewRequest("GET", e.srv.URL+path, nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Host = "evil.example"
				req.Header.Set("X-Forwarded-Proto", "https")
				req.Header.Set("X-Forwarded-Host", "evil.example")
				req.SetBasicAuth("a/admin", "a-pass")
				return e.want(e.send(req), 200)
			}
			list := get("/inventory/managedObjects?pageSize=1&currentPage=2")
			for _, k := range []string{"self", "next", "prev"} {
				if l, _ := list.body[k].(string); !strings.HasPrefix(l, base+"/inventory/managedObjects?") {
					t.Errorf("%s = %q, want it under %s", k, l, base)
				}
			}
			one := get("/inventory/managedObjects/" + dev)
			if l, _ := one.body["self"].(string); l != base+"/inventory/managedObjects/"+dev {
				t.Errorf("self = %q, want %s/inventory/managedObjects/%s", l, base, dev)
			}
		})
	}
}

func TestManagedObjectUpdateAndSecrets(t *testing.T) {
	e := newEnv(t)
	dev, _ := e.s.CreateDevice(ctx, "a", "ep")
	if err := e.s.UpdateFragments(ctx, "a", dev, bson.M{"c8y_Bootstrap": bson.M{"pskId": "id-1", "pskKey": "00112233"}}); err != nil {
		t.Fatal(err)
	}
	a := e.want(e.do("PUT", "/inventory/managedObjects/"+dev, "a", `{"awakeTimeRegistrationParameter":180000,"name":"renamed"}`), 200)
	if a.body["awakeTimeRegistrationParameter"] != float64(180000) || a.body["name"] != "renamed" || a.body["c8y_IsDevice"] == nil {
		t.Fatalf("PUT answer: %v", a.body)
	}
	got := e.want(e.do("GET", "/inventory/managedObjects/"+dev, "a", nil), 200).body
	bs, _ := got["c8y_Bootstrap"].(map[string]any)
	if bs["pskId"] != "id-1" || bs["pskKey"] != nil {
		t.Fatalf("bootstrap fragment %v: the key must never be answered", bs)
	}
	e.want(e.do("PUT", "/inventory/managedObjects/"+dev, "a", `{"pskKey":"aa"}`), 422)
	// Cumulocity media types are accepted.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/inventory/managedObjects/"+dev, strings.NewReader(`{"c8y_Note":{"text":"hi"}}`))
	req.Header.Set("Content-Type", "application/vnd.com.nsn.cumulocity.managedObject+json")
	req.SetBasicAuth("a/admin", "a-pass")
	e.want(e.send(req), 200)
	req, _ = http.NewRequest("PUT", e.srv.URL+"/inventory/managedObjects/"+dev, strings.NewReader(`x`))
	req.Header.Set("Content-Type", "text/plain")
	req.SetBasicAuth("a/admin", "a-pass")
	e.want(e.send(req), 415)
	big := `{"x":"` + strings.Repeat("a", api.DefaultLimits.DocumentSize) + `"}`
	e.want(e.do("PUT", "/inventory/managedObjects/"+dev, "a", big), 413)

	x := e.want(e.do("GET", "/identity/externalIds/c8y_Id/ep", "a", nil), 200).body
	if x["managedObject"].(map[string]any)["id"] != dev {
		t.Fatalf("external id: %v", x)
	}
	e.want(e.do("DELETE", "/inventory/managedObjects/"+dev, "a", nil), 204)
	e.want(e.do("GET", "/inventory/managedObjects/"+dev, "a", nil), 404)
}

func TestOperations(t *testing.T) {
	e := newEnv(t)
	dev, _ := e.s.CreateDevice(ctx, "a", "ep")
	a := e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{
		"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0\n\nwrite /3/0/14 +02:00\nexecute /3/0/4"},
		"description": "three lines",
	}), 201)
	if a.body["status"] != "PENDING" || a.body["c8y_Command"].(map[string]any)["text"] != "read /3/0" || a.body["description"] != "three lines" {
		t.Fatalf("answer: %v", a.body)
	}
	more, _ := a.body["additionalOperationIds"].([]any)
	if len(more) != 2 {
		t.Fatalf("additionalOperationIds = %v", a.body["additionalOperationIds"])
	}
	calls := e.runner.calls()
	if len(calls) != 3 || calls[0].ID != a.body["id"] || calls[1].ID != more[0] || calls[2].Text != "execute /3/0/4" || calls[0].DeviceID != "a:"+dev {
		t.Fatalf("runner calls: %+v", calls)
	}
	second := e.want(e.do("GET", "/devicecontrol/operations/"+more[0].(string), "a", nil), 200).body
	if second["c8y_Command"].(map[string]any)["text"] != "write /3/0/14 +02:00" || second["status"] != "PENDING" {
		t.Fatalf("second operation: %v", second)
	}

	bad := []struct {
		name, body, msg string
	}{
		{"unknown command", `{"deviceId":"` + dev + `","c8y_Command":{"text":"reed /3/0"}}`, "reed"},
		{"bad path in second line", `{"deviceId":"` + dev + `","c8y_Command":{"text":"read /3/0\nread /3/x"}}`, "line 2"},
		{"empty text", `{"deviceId":"` + dev + `","c8y_Command":{"text":"  "}}`, "c8y_Command.text"},
		{"no device", `{"c8y_Command":{"text":"read /3/0"}}`, "deviceId"},
		{"no command", `{"deviceId":"` + dev + `"}`, "c8y_Command"},
		{"firmware without url", `{"deviceId":"` + dev + `","c8y_Firmware":{"name":"fw","version":"1"}}`, "url"},
		{"firmware from a binary the tenant lacks", `{"deviceId":"` + dev + `","c8y_Firmware":{"name":"fw","version":"1","url":"binary:42"}}`, "there is no binary 42 in this tenant"},
		{"firmware url not absolute", `{"deviceId":"` + dev + `","c8y_Firmware":{"name":"fw","version":"1","url":"fw.bin"}}`, "no scheme"},
		{"firmware url of another protocol", `{"deviceId":"` + dev + `","c8y_Firmware":{"name":"fw","version":"1","url":"ftp://h/fw.bin"}}`, "scheme ftp is not one of"},
		{"fwupdate from a binary the tenant lacks", `{"deviceId":"` + dev + `","c8y_Command":{"text":"fwupdate fw;1;binary:42"}}`, "there is no binary 42 in this tenant"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			a := e.want(e.do("POST", "/devicecontrol/operations", "a", tc.body), 422)
			if a.body["error"] != "devicecontrol/unprocessable" || !strings.Contains(a.body["message"].(string), tc.msg) {
				t.Fatalf("422 body %v should name %q", a.body, tc.msg)
			}
		})
	}
	if n := len(e.runner.calls()); n != 3 {
		t.Fatalf("runner called %d times, want only the 3 valid operations", n)
	}
	l := e.want(e.do("GET", "/devicecontrol/operations?deviceId="+dev+"&withTotalPages=true", "a", nil), 200)
	if st := l.body["statistics"].(map[string]any); st["totalElements"] != float64(3) {
		t.Fatalf("malformed commands were stored: %v", st)
	}
	e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{"deviceId": "424242", "c8y_Command": map[string]any{"text": "read /3/0"}}), 404)

	fw := e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{"deviceId": dev, "c8y_Firmware": map[string]any{"name": "fw", "version": "2", "url": "coap://x/fw"}}), 201)
	if fw.body["c8y_Firmware"] == nil || fw.body["c8y_Command"] != nil {
		t.Fatalf("firmware operation: %v", fw.body)
	}

	// Status changes made by the runner show through the API.
	if err := e.s.SetStatus(ctx, "a", a.body["id"].(string), store.OpSuccessful, "/3/0/0 = acme", ""); err != nil {
		t.Fatal(err)
	}
	done := e.want(e.do("GET", "/devicecontrol/operations/"+a.body["id"].(string), "a", nil), 200).body
	if done["status"] != "SUCCESSFUL" || done["c8y_Command"].(map[string]any)["result"] != "/3/0/0 = acme" {
		t.Fatalf("after success: %v", done)
	}
	pending := list(e.want(e.do("GET", "/devicecontrol/operations?status=PENDING&pageSize=10", "a", nil), 200), "operations")
	if len(pending) != 3 || pending[0]["id"] != more[0] {
		t.Fatalf("pending in creation order: %v", pending)
	}
}

func TestMeasurementsEventsAlarms(t *testing.T) {
	e := newEnv(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ms []store.Measurement
	for i := range 4 {
		ms = append(ms, store.Measurement{Source: "7", Type: "c8y_Temperature", Time: t0.Add(time.Duration(i) * time.Minute),
			Fragments: map[string]any{"c8y_Temperature": map[string]any{"T": store.SeriesValue(20+float64(i), "C")}}})
	}
	if _, err := e.s.AddMeasurements(ctx, "a", ms); err != nil {
		t.Fatal(err)
	}
	a := e.want(e.do("GET", "/measurement/measurements?source=7&valueFragmentType=c8y_Temperature&valueFragmentSeries=T&dateFrom=2026-03-01T12:01:00Z&dateTo=2026-03-01T12:03:00.000%2B00:00&pageSize=10", "a", nil), 200)
	got := list(a, "measurements")
	if len(got) != 2 {
		t.Fatalf("measurements: %v", a.body)
	}
	m := got[0]
	if m["time"] != "2026-03-01T12:01:00.000Z" || m["source"].(map[string]any)["id"] != "7" || m["type"] != "c8y_Temperature" ||
		m["c8y_Temperature"].(map[string]any)["T"].(map[string]any)["value"] != float64(21) || m["id"] == "" {
		t.Fatalf("measurement shape: %v", m)
	}
	e.want(e.do("GET", "/measurement/measurements?dateFrom=yesterday", "a", nil), 422)
	rev := list(e.want(e.do("GET", "/measurement/measurements?source=7&revert=true&pageSize=1", "a", nil), 200), "measurements")
	if rev[0]["time"] != "2026-03-01T12:03:00.000Z" {
		t.Fatalf("revert: %v", rev)
	}

	if _, err := e.s.CreateEvent(ctx, "a", store.Event{Source: "7", Type: "c8y_LWM2MDeviceRegistration", Text: "registered", Time: t0}); err != nil {
		t.Fatal(err)
	}
	ev := list(e.want(e.do("GET", "/event/events?source=7&type=c8y_LWM2MDeviceRegistration", "a", nil), 200), "events")
	if len(ev) != 1 || ev[0]["text"] != "registered" || ev[0]["time"] != "2026-03-01T12:00:00.000Z" {
		t.Fatalf("events: %v", ev)
	}

	for range 3 {
		if _, err := e.s.RaiseAlarm(ctx, "a", store.Alarm{Source: "7", Type: "c8y_High", Text: "hot", Severity: store.SeverityMajor}); err != nil {
			t.Fatal(err)
		}
	}
	al := list(e.want(e.do("GET", "/alarm/alarms?source=7&status=ACTIVE&severity=MAJOR", "a", nil), 200), "alarms")
	if len(al) != 1 || al[0]["count"] != float64(3) || al[0]["firstOccurrenceTime"] == nil {
		t.Fatalf("alarms: %v", al)
	}
	id := al[0]["id"].(string)
	if a := e.want(e.do("PUT", "/alarm/alarms/"+id, "a", map[string]any{"status": "ACKNOWLEDGED"}), 200); a.body["status"] != "ACKNOWLEDGED" {
		t.Fatalf("acknowledge: %v", a.body)
	}
	e.want(e.do("PUT", "/alarm/alarms/"+id, "a", map[string]any{"status": "CLEARED"}), 200)
	e.want(e.do("PUT", "/alarm/alarms/"+id, "a", map[string]any{"status": "ACTIVE"}), 422)
	e.want(e.do("GET", "/alarm/alarms?status=OPEN", "a", nil), 422)
	if n := len(list(e.want(e.do("GET", "/alarm/alarms?status=ACTIVE,ACKNOWLEDGED", "a", nil), 200), "alarms")); n != 0 {
		t.Fatalf("open alarms after clear: %d", n)
	}
}

func TestObjectsView(t *testing.T) {
	e := newEnv(t)
	dev, _ := e.s.CreateDevice(ctx, "a", "ep")
	if err := e.s.UpdateFragments(ctx, "a", dev, bson.M{"lwm2m": bson.M{"endpoint": "ep", "objects": bson.A{"/1/0", "</3/0>", "</3303/0>;ver=1.1", "/32769", "not a link"}}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := e.s.SaveValues(ctx, "a", dev, []store.ResourceValue{
		{Path: "/3/0/0", Value: "acme", Type: "STRING", Time: t0},
		{Path: "/3/0/7/0", Value: int64(3800), Type: "INTEGER", Time: t0},
		{Path: "/3/0/7/1", Value: int64(5000), Type: "INTEGER", Time: t0.Add(time.Second)},
		{Path: "/3303/0/5700", Value: 21.5, Type: "FLOAT", Time: t0},
		{Path: "/3303/0/9999", Value: "odd", Type: "STRING", Time: t0},
		{Path: "/32769/2/1", Value: []byte{0xbe, 0xef}, Type: "OPAQUE", Time: t0},
	}); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("POST", "/devicecontrol/operations", "a", map[string]any{"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0\nread /3303/0"}}), 201)

	v := e.want(e.do("GET", "/lwm2m/devices/"+dev+"/objects", "a", nil), 200).body
	if v["pendingOperations"] != float64(2) || v["deviceId"] != dev {
		t.Fatalf("view header: %v", v)
	}
	objs := v["objects"].([]any)
	var ids []float64
	byID := map[float64]map[string]any{}
	for _, o := range objs {
		om := o.(map[string]any)
		ids = append(ids, om["id"].(float64))
		byID[om["id"].(float64)] = om
	}
	if !slices.Equal(ids, []float64{1, 3, 3303, 32769}) {
		t.Fatalf("objects %v", ids)
	}
	resource := func(obj float64, inst int, res float64) map[string]any {
		t.Helper()
		insts := byID[obj]["instances"].([]any)
		for _, r := range insts[inst].(map[string]any)["resources"].([]any) {
			if rm := r.(map[string]any); rm["id"] == res {
				return rm
			}
		}
		t.Fatalf("no resource %v/%d/%v", obj, inst, res)
		return nil
	}
	if byID[3]["name"] != "Device" || byID[3]["raw"] != false {
		t.Fatalf("object 3: %v", byID[3])
	}
	manu := resource(3, 0, 0)
	if manu["name"] != "Manufacturer" || manu["type"] != "STRING" || manu["operations"] != "R" || manu["value"] != "acme" || manu["time"] != "2026-03-01T12:00:00.000Z" {
		t.Fatalf("/3/0/0: %v", manu)
	}
	if model := resource(3, 0, 1); model["name"] != "Model Number" || model["value"] != nil {
		t.Fatalf("/3/0/1 without a value: %v", model)
	}
	volts := resource(3, 0, 7)["values"].([]any)
	if len(volts) != 2 || volts[1].(map[string]any)["value"] != float64(5000) {
		t.Fatalf("/3/0/7 instances: %v", volts)
	}
	if temp := resource(3303, 0, 5700); temp["units"] != "Cel" || temp["value"] != 21.5 {
		t.Fatalf("/3303/0/5700: %v", temp)
	}
	if odd := resource(3303, 0, 9999); odd["raw"] != true || odd["type"] != "STRING" || odd["value"] != "odd" {
		t.Fatalf("undefined resource: %v", odd)
	}
	if byID[32769]["raw"] != true {
		t.Fatalf("unknown object: %v", byID[32769])
	}
	if opaque := resource(32769, 0, 1); opaque["value"] != "beef" || opaque["type"] != "OPAQUE" {
		t.Fatalf("unknown object's value: %v", opaque)
	}
	if inst := byID[1]["instances"].([]any); len(inst) != 1 {
		t.Fatalf("registered instance /1/0 without values: %v", inst)
	}
}

// Repeated wrong passwords are answered 429 with Retry-After, for any
// password, until the backoff ends, and the refusals are counted.
func TestLoginBackoff(t *testing.T) {
	e := newEnv(t)
	get := func(user, pass string) answer {
		req, _ := http.NewRequest("GET", e.srv.URL+"/inventory/managedObjects", nil)
		req.SetBasicAuth(user, pass)
		return e.send(req)
	}
	for i := range 5 {
		if a := get("a/admin", "wrong"); a.code != 401 {
			t.Fatalf("wrong password %d: status %d, want 401", i+1, a.code)
		}
	}
	for _, pass := range []string{"wrong", "a-pass"} {
		a := get("a/admin", pass)
		if a.code != 429 || a.body["error"] != "security/TooManyRequests" {
			t.Fatalf("password %q after 5 wrong ones: status %d %v, want 429", pass, a.code, a.body)
		}
		if s, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
		}
	}
	res, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	text, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(text), "lwm2m_agent_http_logins_throttled_total 2") {
		t.Fatalf("metrics lack the throttled logins:\n%s", text)
	}
}

// POST /measurement/measurements stores a measurement of a managed
// object of the tenant, as GET then shows it; another tenant's object is
// refused as one that does not exist.
func TestCreateMeasurement(t *testing.T) {
	e := newEnv(t)
	dev := e.want(e.do("POST", "/inventory/managedObjects", "a", map[string]any{"name": "d", "c8y_IsDevice": map[string]any{}}), 201).body["id"].(string)
	other := e.want(e.do("POST", "/inventory/managedObjects", "b", map[string]any{"name": "d"}), 201).body["id"].(string)
	temp := map[string]any{"T": map[string]any{"value": 21.5, "unit": "C"}}
	tests := []struct {
		name string
		body map[string]any
		code int
	}{
		{"stored", map[string]any{"source": map[string]any{"id": dev}, "type": "c8y_Temperature", "time": "2026-03-01T12:00:00.250Z", "c8y_Temperature": temp}, 201},
		{"time defaults to now", map[string]any{"source": map[string]any{"id": dev}, "type": "c8y_Temperature", "c8y_Temperature": temp}, 201},
		{"no source", map[string]any{"type": "c8y_Temperature", "c8y_Temperature": temp}, 422},
		{"no type", map[string]any{"source": map[string]any{"id": dev}, "c8y_Temperature": temp}, 422},
		{"bad time", map[string]any{"source": map[string]any{"id": dev}, "type": "x", "time": "yesterday"}, 422},
		{"another tenant's source", map[string]any{"source": map[string]any{"id": other}, "type": "x"}, 422},
		{"no such source", map[string]any{"source": map[string]any{"id": "999999"}, "type": "x"}, 422},
		{"fragment name", map[string]any{"source": map[string]any{"id": dev}, "type": "x", "$where": 1}, 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := e.want(e.do("POST", "/measurement/measurements", "a", tc.body), tc.code)
			if tc.code != 201 {
				return
			}
			got := e.want(e.do("GET", "/measurement/measurements/"+a.body["id"].(string), "a", nil), 200).body
			created, _ := json.Marshal(a.body)
			read, _ := json.Marshal(got)
			if string(created) != string(read) {
				t.Fatalf("POST answered %s, GET shows %s", created, read)
			}
			if tc.body["time"] != nil && got["time"] != tc.body["time"] {
				t.Fatalf("time %v, want %v", got["time"], tc.body["time"])
			}
		})
	}
	if n := len(list(e.want(e.do("GET", "/measurement/measurements?pageSize=100", "b", nil), 200), "measurements")); n != 0 {
		t.Fatalf("tenant b has %d measurements", n)
	}
}
