package sqlite

import (
	"errors"
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

// errNotPlain is appendDated's answer for a shape it leaves to the
// general path.
var errNotPlain = errors.New("not a plain shape")

// appendDated appends v as encodeJSON(jsonDates(v)) writes it, for the
// plain shapes (maps of any, slices of any or of strings, strings,
// booleans, integers, finite floats, times); for any other it fails,
// with b unusable, and the caller encodes v the general way.
func appendDated(b []byte, v any) ([]byte, error) {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, t), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case int:
		return strconv.AppendInt(b, int64(t), 10), nil
	case int64:
		return strconv.AppendInt(b, t, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(t), 10), nil
	case float64:
		return appendFloat(b, t, 64)
	case time.Time:
		b = append(b, `{"`+dateKey+`":`...)
		return append(strconv.AppendInt(b, t.UnixMilli(), 10), '}'), nil
	case []string:
		if t == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, e)
		}
		return append(b, ']'), nil
	case []any:
		return appendArray(b, t, appendDated)
	case map[string]any:
		return appendObject(b, t, appendDated)
	}
	return nil, errNotPlain
}
