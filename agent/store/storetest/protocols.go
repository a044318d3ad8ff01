package storetest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var protocolCases = []suiteCase{
	{"PutGetReplace", testProtocolPutGetReplace},
	{"Errors", testProtocolErrors},
	{"FirstAcrossTenants", testProtocolFirst},
	{"ListAndPaging", testProtocolList},
	{"TenantIsolation", testProtocolIsolation},
}

func record(tenant string, objectID uint16, source string) store.ProtocolRecord {
	return store.ProtocolRecord{
		Tenant: tenant, ObjectID: objectID, Source: source, Updated: time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.UTC),
		Definition:      json.RawMessage(`{"name":"Temperature","multiple":true,"resources":[{"id":5700,"name":"Value","type":"FLOAT"}]}`),
		Functionalities: json.RawMessage(`{"5700":{"measurement":{"type":"c8y_Temperature","series":"T"}}}`),
		Validation:      json.RawMessage(`{"5750":[{"rules":[{"type":"STRING","rule":"EQUALS_NOT","value":"test"}]}]}`),
	}
}

// sameJSON compares JSON by what it says: engines answer equivalent
// JSON, not the same bytes.
func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %q: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: %s, want %s", what, got, want)
	}
}

func sameRecord(t *testing.T, got, want store.ProtocolRecord) {
	t.Helper()
	if got.Tenant != want.Tenant || got.ObjectID != want.ObjectID || got.Source != want.Source || !got.Updated.Equal(want.Updated) {
		t.Fatalf("record %s %d %q %v, want %s %d %q %v", got.Tenant, got.ObjectID, got.Source, got.Updated,
			want.Tenant, want.ObjectID, want.Source, want.Updated)
	}
	sameJSON(t, "definition", got.Definition, want.Definition)
	sameJSON(t, "functionalities", got.Functionalities, want.Functionalities)
	sameJSON(t, "validation", got.Validation, want.Validation)
}

func testProtocolPutGetReplace(t *testing.T, s store.Engine) {
	r := record("acme", 3303, "3303.xml")
	check(t, s.PutProtocolRecord(ctx, r))
	sameRecord(t, must(s.GetProtocolRecord(ctx, "acme", 3303)), r)

	// Replaced whole; empty JSON reads back as {}. Numbers, nesting,
	// escapes and non-ASCII text come back as they were.
	next := store.ProtocolRecord{
		Tenant: "acme", ObjectID: 3303, Source: "3303-v2.xml", Updated: r.Updated.Add(time.Second),
		Definition: json.RawMessage(` {"name": "Temp\u00e9rature \"2\"", "n": [1, 2.5, 1e3, -7, 9007199254740993],
			"deep": {"a": {"b": [{"c": null}, true, false]}}, "html": "<b>&</b>"} `),
	}
	check(t, s.PutProtocolRecord(ctx, next))
	got := must(s.GetProtocolRecord(ctx, "acme", 3303))
	next.Functionalities, next.Validation = json.RawMessage(`{}`), json.RawMessage(`{}`)
	sameRecord(t, got, next)

	check(t, s.DeleteProtocolRecord(ctx, "acme", 3303))
	if _, err := s.GetProtocolRecord(ctx, "acme", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteProtocolRecord(ctx, "acme", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
}

// A record that cannot be stored is ErrInvalid, and nothing of it is
// stored.
func testProtocolErrors(t *testing.T, s store.Engine) {
	tests := []struct {
		name   string
		change func(*store.ProtocolRecord)
	}{
		{"no tenant", func(r *store.ProtocolRecord) { r.Tenant = "" }},
		{"definition not JSON", func(r *store.ProtocolRecord) { r.Definition = json.RawMessage(`{"name":`) }},
		{"definition an array", func(r *store.ProtocolRecord) { r.Definition = json.RawMessage(`[1]`) }},
		{"functionalities a string", func(r *store.ProtocolRecord) { r.Functionalities = json.RawMessage(`"x"`) }},
		{"validation with trailing data", func(r *store.ProtocolRecord) { r.Validation = json.RawMessage(`{} {}`) }},
		{"member name with $", func(r *store.ProtocolRecord) { r.Definition = json.RawMessage(`{"$date":"2024-01-01T00:00:00Z"}`) }},
		{"nested member name with $", func(r *store.ProtocolRecord) {
			r.Functionalities = json.RawMessage(`{"1":[{"x":{"$numberLong":"5"}}]}`)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := record("acme", 3303, "x.xml")
			tc.change(&r)
			if err := s.PutProtocolRecord(ctx, r); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("put: %v, want ErrInvalid", err)
			}
			if ids := must(s.ProtocolObjectIDs(ctx, r.Tenant)); len(ids) != 0 {
				t.Fatalf("a refused record was stored: %v", ids)
			}
		})
	}
	if _, err := s.GetProtocolRecord(ctx, "acme", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of a missing record: %v, want ErrNotFound", err)
	}
	if _, err := s.FirstProtocolRecord(ctx, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("first of an object nobody has: %v, want ErrNotFound", err)
	}
}

// The first record of an object is the first tenant's by tenant ID: "a"
// before "a-b", though "a-b/…" sorts before "a/…" as a key.
func testProtocolFirst(t *testing.T, s store.Engine) {
	for _, tenant := range []string{"zeta", "a-b", "a", "m"} {
		check(t, s.PutProtocolRecord(ctx, record(tenant, 10241, tenant+".xml")))
	}
	check(t, s.PutProtocolRecord(ctx, record("0", 10242, "other object.xml")))
	for _, want := range []string{"a", "a-b", "m", "zeta"} {
		got := must(s.FirstProtocolRecord(ctx, 10241))
		if got.Tenant != want || got.Source != want+".xml" || got.ObjectID != 10241 {
			t.Fatalf("first: %s %d %q, want %s's", got.Tenant, got.ObjectID, got.Source, want)
		}
		check(t, s.DeleteProtocolRecord(ctx, want, 10241))
	}
	if _, err := s.FirstProtocolRecord(ctx, 10241); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("first after every delete: %v, want ErrNotFound", err)
	}
}

func testProtocolList(t *testing.T, s store.Engine) {
	for _, id := range []uint16{3303, 3, 65535, 1, 10241, 0} {
		check(t, s.PutProtocolRecord(ctx, record("acme", id, "acme.xml")))
	}
	check(t, s.PutProtocolRecord(ctx, record("acme-2", 2, "other.xml")))
	check(t, s.PutProtocolRecord(ctx, record("acm", 4, "other.xml")))
	ids := func(rs []store.ProtocolRecord) []uint16 {
		out := []uint16{}
		for _, r := range rs {
			out = append(out, r.ObjectID)
		}
		return out
	}
	tests := []struct {
		name  string
		page  store.Page
		want  []uint16
		total int64
	}{
		{"page 1", store.Page{Size: 2, WithTotal: true}, []uint16{0, 1}, 6},
		{"page 2", store.Page{Size: 2, Current: 2, WithTotal: true}, []uint16{3, 3303}, 6},
		{"last page", store.Page{Size: 4, Current: 2}, []uint16{10241, 65535}, -1},
		{"past the end", store.Page{Size: 2, Current: 4, WithTotal: true}, []uint16{}, 6},
		{"default size", store.Page{}, []uint16{0, 1, 3, 3303, 10241}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, total, err := s.ListProtocolRecords(ctx, "acme", tc.page)
			check(t, err)
			if !reflect.DeepEqual(ids(list), tc.want) || total != tc.total {
				t.Fatalf("got %v total %d, want %v total %d", ids(list), total, tc.want, tc.total)
			}
			for _, r := range list {
				sameRecord(t, r, record("acme", r.ObjectID, "acme.xml"))
			}
		})
	}
	if got := must(s.ProtocolObjectIDs(ctx, "acme")); !reflect.DeepEqual(got, []uint16{0, 1, 3, 3303, 10241, 65535}) {
		t.Fatalf("object ids %v", got)
	}
	list, total, err := s.ListProtocolRecords(ctx, "nobody", store.Page{WithTotal: true})
	if err != nil || len(list) != 0 || total != 0 {
		t.Fatalf("a tenant without records lists %v, total %d (%v)", ids(list), total, err)
	}
	if got := must(s.ProtocolObjectIDs(ctx, "nobody")); len(got) != 0 {
		t.Fatalf("a tenant without records has object ids %v", got)
	}
}

// A tenant reaches only its own records; the same object ID in two
// tenants is two records.
func testProtocolIsolation(t *testing.T, s store.Engine) {
	check(t, s.PutProtocolRecord(ctx, record("a", 3303, "a.xml")))
	if _, err := s.GetProtocolRecord(ctx, "b", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b reads a's record: %v", err)
	}
	if err := s.DeleteProtocolRecord(ctx, "b", 3303); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b deletes a's record: %v", err)
	}
	check(t, s.PutProtocolRecord(ctx, record("b", 3303, "b.xml")))
	if got := must(s.GetProtocolRecord(ctx, "a", 3303)); got.Source != "a.xml" {
		t.Fatalf("a's record after b's put: %q", got.Source)
	}
	check(t, s.DeleteProtocolRecord(ctx, "b", 3303))
	if got := must(s.GetProtocolRecord(ctx, "a", 3303)); got.Source != "a.xml" {
		t.Fatalf("a's record after b's delete: %q", got.Source)
	}
}
