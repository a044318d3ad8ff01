package sqlite

import (
	"strings"
	"testing"
)

// Every query of the bulk operations and child references reads an
// index, never the operations or objects at large.
func TestBulkAndReferencePlans(t *testing.T) {
	arg := func(q string, vals ...string) string {
		for _, v := range vals {
			q = strings.Replace(q, "?", v, 1)
		}
		return q
	}
	checkPlans(t, openEngine(t, Config{Dir: t.TempDir()}).db, []planCase{
		{"due", arg(sqlBulkDue, "0", "10"), "USING INDEX bulk_operations_due"},
		{"progress", arg(sqlBulkCount, "'a'", "'7'"), "USING COVERING INDEX operations_bulk"},
		{"operations in a status", arg(sqlBulkOpIDs, "'a'", "'7'", "'PENDING'", "10"), "USING COVERING INDEX operations_bulk"},
		{"target", arg(sqlBulkTarget, "7", "3"), "USING PRIMARY KEY"},
		{"children", "SELECT o.id FROM child_refs r JOIN managed_objects o ON o.tenant = r.tenant AND o.id = r.child WHERE r.tenant = 'a' AND r.kind = 'childAssets' AND r.parent = '1' ORDER BY r.seq",
			"USING COVERING INDEX child_refs_order"},
		{"all references", strings.NewReplacer("?1", "'a'", "?2", "'1'", "?3", "100").Replace(allReferences), "USING COVERING INDEX child_refs_order"},
		{"parents", "SELECT parent FROM child_refs WHERE tenant = 'a' AND child = '1' AND kind = 'childAssets' ORDER BY seq", "USING COVERING INDEX child_refs_child"},
	})
}
