package mapping

import (
	"maps"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// The writer sets the fields a mapping changed, one by one, so that a
// field someone else set after the writer read the device is not undone;
// a fragment that holds no fields yet is written whole.
func TestMergeInventorySetsFields(t *testing.T) {
	mo := store.ManagedObject{Name: "dev", Fragments: map[string]any{
		FragmentHardware: map[string]any{"model": "m1", "serialNumber": "s1"},
		"c8y_Mobile":     "not a fragment of fields",
	}}
	u := &InventoryUpdate{Fields: map[string]map[string]any{
		FragmentHardware: {"model": "m2", "serialNumber": "s1"},
		"c8y_Mobile":     {"cellId": "42"},
		"c8y_Firmware":   {"version": "1.2"},
	}}
	want := bson.M{
		FragmentHardware + ".model": "m2",
		"c8y_Mobile":                map[string]any{"cellId": "42"},
		"c8y_Firmware":              map[string]any{"version": "1.2"},
	}
	got := mergeInventory(mo, u)
	if !maps.EqualFunc(got, want, func(a, b any) bool { return bson.M{"x": a}.String() == bson.M{"x": b}.String() }) {
		t.Errorf("mergeInventory = %v, want %v", got, want)
	}
	if got := mergeInventory(mo, &InventoryUpdate{Fields: map[string]map[string]any{FragmentHardware: {"model": "m1"}}}); got != nil {
		t.Errorf("nothing changed, got %v", got)
	}
}
