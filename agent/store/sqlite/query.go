package sqlite

import (
	"database/sql/driver"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"modernc.org/sqlite"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The inventory query language (store.ParseQuery) rendered in SQL over
// the managed_objects row o, with the MongoDB engine's semantics:
//
//   - A fragment field is a path into the fragments JSON, followed as
//     MongoDB follows a dotted path: into objects by name, into every
//     object element of an array met on the way, and into an array's
//     element by position where a name is a number; at the end of the
//     path, an array's elements are compared as well as the array.
//     candidates builds the rows of what a path reaches, each with its
//     JSON type, NULL where the path is missing.
//   - A comparison holds when one of those values holds it, and compares
//     only values of one kind (numbers with numbers whatever their
//     representation, strings with strings by their bytes, booleans with
//     booleans), as MongoDB brackets types; ne is the negation of eq.
//   - null equals a null value and a missing field (a path that reaches
//     nothing is missing); ge and le null are eq null; gt and lt null
//     match nothing.
//   - A wildcard ('*') in eq and ne matches what the MongoDB engine's
//     $regex matches (store.WildcardPattern), through wildcard_match, the
//     same regular expression in Go.
//   - The members outside the fragments are columns of known type: name,
//     type and tenant are strings, seq (id) a number, creationTime and
//     lastUpdated dates, which no query value equals; a path into one of
//     them is missing.
//
// Every value is a bound parameter, and so are the paths: only the
// query's shape makes the SQL text.

// sqlQuery accumulates a statement's SQL and its parameters.
type sqlQuery struct {
	b    strings.Builder
	args []any
}

func (q *sqlQuery) sql(s ...string) {
	for _, p := range s {
		q.b.WriteString(p)
	}
}

// arg appends a parameter's placeholder.
func (q *sqlQuery) arg(v any) {
	q.b.WriteString("?")
	q.args = append(q.args, v)
}

// column is a member kept in a column of managed_objects.
type column struct {
	expr string
	kind string // "text", "number", "date"
}

var columns = map[string]column{
	"name":         {"o.name", "text"},
	"type":         {"o.type", "text"},
	"tenant":       {"o.tenant", "text"},
	"_id":          {"(o.tenant || '/' || o.id)", "text"},
	"seq":          {"o.seq", "number"},
	"creationTime": {"o.creation_time", "date"},
	"lastUpdated":  {"o.last_updated", "date"},
}

// fieldOf says where a field is: a column, nothing (a path into a
// column's value, or into the string id), or a path into the fragments.
func fieldOf(field string) (col column, missing bool, segs []string) {
	segs = strings.Split(field, ".")
	c, fixed := columns[segs[0]]
	switch {
	case fixed && len(segs) == 1:
		return c, false, nil
	case fixed || segs[0] == "id":
		return column{}, true, nil
	}
	return column{}, false, segs
}

// where renders n as an SQL condition.
func (q *sqlQuery) where(n store.QueryNode) error {
	switch n.Kind {
	case store.QueryAnd, store.QueryOr:
		op := " AND "
		if n.Kind == store.QueryOr {
			op = " OR "
		}
		q.sql("(")
		for i, c := range n.Nodes {
			if i > 0 {
				q.sql(op)
			}
			if err := q.where(c); err != nil {
				return err
			}
		}
		q.sql(")")
		return nil
	case store.QueryNot:
		if len(n.Nodes) != 1 {
			return fmt.Errorf("%w: query: not of %d operands", store.ErrInvalid, len(n.Nodes))
		}
		q.sql("NOT (")
		if err := q.where(n.Nodes[0]); err != nil {
			return err
		}
		q.sql(")")
		return nil
	case store.QueryHas:
		_, missing, segs := fieldOf(n.Field)
		switch {
		case missing:
			q.sql("0")
		case segs == nil:
			q.sql("1")
		default:
			q.either(segs, func(from func()) {
				q.sql("EXISTS (SELECT 1 FROM ")
				from()
				q.sql(" c WHERE c.t IS NOT NULL)")
			})
		}
		return nil
	case store.QueryCompare:
		return q.compare(n)
	}
	return fmt.Errorf("%w: query: node of kind %d", store.ErrInvalid, n.Kind)
}

var sqlOps = map[string]string{"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}

// compare renders a comparison; ne is rendered as not eq, as MongoDB
// defines it.
func (q *sqlQuery) compare(n store.QueryNode) error {
	if _, ok := sqlOps[n.Op]; !ok {
		return fmt.Errorf("%w: query: operator %q", store.ErrInvalid, n.Op)
	}
	if n.Op == "ne" {
		eq := n
		eq.Op = "eq"
		q.sql("NOT (")
		if err := q.compare(eq); err != nil {
			return err
		}
		q.sql(")")
		return nil
	}
	if f, ok := n.Value.(float64); ok && math.IsNaN(f) {
		// NaN (the query's "nan") compares false with everything in
		// MongoDB but NaN, which no stored value is (JSON has none).
		q.sql("0")
		return nil
	}
	col, missing, segs := fieldOf(n.Field)
	if n.Value == nil {
		if n.Op == "gt" || n.Op == "lt" {
			q.sql("0")
			return nil
		}
		// eq, ge and le null: a null value, or the field missing.
		switch {
		case missing:
			q.sql("1")
		case segs == nil:
			q.sql("0")
		default:
			q.either(segs, func(from func()) {
				q.sql("(SELECT count(*) = 0 OR max(c.t IS NULL OR c.t = 'null') OR NOT max(c.t IS NOT NULL) FROM ")
				from()
				q.sql(" c)")
			})
		}
		return nil
	}
	if missing {
		q.sql("0")
		return nil
	}
	if segs == nil {
		q.columnCompare(col, n)
		return nil
	}
	q.either(segs, func(from func()) {
		q.sql("EXISTS (SELECT 1 FROM ")
		from()
		q.sql(" c WHERE ")
		q.valueCompare("c.t", "c.v", n)
		q.sql(")")
	})
	return nil
}

// columnCompare compares a column with a value of the query: a value of
// another kind than the column's holds nothing.
func (q *sqlQuery) columnCompare(col column, n store.QueryNode) {
	kind := ""
	switch n.Value.(type) {
	case string:
		kind = "text"
	case int64, float64:
		kind = "number"
	}
	switch {
	case kind != col.kind:
		q.sql("0")
	case n.Wildcard:
		q.sql("wildcard_match(")
		q.arg(n.Value)
		q.sql(", ", col.expr, ")")
	default:
		q.sql(col.expr, " ", sqlOps[n.Op], " ")
		q.arg(n.Value)
	}
}

// valueCompare compares a JSON value, of type t and SQL value v, with a
// value of the query.
func (q *sqlQuery) valueCompare(t, v string, n store.QueryNode) {
	switch x := n.Value.(type) {
	case string:
		q.sql(t, " = 'text' AND ")
		if n.Wildcard {
			q.sql("wildcard_match(")
			q.arg(x)
			q.sql(", ", v, ")")
			return
		}
		q.sql(v, " ", sqlOps[n.Op], " ")
		q.arg(x)
	case int64, float64:
		q.sql(t, " IN ('integer', 'real') AND ", v, " ", sqlOps[n.Op], " ")
		q.arg(x)
	case bool:
		// false is below true
		q.sql(t, " IN ('true', 'false') AND (", t, " = 'true') ", sqlOps[n.Op], " ")
		q.arg(x)
	default:
		q.sql("0")
	}
}

// either renders body over what the fragments path segs reaches: over
// the one value at the path where no array is on it (the usual case,
// which costs a few lookups in the object's JSON), and over candidates
// otherwise. body is given the source of rows (t, v, el) to read.
func (q *sqlQuery) either(segs []string, body func(from func())) {
	q.sql("CASE WHEN ")
	for i := range segs {
		if i > 0 {
			q.sql(" AND ")
		}
		q.sql("json_type(o.fragments, ")
		q.arg(path(strings.Join(segs[:i+1], ".")))
		q.sql(") IS NOT 'array'")
	}
	q.sql(" THEN ")
	body(func() {
		p := path(strings.Join(segs, "."))
		q.sql("(SELECT json_type(o.fragments, ")
		q.arg(p)
		q.sql(") AS t, o.fragments ->> ")
		q.arg(p)
		q.sql(" AS v, 0 AS el)")
	})
	q.sql(" ELSE ")
	body(func() { q.candidates(segs) })
	q.sql(" END")
}

// candidates renders the rows (t, v, el) of what the fragments path segs
// reaches: t the JSON type ('object', 'array', 'text', 'integer',
// 'real', 'true', 'false', 'null'; NULL for missing), v the SQL value
// (JSON text for objects and arrays), el 1 for an element of an array
// the path ends at. Each level reads the one before once, so that the
// SQL grows with the path's length, not more.
func (q *sqlQuery) candidates(segs []string) {
	q.sql("(SELECT CASE x.m WHEN 0 THEN json_type(p.j) ELSE e.type END AS t, ",
		"CASE x.m WHEN 0 THEN p.j ->> '$' ELSE e.atom END AS v, x.m AS el FROM ")
	q.level(segs)
	q.sql(" p, (SELECT 0 AS m UNION ALL SELECT 1) x, ",
		"json_each(CASE WHEN x.m = 1 AND json_type(p.j) = 'array' THEN p.j ELSE '[0]' END) e ",
		"WHERE x.m = 0 OR json_type(p.j) = 'array')")
}

// level renders the rows (j) of the JSON texts the path segs reaches,
// NULL for missing.
func (q *sqlQuery) level(segs []string) {
	last := segs[len(segs)-1]
	if len(segs) == 1 {
		q.sql("(SELECT o.fragments -> ")
		q.arg(path(last))
		q.sql(" AS j)")
		return
	}
	index, isIndex := arrayIndex(last)
	q.sql("(SELECT CASE ")
	if isIndex {
		q.sql("WHEN x.m = 1 THEN p.j -> ")
		q.arg("$[" + strconv.Itoa(index) + "]")
		q.sql(" ")
	}
	q.sql("WHEN json_type(p.j) = 'array' THEN e.value -> ")
	q.arg(path(last))
	q.sql(" WHEN json_type(p.j) = 'object' THEN p.j -> ")
	q.arg(path(last))
	q.sql(" END AS j FROM ")
	q.level(segs[:len(segs)-1])
	q.sql(" p, json_each(CASE WHEN json_type(p.j) = 'array' THEN p.j ELSE '[0]' END) e")
	if isIndex {
		q.sql(", (SELECT 0 AS m UNION ALL SELECT 1) x WHERE (x.m = 0 AND (json_type(p.j) IS NOT 'array' OR e.type = 'object'))",
			" OR (x.m = 1 AND json_type(p.j) = 'array' AND e.key = ")
		q.arg(index)
		q.sql("))")
		return
	}
	q.sql(" WHERE json_type(p.j) IS NOT 'array' OR e.type = 'object')")
}

// arrayIndex says whether a path segment names an array's element, as
// MongoDB reads a number in a path: digits without a leading zero.
func arrayIndex(seg string) (int, bool) {
	if seg == "" || len(seg) > 1 && seg[0] == '0' {
		return 0, false
	}
	for _, c := range seg {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(seg)
	return n, err == nil
}

// orderBy renders the sort keys of $orderby, in MongoDB's order: what is
// missing or null first, then numbers, strings, objects, arrays,
// booleans and dates; a path that reaches an array sorts by its least
// element ascending and its greatest descending, an empty array before
// everything.
func (q *sqlQuery) orderBy(order []store.QueryOrder) {
	for _, o := range order {
		dir := ""
		if o.Desc {
			dir = " DESC"
		}
		col, missing, segs := fieldOf(o.Field)
		switch {
		case missing:
			continue
		case segs == nil:
			q.sql(col.expr, dir, ", ")
			continue
		}
		// A path that reaches nothing (through an array of numbers) is
		// missing.
		for _, key := range []string{"r", "k"} {
			q.either(segs, func(from func()) {
				q.sql("coalesce((SELECT ", key, " FROM (SELECT ", sortRank, " AS r, ", sortKey, " AS k FROM ")
				from()
				q.sql(" c WHERE c.el = 1 OR c.t IS NOT 'array' OR json_array_length(c.v) = 0) ORDER BY r", dir, ", k", dir, " LIMIT 1), ")
				if key == "r" {
					q.sql("1)")
				} else {
					q.sql("NULL)")
				}
			})
			q.sql(dir, ", ")
		}
	}
	q.sql("o.seq")
}

// sortRank and sortKey are a candidate's place in MongoDB's order of
// types and its value within its type (dates by their milliseconds).
const (
	sortRank = `CASE
		WHEN c.t IS NULL OR c.t = 'null' THEN 1
		WHEN c.t IN ('integer', 'real') THEN 2
		WHEN c.t = 'text' THEN 3
		WHEN c.t = 'object' AND c.v ->> '$."` + dateKey + `"' IS NOT NULL THEN 7
		WHEN c.t = 'object' THEN 4
		WHEN c.t = 'array' AND c.el = 0 THEN 0
		WHEN c.t = 'array' THEN 5
		ELSE 6 END`
	sortKey = `CASE
		WHEN c.t IN ('true', 'false') THEN c.t = 'true'
		WHEN c.t = 'object' AND c.v ->> '$."` + dateKey + `"' IS NOT NULL THEN c.v ->> '$."` + dateKey + `"'
		ELSE c.v END`
)

// wildcards caches the compiled patterns of wildcard_match; it is
// emptied when full, since queries bring new patterns without end.
var wildcards = struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}{m: map[string]*regexp.Regexp{}}

func init() {
	// wildcard_match(pattern, value) says whether the string value
	// matches the query's wildcard pattern as the MongoDB engine matches
	// it; any other value matches nothing.
	sqlite.MustRegisterDeterministicScalarFunction("wildcard_match", 2, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		pattern, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("wildcard_match: pattern is %T", args[0])
		}
		value, ok := args[1].(string)
		if !ok {
			return int64(0), nil
		}
		wildcards.Lock()
		re := wildcards.m[pattern]
		if re == nil {
			var err error
			if re, err = regexp.Compile(store.WildcardPattern(pattern)); err != nil {
				wildcards.Unlock()
				return nil, err
			}
			if len(wildcards.m) >= 256 {
				clear(wildcards.m)
			}
			wildcards.m[pattern] = re
		}
		wildcards.Unlock()
		if re.MatchString(value) {
			return int64(1), nil
		}
		return int64(0), nil
	})
}
