package store

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// What the agent reads once at start, over every device or operation,
// the embedded store answers from its SQLite file: through FerretDB, each
// such query decodes every document of its collection (with 100,000
// PENDING operations, repairing the queues took 40 s, finding those left
// EXECUTING 5 s, finding the devices with queued operations 5 s).

// unqueued returns the PENDING operations missing from their device's
// queue document (written just before a crash tore the two writes
// apart), by key(tenant, device); ok is false when there is no table to
// read yet.
func (x *sqlIndex) unqueued(ctx context.Context) (missing map[[2]string][]string, ok bool, err error) {
	ops, err := x.table(ctx, "operations")
	if err != nil || ops == "" {
		return nil, false, err
	}
	queues, err := x.table(ctx, "operationQueues")
	if err != nil || queues == "" {
		return nil, false, err
	}
	// The queue is found by the _id index the store adds to every table
	// (indexIDLookups), which is on the JSON text of _id. The parentheses
	// matter: ->> binds no tighter than ||.
	q := fmt.Sprintf(`SELECT %[3]s, %[4]s, %[5]s FROM %[1]q o WHERE %[6]s = ? AND NOT EXISTS (
		SELECT 1 FROM %[2]q q, json_each(q._ferretdb_sjson, '$.ids') j
		WHERE q._ferretdb_sjson->'$._id' = json_quote((o.%[3]s) || '/' || (o.%[4]s)) AND j.value = o.%[5]s)`,
		ops, queues, sqlField("tenant"), sqlField("deviceId"), sqlField("id"), sqlField("status"))
	rows, err := x.db.QueryContext(ctx, q, OpPending)
	if err != nil {
		return nil, true, fmt.Errorf("operations missing from their queues: %w", err)
	}
	defer rows.Close()
	missing = map[[2]string][]string{}
	for rows.Next() {
		var tenant, device, id string
		if err := rows.Scan(&tenant, &device, &id); err != nil {
			return nil, true, fmt.Errorf("operations missing from their queues: %w", err)
		}
		k := [2]string{tenant, device}
		missing[k] = append(missing[k], id)
	}
	if err := rows.Err(); err != nil {
		return nil, true, fmt.Errorf("operations missing from their queues: %w", err)
	}
	return missing, true, nil
}

// ids returns the _ids of up to limit documents of collection that
// filter selects, in sort order (all when limit <= 0); ok is false when
// the agent's indexes do not serve the query.
func (x *sqlIndex) ids(ctx context.Context, collection string, filter, sort bson.D, limit int) (ids []string, ok bool, err error) {
	t, exists := x.tables[collection]
	q, _, args, ok := listQuery(t, collection, filter, sort)
	if !ok {
		return nil, false, nil
	}
	if !exists {
		return nil, true, nil // nothing stored yet
	}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := x.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, true, fmt.Errorf("list %s: %w", collection, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, true, fmt.Errorf("list %s: %w", collection, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, true, fmt.Errorf("list %s: %w", collection, err)
	}
	return ids, true, nil
}

// queuedDevices is QueuedDevices from the SQLite file; ok is false when
// there is no table to read yet.
func (x *sqlIndex) queuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) (ok bool, err error) {
	queues, err := x.table(ctx, "operationQueues")
	if err != nil || queues == "" {
		return false, err
	}
	rows, err := x.db.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM %q WHERE json_array_length(_ferretdb_sjson, '$.ids') > 0`,
		sqlField("_id"), queues))
	if err != nil {
		return true, fmt.Errorf("queued devices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return true, fmt.Errorf("queued devices: %w", err)
		}
		tenant, device, found := strings.Cut(k, "/")
		if !found {
			continue // not a key(tenant, device)
		}
		if err := fn(tenant, device); err != nil {
			return true, err
		}
	}
	if err := rows.Err(); err != nil {
		return true, fmt.Errorf("queued devices: %w", err)
	}
	return true, nil
}
