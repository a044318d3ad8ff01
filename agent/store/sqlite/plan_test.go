package sqlite

import (
	"context"
	"strings"
	"testing"
)

// explain returns the plan SQLite chooses for query, one line per step.
func explain(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.Query(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

type planCase struct{ name, query, want string }

// checkPlans checks that SQLite serves each query with the step want
// (an index search or scan) and without a temporary b-tree, which would
// mean sorting what the index should have given in order.
func checkPlans(t *testing.T, db *DB, cases []planCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			plan := explain(t, db, tc.query)
			if !strings.Contains(plan, tc.want) || strings.Contains(plan, "TEMP B-TREE") {
				t.Fatalf("plan:\n%s\nwant %q and no temporary b-tree", plan, tc.want)
			}
		})
	}
}
