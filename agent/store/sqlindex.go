package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// sqlIndex finds documents of the embedded store in index order.
//
// FerretDB 1.24's SQLite handler pushes only a filter on _id down to
// SQLite; any other query reads and decodes the whole table and sorts it in
// memory. For the measurement buckets of a busy agent that turned "the
// newest measurement of this device" into seconds of work. The agent keeps
// its own expression indexes in the SQLite file (as for _id lookups, see
// indexIDLookups), asks SQLite for the _ids in index order through a
// read-only connection of its own, and reads each document through FerretDB
// by _id. With an external MongoDB none of this exists: its own compound
// indexes serve the same queries.
type sqlIndex struct {
	db     *sql.DB
	tables map[string]string // collection name -> SQLite table
}

// sqlField is the expression the agent's indexes and queries share; SQLite
// matches an expression index only when a query spells it the same way.
func sqlField(name string) string { return "_ferretdb_sjson->>'$." + name + "'" }

// bucketIndexes index measurement buckets per tenant and source in time
// order. Every indexed field costs a parse of the bucket's JSON on each
// insert (a third of the store's CPU with seven of them), so there is one
// index of three fields: buckets of one start are ordered by sequence in
// a small sort, and lists of a whole tenant sort the index's entries,
// never the documents.
var bucketIndexes = map[string][]string{
	"by_source": {"tenant", "source", "start"},
}

// openSQLIndex opens the embedded store's SQLite file read-only and adds
// the agent's indexes to the collections' tables.
func openSQLIndex(ctx context.Context, dbDir, database string) (*sqlIndex, error) {
	file := filepath.Join(dbDir, database+".sqlite")
	// The indexes are created through a writable connection once; queries
	// use a read-only one, so nothing the agent does here can change data.
	rw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	defer rw.Close()
	tables, err := collectionTables(ctx, rw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if t, ok := tables["measurementBuckets"]; ok {
		if err := createIndexes(ctx, rw, t, bucketIndexes); err != nil {
			return nil, err
		}
	}
	for c, indexes := range listIndexes {
		if t, ok := tables[c]; ok {
			if err := createIndexes(ctx, rw, t, indexes); err != nil {
				return nil, err
			}
		}
	}
	ro, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", file, err)
	}
	ro.SetMaxOpenConns(4)
	return &sqlIndex{db: ro, tables: tables}, nil
}

func collectionTables(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT name, table_name FROM _ferretdb_collections`)
	if err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			return nil, fmt.Errorf("list collections: %w", err)
		}
		out[name] = table
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list collections: %w", err)
	}
	return out, nil
}

func (x *sqlIndex) close() {
	if x != nil {
		_ = x.db.Close()
	}
}

// bucketIDs returns up to limit _ids of the measurement buckets that f
// selects, from offset on, in the order ListMeasurements lists them.
func (x *sqlIndex) bucketIDs(ctx context.Context, tenant string, f MeasurementFilter, offset, limit int) ([]string, error) {
	t, ok := x.tables["measurementBuckets"]
	if !ok {
		return nil, nil // nothing stored yet
	}
	q, args := bucketQuery(t, tenant, f)
	rows, err := x.db.QueryContext(ctx, q+" LIMIT ? OFFSET ?", append(args, limit, offset)...)
	if err != nil {
		return nil, fmt.Errorf("list measurement buckets: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list measurement buckets: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list measurement buckets: %w", err)
	}
	return ids, nil
}

// bucketQuery is the SQL of bucketIDs on table t, without its LIMIT: the
// same conditions as ListMeasurements' filter, ordered as its sort.
func bucketQuery(t, tenant string, f MeasurementFilter) (string, []any) {
	where := []string{sqlField("tenant") + " = ?"}
	args := []any{tenant}
	if f.Source != "" {
		where = append(where, sqlField("source")+" = ?")
		args = append(args, f.Source)
	}
	if f.Type != "" {
		where = append(where, sqlField("type")+" = ?")
		args = append(args, f.Type)
	}
	inArray := func(field, v string) {
		where = append(where, fmt.Sprintf("EXISTS (SELECT 1 FROM json_each(_ferretdb_sjson, '$.%s') WHERE value = ?)", field))
		args = append(args, v)
	}
	switch {
	case f.ValueFragmentType != "" && f.ValueFragmentSeries != "":
		inArray("series", f.ValueFragmentType+"."+f.ValueFragmentSeries)
	case f.ValueFragmentType != "":
		inArray("frags", f.ValueFragmentType)
	case f.ValueFragmentSeries != "":
		inArray("snames", f.ValueFragmentSeries)
	}
	// dates are milliseconds since the epoch in the embedded store's JSON
	if !f.DateFrom.IsZero() {
		where = append(where, sqlField("end")+" >= ?")
		args = append(args, f.DateFrom.UnixMilli())
	}
	if !f.DateTo.IsZero() {
		where = append(where, sqlField("start")+" < ?")
		args = append(args, f.DateTo.UnixMilli())
	}
	dir := ""
	if f.Revert {
		dir = " DESC"
	}
	q := fmt.Sprintf(`SELECT _ferretdb_sjson->>'$._id' FROM %q WHERE %s ORDER BY %s%s, %s%s`,
		t, strings.Join(where, " AND "), sqlField("start"), dir, sqlField("seq"), dir)
	return q, args
}

// listIndexes are the agent's indexes of the collections whose lists are
// read page by page, newest or oldest first, per device or per tenant.
var listIndexes = map[string]map[string][]string{
	"events": {
		"by_source": {"tenant", "source", "time", "seq"},
		"by_tenant": {"tenant", "time", "seq"},
	},
	"alarms": {
		"by_source": {"tenant", "source", "time", "seq"},
		"by_tenant": {"tenant", "time", "seq"},
	},
	"operations": {
		"by_device": {"tenant", "deviceId", "seq"},
		"by_tenant": {"tenant", "seq"},
		// the start's repair of the queues and its search for operations
		// left EXECUTING (sqlstart.go)
		"by_status": {"status", "seq"},
	},
	// A tenant's device list and protocol list read only that tenant's
	// documents: read through FerretDB, each read and decoded every
	// tenant's, so one tenant's large documents made everyone's lists
	// slow.
	"managedObjects": {
		"by_tenant": {"tenant", "seq"},
	},
	"deviceProtocols": {
		"by_tenant": {"tenant", "objectId"},
	},
}

func createIndexes(ctx context.Context, db *sql.DB, table string, indexes map[string][]string) error {
	for name, fields := range indexes {
		exprs := make([]string, len(fields))
		for i, f := range fields {
			exprs[i] = sqlField(f)
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+"_"+name, table, strings.Join(exprs, ", "))
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index %s %s: %w", table, name, err)
		}
	}
	return nil
}

// sqlWhere translates a filter of top-level fields compared with strings,
// integers or times (equality, $in, $gte, $gt, $lt, $lte) into SQL over
// the embedded store's JSON; ok is false for anything else, which the
// caller then leaves to FerretDB. The collections it serves hold scalar
// values in those fields, never arrays, so SQL equality means what
// MongoDB's does.
func sqlWhere(filter bson.D) (where []string, args []any, ok bool) {
	for _, e := range filter {
		if !plainField(e.Key) {
			return nil, nil, false
		}
		if ops, isDoc := e.Value.(bson.D); isDoc {
			for _, op := range ops {
				switch op.Key {
				case "$exists":
					// a fragment the API names (fragmentType); names that
					// are no identifiers are left to FerretDB rather than
					// quoted into a JSON path
					if yes, _ := op.Value.(bool); !yes || !identifierRe.MatchString(e.Key) {
						return nil, nil, false
					}
					where = append(where, "json_type(_ferretdb_sjson, '$."+e.Key+"') IS NOT NULL")
				case "$gte", "$gt", "$lt", "$lte":
					v, ok := sqlScalar(op.Value)
					if !ok {
						return nil, nil, false
					}
					cmp := map[string]string{"$gte": ">=", "$gt": ">", "$lt": "<", "$lte": "<="}[op.Key]
					where = append(where, sqlField(e.Key)+" "+cmp+" ?")
					args = append(args, v)
				case "$in":
					list, ok := op.Value.([]string)
					if !ok || len(list) == 0 {
						return nil, nil, false
					}
					where = append(where, sqlField(e.Key)+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(list)), ", ")+")")
					for _, s := range list {
						args = append(args, s)
					}
				default:
					return nil, nil, false
				}
			}
			continue
		}
		v, ok := sqlScalar(e.Value)
		if !ok {
			return nil, nil, false
		}
		where = append(where, sqlField(e.Key)+" = ?")
		args = append(args, v)
	}
	return where, args, true
}

var identifierRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func plainField(k string) bool {
	return k != "" && !strings.ContainsAny(k, ".$'\"")
}

// sqlScalar is v as the embedded store's JSON holds it: strings as text,
// integers as integers, times as milliseconds since the epoch.
func sqlScalar(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case time.Time:
		return x.UnixMilli(), true
	}
	return nil, false
}

// listQuery is the SQL that lists the _ids of table t (of collection)
// that filter selects in sort order, and its WHERE clause; ok is false
// when the agent's indexes do not serve the query.
func listQuery(t, collection string, filter, sort bson.D) (q, cond string, args []any, ok bool) {
	if _, indexed := listIndexes[collection]; !indexed {
		return "", "", nil, false
	}
	where, args, ok := sqlWhere(filter)
	if !ok || len(where) == 0 {
		return "", "", nil, false
	}
	var order []string
	for _, e := range sort {
		dir, isInt := e.Value.(int)
		if !plainField(e.Key) || !isInt {
			return "", "", nil, false
		}
		o := sqlField(e.Key)
		if dir < 0 {
			o += " DESC"
		}
		order = append(order, o)
	}
	cond = strings.Join(where, " AND ")
	q = fmt.Sprintf(`SELECT _ferretdb_sjson->>'$._id' FROM %q WHERE %s`, t, cond)
	if len(order) > 0 {
		q += " ORDER BY " + strings.Join(order, ", ")
	}
	return q, cond, args, true
}

// page returns the _ids of one page of collection's documents that filter
// selects in sort order, and the total when asked; ok is false when the
// query is not one the agent's indexes serve.
func (x *sqlIndex) page(ctx context.Context, collection string, filter, sort bson.D, p Page) (ids []string, total int64, ok bool, err error) {
	t, exists := x.tables[collection]
	q, cond, args, ok := listQuery(t, collection, filter, sort)
	if !ok {
		return nil, 0, false, nil
	}
	if !exists {
		return nil, 0, true, nil // nothing stored yet
	}
	rows, err := x.db.QueryContext(ctx, q+" LIMIT ? OFFSET ?", append(slices.Clone(args), p.Size, p.skip())...)
	if err != nil {
		return nil, 0, true, fmt.Errorf("list %s: %w", collection, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, 0, true, fmt.Errorf("list %s: %w", collection, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, true, fmt.Errorf("list %s: %w", collection, err)
	}
	total = -1
	if p.WithTotal {
		err := x.db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM %q WHERE %s`, t, cond), args...).Scan(&total)
		if err != nil {
			return nil, 0, true, fmt.Errorf("count %s: %w", collection, err)
		}
	}
	return ids, total, true, nil
}
