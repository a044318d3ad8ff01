package sqlite

import (
	"reflect"
	"strconv"
	"time"
)

// Fragments are kept as JSON, which has no type for a time: a time.Time
// would come back as a string, where the MongoDB engine gives back a
// time.Time (a BSON date), and the agent's own fragments hold times (the
// lwm2m fragment's lastUpdate, which the restore of registrations reads
// as a time). So a time is stored as {"$date": <Unix milliseconds>}, the
// shape of MongoDB's extended JSON, with a date's millisecond precision,
// and read back as a time.Time in UTC. No other value takes that shape:
// the API refuses member names that start with '$', and the store's
// callers pass plain Go values.
const dateKey = "$date"

// jsonDates returns v with every time.Time in it replaced by its date
// object; the maps and slices on the way are copies.
func jsonDates(v any) any {
	switch t := v.(type) {
	case nil, string, bool, int, int32, int64, float64:
		return v
	case time.Time:
		return map[string]any{dateKey: t.UnixMilli()}
	case map[string]any:
		if t == nil {
			return v
		}
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[k] = jsonDates(e)
		}
		return m
	case []any:
		if t == nil {
			return v
		}
		s := make([]any, len(t))
		for i, e := range t {
			s[i] = jsonDates(e)
		}
		return s
	}
	// Other maps, slices and pointers ([]string, map[string]string,
	// []map[string]any, *time.Time) are taken apart only when their
	// elements may be times.
	rv := reflect.ValueOf(v)
	if !mayHoldTime(rv.Type()) {
		return v
	}
	switch rv.Kind() {
	case reflect.Map:
		if rv.IsNil() || rv.Type().Key().Kind() != reflect.String {
			return v
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = jsonDates(it.Value().Interface())
		}
		return m
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return v
		}
		s := make([]any, rv.Len())
		for i := range s {
			s[i] = jsonDates(rv.Index(i).Interface())
		}
		return s
	case reflect.Pointer:
		if rv.IsNil() {
			return nil
		}
		return jsonDates(rv.Elem().Interface())
	}
	return v
}

var timeType = reflect.TypeFor[time.Time]()

func mayHoldTime(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Map, reflect.Slice, reflect.Array, reflect.Pointer:
		return mayHoldTime(t.Elem())
	}
	return t == timeType
}

// appendDated appends v as encodeJSON(jsonDates(v)) writes it, for the
// plain shapes (maps of any, slices of any or of strings, strings,
// booleans, integers, finite floats, times); ok is false, with b
// unusable, for any other, which the caller encodes the general way.
func appendDated(b []byte, v any) (_ []byte, ok bool) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendString(b, t), true
	case bool:
		return strconv.AppendBool(b, t), true
	case int:
		return strconv.AppendInt(b, int64(t), 10), true
	case int64:
		return strconv.AppendInt(b, t, 10), true
	case int32:
		return strconv.AppendInt(b, int64(t), 10), true
	case float64:
		b, err := appendFloat(b, t, 64)
		return b, err == nil
	case time.Time:
		b = append(b, `{"`+dateKey+`":`...)
		return append(strconv.AppendInt(b, t.UnixMilli(), 10), '}'), true
	case []string:
		if t == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		return append(b, ']'), true
	case []any:
		if t == nil {
			return append(b, "null"...), true
		}
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendDated(b, e); !ok {
				return nil, false
			}
		}
		return append(b, ']'), true
	case map[string]any:
		if t == nil {
			return append(b, "null"...), true
		}
		b = append(b, '{')
		first := true
		for k, e := range t {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(appendString(b, k), ':')
			if b, ok = appendDated(b, e); !ok {
				return nil, false
			}
		}
		return append(b, '}'), true
	}
	return nil, false
}
