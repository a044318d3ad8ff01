package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func checkMeasurement(m store.Measurement) error {
	if m.Source == "" || m.Type == "" {
		return fmt.Errorf("%w: measurement needs source and type", store.ErrInvalid)
	}
	return checkFragments(m.Fragments)
}

// AddMeasurements stores measurements in one change and returns their
// ids in the order given. Time defaults to now.
func (s *Store) AddMeasurements(ctx context.Context, tenant string, ms []store.Measurement) ([]string, error) {
	if len(ms) == 0 {
		return []string{}, nil
	}
	// Encoded on the callers' goroutines, so that the writer only
	// inserts.
	docs := make([]string, len(ms))
	times := make([]int64, len(ms))
	now := nowMilli()
	for i, m := range ms {
		if err := checkMeasurement(m); err != nil {
			return nil, err
		}
		f := m.Fragments
		if f == nil {
			f = map[string]any{}
		}
		doc, err := encodeJSON("measurement fragments", f)
		if err != nil {
			return nil, err
		}
		docs[i] = doc
		times[i] = stamp(m.Time, now).UnixMilli()
	}
	first, err := s.insertNew(ctx, len(ms), "INSERT INTO measurements (id, tenant, source, type, time, fragments)", "(?, ?, ?, ?, ?, ?)",
		func(i int, args []any) []any {
			return append(args, tenant, ms[i].Source, ms[i].Type, times[i], docs[i])
		})
	if err != nil {
		return nil, fmt.Errorf("store %d measurements: %w", len(ms), err)
	}
	ids := make([]string, len(ms))
	for i := range ids {
		ids[i] = strconv.FormatInt(first+int64(i), 10)
	}
	return ids, nil
}

const measurementColumns = "m.id, m.source, m.type, m.time, m.fragments"

func readMeasurement(row scanner) (store.Measurement, error) {
	var (
		m   store.Measurement
		id  int64
		at  int64
		doc string
	)
	if err := row.Scan(&id, &m.Source, &m.Type, &at, &doc); err != nil {
		return store.Measurement{}, err
	}
	m.ID, m.Time = strconv.FormatInt(id, 10), fromMilli(at)
	var err error
	if m.Fragments, err = decodeFragments(doc); err != nil {
		return store.Measurement{}, fmt.Errorf("measurement %d: %w", id, err)
	}
	return m, nil
}

// GetMeasurement returns one measurement of the tenant. As in the MongoDB
// engine, any decimal form of its id names it.
func (s *Store) GetMeasurement(ctx context.Context, tenant, id string) (store.Measurement, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 {
		n = -1 // names no measurement
	}
	return getRow(ctx, s.db, "measurement "+id, "SELECT "+measurementColumns+" FROM measurements m WHERE m.id = ? AND m.tenant = ?",
		readMeasurement, n, tenant)
}

// ceilMilli is the first whole millisecond at or after t: the MongoDB
// engine compares a measurement's time (whole milliseconds) with the
// filter's bounds to the nanosecond, which this makes exact in
// milliseconds.
func ceilMilli(t time.Time) int64 {
	ms := t.Truncate(time.Millisecond)
	if ms.Before(t) {
		ms = ms.Add(time.Millisecond)
	}
	return ms.UnixMilli()
}

// measurementQuery is the FROM, WHERE and ORDER BY of a list of
// measurements: one index chosen by the most selective filter (source,
// then fragment, then type, else the tenant's time order), the other
// filters tested in the row. ok is false when nothing can match.
func measurementQuery(tenant string, f store.MeasurementFilter) (from string, w *where, order string, ok bool) {
	w = &where{}
	timeCol, idCol := "m.time", "m.id"
	switch {
	case f.Source != "":
		from = "measurements AS m INDEXED BY measurements_source"
		w.add("m.tenant = ? AND m.source = ?", tenant, f.Source)
	case f.ValueFragmentType != "":
		// measurement_fragments first (CROSS JOIN keeps that order),
		// each row then read by its id.
		from = "measurement_fragments AS f CROSS JOIN measurements AS m ON m.id = f.id"
		timeCol, idCol = "f.time", "f.id"
		w.add("f.tenant = ? AND f.fragment = ?", tenant, f.ValueFragmentType)
	case f.Type != "":
		from = "measurements AS m INDEXED BY measurements_type"
		w.add("m.tenant = ? AND m.type = ?", tenant, f.Type)
	default:
		from = "measurements AS m INDEXED BY measurements_time"
		w.add("m.tenant = ?", tenant)
	}
	if f.Type != "" && (f.Source != "" || f.ValueFragmentType != "") {
		w.add("m.type = ?", f.Type)
	}
	if !f.DateFrom.IsZero() {
		w.add(timeCol+" >= ?", ceilMilli(f.DateFrom))
	}
	if !f.DateTo.IsZero() {
		w.add(timeCol+" < ?", ceilMilli(f.DateTo))
	}
	if f.ValueFragmentType != "" {
		// No stored fragment has a '"' in its name (checkFragments),
		// and a JSON path could not name one.
		if strings.Contains(f.ValueFragmentType, `"`) {
			return "", nil, "", false
		}
		if f.Source != "" {
			w.add("json_type(m.fragments, ?) IS NOT NULL", path(f.ValueFragmentType))
		}
		if f.ValueFragmentSeries != "" {
			// The series is a member of the fragment, which must be an
			// object: an array's members have integer keys.
			w.add("EXISTS (SELECT 1 FROM json_each(m.fragments, ?) WHERE key = ?)", path(f.ValueFragmentType), f.ValueFragmentSeries)
		}
	} else if f.ValueFragmentSeries != "" {
		w.add(`EXISTS (SELECT 1 FROM json_each(m.fragments) AS fr, json_each(iif(fr.type = 'object', fr.value, '{}')) AS sr
			WHERE sr.key = ?)`, f.ValueFragmentSeries)
	}
	dir := ""
	if f.Revert {
		dir = " DESC"
	}
	return from, w, timeCol + dir + ", " + idCol + dir, true
}

// ListMeasurements lists the tenant's measurements in time order (newest
// first with Revert), measurements of one time in the order they were
// added. total is -1 unless f.Page.WithTotal.
func (s *Store) ListMeasurements(ctx context.Context, tenant string, f store.MeasurementFilter) ([]store.Measurement, int64, error) {
	from, w, order, ok := measurementQuery(tenant, f)
	if !ok {
		if f.Page.WithTotal {
			return []store.Measurement{}, 0, nil
		}
		return []store.Measurement{}, -1, nil
	}
	return listPage(ctx, s.db, "measurements of "+tenant, measurementColumns, from, w.String(), w.args, order, f.Page, readMeasurement)
}
