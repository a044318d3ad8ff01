package api_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/ddftest"

	"github.com/lwm2m-agent/lwm2m-agent/agent/api"
	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/logbuf"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
)

// limitsEnv is an API whose refusals are counted and logged.
func limitsEnv(t *testing.T, limits api.Limits) (*env, *refusal.Log, *logbuf.Buffer) {
	t.Helper()
	var logs logbuf.Buffer
	refused := refusal.New(slog.New(slog.NewTextHandler(&logs, nil)), time.Hour)
	e := newEnv(t, func(c *api.Config) { c.Refused, c.Limits = refused, limits })
	return e, refused, &logs
}

// wantLimit checks an answer refused by a limit: its status, its error
// kind, a message naming what and the setting, and the refusal counted.
func wantLimit(t *testing.T, a answer, refused *refusal.Log, code int, area, cause, says string, before uint64) {
	t.Helper()
	kind := map[int]string{413: "tooLarge", 422: "unprocessable", 503: "serviceUnavailable"}[code]
	if a.code != code || a.body["error"] != area+"/"+kind {
		t.Fatalf("HTTP %d %.300v, want %d %s/%s", a.code, a.body, code, area, kind)
	}
	if msg, _ := a.body["message"].(string); !strings.Contains(msg, says) {
		t.Fatalf("message %q does not say %q", msg, says)
	}
	if got := refused.Count(cause); got != before+1 {
		t.Fatalf("%s counted %d times, want %d", cause, got, before+1)
	}
}

// members is a JSON object of n members.
func members(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"m%d":%d`, i, i)
	}
	b.WriteByte('}')
	return b.String()
}

// elements is a JSON array of n elements.
func elements(n int, elem string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

// Every JSON body is checked against the limits before it is decoded:
// too deep, too many members, too long an array, too many values in all
// get 422, too large a fragment or body 413, each naming the limit's
// setting; nothing is stored, and each refusal is counted by its cause
// and logged once.
func TestJSONLimits(t *testing.T) {
	e, refused, logs := limitsEnv(t, api.Limits{})
	dev, err := e.s.CreateDevice(ctx, "a", "ep-limits")
	if err != nil {
		t.Fatal(err)
	}
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	tests := []struct {
		name, method, path, body string
		code                     int
		area, cause, says        string
	}{
		{"deep", "POST", "/inventory/managedObjects", `{"c8y_Deep":` + deep(10_000) + "}",
			422, "inventory", "json_depth", "JSON nested deeper than 32 levels at c8y_Deep > a > a > … > a > a > a (--max-json-depth)"},
		{"deep update", "PUT", "/inventory/managedObjects/" + dev, `{"c8y_Deep":` + deep(32) + "}",
			422, "inventory", "json_depth", "JSON nested deeper than 32 levels"},
		{"members", "PUT", "/inventory/managedObjects/" + dev, `{"c8y_Many":` + members(1001) + "}",
			422, "inventory", "json_members", "a JSON object of more than 1000 members at c8y_Many > m1000 (--max-json-members)"},
		{"array", "POST", "/inventory/managedObjects", `{"c8y_Wide":` + elements(300_000, "{}") + "}",
			422, "inventory", "json_array", "a JSON array of more than 10000 elements at c8y_Wide (--max-json-array)"},
		{"values", "POST", "/inventory/managedObjects", `{"a":` + elements(9_999, "0") + `,"b":` + elements(9_999, "0") + `,"c":[1,2,3]}`,
			422, "inventory", "json_values", "more than 20000 members and array elements in all at c (--max-json-values)"},
		{"fragment", "POST", "/inventory/managedObjects", `{"name":"x","c8y_Big":"` + strings.Repeat("b", 256<<10) + `"}`,
			413, "inventory", "fragment_size", `fragment "c8y_Big" is larger than 262144 bytes (--max-fragment-size)`},
		{"body", "POST", "/inventory/managedObjects", `{"a":"` + strings.Repeat("b", 200<<10) + `","b":"` + strings.Repeat("b", 200<<10) +
			`","c":"` + strings.Repeat("b", 200<<10) + `","d":"` + strings.Repeat("b", 200<<10) + `","e":"` + strings.Repeat("b", 200<<10) + `","f":"` + strings.Repeat("b", 200<<10) + `"}`,
			413, "inventory", "body_size", "the body is larger than 1048576 bytes (--max-document-size)"},
		{"operation", "POST", "/devicecontrol/operations", `{"deviceId":"` + dev + `","c8y_Command":{"text":"read /3/0"},"c8y_X":` + deep(40) + "}",
			422, "devicecontrol", "json_depth", "JSON nested deeper than 32 levels at c8y_X"},
		{"strict body", "PUT", "/lwm2m/deviceprotocols/3/resources/0/validation", `{"groups":` + elements(10_001, "[]") + "}",
			422, "lwm2m", "json_array", "more than 10000 elements at groups (--max-json-array)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := refused.Count(tc.cause)
			wantLimit(t, e.do(tc.method, tc.path, "a", tc.body), refused, tc.code, tc.area, tc.cause, tc.says, before)
		})
	}
	if n := len(list(e.want(e.do("GET", "/inventory/managedObjects?pageSize=100", "a", nil), 200), "managedObjects")); n != 1 {
		t.Fatalf("%d objects stored, want only the device", n)
	}
	if n := len(e.runner.calls()); n != 0 {
		t.Fatalf("%d refused operations reached the runner", n)
	}
	// one line per cause for the whole run, naming the tenant and the setting
	if n := strings.Count(logs.String(), `cause=json_depth`); n != 1 {
		t.Fatalf("json_depth logged %d times:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `setting=--max-json-depth`) || !strings.Contains(logs.String(), "tenant=a") {
		t.Fatalf("log: %s", logs)
	}

	// at the limits, and what clients really send, is taken
	for _, body := range []string{
		`{"c8y_Deep":` + deep(31) + "}",
		`{"c8y_Many":` + members(1000) + "}",
		`{"c8y_Wide":` + elements(10_000, "{}") + "}",
		`{"name":"x","c8y_Big":"` + strings.Repeat("b", 256<<10-2) + `"}`,
	} {
		e.want(e.do("POST", "/inventory/managedObjects", "a", body), 201)
	}
}

// The limits are settings: a smaller one refuses what the default takes.
func TestJSONLimitsAreSettings(t *testing.T) {
	e, refused, _ := limitsEnv(t, api.Limits{JSONDepth: 4, JSONMembers: 20, FragmentSize: 2048})
	e.want(e.do("POST", "/inventory/managedObjects", "a", `{"a":{"b":{"c":[1]}}}`), 201)
	wantLimit(t, e.do("POST", "/inventory/managedObjects", "a", `{"a":{"b":{"c":[[1]]}}}`), refused, 422, "inventory", "json_depth", "deeper than 4 levels at a > b > c", 0)
	wantLimit(t, e.do("POST", "/inventory/managedObjects", "a", `{"a":`+members(21)+`}`), refused, 422, "inventory", "json_members", "more than 20 members", 0)
	wantLimit(t, e.do("POST", "/inventory/managedObjects", "a", `{"a":"`+strings.Repeat("x", 2048)+`"}`), refused, 413, "inventory", "fragment_size", "larger than 2048 bytes", 0)
}

func postDDF(e *env, doc string) answer {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/lwm2m/deviceprotocols", strings.NewReader(doc))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/xml")
	req.SetBasicAuth("a/admin", "a-pass")
	return e.send(req)
}

// A device protocol upload over the objects or resources limit is refused
// with 422 and the line of the first element too many, over the size
// limit with 413; nothing of it is stored.
func TestDDFLimits(t *testing.T) {
	e, refused, _ := limitsEnv(t, api.Limits{DDFObjects: 3, DDFResources: 5, DDFSize: 16 << 10})
	a := postDDF(e, ddftest.Doc(1, 1, 1, 1))
	wantLimit(t, a, refused, 422, "lwm2m", "ddf_objects", "ddf: line 5: more than 3 objects in one document (--max-ddf-objects)", 0)
	if a.body["line"] != float64(5) {
		t.Fatalf("line %v, want 5", a.body["line"])
	}
	wantLimit(t, postDDF(e, ddftest.Doc(1, 6)), refused, 422, "lwm2m", "ddf_resources", "ddf: line 3: more than 5 resources in one object (--max-ddf-resources)", 0)
	wantLimit(t, postDDF(e, ddftest.Doc(5, 5, 5)+strings.Repeat(" ", 16<<10)), refused, 413, "lwm2m", "body_size", "the document is larger than 16384 bytes (--max-ddf-size)", 0)
	own := e.want(e.do("GET", "/lwm2m/deviceprotocols?inherited=false", "a", nil), 200)
	if n := len(list(own, "deviceProtocols")); n != 0 {
		t.Fatalf("%d protocols stored from refused uploads", n)
	}
	e.want(postDDF(e, ddftest.Doc(5, 5, 5)), 201)
}

// A registration file with a record over a limit is refused whole, naming
// the line, before anything is stored.
func TestCSVLimits(t *testing.T) {
	e, refused, _ := limitsEnv(t, api.Limits{CSVLineSize: 2048, CSVFields: 20})
	post := func(csv string) answer {
		req, _ := http.NewRequest("POST", e.srv.URL+"/devicecontrol/bulkNewDeviceRequests", strings.NewReader(csv))
		req.SetBasicAuth("a/admin", "a-pass")
		req.Header.Set("Content-Type", "text/csv")
		return e.send(req)
	}
	file := bulkFile(3, 0)
	wantLimit(t, post(strings.Repeat(";", 63<<20)), refused, 422, "devicecontrol", "csv_fields",
		"registration file: line 1 has more than 20 fields; nothing of it was stored (--max-csv-fields)", 0)
	wantLimit(t, post(file+"x;"+strings.Repeat("y", 2048)+"\n"), refused, 413, "devicecontrol", "csv_line",
		"registration file: line 5 is longer than 2048 bytes; nothing of it was stored (--max-csv-line-size)", 0)
	if n := len(list(e.want(e.do("GET", "/inventory/managedObjects", "a", nil), 200), "managedObjects")); n != 0 {
		t.Fatalf("%d devices stored from refused files", n)
	}
	e.want(post(file), 201)
}

// A request whose store time runs out is answered 503 naming the setting,
// and counted; a bulk registration, bounded by its size, is not timed.
func TestStoreRequestTimeout(t *testing.T) {
	e, refused, _ := limitsEnv(t, api.Limits{StoreTimeout: time.Nanosecond})
	for i, path := range []string{"/inventory/managedObjects", "/lwm2m/deviceprotocols", "/event/events"} {
		a := e.do("GET", path, "a", nil)
		// the credentials are the first thing the store is asked for
		wantLimit(t, a, refused, 503, "general", "store_timeout",
			"the store took longer than 1ns for this request; try again, or ask for less (a smaller page, a narrower filter) (--store-request-timeout)", uint64(i))
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/devicecontrol/bulkNewDeviceRequests", bytes.NewReader([]byte(bulkFile(2, 0))))
	req.SetBasicAuth("a/admin", "a-pass")
	req.Header.Set("Content-Type", "text/csv")
	e.want(e.send(req), 201)
}
