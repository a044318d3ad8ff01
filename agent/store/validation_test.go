package store_test

import (
	"encoding/json"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Validation rules arrive as JSON from users: Check never panics, and
// rules it accepts still pass after a trip through JSON (as they are
// answered and sent back).
func FuzzValidationRulesCheck(f *testing.F) {
	f.Add(`{"groups":[[{"type":"STRING","rule":"EQUALS_NOT","value":"test"}],[{"type":"REGEX","rule":"EQUALS","value":".*asd$"},{"type":"STRING","rule":"EQUALS","resource":"/3/0/15"}]]}`)
	f.Add(`{"groups":[[{"type":"NUMBER","rule":"LOWER_OR_EQUALS","value":1e308}]]}`)
	f.Add(`{"groups":[[{"type":"DATE","rule":"GREATER_THAN","value":"2024-05-01T12:00:00Z"}]]}`)
	f.Add(`{"groups":[[{"type":"OBJECTLINK","rule":"EQUALS","value":"65535:65535"}]]}`)
	f.Add(`{"groups":[[{"type":"REGEX","rule":"EQUALS","value":"(a+)+$"}]]}`)
	f.Add(`{"groups":[[]]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var v store.ValidationRules
		if json.Unmarshal([]byte(doc), &v) != nil {
			return
		}
		if v.Check() != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("accepted rules do not encode: %v", err)
		}
		var again store.ValidationRules
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if err := again.Check(); err != nil {
			t.Fatalf("accepted %s, refused after a round trip %s: %v", doc, b, err)
		}
	})
}
