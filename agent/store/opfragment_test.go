package store_test

import (
	"errors"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// TestSetOperationFragment checks that a fragment set on an operation is
// read back with it (what a firmware update resumes from after a
// restart), and that the fixed members and other tenants' operations are
// out of its reach.
func TestSetOperationFragment(t *testing.T) {
	s := storetest.OpenTest(t)
	dev := must(s.CreateDevice(ctx, "a", "ep"))
	op := must(s.CreateOperation(ctx, "a", store.Operation{DeviceID: dev, HasCommand: true, Text: "fwupdate fw;2;http://h/fw.bin"}))
	check(t, s.SetStatus(ctx, "a", op.ID, store.OpExecuting, "", ""))
	check(t, s.SetOperationFragment(ctx, "a", op.ID, "progress", map[string]any{"step": "download", "state": 1}))
	check(t, s.SetOperationFragment(ctx, "a", op.ID, "progress", map[string]any{"step": "update", "state": 3}))
	got := must(s.GetOperation(ctx, "a", op.ID))
	p, _ := got.Fragments["progress"].(map[string]any)
	if p["step"] != "update" || got.Status != store.OpExecuting || got.Text != op.Text {
		t.Errorf("operation after SetOperationFragment: %+v", got)
	}
	for _, tc := range []struct {
		name, tenant, frag string
		want               error
	}{
		{"fixed member", "a", "status", store.ErrInvalid},
		{"dotted name", "a", "a.b", store.ErrInvalid},
		{"other tenant", "b", "progress", store.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SetOperationFragment(ctx, tc.tenant, op.ID, tc.frag, 1); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}
