package mapping

import (
	"maps"
	"sort"
	"testing"
	"time"

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

// A delay is counted in the first bucket whose bound is at or above it,
// as Prometheus's le reads, and one beyond the last bound in the
// overflow.
func TestDelayBucket(t *testing.T) {
	index := func(bound float64) int {
		for i, b := range DelayBuckets {
			if b == bound {
				return i
			}
		}
		t.Fatalf("no bucket bound %v", bound)
		return -1
	}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0},
		{500 * time.Microsecond, 0},
		{time.Millisecond, 0},
		{1100 * time.Microsecond, index(0.002)},
		{210 * time.Millisecond, index(0.225)},
		{250 * time.Millisecond, index(0.25)},
		{251 * time.Millisecond, index(0.3)},
		{30 * time.Second, len(DelayBuckets) - 1},
		{31 * time.Second, len(DelayBuckets)},
	} {
		var w Writer
		now := time.Now()
		w.left([]time.Time{now.Add(-c.d)}, now)
		if got := w.delayCounts(); got[c.want] != 1 {
			t.Errorf("delay %v: counts %v, want it in bucket %d", c.d, got, c.want)
		}
	}
	if !sort.Float64sAreSorted(DelayBuckets[:]) {
		t.Error("DelayBuckets do not ascend")
	}
}
