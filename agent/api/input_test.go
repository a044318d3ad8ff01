package api_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// wantRefused checks a 422 answer in the API's error shape whose message
// says what.
func wantRefused(t *testing.T, a answer, area, says string) {
	t.Helper()
	if a.code != 422 {
		t.Fatalf("status %d, want 422: %v", a.code, a.body)
	}
	if a.body["error"] != area+"/unprocessable" {
		t.Fatalf("error %v, want %s/unprocessable", a.body["error"], area)
	}
	if msg, _ := a.body["message"].(string); !strings.Contains(msg, says) {
		t.Fatalf("message %q does not say %q", msg, says)
	}
	if info, _ := a.body["info"].(string); !strings.HasPrefix(info, "GET ") && !strings.HasPrefix(info, "POST ") && !strings.HasPrefix(info, "PUT ") {
		t.Fatalf("info %q", a.body["info"])
	}
}

func TestPagingRefused(t *testing.T) {
	e := newEnv(t)
	lists := []struct{ path, area string }{
		{"/inventory/managedObjects", "inventory"},
		{"/inventory/binaries", "inventory"},
		{"/measurement/measurements", "measurement"},
		{"/event/events", "event"},
		{"/alarm/alarms", "alarm"},
		{"/devicecontrol/operations", "devicecontrol"},
		{"/lwm2m/deviceprotocols", "lwm2m"},
	}
	tests := []struct {
		name, query, says string
	}{
		// (currentPage-1)*pageSize wraps round to a small or negative
		// offset in 64 bits.
		{"offset overflows", "currentPage=4611686018427387905&pageSize=2", "currentPage 4611686018427387905 is too large"},
		{"largest int", "currentPage=9223372036854775807", "currentPage 9223372036854775807 is too large"},
		{"beyond the bound", "currentPage=1073743&pageSize=2000", "it must be at most 1073742"},
		{"beyond the bound, default size", "currentPage=429496731", "currentPage 429496731 is too large"},
		{"clamped size counts", "currentPage=1073743&pageSize=5000", "with pageSize 2000"},
		{"page beyond int64", "currentPage=99999999999999999999", `currentPage must be a positive integer`},
		{"page zero", "currentPage=0", `currentPage must be a positive integer, not "0"`},
		{"negative page", "currentPage=-1", `currentPage must be a positive integer, not "-1"`},
		{"page not a number", "currentPage=two", `currentPage must be a positive integer, not "two"`},
		{"size zero", "pageSize=0", `pageSize must be a positive integer, not "0" (at most 2000`},
		{"negative size", "pageSize=-5", `pageSize must be a positive integer, not "-5"`},
		{"size not a number", "pageSize=1e3", `pageSize must be a positive integer, not "1e3"`},
	}
	for _, l := range lists {
		for _, tc := range tests {
			t.Run(l.path+"/"+tc.name, func(t *testing.T) {
				wantRefused(t, e.do("GET", l.path+"?"+tc.query, "a", nil), l.area, tc.says)
			})
		}
		t.Run(l.path+"/last page allowed", func(t *testing.T) {
			e.want(e.do("GET", l.path+"?currentPage=1073742&pageSize=2000", "a", nil), 200)
			e.want(e.do("GET", l.path+"?currentPage=429496730", "a", nil), 200)
		})
	}
}

func TestFieldNamesRefused(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("f", 257)
	tests := []struct {
		name, path, area, says string
	}{
		{"fragmentType $where", "/inventory/managedObjects?fragmentType=$where", "inventory", `fragmentType "$where" is not a fragment or series name: it starts with '$'`},
		{"fragmentType $or", "/inventory/managedObjects?fragmentType=$or", "inventory", `fragmentType "$or"`},
		{"fragmentType dotted", "/inventory/managedObjects?fragmentType=c8y_A.b", "inventory", "it contains '.'"},
		{"fragmentType empty", "/inventory/managedObjects?fragmentType=", "inventory", "it is empty"},
		{"fragmentType NUL", "/inventory/managedObjects?fragmentType=a%00b", "inventory", "NUL"},
		{"fragmentType long", "/inventory/managedObjects?fragmentType=" + long, "inventory", "longer than 256 bytes"},
		{"valueFragmentType $where", "/measurement/measurements?valueFragmentType=$where", "measurement", `valueFragmentType "$where"`},
		{"valueFragmentType dotted", "/measurement/measurements?valueFragmentType=c8y_T.T", "measurement", "it contains '.'"},
		{"valueFragmentSeries $or", "/measurement/measurements?valueFragmentType=c8y_T&valueFragmentSeries=$or", "measurement", `valueFragmentSeries "$or"`},
		{"valueFragmentSeries dotted", "/measurement/measurements?valueFragmentSeries=a.b", "measurement", "it contains '.'"},
		{"valueFragmentSeries long", "/measurement/measurements?valueFragmentSeries=" + long, "measurement", "longer than 256 bytes"},
		{"query $where", "/inventory/managedObjects?query=" + url.QueryEscape("$where eq 'x'"), "inventory", "query"},
		{"query has($or)", "/inventory/managedObjects?query=" + url.QueryEscape("has($or)"), "inventory", "has() needs a fragment name"},
		{"query long field", "/inventory/managedObjects?query=" + url.QueryEscape("c8y_A."+long+" eq 1"), "inventory", "is not a field name"},
		{"query orderby $where", "/inventory/managedObjects?query=" + url.QueryEscape("$orderby=$where"), "inventory", "$orderby"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, e.do("GET", tc.path, "a", nil), tc.area, tc.says)
		})
	}
	for _, ok := range []string{
		"/inventory/managedObjects?fragmentType=c8y_IsDevice",
		"/inventory/managedObjects?query=" + url.QueryEscape("has(c8y_IsDevice) and c8y_Availability.status eq 'AVAILABLE'"),
		"/measurement/measurements?valueFragmentType=c8y_Temperature&valueFragmentSeries=T",
	} {
		e.want(e.do("GET", ok, "a", nil), 200)
	}
}

func TestNestedMemberNamesRefused(t *testing.T) {
	e := newEnv(t)
	dev, err := e.s.CreateDevice(ctx, "a", "ep-names")
	if err != nil {
		t.Fatal(err)
	}
	al, err := e.s.RaiseAlarm(ctx, "a", store.Alarm{Source: dev, Type: "t", Text: "x", Severity: "MAJOR", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	deep := any(map[string]any{"leaf": 1})
	for range 70 {
		deep = []any{deep}
	}
	tests := []struct {
		name, method, path, area string
		body                     map[string]any
		says                     string
	}{
		{"object $where", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"name": "n", "c8y_X": map[string]any{"$where": "sleep(1000)"}}, `member name "$where" (at c8y_X > $where)`},
		{"object dotted, deeper", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"c8y_X": map[string]any{"a": map[string]any{"b.c": 1}}}, `member name "b.c" (at c8y_X > a > b.c) is not accepted: it contains '.'`},
		{"object in a list", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"c8y_X": []any{1, map[string]any{"ok": 1, "$set": 2}}}, `"$set" (at c8y_X > $set)`},
		{"object empty name", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"c8y_X": map[string]any{"": 1}}, "it is empty"},
		{"object NUL", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"c8y_X": map[string]any{"a\x00b": 1}}, "NUL"},
		{"object too deep", "POST", "/inventory/managedObjects", "inventory",
			map[string]any{"c8y_X": deep}, "JSON nested deeper than 32 levels at c8y_X (--max-json-depth)"},
		{"update $where", "PUT", "/inventory/managedObjects/" + dev, "inventory",
			map[string]any{"c8y_X": map[string]any{"y": map[string]any{"$where": 1}}}, `"$where"`},
		{"update top-level dotted", "PUT", "/inventory/managedObjects/" + dev, "inventory",
			map[string]any{"c8y_X.y": 1}, `"c8y_X.y"`},
		{"operation fragment", "POST", "/devicecontrol/operations", "devicecontrol",
			map[string]any{"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0"}, "c8y_Extra": map[string]any{"$gt": 1}}, `"$gt" (at c8y_Extra > $gt)`},
		{"operation command", "POST", "/devicecontrol/operations", "devicecontrol",
			map[string]any{"deviceId": dev, "c8y_Command": map[string]any{"text": "read /3/0", "a.b": 1}}, `"a.b"`},
		{"bootstrap parameters", "PUT", "/lwm2m/devices/" + dev + "/bootstrap", "lwm2m",
			map[string]any{"securityMode": "NO_SEC", "extra": map[string]any{"$where": 1}}, `"$where" (at extra > $where)`},
		{"alarm update", "PUT", "/alarm/alarms/" + al.ID, "alarm",
			map[string]any{"status": "ACKNOWLEDGED", "c8y_X": map[string]any{"$inc": 1}}, `"$inc"`},
		{"post-operations", "PUT", "/lwm2m/postoperations", "lwm2m",
			map[string]any{"commands": []any{}, "x": map[string]any{".": 1}}, `"."`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, e.do(tc.method, tc.path, "a", tc.body), tc.area, tc.says)
		})
	}
	t.Run("binary object part", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if err := mw.WriteField("object", `{"name":"fw.bin","c8y_X":{"$where":1}}`); err != nil {
			t.Fatal(err)
		}
		fw, err := mw.CreateFormFile("file", "fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write([]byte("image"))
		_ = mw.Close()
		req, err := http.NewRequest("POST", e.srv.URL+"/inventory/binaries", &buf)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.SetBasicAuth("a/admin", "a-pass")
		wantRefused(t, e.send(req), "inventory", `the part "object": member name "$where" (at c8y_X > $where)`)
	})
	mo := e.want(e.do("GET", "/inventory/managedObjects/"+dev, "a", nil), 200).body
	if _, ok := mo["c8y_X"]; ok {
		t.Fatalf("a refused update was stored: %v", mo)
	}
	if n := len(e.runner.calls()); n != 0 {
		t.Fatalf("%d refused operations reached the runner", n)
	}
	e.want(e.do("POST", "/inventory/managedObjects", "a", map[string]any{
		"name": "fine", "c8y_X": map[string]any{"a": []any{map[string]any{"b_c": 1, "d$": 2}}},
	}), 201)
}
