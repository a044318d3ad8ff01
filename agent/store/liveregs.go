package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// LiveRegistration is what the store holds of a device's LwM2M
// registration: the lwm2m fragment of its managed object, which the
// session layer writes on every Register, Update, De-register and expiry
// anyway (a live one has a registrationId, an ended one an empty one),
// and the serialization set for the device. The agent restores these
// when it starts, so that devices need not register again.
type LiveRegistration struct {
	Tenant   string
	DeviceID string
	// Fragment is the lwm2m fragment, with plain Go values (Plain).
	Fragment map[string]any
	// Serialization is the device's content format name, "" for none
	// (DeviceRegistration.Serialization).
	Serialization string
	// Record is what the device's registration record says of how it may
	// connect now, nil when it has none: a registration restored without
	// a look at it would outlive a change of security cut short by a
	// crash, or a record that was never written.
	Record *RecordAccess
}

// RecordAccess is what a registration record says of how its device may
// connect: DeviceRegistration without its other parameters and secrets.
type RecordAccess struct {
	SecurityMode string // DeviceRegistration.SecurityMode
	PSKIdentity  string // the lwm2m PSK identity the record names
	Keyed        bool   // a PSK key is stored
	Incomplete   bool   // DeviceRegistration.Incomplete
}

// Access returns what the record says of how its device may connect.
func (r DeviceRegistration) Access() RecordAccess {
	return RecordAccess{SecurityMode: r.SecurityMode(), PSKIdentity: r.PSKIdentity(PSKServer), Keyed: len(r.PSKKey) > 0, Incomplete: r.Incomplete}
}

// recordInfo is what a restore needs of a device's registration record.
type recordInfo struct {
	serialization string
	access        RecordAccess
}

// live is the LiveRegistration of the tenant's device, with what records
// holds of its registration record.
func live(tenant, id string, frag map[string]any, records map[string]*recordInfo) LiveRegistration {
	l := LiveRegistration{Tenant: tenant, DeviceID: id, Fragment: frag}
	if r := records[key(tenant, id)]; r != nil {
		l.Serialization = r.serialization
		l.Record = &r.access
	}
	return l
}

// LiveRegistrations calls fn for every device whose managed object holds
// a live registration, streaming them from the store; an error of fn
// stops it and is returned.
func (s *Store) LiveRegistrations(ctx context.Context, fn func(LiveRegistration) error) error {
	if s.sqlx != nil {
		if ok, err := s.sqlx.liveRegistrations(ctx, s, fn); ok {
			return err
		}
	}
	records, err := s.records(ctx)
	if err != nil {
		return err
	}
	cur, err := s.objects.Find(ctx, bson.D{{Key: "lwm2m.registrationId", Value: bson.D{{Key: "$gt", Value: ""}}}},
		options.Find().SetProjection(bson.D{{Key: "tenant", Value: 1}, {Key: "id", Value: 1}, {Key: "lwm2m", Value: 1}}))
	if err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d struct {
			Tenant string         `bson:"tenant"`
			ID     string         `bson:"id"`
			LwM2M  map[string]any `bson:"lwm2m"`
		}
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("live registrations: %w", err)
		}
		frag, _ := Plain(d.LwM2M).(map[string]any)
		if err := fn(live(d.Tenant, d.ID, frag, records)); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	return nil
}

// records returns what a restore needs of every registration record, by
// key(tenant, device): one scan of the records is far cheaper than a read
// per restored device.
func (s *Store) records(ctx context.Context) (map[string]*recordInfo, error) {
	cur, err := s.deviceRegs.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{
		{Key: "serialization", Value: 1}, {Key: "params." + ParamSecurityMode, Value: 1},
		{Key: "params." + pskParams[PSKServer], Value: 1}, {Key: "pskKey", Value: 1}, {Key: "pending", Value: 1},
	}))
	if err != nil {
		return nil, fmt.Errorf("registration records: %w", err)
	}
	defer cur.Close(ctx)
	out := map[string]*recordInfo{}
	for cur.Next(ctx) {
		var d deviceRegDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("registration records: %w", err)
		}
		r := d.registration()
		out[d.Key] = &recordInfo{serialization: r.Serialization, access: r.Access()}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("registration records: %w", err)
	}
	return out, nil
}

// liveRegistrations is LiveRegistrations on the embedded store, read from
// its SQLite file: FerretDB 1.24 filters on lwm2m.registrationId by
// decoding every managed object in full (15 to 30 s for 100,000 devices
// on two cores), where SQLite selects the fragments itself: the whole
// restore of 100,000 registrations takes 3.6 s (BenchmarkRestore). A
// fragment holding a type this reader does not know is read through
// FerretDB by _id instead. ok is false when there is no table to read
// (nothing stored yet): the caller then asks FerretDB.
func (x *sqlIndex) liveRegistrations(ctx context.Context, s *Store, fn func(LiveRegistration) error) (ok bool, err error) {
	objects, err := x.table(ctx, "managedObjects")
	if err != nil || objects == "" {
		return false, err
	}
	regs, err := x.table(ctx, "deviceRegistrations")
	if err != nil {
		return true, err
	}
	// SQLite's JSON work and the decoding here take about as long each:
	// one goroutine reads the rows while this one decodes them.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rowsc := make(chan fragmentRow, 256)
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(rowsc)
		readErr = x.readFragments(ctx, objects, regs, func(r fragmentRow) bool {
			select {
			case rowsc <- r:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	defer func() {
		cancel()
		for range rowsc {
		}
		<-done
	}()
	for r := range rowsc {
		tenant, id, found := strings.Cut(r.docID, "/")
		if !found {
			continue // not a key(tenant, id)
		}
		frag, err := sjsonObject(r.value, r.schema)
		if err != nil {
			// not one of the types Fragment writes: FerretDB knows them all
			var d struct {
				LwM2M map[string]any `bson:"lwm2m"`
			}
			if err := s.objects.FindOne(ctx, bson.D{{Key: "_id", Value: r.docID}}).Decode(&d); err != nil {
				return true, fmt.Errorf("live registration of %s: %w", r.docID, err)
			}
			frag, _ = Plain(d.LwM2M).(map[string]any)
		}
		l := LiveRegistration{Tenant: tenant, DeviceID: id, Fragment: frag}
		if r.record != nil {
			l.Serialization, l.Record = r.record.serialization, &r.record.access
		}
		if err := fn(l); err != nil {
			return true, err
		}
	}
	<-done
	if readErr != nil && ctx.Err() == nil {
		return true, readErr
	}
	return true, ctx.Err()
}

// fragmentRow is a managed object's lwm2m fragment, with its schema, and
// what its registration record says (nil: it has none).
type fragmentRow struct {
	docID         string
	value, schema []byte
	record        *recordInfo
}

// readFragments calls each, until it returns false, with every managed
// object of table objects whose fragment names a registration, and its
// registration record in table regs ("": none yet). The record is found
// by the _id index in the same query, and its few fields read by SQLite:
// this goroutine's JSON work runs beside the fragments' decoding, where a
// scan of the records before would add to it.
func (x *sqlIndex) readFragments(ctx context.Context, objects, regs string, each func(fragmentRow) bool) error {
	recordCols, join := "NULL, NULL, NULL, 0, 0, 0", ""
	if regs != "" {
		// ->> reads a JSON string as TEXT, true as 1; a field of
		// another type reads as none, as DeviceRegistration's readers
		// take it; a key is a base64 string, empty for no bytes
		recordCols = fmt.Sprintf(`r.%s, r.%s, r.%s, IFNULL(length(r.%s), 0) > 0, r.%s IS 1 OR r.%s IS 1, r._ferretdb_sjson IS NOT NULL`,
			sqlField("serialization"), sqlField("params."+ParamSecurityMode), sqlField("params."+pskParams[PSKServer]),
			sqlField("pskKey"), sqlField("pending.create"), sqlField("pending.delete"))
		join = fmt.Sprintf(`LEFT JOIN %q r ON r._ferretdb_sjson->'$._id' = o._ferretdb_sjson->'$._id'`, regs)
	}
	rows, err := x.db.QueryContext(ctx, fmt.Sprintf(
		`SELECT o.%s, o._ferretdb_sjson->'$.lwm2m', o._ferretdb_sjson->'$."$s".p.lwm2m', %s FROM %q o %s WHERE o.%s > ''`,
		sqlField("_id"), recordCols, objects, join, sqlField("lwm2m.registrationId")))
	if err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r fragmentRow
		var format, mode, identity any
		var rec recordInfo
		var found bool
		if err := rows.Scan(&r.docID, &r.value, &r.schema, &format, &mode, &identity, &rec.access.Keyed, &rec.access.Incomplete, &found); err != nil {
			return fmt.Errorf("live registrations: %w", err)
		}
		if found {
			rec.serialization, rec.access.SecurityMode, rec.access.PSKIdentity = sqlText(format), sqlText(mode), sqlText(identity)
			r.record = &rec
		}
		if !each(r) {
			return nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("live registrations: %w", err)
	}
	return nil
}

// sqlText is a TEXT value SQLite answered, "" for any other type.
func sqlText(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case []byte:
		return string(t)
	}
	return ""
}

// table is the SQLite table of a collection, "" when it has none yet. It
// asks the file rather than x.tables, which holds the tables that existed
// when the store opened.
func (x *sqlIndex) table(ctx context.Context, collection string) (string, error) {
	var t string
	err := x.db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("table of %s: %w", collection, err)
	}
	return t, nil
}

// sjsonElem is one element of the schema the embedded store keeps with
// each document (FerretDB's sjson): the BSON type of a JSON value.
type sjsonElem struct {
	Type   string       `json:"t"`
	Schema *sjsonSchema `json:"$s"` // objects
	Items  []*sjsonElem `json:"i"`  // arrays, one per item
}

type sjsonSchema struct {
	Properties map[string]*sjsonElem `json:"p"`
}

// sjsonObject decodes an object of the embedded store's JSON with its
// schema element into the values Plain gives for the same BSON: strings,
// bools, int64 for int and long, float64, time.Time in UTC for dates,
// []any and map[string]any. Other types (binary, ObjectID, regex,
// timestamp) are an error.
func sjsonObject(value, schema []byte) (map[string]any, error) {
	var e sjsonElem
	if err := json.Unmarshal(schema, &e); err != nil {
		return nil, fmt.Errorf("sjson schema: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("sjson value: %w", err)
	}
	out, err := sjsonValue(v, &e)
	if err != nil {
		return nil, err
	}
	m, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("sjson: %s, not an object", e.Type)
	}
	return m, nil
}

func sjsonValue(v any, e *sjsonElem) (any, error) {
	if e == nil {
		return nil, errors.New("sjson: value without schema")
	}
	switch e.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("sjson: object is %T", v)
		}
		for k, item := range m {
			var ie *sjsonElem
			if e.Schema != nil {
				ie = e.Schema.Properties[k]
			}
			x, err := sjsonValue(item, ie)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[k] = x
		}
		return m, nil
	case "array":
		a, ok := v.([]any)
		if !ok || len(a) != len(e.Items) {
			return nil, fmt.Errorf("sjson: array of %d items with %d schemas", len(a), len(e.Items))
		}
		for i, item := range a {
			x, err := sjsonValue(item, e.Items[i])
			if err != nil {
				return nil, err
			}
			a[i] = x
		}
		return a, nil
	case "string", "bool":
		switch v.(type) {
		case string, bool:
			return v, nil
		}
		return nil, fmt.Errorf("sjson: %s is %T", e.Type, v)
	case "null":
		return nil, nil
	case "int", "long", "date":
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("sjson: %s is %T", e.Type, v)
		}
		i, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("sjson: %s: %w", e.Type, err)
		}
		if e.Type == "date" {
			return time.UnixMilli(i).UTC(), nil
		}
		return i, nil
	case "double":
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("sjson: double is %T", v)
		}
		f, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("sjson: double: %w", err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("sjson: type %q not read here", e.Type)
}
