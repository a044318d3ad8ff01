package bulkops

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

func TestNextAt(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ramp time.Duration
		now  time.Time
		want time.Time
	}{
		{"on time", 10 * time.Second, at, at.Add(10 * time.Second)},
		{"a little late keeps the pace", 10 * time.Second, at.Add(3 * time.Second), at.Add(10 * time.Second)},
		{"more than a ramp late starts from now", 10 * time.Second, at.Add(time.Hour), at.Add(time.Hour + 10*time.Second)},
		{"no ramp", 0, at.Add(time.Minute), at.Add(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextAt(store.BulkOperation{NextAt: at, CreationRamp: tc.ramp}, tc.now); !got.Equal(tc.want) {
				t.Errorf("nextAt %v, want %v", got, tc.want)
			}
		})
	}
}

type recorder struct {
	mu  sync.Mutex
	ops []store.Operation
}

func (r *recorder) Submit(_ context.Context, tenant string, op store.Operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
}

// A round creates what is due and no more: one device per ramp, at most
// Batch at once, each operation handed to the runner.
func TestRound(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenEmbedded(t)
	var devs []string
	for i := range 5 {
		id, err := st.CreateDevice(ctx, "a", fmt.Sprintf("ep-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, id)
	}
	proto := map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}}
	slow, err := st.CreateBulkOperation(ctx, "a", store.BulkOperation{GroupID: "1", StartDate: time.Now().Add(-time.Second),
		CreationRamp: time.Hour, Prototype: proto, Targets: devs[:2]})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := st.CreateBulkOperation(ctx, "a", store.BulkOperation{GroupID: "1", StartDate: time.Now().Add(-time.Second),
		Prototype: proto, Targets: devs[2:]})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	s := New(Config{Store: st, Runner: rec, Batch: 2})
	for i := range 2 {
		if wait := s.round(ctx); wait != 0 {
			t.Errorf("round %d reached its batch and waits %v, want 0", i, wait)
		}
	}
	if wait := s.round(ctx); wait <= 0 || wait > time.Second {
		t.Errorf("with nothing due, the next round in %v, want the poll", wait)
	}
	var got []string
	for _, op := range rec.ops {
		got = append(got, op.DeviceID)
	}
	if !slices.Equal(got, []string{devs[0], devs[2], devs[3], devs[4]}) {
		t.Errorf("operations for %v, want %v (one of the ramped bulk operation, all of the other)", got, []string{devs[0], devs[2], devs[3], devs[4]})
	}
	b, _ := st.GetBulkOperation(ctx, "a", slow.ID)
	if b.Position != 1 || b.NextAt.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("ramped: position %d, next at %v", b.Position, b.NextAt)
	}
	if b, _ := st.GetBulkOperation(ctx, "a", fast.ID); b.Position != 3 || b.Progress.Pending != 3 {
		t.Errorf("unramped: position %d, progress %+v", b.Position, b.Progress)
	}
}
