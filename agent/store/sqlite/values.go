package sqlite

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// valueKind says how a stored value reads back: SQLite has integers,
// floats, text and bytes, which read back as themselves (int64, float64,
// string, []byte, nil for NULL); the other types a value may have are
// stored as one of those and marked.
type valueKind int

const (
	valuePlain valueKind = iota
	valueBool            // 0 or 1
	valueTime            // Unix milliseconds, read back in UTC
	valueJSON            // JSON text of a map, slice or other value
)

// valueKey is the key of a resource path: its ids, 2 bytes each,
// big-endian, which sort as the paths do, numerically level by level.
func valueKey(p string) ([]byte, error) {
	parsed, err := node.ParsePath(p)
	if err != nil || parsed.Depth == 0 {
		return nil, fmt.Errorf("%w: value path %q", store.ErrInvalid, p)
	}
	ids := parsed.IDs()
	k := make([]byte, 2*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint16(k[2*i:], id)
	}
	return k, nil
}

// encodeValue is v as stored, with its kind. Numbers are kept as the
// MongoDB engine keeps them: every integer as int64, every float as
// float64; an unsigned integer past int64 is refused, as there.
func encodeValue(v any) (any, valueKind, error) {
	switch t := v.(type) {
	case nil, string, int64, float64, []byte:
		return v, valuePlain, nil
	case bool:
		if t {
			return int64(1), valueBool, nil
		}
		return int64(0), valueBool, nil
	case time.Time:
		return t.UnixMilli(), valueTime, nil
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), valuePlain, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if rv.Uint() > math.MaxInt64 {
			return nil, 0, fmt.Errorf("%w: value %d is past the largest integer stored", store.ErrInvalid, rv.Uint())
		}
		return int64(rv.Uint()), valuePlain, nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), valuePlain, nil
	case reflect.String:
		return rv.String(), valuePlain, nil
	}
	doc, err := encodeJSON("value", v)
	if err != nil {
		return nil, 0, err
	}
	return doc, valueJSON, nil
}

func decodeValue(v any, kind valueKind) (any, error) {
	switch kind {
	case valueBool:
		n, _ := v.(int64)
		return n != 0, nil
	case valueTime:
		n, _ := v.(int64)
		return fromMilli(n), nil
	case valueJSON:
		doc, _ := v.(string)
		d := json.NewDecoder(strings.NewReader(doc))
		d.UseNumber()
		var out any
		if err := d.Decode(&out); err != nil {
			return nil, fmt.Errorf("value: %w", err)
		}
		return store.JSONNumbers(out), nil
	}
	return v, nil
}

type savedValue struct {
	key   []byte
	value any
	kind  valueKind
	time  int64
}

// SaveValues records the last known values of a device in one change,
// replacing older ones of the same paths. A value older than the stored
// one still replaces it: the caller delivers values in the order the
// device sent them; a path given twice keeps its last value.
func (s *Store) SaveValues(ctx context.Context, tenant, deviceID string, vals []store.ResourceValue) error {
	if len(vals) == 0 {
		return nil
	}
	rows := make([]savedValue, len(vals))
	now := nowMilli()
	for i, v := range vals {
		k, err := valueKey(v.Path)
		if err != nil {
			return err
		}
		val, kind, err := encodeValue(v.Value)
		if err != nil {
			return fmt.Errorf("save value %s of %s: %w", v.Path, deviceID, err)
		}
		rows[i] = savedValue{key: k, value: val, kind: kind, time: stamp(v.Time, now).UnixMilli()}
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		// Rows of one statement are applied in order, so the last of a
		// path given twice is the one kept.
		return insertMany(tx, "INSERT INTO resource_values (tenant, device, key, path, type, value, kind, time)",
			"(?, ?, ?, ?, ?, ?, ?, ?)",
			`ON CONFLICT (tenant, device, key) DO UPDATE SET path = excluded.path, type = excluded.type,
				value = excluded.value, kind = excluded.kind, time = excluded.time`,
			len(rows), func(i int, args []any) []any {
				r := rows[i]
				return append(args, tenant, deviceID, r.key, vals[i].Path, vals[i].Type, r.value, int64(r.kind), r.time)
			})
	})
	if err != nil {
		return fmt.Errorf("save %d values of %s: %w", len(vals), deviceID, err)
	}
	return nil
}

// Values returns the last known values of a device, sorted by path
// (numerically, level by level); nil if it has none.
func (s *Store) Values(ctx context.Context, tenant, deviceID string) ([]store.ResourceValue, error) {
	rows, err := s.db.Query(ctx, "SELECT path, type, value, kind, time FROM resource_values WHERE tenant = ? AND device = ? ORDER BY key",
		tenant, deviceID)
	if err != nil {
		return nil, fmt.Errorf("read values of %s: %w", deviceID, err)
	}
	defer rows.Close()
	var out []store.ResourceValue
	for rows.Next() {
		var (
			v    store.ResourceValue
			kind valueKind
			at   int64
		)
		if err := rows.Scan(&v.Path, &v.Type, &v.Value, &kind, &at); err != nil {
			return nil, fmt.Errorf("read values of %s: %w", deviceID, err)
		}
		if v.Value, err = decodeValue(v.Value, kind); err != nil {
			return nil, fmt.Errorf("read value %s of %s: %w", v.Path, deviceID, err)
		}
		v.Time = fromMilli(at)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read values of %s: %w", deviceID, err)
	}
	return out, nil
}
