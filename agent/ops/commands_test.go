package ops

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

func TestFreeInstance(t *testing.T) {
	reg := lwm2m.Registration{Objects: []lwm2m.ObjectLink{
		{Path: node.InstancePath(3303, 0)}, {Path: node.InstancePath(3303, 1)}, {Path: node.InstancePath(3303, 3)},
		{Path: node.ObjectPath(5)}, {Path: node.InstancePath(3, 0)},
	}}
	tests := []struct {
		in, want node.Path
	}{
		{node.ObjectPath(3303), node.InstancePath(3303, 2)},
		{node.ObjectPath(5), node.InstancePath(5, 0)},
		{node.ObjectPath(6), node.InstancePath(6, 0)},
		{node.InstancePath(3303, 7), node.InstancePath(3303, 7)},
	}
	for _, tt := range tests {
		if got := freeInstance(reg, tt.in); got != tt.want {
			t.Errorf("freeInstance(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// Values of resources the agent has no definition for are typed by what
// the JSON says; a write's text stays text (sent as text/plain).
func TestValuesWithoutDefinition(t *testing.T) {
	defs := model.Core()
	cmd, err := shell.Parse(`create /33605 {"12": 5, "13": -7, "14": 2.5, "15": 1e3, "16": true, "17": "5", "18": 18446744073709551615, "19": {"0": 1, "1": "x"}}`)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := Written(defs, "t1", cmd, node.InstancePath(33605, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []node.Record{
		{Path: node.ResourcePath(33605, 0, 12), Value: node.Int(5)},
		{Path: node.ResourcePath(33605, 0, 13), Value: node.Int(-7)},
		{Path: node.ResourcePath(33605, 0, 14), Value: node.Float(2.5)},
		{Path: node.ResourcePath(33605, 0, 15), Value: node.Float(1000)},
		{Path: node.ResourcePath(33605, 0, 16), Value: node.Bool(true)},
		{Path: node.ResourcePath(33605, 0, 17), Value: node.String("5")},
		{Path: node.ResourcePath(33605, 0, 18), Value: node.Uint(18446744073709551615)},
		{Path: node.ResourceInstancePath(33605, 0, 19, 0), Value: node.Int(1)},
		{Path: node.ResourceInstancePath(33605, 0, 19, 1), Value: node.String("x")},
	}
	if len(recs) != len(want) {
		t.Fatalf("records %v", recs)
	}
	for i := range want {
		if recs[i].Path != want[i].Path || !recs[i].Value.Equal(want[i].Value) {
			t.Errorf("record %d = %v %v %q, want %v %v %q", i, recs[i].Path, recs[i].Value.Type, recs[i].Value.Text(), want[i].Path, want[i].Value.Type, want[i].Value.Text())
		}
	}

	cmd, err = shell.Parse(`cwrite {"/33605/0/12": 5, "/33605/0/17": "5", "/3/0/14": "+01:00"}`)
	if err != nil {
		t.Fatal(err)
	}
	recs, err = Written(defs, "t1", cmd, node.Root)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 || !recs[1].Value.Equal(node.Int(5)) || !recs[2].Value.Equal(node.String("5")) || !recs[0].Value.Equal(node.String("+01:00")) {
		t.Errorf("cwrite records %v", recs)
	}
	// with a definition the definition decides: a string for an integer
	for _, text := range []string{`cwrite {"/1/0/1": "300"}`, `cwrite {"/1/0/1": 300}`} {
		cmd, _ := shell.Parse(text)
		recs, err := Written(defs, "t1", cmd, node.Root)
		if err != nil || len(recs) != 1 || !recs[0].Value.Equal(node.Int(300)) {
			t.Errorf("%s: %v, %v", text, recs, err)
		}
	}

	v, typed, err := typedText(defs, "t1", node.ResourcePath(33605, 0, 12), "5")
	if err != nil || typed || !v.Equal(node.String("5")) {
		t.Errorf("write without definition: %v %v %v, want the string untyped", v, typed, err)
	}
	v, typed, err = typedText(defs, "t1", node.ResourcePath(1, 0, 1), "300")
	if err != nil || !typed || !v.Equal(node.Int(300)) {
		t.Errorf("write with definition: %v %v %v", v, typed, err)
	}
}

func TestCreateRecordsTypedByDefinition(t *testing.T) {
	r := New(Config{Models: model.Core()})
	var fields map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"5700": 21.5, "5701": "Cel", "5601": "-4"}`))
	dec.UseNumber()
	if err := dec.Decode(&fields); err != nil {
		t.Fatal(err)
	}
	recs, err := r.createRecords("t1", node.InstancePath(3303, 1), fields)
	if err != nil {
		t.Fatal(err)
	}
	want := []node.Record{
		{Path: node.ResourcePath(3303, 1, 5601), Value: node.Float(-4)},
		{Path: node.ResourcePath(3303, 1, 5700), Value: node.Float(21.5)},
		{Path: node.ResourcePath(3303, 1, 5701), Value: node.String("Cel")},
	}
	if len(recs) != len(want) {
		t.Fatalf("records %v", recs)
	}
	for i := range want {
		if recs[i].Path != want[i].Path || !recs[i].Value.Equal(want[i].Value) {
			t.Errorf("record %d = %v %+v, want %v %+v", i, recs[i].Path, recs[i].Value, want[i].Path, want[i].Value)
		}
	}
	// a multiple resource takes {"<riid>": value}
	recs, err = r.createRecords("t1", node.InstancePath(3, 1), map[string]any{"7": map[string]any{"0": json.Number("3800"), "1": json.Number("5000")}})
	if err != nil || len(recs) != 2 || recs[1].Path != node.ResourceInstancePath(3, 1, 7, 1) || recs[1].Value.Int != 5000 {
		t.Errorf("multiple resource: %v, %v", recs, err)
	}
	for name, bad := range map[string]map[string]any{
		"not a resource id":  {"x": "1"},
		"not a float":        {"5700": "warm"},
		"object value":       {"5700": []any{1}},
		"bad instance id":    {"7": map[string]any{"-1": "1"}},
		"executable written": {"5605": "1"},
	} {
		if _, err := r.createRecords("t1", node.InstancePath(3303, 1), bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestFormatRecords(t *testing.T) {
	r := New(Config{Models: model.Core()})
	got := r.formatRecords("t1", node.InstancePath(3, 0), []node.Record{
		{Path: node.ResourcePath(3, 0, 0), Value: node.String("ACME")},
		{Path: node.ResourcePath(3, 0, 13), Value: node.TimeValue(time.Unix(1700000000, 0))},
		{Path: node.ResourcePath(3, 0, 9999), Value: node.Opaque([]byte{1, 2})},
	})
	want := "/3/0/0 (Manufacturer) = ACME\n/3/0/13 (Current Time) = 2023-11-14T22:13:20Z\n/3/0/9999 = 0102"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := r.formatRecords("t1", node.InstancePath(3, 0), nil); got != "/3/0: no value" {
		t.Errorf("empty: %q", got)
	}
}

func TestFailureReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("read /3/0: %w", &lwm2m.ResponseError{Code: codes.NotFound}), "4.04"},
		{fmt.Errorf("read /3/0: %w", lwm2m.ErrTimeout), "timeout"},
		{fmt.Errorf("read /3/0: %w", lwm2m.ErrNotRegistered), "not registered"},
		{errors.New("other"), "other"},
	} {
		if got := FailureReason(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("FailureReason(%v) = %q, want it to contain %q", tt.err, got, tt.want)
		}
	}
}

func TestWrittenTypedByDefinition(t *testing.T) {
	defs := model.Core()
	parse := func(line string) shell.Command {
		t.Helper()
		c, err := shell.Parse(line)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		line string
		want []node.Record
		err  string
	}{
		{"write /3/0/14 +02:00", []node.Record{{Path: node.ResourcePath(3, 0, 14), Value: node.String("+02:00")}}, ""},
		{"write /1/0/1 300", []node.Record{{Path: node.ResourcePath(1, 0, 1), Value: node.Int(300)}}, ""},
		{`cwrite {"/3/0/15": "Europe/Berlin", "/1/0/1": 60}`, []node.Record{
			{Path: node.ResourcePath(1, 0, 1), Value: node.Int(60)},
			{Path: node.ResourcePath(3, 0, 15), Value: node.String("Europe/Berlin")},
		}, ""},
		{`create /3303 {"5700": 21.5, "5750": "kitchen"}`, []node.Record{
			{Path: node.ResourcePath(3303, 2, 5700), Value: node.Float(21.5)},
			{Path: node.ResourcePath(3303, 2, 5750), Value: node.String("kitchen")},
		}, ""},
		{"writeb /5/0/0 0a0b", []node.Record{{Path: node.ResourcePath(5, 0, 0), Value: node.Opaque([]byte{10, 11})}}, ""},
		{"read /3/0", nil, ""},
		{"write /1/0/1 soon", nil, `write /1/0/1: "soon" is not an integer`},
		{"write /3/0/4 1", nil, "write /3/0/4: resource is executable, not writable"},
		{`create /3303 {"5700": "warm"}`, nil, "create /3303: resource 5700"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := Written(defs, "t1", parse(tt.line), node.InstancePath(3303, 2))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("records %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].Path != tt.want[i].Path || !got[i].Value.Equal(tt.want[i].Value) {
					t.Errorf("record %d = %v %+v, want %v %+v", i, got[i].Path, got[i].Value, tt.want[i].Path, tt.want[i].Value)
				}
			}
		})
	}
}
