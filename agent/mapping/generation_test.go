package mapping_test

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// A functionality set through the store applies to the very next value,
// however long the mapper otherwise keeps what it read: an operator who
// configures a resource while its device reports sees the next value
// mapped, not the ones after a cache expiry.
func TestFunctionalityChangeAppliesAtOnce(t *testing.T) {
	ctx := context.Background()
	protos := store.NewProtocols[mapping.Functionality](storetest.OpenTest(t))
	m := mapping.NewMapper(protos, mapping.MapperOptions{CacheTTL: time.Hour})
	in := mapping.Input{
		Device:  mapping.Device{Tenant: "management", ID: "7", Endpoint: "ep"},
		Records: []node.Record{{Path: node.MustParsePath("/3303/0/5700"), Value: node.Float(21.5)}},
	}
	out, err := m.Map(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Measurements) != 0 {
		t.Fatalf("measurements before any functionality: %+v", out.Measurements)
	}
	fn := mapping.Functionality{Measurement: &mapping.Measurement{Type: "c8y_Temperature", Series: "T", Unit: "C"}}
	if _, err := protos.SetFunctionality(ctx, "management", 3303, 5700, fn); err != nil {
		t.Fatal(err)
	}
	if out, err = m.Map(ctx, in); err != nil {
		t.Fatal(err)
	}
	if len(out.Measurements) != 1 || out.Measurements[0].Type != "c8y_Temperature" {
		t.Fatalf("measurements right after the functionality was set: %+v", out.Measurements)
	}
}
