package mongo

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// A process killed between inserting a value and upserting its group,
// or between reserving room and inserting, leaves a value no taker finds
// and a count above the tenant's values: the next Open gives the value
// its group and sets the count to the values.
func TestOpenRepairsTheDecodeBacklog(t *testing.T) {
	ctx := context.Background()
	uri := ferrettest.Start(t)
	s, err := Open(ctx, Config{URI: uri, SoleWriter: true})
	check(t, err)
	v := store.DecodeValue{Tenant: "acme", Device: "7", Decoder: "frame", Path: "/19/0/0", Type: "OPAQUE", Value: []byte{1}, Time: now()}
	_, err = s.AppendDecodes(ctx, "acme", []store.DecodeValue{v}, 2)
	check(t, err)
	// the state a kill leaves: the group gone, and room reserved for 1
	// value that was never inserted
	_, err = s.decodeGroups.DeleteMany(ctx, bson.D{})
	check(t, err)
	_, err = s.decodeCounts.UpdateOne(ctx, bson.D{{Key: "_id", Value: "acme"}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
	check(t, err)
	if got, err := s.TakeDecodes(ctx, "frame", time.Now(), time.Minute, 10); err != nil || len(got) != 0 {
		t.Fatalf("before the repair: %+v, %v; want nothing found", got, err)
	}
	check(t, s.Close(ctx))

	s, err = Open(ctx, Config{URI: uri, SoleWriter: true})
	check(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if refused, err := s.AppendDecodes(ctx, "acme", []store.DecodeValue{v}, 2); err != nil || refused != 0 {
		t.Fatalf("a second value under a bound of 2 after the repair: %d refused, %v", refused, err)
	}
	got, err := s.TakeDecodes(ctx, "frame", time.Now(), time.Minute, 10)
	if err != nil || len(got) != 2 || got[0].Seq >= got[1].Seq {
		t.Fatalf("after the repair: %+v, %v; want both values in order", got, err)
	}
}
