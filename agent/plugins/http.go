package plugins

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// maxHTTPAnswer bounds a decoder's answer: a decoder that streams without
// end must not fill the agent's memory.
const maxHTTPAnswer = 4 << 20

// HTTPDecoder calls a decoder with the Cumulocity decoder interface: POST
// {"args":{"resourcePath":...},"sourceDeviceId","serviceKey","value":"<hex>"}
// to its URL, answered by {"measurements","events","alarms",
// "dataFragments","success","message"}. Decoders written for Cumulocity
// run with the agent unchanged.
type HTTPDecoder struct {
	url    string
	client *http.Client
}

var _ sdk.DecoderClient = (*HTTPDecoder)(nil)

// NewHTTPDecoder returns a decoder client of url (the full URL of the
// decode endpoint, ".../decode"); client nil is http.DefaultClient.
// Timeouts come from the context of each call.
func NewHTTPDecoder(url string, client *http.Client) *HTTPDecoder {
	if client == nil {
		client = http.DefaultClient
	}
	return &HTTPDecoder{url: url, client: client}
}

type c8yDecodeRequest struct {
	Args           map[string]string `json:"args"`
	SourceDeviceID string            `json:"sourceDeviceId"`
	ServiceKey     string            `json:"serviceKey"`
	Value          string            `json:"value"`
}

type c8yMeasurementValue struct {
	SeriesName string   `json:"seriesName"`
	Unit       string   `json:"unit"`
	Value      *float64 `json:"value"`
}

type c8yMeasurement struct {
	Type   string                `json:"type"`
	Series string                `json:"series"`
	Time   string                `json:"time"`
	Values []c8yMeasurementValue `json:"values"`
}

type c8yDataFragment struct {
	Key           string          `json:"key"`
	Value         *string         `json:"value"`
	ValueAsObject json.RawMessage `json:"valueAsObject"`
}

type c8yDecodeResult struct {
	Measurements  []c8yMeasurement  `json:"measurements"`
	Events        []map[string]any  `json:"events"`
	Alarms        []map[string]any  `json:"alarms"`
	DataFragments []c8yDataFragment `json:"dataFragments"`
	Success       *bool             `json:"success"`
	Message       string            `json:"message"`
}

// Decode posts one value.
func (d *HTTPDecoder) Decode(ctx context.Context, req sdk.DecodeRequest) (sdk.DecodeResult, error) {
	args := map[string]string{"resourcePath": req.ResourcePath}
	for k, v := range req.Args {
		if k != "resourcePath" {
			args[k] = v
		}
	}
	body, err := json.Marshal(c8yDecodeRequest{Args: args, SourceDeviceID: req.DeviceID, ServiceKey: req.ServiceKey, Value: hex.EncodeToString(req.Value)})
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(body))
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(hr)
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: %w: %w", sdk.ErrTemporary, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPAnswer+1))
	if err != nil {
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: read answer: %w: %w", sdk.ErrTemporary, err)
	}
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: %w: status %s", sdk.ErrTemporary, resp.Status)
	case resp.StatusCode >= 300:
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: status %s: %.200s", resp.Status, raw)
	}
	if len(raw) > maxHTTPAnswer {
		return sdk.DecodeResult{}, fmt.Errorf("decode over http: %w: answer larger than %d bytes", sdk.ErrBadAnswer, maxHTTPAnswer)
	}
	return parseC8yResult(raw)
}

// DecodeBatch posts the values one after another: the interface has no
// batch. A value the decoder refuses or answers badly fails alone (a
// result with Success false); a failure that may pass fails the batch, to
// be retried.
func (d *HTTPDecoder) DecodeBatch(ctx context.Context, reqs []sdk.DecodeRequest) ([]sdk.DecodeResult, error) {
	out := make([]sdk.DecodeResult, len(reqs))
	for i, r := range reqs {
		res, err := d.Decode(ctx, r)
		switch {
		case err == nil:
			out[i] = res
		case errors.Is(err, sdk.ErrTemporary) || ctx.Err() != nil:
			return nil, fmt.Errorf("request %d: %w", i, err)
		default:
			out[i] = sdk.DecodeResult{Message: err.Error()}
		}
	}
	return out, nil
}

func bad(format string, a ...any) error {
	return fmt.Errorf("decode over http: %w: %s", sdk.ErrBadAnswer, fmt.Sprintf(format, a...))
}

func parseC8yResult(raw []byte) (sdk.DecodeResult, error) {
	var r c8yDecodeResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return sdk.DecodeResult{}, bad("not a decoder result: %v", err)
	}
	// Cumulocity's DecoderResult defaults success to true
	res := sdk.DecodeResult{Success: r.Success == nil || *r.Success, Message: r.Message}
	for i, m := range r.Measurements {
		if m.Type == "" && m.Series == "" {
			return sdk.DecodeResult{}, bad("measurement %d has neither type nor series", i)
		}
		t, err := c8yTime(m.Time)
		if err != nil {
			return sdk.DecodeResult{}, bad("measurement %d: %v", i, err)
		}
		for j, v := range m.Values {
			if v.SeriesName == "" || v.Value == nil || math.IsNaN(*v.Value) || math.IsInf(*v.Value, 0) {
				return sdk.DecodeResult{}, bad("measurement %d value %d needs a seriesName and a number", i, j)
			}
			res.Measurements = append(res.Measurements, sdk.Measurement{
				Type: m.Type, Fragment: m.Series, Series: v.SeriesName, Value: *v.Value, Unit: v.Unit, Time: t,
			})
		}
	}
	for i, e := range r.Events {
		ev := sdk.Event{}
		var err error
		if ev.Type, ev.Text, ev.Source, ev.Time, ev.Fragments, err = c8yCommon(e); err != nil {
			return sdk.DecodeResult{}, bad("event %d: %v", i, err)
		}
		res.Events = append(res.Events, ev)
	}
	for i, a := range r.Alarms {
		al := sdk.Alarm{Severity: sdk.SeverityMajor, Status: sdk.StatusActive}
		var err error
		if al.Type, al.Text, al.Source, al.Time, al.Fragments, err = c8yCommon(a); err != nil {
			return sdk.DecodeResult{}, bad("alarm %d: %v", i, err)
		}
		for _, f := range []struct {
			key  string
			dst  *string
			okay []string
		}{
			{"severity", &al.Severity, []string{sdk.SeverityCritical, sdk.SeverityMajor, sdk.SeverityMinor, sdk.SeverityWarning}},
			{"status", &al.Status, []string{sdk.StatusActive, sdk.StatusAcknowledged, sdk.StatusCleared}},
		} {
			v, ok := al.Fragments[f.key]
			if !ok {
				continue
			}
			delete(al.Fragments, f.key)
			s, _ := v.(string)
			valid := false
			for _, o := range f.okay {
				valid = valid || s == o
			}
			if !valid {
				return sdk.DecodeResult{}, bad("alarm %d: %s %v is not one of %v", i, f.key, v, f.okay)
			}
			*f.dst = s
		}
		if len(al.Fragments) == 0 {
			al.Fragments = nil
		}
		res.Alarms = append(res.Alarms, al)
	}
	for i, f := range r.DataFragments {
		if f.Key == "" {
			return sdk.DecodeResult{}, bad("data fragment %d has no key", i)
		}
		df := sdk.DataFragment{Key: f.Key}
		switch {
		case len(f.ValueAsObject) > 0 && string(f.ValueAsObject) != "null":
			if err := json.Unmarshal(f.ValueAsObject, &df.Value); err != nil {
				return sdk.DecodeResult{}, bad("data fragment %q: %v", f.Key, err)
			}
		case f.Value != nil:
			df.Value = *f.Value
		default:
			return sdk.DecodeResult{}, bad("data fragment %q has no value", f.Key)
		}
		res.DataFragments = append(res.DataFragments, df)
	}
	return res, nil
}

// c8yCommon takes the standard properties of an event or alarm out of its
// JSON object; what remains are its custom fragments.
func c8yCommon(m map[string]any) (typ, text, source string, t time.Time, rest map[string]any, err error) {
	rest = make(map[string]any, len(m))
	for k, v := range m {
		rest[k] = v
	}
	str := func(k string) string {
		s, _ := rest[k].(string)
		delete(rest, k)
		return s
	}
	typ, text = str("type"), str("text")
	if typ == "" {
		return "", "", "", time.Time{}, nil, fmt.Errorf("no type")
	}
	if src, ok := rest["source"].(map[string]any); ok {
		source, _ = src["id"].(string)
	}
	delete(rest, "source")
	if t, err = c8yTime(str("time")); err != nil {
		return "", "", "", time.Time{}, nil, err
	}
	for _, k := range []string{"id", "self", "creationTime", "lastUpdated"} {
		delete(rest, k)
	}
	return typ, text, source, t, rest, nil
}

func c8yTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q is not RFC 3339", s)
	}
	return t, nil
}

// httpBackend is a configured HTTP decoder.
type httpBackend struct {
	d      *HTTPDecoder
	silent silence
}

func newHTTPBackend(s Spec) *httpBackend {
	// one transport per decoder, so a slow decoder's connections do not
	// starve another's
	return &httpBackend{d: NewHTTPDecoder(s.URL, &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()})}
}

func (b *httpBackend) impl() (any, error)  { return b.d, nil }
func (b *httpBackend) failed(timeout bool) { b.silent.failed(timeout) }
func (b *httpBackend) succeeded()          { b.silent.succeeded() }
func (b *httpBackend) up() bool            { return !b.silent.now() }
func (b *httpBackend) pid() int            { return 0 }
func (b *httpBackend) via() string         { return "http" }
func (b *httpBackend) close()              { b.d.client.CloseIdleConnections() }
