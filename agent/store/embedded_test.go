package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Every collection of the embedded store answers lookups by _id from an
// index: the query plan SQLite makes for the expression FerretDB queries
// with must search, not scan.
func TestEmbeddedIDLookupsUseIndex(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.CreateDevice(ctx, "management", "ep"); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "db", "lwm2m.sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\_ferretdb\_%' ESCAPE '\'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	if len(tables) < 12 {
		t.Fatalf("only %d tables: %v", len(tables), tables)
	}
	for _, table := range tables {
		var id, parent, notused int
		var detail string
		err := db.QueryRow(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "`+table+`" WHERE _ferretdb_sjson->'$._id' = ?`, `"x"`).Scan(&id, &parent, &notused, &detail)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if !strings.Contains(detail, "USING INDEX") {
			t.Errorf("%s: lookup by _id plans %q, want an index search", table, detail)
		}
	}
}

// Listing measurements of a device, newest or oldest first, is answered
// from the agent's own index of buckets: SQLite searches it and reads it
// in time order (sorting only buckets that start at the same instant), so
// a page costs the page, not the table. A whole tenant's list searches
// the index too but sorts its entries.
func TestEmbeddedMeasurementListsUseIndex(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if s.sqlx == nil {
		t.Fatal("embedded store without its index")
	}
	table := s.sqlx.tables["measurementBuckets"]
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []MeasurementFilter{
		{Source: "7", Revert: true},
		{Source: "7"},
		{Source: "7", Type: "c8y_Temperature", Revert: true, DateFrom: from},
		{Source: "7", ValueFragmentType: "c8y_Temperature", ValueFragmentSeries: "T", Revert: true},
		{Revert: true},
		{DateFrom: from, DateTo: from.Add(time.Hour)},
	} {
		q, args := bucketQuery(table, "t1", f)
		all := queryPlan(t, s.sqlx.db, q, args)
		if !strings.Contains(all, "USING INDEX") {
			t.Errorf("%+v plans %q, want an index search", f, all)
		}
		if f.Source != "" && strings.Contains(all, "TEMP B-TREE FOR ORDER BY") {
			t.Errorf("%+v plans %q, want the index read in time order", f, all)
		}
	}
}

// Lists of events, alarms and operations per device or per tenant, in
// either order, are read from the agent's indexes too.
func TestEmbeddedListsUseIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	bySourceTime := func(c string, dir int) (string, bson.D, bson.D) {
		return c, bson.D{{Key: "tenant", Value: "t1"}, {Key: "source", Value: "7"}, {Key: "time", Value: bson.D{{Key: "$gte", Value: from}}}},
			bson.D{{Key: "time", Value: dir}, {Key: "seq", Value: dir}}
	}
	type query struct {
		collection   string
		filter, sort bson.D
	}
	var queries []query
	for _, c := range []string{"events", "alarms"} {
		for _, dir := range []int{1, -1} {
			c, f, o := bySourceTime(c, dir)
			queries = append(queries, query{c, f, o})
		}
		queries = append(queries, query{c, bson.D{{Key: "tenant", Value: "t1"}}, bson.D{{Key: "time", Value: -1}, {Key: "seq", Value: -1}}})
	}
	queries = append(queries,
		query{"alarms", bson.D{{Key: "tenant", Value: "t1"}, {Key: "source", Value: "7"}, {Key: "status", Value: bson.D{{Key: "$in", Value: []string{"ACTIVE", "ACKNOWLEDGED"}}}}}, bson.D{{Key: "time", Value: -1}, {Key: "seq", Value: -1}}},
		query{"operations", bson.D{{Key: "tenant", Value: "t1"}, {Key: "deviceId", Value: "7"}, {Key: "status", Value: "PENDING"}}, bson.D{{Key: "seq", Value: 1}}},
		query{"operations", bson.D{{Key: "tenant", Value: "t1"}}, bson.D{{Key: "seq", Value: 1}}},
		// a tenant's device and protocol lists read no other tenant's
		// documents
		query{"managedObjects", bson.D{{Key: "tenant", Value: "t1"}}, bson.D{{Key: "seq", Value: 1}}},
		query{"managedObjects", bson.D{{Key: "tenant", Value: "t1"}, {Key: "c8y_IsDevice", Value: bson.D{{Key: "$exists", Value: true}}}}, bson.D{{Key: "seq", Value: 1}}},
		query{"managedObjects", bson.D{{Key: "tenant", Value: "t1"}, {Key: "type", Value: "c8y_lwm2m"}}, bson.D{{Key: "seq", Value: 1}}},
		query{"deviceProtocols", bson.D{{Key: "tenant", Value: "t1"}}, bson.D{{Key: "objectId", Value: 1}}},
	)
	for _, qq := range queries {
		q, _, args, ok := listQuery(s.sqlx.tables[qq.collection], qq.collection, qq.filter, qq.sort)
		if !ok {
			t.Fatalf("%s %v: not served by the index", qq.collection, qq.filter)
		}
		all := queryPlan(t, s.sqlx.db, q, args)
		if !strings.Contains(all, "USING INDEX") || strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("%s %v plans %q, want an index read in order", qq.collection, qq.filter, all)
		}
	}
	// what the index does not cover is left to FerretDB
	if _, _, _, ok := listQuery("t", "events", bson.D{{Key: "c8y_Command.text", Value: "x"}}, nil); ok {
		t.Error("a dotted field was translated")
	}
	if _, _, _, ok := listQuery("t", "users", bson.D{{Key: "tenant", Value: "t1"}}, nil); ok {
		t.Error("a collection without indexes was translated")
	}
	for _, f := range []string{"c8y Is", "c8y[0]", "a\\b"} {
		if _, _, _, ok := listQuery("t", "managedObjects", bson.D{{Key: f, Value: bson.D{{Key: "$exists", Value: true}}}}, nil); ok {
			t.Errorf("$exists of %q was translated", f)
		}
	}
}

// queryPlan is SQLite's plan for q, its steps joined by "; ".
func queryPlan(t *testing.T, db *sql.DB, q string, args []any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}
