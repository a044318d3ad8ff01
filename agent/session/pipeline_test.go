package session

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// Notifications and Send values are both kept as last known values and
// mapped: the signal strength a device reports becomes a measurement.
func TestValuesGoThroughThePipeline(t *testing.T) {
	st := storetest.OpenTest(t)
	ctx := context.Background()
	id, err := st.CreateDevice(ctx, "management", "ep-1")
	if err != nil {
		t.Fatal(err)
	}
	values := NewValueWriter(st, 16, 10*time.Millisecond, nil)
	p := mapping.New(mapping.Config{Store: st, Writer: mapping.WriterOptions{FlushInterval: 10 * time.Millisecond}})
	wctx, cancel := context.WithCancel(ctx)
	go values.Run(wctx)
	go p.RunWriter(wctx)
	h := New(Config{Store: st, Values: values, Pipeline: p})
	reg := lwm2m.Registration{Endpoint: "ep-1", Tenant: "management", DeviceID: id}
	rssi := node.MustParsePath("/4/0/2")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.Values(ctx, reg, rssi, []node.Record{{Path: rssi, Value: node.Int(-70), Time: t0}})
	h.Values(ctx, reg, node.Root, []node.Record{{Path: rssi, Value: node.Int(-72), Time: t0.Add(time.Second)}})
	cancel()
	<-values.Done()
	<-p.Done()

	ms, total, err := st.ListMeasurements(ctx, "management", store.MeasurementFilter{Source: id, Type: "c8y_SignalStrength", Page: store.Page{Size: 10, Current: 1, WithTotal: true}})
	if err != nil || total != 2 {
		t.Fatalf("%d signal strength measurements (%v), want 2", total, err)
	}
	if !ms[0].Time.Equal(t0) {
		t.Errorf("measurement time %v, want the device's %v", ms[0].Time, t0)
	}
	if vals, err := st.Values(ctx, "management", id); err != nil || len(vals) != 1 || vals[0].Value != int64(-72) {
		t.Errorf("last known values %+v (%v), want /4/0/2 = -72", vals, err)
	}
}
