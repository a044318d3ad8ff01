package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// hostileRequest is one request of the hostile tenant, with what its
// answer must say.
type hostileRequest struct {
	name, method, path, contentType string
	body                            []byte
	code                            int
	says                            string // in the answer's message: the limit and its setting
}

// hostileBodies are the bodies of the adversarial review: JSON nested
// 10,000 deep, a document of 300,000 empty objects, a 4.5 MB device
// protocol upload of 330 objects and a 63 MB registration file of
// separators.
func hostileBodies() []hostileRequest {
	deep := `{"name":"deep","c8y_Deep":` + strings.Repeat(`{"a":`, 10_000) + "1" + strings.Repeat("}", 10_000) + "}"
	wide := `{"name":"wide","c8y_Wide":[` + strings.Repeat("{},", 299_999) + "{}]}"
	var many strings.Builder
	many.WriteString(`{"name":"many","c8y_Many":{`)
	for i := range 60_000 {
		if i > 0 {
			many.WriteByte(',')
		}
		fmt.Fprintf(&many, `"k%d":0`, i)
	}
	many.WriteString("}}")
	return []hostileRequest{
		{"deep JSON", "POST", "/inventory/managedObjects", "application/json", []byte(deep), 422, "--max-json-depth"},
		{"300,000 empty objects", "POST", "/inventory/managedObjects", "application/json", []byte(wide), 422, "--max-json-array"},
		{"60,000 members", "PUT", "/inventory/managedObjects/{device}", "application/json", []byte(many.String()), 422, "--max-json-members"},
		{"4.5 MB DDF", "POST", "/lwm2m/deviceprotocols", "application/xml", bigDDF(330, 13_500), 413, "--max-ddf-size"},
		{"DDF of 330 objects", "POST", "/lwm2m/deviceprotocols", "application/xml", bigDDF(330, 1000), 422, "--max-ddf-objects"},
		{"63 MB of separators", "POST", "/devicecontrol/bulkNewDeviceRequests", "text/csv", bytes.Repeat([]byte(";"), 63<<20), 422, "--max-csv-fields"},
	}
}

// bigDDF is a valid DDF document of n objects of about size bytes each.
func bigDDF(n, size int) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n<LWM2M>\n")
	desc := strings.Repeat("d", max(size-900, 0))
	for i := range n {
		id := 30000 + i
		fmt.Fprintf(&b, `<Object ObjectType="MODefinition"><Name>Hostile %d</Name><Description1>%s</Description1><ObjectID>%d</ObjectID>`+
			`<ObjectURN>urn:oma:lwm2m:x:%d</ObjectURN><MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory><Resources>`+
			`<Item ID="0"><Name>Value</Name><Operations>R</Operations><MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory>`+
			`<Type>Float</Type><RangeEnumeration></RangeEnumeration><Units></Units><Description>v</Description></Item>`+
			`</Resources><Description2></Description2></Object>`+"\n", id, desc, id, id)
	}
	b.WriteString("</LWM2M>\n")
	return b.Bytes()
}

// rawCall makes one request and returns the status and the answer's
// message; it is safe in any goroutine.
func rawCall(client *http.Client, base, user, pass, method, path, contentType string, body []byte) (int, string, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.SetBasicAuth(user, pass)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	var msg struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(data, &msg)
	return resp.StatusCode, msg.Message, nil
}

// storedAtLimits is how many documents at the limits the hostile tenant
// stores before its load.
const storedAtLimits = 100

// elements is a JSON array of n elements.
func elements(n int, elem string) string {
	return "[" + strings.TrimSuffix(strings.Repeat(elem+",", n), ",") + "]"
}

// latencies are the durations of one kind of request.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (l latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), l.quantile(0.5).Round(time.Millisecond),
		l.quantile(0.99).Round(time.Millisecond), l.quantile(1).Round(time.Millisecond))
}

// While one tenant sends the hostile bodies of the adversarial review
// from three connections at once, beside documents it stored as large as
// the limits allow, another tenant's device list and protocol list stay
// fast; every hostile request is refused with the status and a message
// naming the limit's setting, and counted on /metrics. The figures are
// logged: the victim's latencies alone and beside the load, and the
// hostile requests' answer times.
func TestAdversarialFairness(t *testing.T) {
	if testing.Short() {
		t.Skip("seconds of hostile load")
	}
	cfg := config.Default()
	cfg.CoAPAddr, cfg.CoAPSAddr, cfg.BootstrapAddr, cfg.BootstrapSAddr = "127.0.0.1:0", "", "", ""
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = adminPassword
	cfg.BundledPlugins = config.BundledInProcess
	h, _ := runAgent(t, cfg)

	const hostileUser, hostilePass = "hostile/admin", "Hostile-pass-1234!"
	const victimUser, victimPass = "victim/admin", "Victim-pass-1234!"
	h.createTenant("hostile", "admin", hostilePass)
	h.createTenant("victim", "admin", victimPass)
	for i := range 20 {
		body := map[string]any{"name": fmt.Sprintf("victim device %d", i), "c8y_IsDevice": map[string]any{}}
		if code := h.callAs(victimUser, victimPass, "POST", "/inventory/managedObjects", body, nil); code != 201 {
			t.Fatalf("victim device: HTTP %d", code)
		}
	}
	var dev struct{ ID string }
	if code := h.callAs(hostileUser, hostilePass, "POST", "/inventory/managedObjects", map[string]any{"name": "h"}, &dev); code != 201 {
		t.Fatalf("hostile device: HTTP %d", code)
	}
	// A connection the client dialled but never used counts as busy to
	// the agent's shutdown for 5 s, its whole grace: the clients close
	// theirs before the agent stops.
	client := &http.Client{Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	// documents within every limit, but as large as they allow: other
	// tenants' lists must not read them
	atLimits := `{"name":"full","c8y_A":` + elements(9_990, "{}") + `,"c8y_B":` + elements(9_990, "{}") + "}"
	start := time.Now()
	for range storedAtLimits {
		code, msg, err := rawCall(client, h.base, hostileUser, hostilePass, "POST", "/inventory/managedObjects", "application/json", []byte(atLimits))
		if err != nil || code != 201 {
			t.Fatalf("a document within the limits: HTTP %d %s: %v", code, msg, err)
		}
	}
	t.Logf("hostile tenant stored %d documents of 20,000 values (%d bytes) in %v", storedAtLimits, len(atLimits), time.Since(start).Round(time.Millisecond))
	hostile := hostileBodies()
	for i := range hostile {
		hostile[i].path = strings.ReplaceAll(hostile[i].path, "{device}", dev.ID)
	}

	victimCalls := []struct{ name, path string }{
		{"device list", "/inventory/managedObjects?pageSize=20&fragmentType=c8y_IsDevice"},
		{"protocol list", "/lwm2m/deviceprotocols?pageSize=20"},
	}
	measure := func(until func() bool) (map[string]latencies, error) {
		got := map[string]latencies{}
		for !until() {
			for _, c := range victimCalls {
				start := time.Now()
				code, msg, err := rawCall(client, h.base, victimUser, victimPass, "GET", c.path, "", nil)
				if err != nil || code != 200 {
					return got, fmt.Errorf("victim %s: HTTP %d %s: %v", c.name, code, msg, err)
				}
				got[c.name] = append(got[c.name], time.Since(start))
			}
		}
		return got, nil
	}

	// the victim alone, beside the hostile tenant's stored documents
	n, quietUntil := 0, time.Now().Add(5*time.Second)
	quiet, err := measure(func() bool { n++; return n > 30 || time.Now().After(quietUntil) })
	if err != nil {
		t.Fatal(err)
	}

	// the victim beside three connections of hostile requests
	const hostileFor = 10 * time.Second
	deadline := time.Now().Add(hostileFor)
	type outcome struct {
		req  int
		code int
		msg  string
		took time.Duration
		err  error
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
	)
	done := make(chan struct{})
	for g := range 3 {
		wg.Go(func() {
			for i := g; time.Now().Before(deadline); i++ {
				r := hostile[i%len(hostile)]
				start := time.Now()
				code, msg, err := rawCall(client, h.base, hostileUser, hostilePass, r.method, r.path, r.contentType, r.body)
				mu.Lock()
				outcomes = append(outcomes, outcome{i % len(hostile), code, msg, time.Since(start), err})
				mu.Unlock()
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	loaded, err := measure(func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	<-done
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range victimCalls {
		t.Logf("victim %s: alone %v; beside the hostile tenant %v", c.name, quiet[c.name], loaded[c.name])
	}
	perReq := make([]latencies, len(hostile))
	wrong := make([]int, len(hostile))
	for _, o := range outcomes {
		r := hostile[o.req]
		perReq[o.req] = append(perReq[o.req], o.took)
		if o.err == nil && o.code == r.code && strings.Contains(o.msg, r.says) {
			continue
		}
		if wrong[o.req]++; wrong[o.req] == 1 {
			t.Errorf("hostile %s: HTTP %d %.200q (%v), want %d naming %s", r.name, o.code, o.msg, o.err, r.code, r.says)
		}
	}
	for i, r := range hostile {
		t.Logf("hostile %s (%d bytes): %d of %d refused as wanted, answered in %v", r.name, len(r.body), len(perReq[i])-wrong[i], len(perReq[i]), perReq[i])
		if len(perReq[i]) == 0 {
			t.Errorf("hostile %s was never sent", r.name)
		}
		if wrong[i] > 1 {
			t.Errorf("hostile %s: %d of %d answers not the refusal", r.name, wrong[i], len(perReq[i]))
		}
	}
	// On a quiet two-core machine the victim's lists take a few
	// milliseconds alone and at most a few hundred beside the refused
	// load; unrefused, the same load made them take 2-5 s, and the
	// stored documents alone 4 s when other tenants' lists read them.
	const bound = 2 * time.Second
	for _, c := range victimCalls {
		for _, m := range []struct {
			when string
			l    latencies
		}{{"alone", quiet[c.name]}, {"beside the hostile tenant", loaded[c.name]}} {
			if worst := m.l.quantile(1); worst > bound {
				t.Errorf("victim %s took up to %v %s (bound %v)", c.name, worst, m.when, bound)
			}
		}
	}

	// the refusals are on /metrics by cause
	resp, err := client.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, cause := range []string{"json_depth", "json_array", "json_members", "body_size", "ddf_objects", "csv_fields"} {
		if !regexp.MustCompile(`lwm2m_agent_refused_total\{cause="` + cause + `"\} [1-9]`).Match(metrics) {
			t.Errorf("/metrics counts no refusal of cause %s", cause)
		}
	}
}
