package store

import "encoding/json"

// JSONNumbers converts the json.Number values of a document decoded with
// UseNumber, in place, into int64 where they are integers and float64
// otherwise, so that every engine stores and answers numbers alike.
func JSONNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = JSONNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = JSONNumbers(e)
		}
	}
	return v
}
