package api

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func cmdOp(id, text string) store.Operation {
	return store.Operation{ID: id, HasCommand: true, Text: text, Status: store.OpPending}
}

func TestOpTargets(t *testing.T) {
	tests := []struct {
		name string
		op   store.Operation
		want []string
	}{
		{"resource", cmdOp("1", "read /3/0/0"), []string{"/3/0"}},
		{"resource instance", cmdOp("1", "write /3/0/14 +02:00"), []string{"/3/0"}},
		{"instance", cmdOp("1", "read /3303/1"), []string{"/3303/1"}},
		{"object", cmdOp("1", "read /3303"), []string{"/3303"}},
		{"create at object level", cmdOp("1", `create /3303 {"5750":"x"}`), []string{"/3303"}},
		{"composite read, each instance once", cmdOp("1", "cread /3/0/0 /3/0/1 /3303/0/5700 /4"), []string{"/3/0", "/3303/0", "/4"}},
		{"composite write", cmdOp("1", `cwrite {"/3/0/14":"+01:00","/1/0/1":60}`), []string{"/1/0", "/3/0"}},
		{"writeb", cmdOp("1", "writeb /5/0/0 binary:12"), []string{"/5/0"}},
		{"fwupdate", cmdOp("1", "fwupdate fw;1.0;http://x/fw.bin"), []string{"/5/0"}},
		{"c8y_Firmware", store.Operation{Fragments: map[string]any{"c8y_Firmware": map[string]any{"name": "fw"}}}, []string{"/5/0"}},
		{"no path", cmdOp("1", "serialization TLV"), nil},
		{"malformed text", cmdOp("1", "reed /3/0"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range opTargets(tc.op) {
				got = append(got, p.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("targets %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlaceOps(t *testing.T) {
	view := func() map[uint16]*objView {
		return map[uint16]*objView{
			3:    {instances: map[uint16]*instView{0: {}}},
			3303: {instances: map[uint16]*instView{0: {}, 1: {}}},
		}
	}
	var queued []store.Operation
	for i := range 15 {
		queued = append(queued, cmdOp(fmt.Sprint(100+i), "read /3303/0/5700"))
	}
	queued = append(queued,
		cmdOp("200", "cread /3/0/0 /3303/1/5700 /3303/1/5701"),
		cmdOp("201", "read /3303"),
		cmdOp("202", "delete /3303/7"), // an instance the view does not have
		cmdOp("203", "read /6/0"),      // an object it does not have
	)
	ended := []store.Operation{
		{ID: "90", HasCommand: true, Text: "write /3/0/14 +01:00", Status: store.OpSuccessful, Result: "Wrote /3/0/14 = +01:00"},
		{ID: "80", HasCommand: true, Text: "read /3303/1", Status: store.OpFailed, FailureReason: "4.04 Not Found"},
	}
	objs := view()
	placeOps(objs, queued, ended)

	ids := func(ops []store.Operation) []string {
		var out []string
		for _, op := range ops {
			out = append(out, op.ID)
		}
		return out
	}
	tests := []struct {
		name          string
		l             *opLists
		count         int
		pending, hist []string
	}{
		{"/3303/0: capped list, full count", &objs[3303].instances[0].ops, 15,
			[]string{"100", "101", "102", "103", "104", "105", "106", "107", "108", "109"}, nil},
		{"/3303/1: composite once, and history", &objs[3303].instances[1].ops, 1, []string{"200"}, []string{"80"}},
		{"/3/0: composite, and history", &objs[3].instances[0].ops, 1, []string{"200"}, []string{"90"}},
		{"/3303: object level and the missing instance", &objs[3303].ops, 2, []string{"201", "202"}, nil},
		{"/3: nothing at object level", &objs[3].ops, 0, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.l.pendingCount != tc.count || !slices.Equal(ids(tc.l.pending), tc.pending) || !slices.Equal(ids(tc.l.history), tc.hist) {
				t.Fatalf("count %d pending %v history %v; want %d %v %v",
					tc.l.pendingCount, ids(tc.l.pending), ids(tc.l.history), tc.count, tc.pending, tc.hist)
			}
		})
	}
	if _, ok := objs[6]; ok {
		t.Fatal("an operation on an object the device does not have added it to the view")
	}
	j := objs[3303].instances[1].ops.json()
	h := j["history"].([]map[string]any)
	if len(h) != 1 || h[0]["failureReason"] != "4.04 Not Found" || h[0]["status"] != "FAILED" || h[0]["text"] != "read /3303/1" {
		t.Fatalf("history JSON %v", h)
	}
	if _, ok := h[0]["result"]; ok {
		t.Fatalf("a failed operation has a result: %v", h[0])
	}
}
