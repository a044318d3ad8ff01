package mongo

import (
	"bytes"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A claim that a claimer left (it died between taking a device and
// storing its operation) is in the dump, and the import stores the
// claimed operation, so that the bulk operation goes on without skipping
// the device or serving it twice.
func TestBulkClaimDump(t *testing.T) {
	ctx, src := openFresh(t)
	var devs []string
	for i := range 3 {
		id, err := src.CreateDevice(ctx, "acme", "ep-"+strconv.Itoa(i))
		check(t, err)
		devs = append(devs, id)
	}
	b, err := src.CreateBulkOperation(ctx, "acme", store.BulkOperation{GroupID: "1", StartDate: time.Now().Add(-time.Minute), Targets: devs,
		Prototype: map[string]any{"c8y_Command": map[string]any{"text": "read /3/0/0"}}})
	check(t, err)
	ids, err := src.newIDs(ctx, 1)
	check(t, err)
	// what CreateBulkStep's first write leaves
	_, err = src.bulkOps.UpdateOne(ctx, bson.D{{Key: "_id", Value: key("acme", b.ID)}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "position", Value: 1}, {Key: "status", Value: store.BulkInProgress},
		{Key: "claim", Value: bulkClaim{Seq: ids[0], Device: devs[0], At: now()}}}}})
	check(t, err)

	var buf bytes.Buffer
	_, err = store.ExportDump(ctx, src, &buf, store.DumpHeader{}, nil)
	check(t, err)
	var claim *store.BulkClaimRecord
	d, err := store.NewDumpReader(bytes.NewReader(buf.Bytes()))
	check(t, err)
	for {
		r, err := d.Next()
		if err != nil {
			break
		}
		if x, ok := r.(*store.BulkOperationRecord); ok {
			claim = x.Claim
		}
	}
	if claim == nil || claim.DeviceID != devs[0] || claim.OperationID != strconv.FormatInt(ids[0], 10) {
		t.Fatalf("the dump's claim %+v, want operation %d for %s", claim, ids[0], devs[0])
	}

	_, dst := openFresh(t)
	_, err = store.ImportDump(ctx, dst, &buf, store.ImportOptions{})
	check(t, err)
	op, err := dst.GetOperation(ctx, "acme", claim.OperationID)
	if err != nil || op.DeviceID != devs[0] || op.Status != store.OpPending {
		t.Fatalf("the claim's operation after the import: %+v, %v", op, err)
	}
	got, err := dst.GetBulkOperation(ctx, "acme", b.ID)
	check(t, err)
	if got.Position != 1 || got.Progress.Pending != 1 {
		t.Fatalf("imported bulk operation at %d with %+v, want 1 and one PENDING", got.Position, got.Progress)
	}
	next, err := dst.CreateBulkStep(ctx, "acme", got, time.Now())
	check(t, err)
	if next.DeviceID != devs[1] {
		t.Errorf("the step after the claim serves %s, want %s", next.DeviceID, devs[1])
	}
}
