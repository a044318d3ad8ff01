package sqlite

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Where the embedded FerretDB, which the conformance suite runs the
// MongoDB engine on, answers otherwise than MongoDB, this engine answers
// as MongoDB does: null equals a field that an element of an array of
// objects lacks, a sort follows a path through an array of objects, and
// a sort without a filter orders strings before booleans.
func TestQueriesAsMongoDB(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, o := range []struct {
		name  string
		frags map[string]any
	}{
		{"a", map[string]any{"list": []any{map[string]any{"n": int64(1)}, map[string]any{"k": "b"}}, "flag": false}},
		{"b", map[string]any{"list": []any{map[string]any{"n": int64(3)}}, "flag": "true"}},
		{"c", map[string]any{"list": []any{int64(1), int64(2)}, "flag": true}},
		{"d", map[string]any{"list": []any{}}},
		{"e", nil},
	} {
		if _, err := s.CreateManagedObject(ctx, "q", store.ManagedObject{Name: o.name, Fragments: o.frags}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"list.n eq null", []string{"a", "c", "d", "e"}},
		{"list.n ne null", []string{"b"}},
		{"has(list.n)", []string{"a", "b"}},
		{"list.k eq 'b'", []string{"a"}},
		{"list eq 2", []string{"c"}},
		{"list ge nan", nil},
		{"list ne nan", []string{"a", "b", "c", "d", "e"}},
		{"$orderby=list.n desc", []string{"b", "a", "c", "d", "e"}},
		{"$orderby=list.n", []string{"a", "c", "d", "e", "b"}},
		{"$orderby=flag", []string{"d", "e", "b", "a", "c"}},
		{"$orderby=list", []string{"d", "e", "c", "a", "b"}},
	} {
		if got := queryNames(t, s, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
		}
	}
}

// queryNames lists the names of tenant q's objects that query selects.
func queryNames(t *testing.T, s *Store, query string) []string {
	t.Helper()
	mos, _, err := s.ListManagedObjects(context.Background(), "q", store.ManagedObjectFilter{Query: query})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	var names []string
	for _, mo := range mos {
		names = append(names, mo.Name)
	}
	return names
}

// A wildcard matches as the MongoDB engine's regular expression does:
// every other character literally, '*' any run of characters but a
// newline.
func TestWildcards(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, n := range []string{"a.b", "axb", "a\nb", "(a)+", "100%_x"} {
		if _, err := s.CreateManagedObject(ctx, "q", store.ManagedObject{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"name eq 'a.*'", []string{"a.b"}},
		{"name eq 'a*b'", []string{"a.b", "axb"}},
		{"name eq '(a)*'", []string{"(a)+"}},
		{"name eq '100%*'", []string{"100%_x"}},
		{"name eq '*_*'", []string{"100%_x"}},
		{"name ne 'a*'", []string{"a\nb", "(a)+", "100%_x"}},
	} {
		if got := queryNames(t, s, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.query, got, tc.want)
		}
	}
}

// A query's values and paths are parameters, never SQL; a path's SQL
// grows with its length, not faster; a list is read through the
// tenant's index in the order of ids, and sorted only for $orderby.
func TestQuerySQL(t *testing.T) {
	q, err := listObjects("acme", store.ManagedObjectFilter{
		Type: "t'1", FragmentType: "frag_x",
		Query: "name eq 'x'' OR 1=1 --' and frag_y.field_z gt 54321 or has(frag_w) and not(frag_v ne 'v*v')",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []struct {
		sql  string
		args []any
	}{{q.list, q.listArgs}, {q.count, q.countArgs}} {
		for _, word := range []string{"OR 1=1", "t'1", "frag_x", "frag_y", "field_z", "frag_w", "frag_v", "v*v", "54321"} {
			if strings.Contains(stmt.sql, word) {
				t.Errorf("%q is in the SQL instead of a parameter:\n%s", word, stmt.sql)
			}
		}
		if n := strings.Count(stmt.sql, "?"); n != len(stmt.args) {
			t.Errorf("%d placeholders for %d parameters", n, len(stmt.args))
		}
	}

	size := func(query string) int {
		l, err := listObjects("acme", store.ManagedObjectFilter{Query: query})
		if err != nil {
			t.Fatal(err)
		}
		return len(l.list)
	}
	short, long := size("a.b eq 1"), size("a.b.c.d.e.f.g.h.i.j.k eq 1")
	indexed := size("a.0.1.2.3.4.5.6.7.8.9 eq 1")
	if step := (long - short) / 9; step > 1000 || indexed > 2*long {
		t.Errorf("SQL of a path: %d bytes for 2 names, %d for 11, %d for 11 with positions", short, long, indexed)
	}

	s := newStore(t)
	for _, tc := range []struct{ query, want, not string }{
		{"name eq 'x'", "managed_objects_seq", "TEMP B-TREE"},
		{"has(c8y_IsDevice) and c8y_Availability.status eq 'AVAILABLE'", "managed_objects_seq", "TEMP B-TREE"},
		{"$orderby=name", "", ""},
	} {
		l, err := listObjects("acme", store.ManagedObjectFilter{Query: tc.query})
		if err != nil {
			t.Fatal(err)
		}
		plan := explain(t, s.db, l.list+" LIMIT ? OFFSET ?", append(l.listArgs, 1, 0)...)
		if !strings.Contains(plan, "(tenant=?)") || tc.want != "" && !strings.Contains(plan, tc.want) || tc.not != "" && strings.Contains(plan, tc.not) {
			t.Errorf("plan of %s:\n%s", tc.query, plan)
		}
	}
}

// Times in fragments are stored as dates and read back as time.Time in
// UTC at millisecond precision, as the MongoDB engine gives them back,
// wherever they are: at the top, nested, in slices and typed maps, set
// by any update; a whole float is read back as a float, as MongoDB keeps
// a double.
func TestFragmentTimes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	want := at.UTC().Truncate(time.Millisecond)
	ptr := at
	mo, err := s.CreateManagedObject(ctx, "q", store.ManagedObject{Name: "t", Fragments: map[string]any{
		"top": at, "nested": map[string]any{"at": at, "list": []any{at, "x"}},
		"typed": map[string]time.Time{"at": at}, "slice": []time.Time{at}, "ptr": &ptr, "strings": []string{"a"},
		"none": (*time.Time)(nil), "nilMap": map[string]any(nil), "nilList": []any(nil), "bytes": []byte("ab"),
		"whole": 21.0, "int": int64(21),
	}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, s.UpdateFragments(ctx, "q", mo.ID, map[string]any{"updated": at}))
	_, err = s.UpdateFieldsMany(ctx, "q", map[string]map[string]any{mo.ID: {"fields.at": at}})
	check(t, err)
	got, err := s.GetManagedObject(ctx, "q", mo.ID)
	check(t, err)
	f := got.Fragments
	for name, v := range map[string]any{
		"top": f["top"], "nested.at": f["nested"].(map[string]any)["at"], "nested.list[0]": f["nested"].(map[string]any)["list"].([]any)[0],
		"typed.at": f["typed"].(map[string]any)["at"], "slice[0]": f["slice"].([]any)[0], "ptr": f["ptr"],
		"updated": f["updated"], "fields.at": f["fields"].(map[string]any)["at"],
	} {
		if tm, ok := v.(time.Time); !ok || !tm.Equal(want) || tm.Location() != time.UTC {
			t.Errorf("%s: %#v, want %v", name, v, want)
		}
	}
	if f["whole"] != 21.0 || f["int"] != int64(21) {
		t.Errorf("numbers: whole float %#v, integer %#v", f["whole"], f["int"])
	}
	if f["none"] != nil || f["nilMap"] != nil || f["nilList"] != nil || f["bytes"] != "YWI=" || !slices.Equal(f["strings"].([]any), []any{"a"}) {
		t.Errorf("other values: none %#v, nilMap %#v, nilList %#v, bytes %#v, strings %#v", f["none"], f["nilMap"], f["nilList"], f["bytes"], f["strings"])
	}
}

// BenchmarkInventoryQuery lists the first page of a query, with its
// total, over 10,000 devices of a tenant: every object is read for the
// query's conditions on its fragments, which no index holds.
func BenchmarkInventoryQuery(b *testing.B) {
	s := newStore(b)
	fleet(b, s, 10_000, 2)
	for _, query := range []string{
		"has(c8y_IsDevice) and c8y_Availability.status eq 'AVAILABLE'",
		"lwm2m.registrationId eq 'r*' $orderby=c8y_Hardware.serialNumber desc",
	} {
		b.Run(query, func(b *testing.B) {
			for b.Loop() {
				mos, total, err := s.ListManagedObjects(context.Background(), "acme", store.ManagedObjectFilter{
					Query: query, Page: store.Page{WithTotal: true},
				})
				if err != nil || len(mos) == 0 || total < 5_000 {
					b.Fatalf("%d objects of %d: %v", len(mos), total, err)
				}
			}
		})
	}
}
