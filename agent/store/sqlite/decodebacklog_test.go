package sqlite

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Every query of the decode backlog is served by the index meant for
// it, without sorting.
func TestDecodeBacklogQueryPlans(t *testing.T) {
	checkPlans(t, openEngine(t, Config{Dir: t.TempDir()}).db, []planCase{
		{"due groups", literal(sqlDueGroups, "'frame'", "5", "5", "64"), "SEARCH decode_groups USING INDEX decode_groups_due (decoder=? AND next_try<?)"},
		{"group head", literal(sqlGroupHead, "'acme'", "'7'", "'frame'", "64"), "SEARCH decode_values USING INDEX decode_values_group (tenant=? AND device=? AND decoder=?)"},
		{"expired", literal(sqlExpired, "'frame'", "5", "5", "64"), "SEARCH v USING INDEX decode_values_decoder (decoder=? AND queued<?)"},
		{"statistics", "SELECT decoder, count(*), min(queued) FROM decode_values GROUP BY decoder ORDER BY decoder",
			"SCAN decode_values USING COVERING INDEX decode_values_decoder"},
		{"resume", "SELECT 1 FROM decode_groups WHERE decoder = 'frame' AND next_try > 5 AND lease_until <= 5",
			"SEARCH decode_groups USING INDEX decode_groups_due (decoder=? AND next_try>?)"},
	})
}

// The one process that opens the file is the only taker: the leases a
// killed run left end when the file is opened again, and its values are
// taken at once rather than when the leases would have run out.
func TestOpenEndsDecodeLeases(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := OpenEngine(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	v := store.DecodeValue{Tenant: "acme", Device: "7", Decoder: "frame", Path: "/19/0/0", Type: "OPAQUE", Value: []byte{1}, Time: time.Now()}
	if _, err := e.AppendDecodes(ctx, "acme", []store.DecodeValue{v}, 10); err != nil {
		t.Fatal(err)
	}
	if got, err := e.TakeDecodes(ctx, "frame", time.Now(), time.Hour, 10); err != nil || len(got) != 1 {
		t.Fatalf("take: %+v, %v", got, err)
	}
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	e = openEngine(t, Config{Dir: dir})
	if got, err := e.TakeDecodes(ctx, "frame", time.Now(), time.Hour, 10); err != nil || len(got) != 1 {
		t.Fatalf("take after reopening: %+v, %v; want the value whose lease the earlier run held", got, err)
	}
}

// literal puts values in the places of a query's parameters, in order,
// for EXPLAIN QUERY PLAN, which plans for the values it is given.
func literal(query string, values ...string) string {
	for _, v := range values {
		query = strings.Replace(query, "?", v, 1)
	}
	return query
}
