package session

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// Of many values of one path, the newest is the last known value; what is
// queued when the writer stops is still written.
func TestValueWriterCoalescesAndDrains(t *testing.T) {
	st := storetest.OpenTest(t)
	w := NewValueWriter(st, 16, time.Hour, nil) // no timed flush: only the drain writes
	ctx, cancel := context.WithCancel(context.Background())
	go w.Run(ctx)

	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	temp := node.MustParsePath("/3303/0/5700")
	for i := 0; i < 5; i++ {
		w.Add(ctx, "acme", "42", []node.Record{{Path: temp, Value: node.Float(20 + float64(i)), Time: t0.Add(time.Duration(i) * time.Second)}})
	}
	// an older value arriving late must not replace the newest
	w.Add(ctx, "acme", "42", []node.Record{{Path: temp, Value: node.Float(-1), Time: t0}})
	w.Add(ctx, "acme", "42", []node.Record{{Path: node.MustParsePath("/3/0/0"), Value: node.String("lwm2m-agent")}})
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-w.Done()

	vals, err := st.Values(context.Background(), "acme", "42")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, v := range vals {
		got[v.Path] = v.Value
	}
	if got["/3303/0/5700"] != 24.0 {
		t.Errorf("/3303/0/5700 = %v, want the newest value 24", got["/3303/0/5700"])
	}
	if got["/3/0/0"] != "lwm2m-agent" {
		t.Errorf("/3/0/0 = %v", got["/3/0/0"])
	}
	if w.Written() != 2 || w.Failed() != 0 {
		t.Errorf("written %d failed %d, want 2 and 0", w.Written(), w.Failed())
	}
	// other tenants see nothing
	if other, err := st.Values(context.Background(), "other", "42"); err != nil || len(other) != 0 {
		t.Errorf("tenant other sees %v, %v", other, err)
	}
}
