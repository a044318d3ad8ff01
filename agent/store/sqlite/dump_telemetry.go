package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the measurements, events, alarms and last known values.

func exportMeasurements(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "measurements", "SELECT m.tenant, "+measurementColumns+" FROM measurements m ORDER BY m.id", func(rows *sql.Rows) error {
		var tenant string
		m, err := readMeasurement(prefixed{rows, []any{&tenant}})
		if err != nil {
			return fmt.Errorf("export measurements: %w", err)
		}
		return fn(&store.MeasurementRecord{Tenant: tenant, ID: m.ID, Source: m.Source, Type: m.Type, Time: store.DumpTime(m.Time), Fragments: m.Fragments})
	})
}

// importMeasurement inserts a measurement with its id, whichever engine
// numbered it: its fragments' index follows by the table's trigger.
func importMeasurement(im *importer, rec store.Record) error {
	r := rec.(*store.MeasurementRecord)
	id, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	if r.Source == "" || r.Type == "" {
		return fmt.Errorf("%w: measurement needs source and type", store.ErrInvalid)
	}
	doc, err := importFragments(r.Fragments, nil, encodeJSON)
	if err != nil {
		return err
	}
	_, err = im.tx.Exec("INSERT INTO measurements (id, tenant, source, type, time, fragments) VALUES (?, ?, ?, ?, ?, ?)",
		id, r.Tenant, r.Source, r.Type, r.Time.Time().UnixMilli(), doc)
	if err != nil {
		return fmt.Errorf("import measurement: %w", err)
	}
	return nil
}

func exportEvents(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "events", "SELECT tenant, "+eventColumns+" FROM events ORDER BY id", func(rows *sql.Rows) error {
		var tenant string
		e, err := readEvent(prefixed{rows, []any{&tenant}})
		if err != nil {
			return fmt.Errorf("export events: %w", err)
		}
		return fn(&store.EventRecord{Tenant: tenant, ID: e.ID, Source: e.Source, Type: e.Type, Text: e.Text,
			Time: store.DumpTime(e.Time), CreationTime: store.DumpTime(e.CreationTime), Fragments: e.Fragments})
	})
}

func importEvent(im *importer, rec store.Record) error {
	r := rec.(*store.EventRecord)
	id, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	if r.Source == "" || r.Type == "" {
		return fmt.Errorf("%w: event needs source and type", store.ErrInvalid)
	}
	doc, err := importFragments(r.Fragments, eventFixed, encodeJSON)
	if err != nil {
		return err
	}
	_, err = im.tx.Exec("INSERT INTO events (id, tenant, source, type, text, time, creation_time, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		id, r.Tenant, r.Source, r.Type, r.Text, r.Time.Time().UnixMilli(), r.CreationTime.Time().UnixMilli(), doc)
	if err != nil {
		return fmt.Errorf("import event: %w", err)
	}
	return nil
}

func exportAlarms(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "alarms", "SELECT tenant, "+alarmColumns+" FROM alarms ORDER BY id", func(rows *sql.Rows) error {
		var tenant string
		a, err := readAlarm(prefixed{rows, []any{&tenant}})
		if err != nil {
			return fmt.Errorf("export alarms: %w", err)
		}
		return fn(&store.AlarmRecord{Tenant: tenant, ID: a.ID, Source: a.Source, Type: a.Type, Text: a.Text,
			Severity: a.Severity, Status: a.Status, Count: a.Count, Time: store.DumpTime(a.Time),
			FirstOccurrenceTime: store.DumpTime(a.FirstOccurrenceTime), CreationTime: store.DumpTime(a.CreationTime), Fragments: a.Fragments})
	})
}

// importAlarm inserts an alarm; one not CLEARED is the open alarm of
// its source and type (alarms_open), and a second is a conflict.
func importAlarm(im *importer, rec store.Record) error {
	r := rec.(*store.AlarmRecord)
	id, err := im.seq(r.ID)
	if err != nil {
		return err
	}
	if r.Source == "" || r.Type == "" || !store.ValidAlarmStatus(r.Status) || !store.ValidSeverity(r.Severity) {
		return fmt.Errorf("%w: alarm needs source and type, a status and a severity (have %q, %q)", store.ErrInvalid, r.Status, r.Severity)
	}
	doc, err := importFragments(r.Fragments, alarmFixed, encodeJSON)
	if err != nil {
		return err
	}
	_, err = im.tx.Exec(`INSERT INTO alarms (id, tenant, source, type, text, severity, status, count,
			time, first_occurrence_time, creation_time, fragments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, r.Tenant, r.Source, r.Type, r.Text, r.Severity, r.Status, r.Count,
		r.Time.Time().UnixMilli(), r.FirstOccurrenceTime.Time().UnixMilli(), r.CreationTime.Time().UnixMilli(), doc)
	if err != nil {
		return fmt.Errorf("import alarm: %w", err)
	}
	return nil
}

// exportValues exports a device's values as one record, read in order
// of tenant, device and path: one device's values are held at a time.
func exportValues(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	var cur *store.ValuesRecord
	err := eachRow(ctx, q, "values", "SELECT tenant, device, path, type, value, kind, time FROM resource_values ORDER BY tenant, device, key", func(rows *sql.Rows) error {
		var (
			tenant, device string
			v              store.ResourceValue
			kind           valueKind
			at             int64
		)
		if err := rows.Scan(&tenant, &device, &v.Path, &v.Type, &v.Value, &kind, &at); err != nil {
			return fmt.Errorf("export values: %w", err)
		}
		val, err := decodeValue(v.Value, kind)
		if err != nil {
			return fmt.Errorf("export value %s of %s: %w", v.Path, device, err)
		}
		if cur != nil && (cur.Tenant != tenant || cur.DeviceID != device) {
			if err := fn(cur); err != nil {
				return err
			}
			cur = nil
		}
		if cur == nil {
			cur = &store.ValuesRecord{Tenant: tenant, DeviceID: device}
		}
		cur.Values = append(cur.Values, store.ValueRecord{Path: v.Path, Value: store.DumpValue{V: val}, Type: v.Type, Time: store.DumpTime(fromMilli(at))})
		return nil
	})
	if err != nil || cur == nil {
		return err
	}
	return fn(cur)
}

func importValues(im *importer, rec store.Record) error {
	r := rec.(*store.ValuesRecord)
	for _, v := range r.Values {
		k, err := valueKey(v.Path)
		if err != nil {
			return err
		}
		val, kind, err := encodeValue(v.Value.V)
		if err != nil {
			return fmt.Errorf("value %s: %w", v.Path, err)
		}
		_, err = im.tx.Exec("INSERT INTO resource_values (tenant, device, key, path, type, value, kind, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			r.Tenant, r.DeviceID, k, v.Path, v.Type, val, int64(kind), v.Time.Time().UnixMilli())
		if err != nil {
			return fmt.Errorf("import value %s: %w", v.Path, err)
		}
	}
	return nil
}
