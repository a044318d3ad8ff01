package api

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A sync writes the reference's value as a shell command; typed by the
// definition again, it must be the same value.
func TestWriteCommandRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		path string
		v    node.Value
		cmd  string
	}{
		{"string", "/3/0/14", node.String("+02:00"), "write /3/0/14 +02:00"},
		{"string with spaces inside", "/3/0/15", node.String("Central European Time"), "write /3/0/15 Central European Time"},
		{"empty string", "/3/0/15", node.String(""), `cwrite {"/3/0/15":""}`},
		{"surrounding spaces", "/3/0/15", node.String(" x "), `cwrite {"/3/0/15":" x "}`},
		{"several lines", "/3/0/15", node.String("a\nb"), `cwrite {"/3/0/15":"a\nb"}`},
		{"integer", "/1/0/1", node.Int(300), "write /1/0/1 300"},
		{"time", "/3/0/13", node.TimeValue(time.Unix(1714564800, 0).UTC()), "write /3/0/13 1714564800"},
		{"boolean", "/1/0/6", node.Bool(true), "write /1/0/6 1"},
		{"object link", "/1/0/10", node.Link(11, 2), "write /1/0/10 11:2"},
		{"opaque", "/5/0/0", node.Opaque([]byte{0xca, 0xfe}), "write /5/0/0 cafe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := node.MustParsePath(tt.path)
			line := writeCommand(p, tt.v)
			if line != tt.cmd {
				t.Errorf("command %q, want %q", line, tt.cmd)
			}
			cmd, err := shell.Parse(line)
			if err != nil {
				t.Fatalf("parse %q: %v", line, err)
			}
			recs, err := ops.Written(model.Core(), "t", cmd, node.Path{})
			if err != nil || len(recs) != 1 || recs[0].Path != p || !recs[0].Value.Equal(tt.v) {
				t.Errorf("written %v %v, want %v %+v", recs, err, p, tt.v)
			}
		})
	}
}

func TestNewInstance(t *testing.T) {
	links := []string{"</3303/0>", "</3303/1>;ver=1.1", "/3303/3", "</3>", "</3/0>"}
	for _, tt := range []struct{ in, want node.Path }{
		{node.ObjectPath(3303), node.InstancePath(3303, 2)},
		{node.ObjectPath(3), node.InstancePath(3, 1)},
		{node.ObjectPath(6), node.InstancePath(6, 0)},
	} {
		if got := newInstance(links, tt.in); got != tt.want {
			t.Errorf("newInstance(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSameValue(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	rv := func(typ string, v any) *store.ResourceValue { return &store.ResourceValue{Type: typ, Value: v} }
	for _, tt := range []struct {
		name string
		x, y *store.ResourceValue
		same bool
	}{
		{"equal strings", rv("STRING", "a"), rv("STRING", "a"), true},
		{"different strings", rv("STRING", "a"), rv("STRING", "b"), false},
		{"integer kinds from the store", rv("INTEGER", int64(5)), rv("INTEGER", int32(5)), true},
		{"float and integer differ", rv("FLOAT", 1.0), rv("INTEGER", int64(1)), false},
		{"one instant in two zones", rv("TIME", at), rv("TIME", at.In(time.FixedZone("x", 3600))), true},
		{"only one side", rv("STRING", "a"), nil, false},
		{"neither", nil, nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameValue(tt.x, tt.y); got != tt.same {
				t.Errorf("sameValue = %v, want %v", got, tt.same)
			}
		})
	}
}
