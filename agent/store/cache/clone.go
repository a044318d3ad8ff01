package cache

import (
	"bytes"
	"maps"
	"reflect"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// cloneRegistration copies a record deep enough that no caller can change
// the cached one, or another caller's: the parameters (JSON-shaped, to
// any depth), the keys and the identities to release. nil stays nil.
func cloneRegistration(r store.DeviceRegistration) store.DeviceRegistration {
	if r.Params != nil {
		r.Params = cloneMap(r.Params)
	}
	r.PSKKey = bytes.Clone(r.PSKKey)
	r.BootstrapPSKKey = bytes.Clone(r.BootstrapPSKKey)
	r.CredentialsHash = bytes.Clone(r.CredentialsHash)
	r.Release = maps.Clone(r.Release)
	return r
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

// cloneValue copies the maps and slices in v; the common JSON shapes
// without reflection, any other map or slice type (a driver's document
// types) with it. Everything else is a value already.
func cloneValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, int, int32, int64, float64:
		return v
	case map[string]any:
		if x == nil {
			return x
		}
		return cloneMap(x)
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	case []byte:
		return bytes.Clone(x)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map:
		if rv.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(rv.Type(), rv.Len())
		for it := rv.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), cloneElem(it.Value(), rv.Type().Elem()))
		}
		return out.Interface()
	case reflect.Slice:
		if rv.IsNil() {
			return v
		}
		out := reflect.MakeSlice(rv.Type(), rv.Len(), rv.Len())
		for i := range rv.Len() {
			out.Index(i).Set(cloneElem(rv.Index(i), rv.Type().Elem()))
		}
		return out.Interface()
	}
	return v
}

// cloneElem is cloneValue of a map value or slice element of type t.
func cloneElem(v reflect.Value, t reflect.Type) reflect.Value {
	c := cloneValue(v.Interface())
	if c == nil {
		return reflect.Zero(t)
	}
	return reflect.ValueOf(c)
}
