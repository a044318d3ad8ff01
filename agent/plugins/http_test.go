package plugins_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// c8yDecoder is a small decoder service with the Cumulocity decoder
// interface: it decodes a 2-byte little-endian temperature in 0.01 °C.
func c8yDecoder(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /decode", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Args           map[string]string `json:"args"`
			SourceDeviceID string            `json:"sourceDeviceId"`
			ServiceKey     string            `json:"serviceKey"`
			Value          string            `json:"value"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b, err := hex.DecodeString(req.Value)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case req.ServiceKey == "busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case req.ServiceKey == "garbage":
			fmt.Fprint(w, `{"measurements": "lots"`)
			return
		case req.ServiceKey == "badseverity":
			fmt.Fprint(w, `{"alarms":[{"type":"x","severity":"HUGE"}],"success":true}`)
			return
		case err != nil || len(b) != 2:
			fmt.Fprintf(w, `{"success":false,"message":"want 2 bytes, got %s"}`, req.Value)
			return
		}
		v := float64(int16(uint16(b[0])|uint16(b[1])<<8)) / 100
		fmt.Fprintf(w, `{
		  "measurements":[{"type":"c8y_Temperature","series":"c8y_Temperature","time":"2025-03-01T12:00:00.000Z",
		    "values":[{"seriesName":"T","unit":"C","value":%g}]}],
		  "events":[{"type":"c8y_Decoded","text":"from %s at %s","time":"2025-03-01T12:00:00Z","c8y_Frame":{"len":2}}],
		  "alarms":[{"type":"c8y_Hot","severity":"CRITICAL","text":"hot","status":"ACTIVE"}],
		  "dataFragments":[{"key":"c8y_Temp.last","value":"%g"},{"key":"c8y_Cfg","valueAsObject":{"a":1}}],
		  "success":true}`, v, req.SourceDeviceID, req.Args["resourcePath"], v)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestHTTPDecoderCumulocityInterface(t *testing.T) {
	srv := c8yDecoder(t)
	h := newHost(t, plugins.Spec{Name: "c8y", Kind: "decoder", URL: srv.URL + "/decode", Timeout: plugins.Duration(2 * time.Second)})
	ctx := context.Background()

	res, err := h.Decode(ctx, "c8y", plugins.DecodeRequest{ResourcePath: "/19/0/0", DeviceID: "4711", ServiceKey: "temp", Value: []byte{0x66, 0x08}})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if !res.Success || len(res.Measurements) != 1 {
		t.Fatalf("result %+v", res)
	}
	m := res.Measurements[0]
	if m.Type != "c8y_Temperature" || m.Fragment != "c8y_Temperature" || m.Series != "T" || m.Value != 21.5 || m.Unit != "C" || !m.Time.Equal(t0) {
		t.Errorf("measurement %+v", m)
	}
	if len(res.Events) != 1 || res.Events[0].Text != "from 4711 at /19/0/0" || res.Events[0].Fragments["c8y_Frame"] == nil || res.Events[0].Fragments["type"] != nil {
		t.Errorf("events %+v", res.Events)
	}
	if len(res.Alarms) != 1 || res.Alarms[0].Severity != sdk.SeverityCritical || res.Alarms[0].Status != sdk.StatusActive || len(res.Alarms[0].Fragments) != 0 {
		t.Errorf("alarms %+v", res.Alarms)
	}
	if len(res.DataFragments) != 2 || res.DataFragments[0].Value != "21.5" || fmt.Sprint(res.DataFragments[1].Value) != "map[a:1]" {
		t.Errorf("data fragments %+v", res.DataFragments)
	}

	tests := []struct {
		name      string
		req       plugins.DecodeRequest
		retryable bool
		badAnswer bool
		failed    bool
	}{
		{name: "decoder says no", req: plugins.DecodeRequest{ServiceKey: "temp", Value: []byte{1}}, failed: true},
		{name: "503 is retried", req: plugins.DecodeRequest{ServiceKey: "busy"}, retryable: true},
		{name: "garbage JSON", req: plugins.DecodeRequest{ServiceKey: "garbage"}, badAnswer: true},
		{name: "unknown severity", req: plugins.DecodeRequest{ServiceKey: "badseverity"}, badAnswer: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := h.Decode(ctx, "c8y", tc.req)
			if tc.failed {
				if err != nil || res.Success || res.Message == "" {
					t.Fatalf("got %+v, %v; want a failed result with a message", res, err)
				}
				return
			}
			if err == nil || plugins.IsRetryable(err) != tc.retryable || errors.Is(err, sdk.ErrBadAnswer) != tc.badAnswer {
				t.Fatalf("err = %v; want retryable %v, bad answer %v", err, tc.retryable, tc.badAnswer)
			}
		})
	}

	batch, err := h.DecodeBatch(ctx, "c8y", []plugins.DecodeRequest{{Value: []byte{100, 0}}, {Value: []byte{200, 0}}})
	if err != nil || len(batch) != 2 || batch[1].Measurements[0].Value != 2 {
		t.Fatalf("batch %+v, %v", batch, err)
	}

	srv.Close()
	if _, err := h.Decode(ctx, "c8y", plugins.DecodeRequest{Value: []byte{1, 0}}); !plugins.IsRetryable(err) {
		t.Errorf("decoder down: %v, want retryable", err)
	}
}
