package sqlite

import "testing"

// Every query of the protocol records is served by the index meant for
// it, without sorting.
func TestProtocolQueryPlans(t *testing.T) {
	checkPlans(t, openEngine(t, Config{Dir: t.TempDir()}).db, []planCase{
		{"record", "SELECT " + protocolColumns + " FROM protocols WHERE tenant = 'a' AND object_id = 3",
			"SEARCH protocols USING INDEX protocols_key (tenant=? AND object_id=?)"},
		{"first of an object", "SELECT " + protocolColumns + " FROM protocols WHERE object_id = 3 ORDER BY tenant LIMIT 1",
			"SEARCH protocols USING INDEX protocols_object (object_id=?)"},
		{"list", "SELECT " + protocolColumns + " FROM protocols WHERE tenant = 'a' ORDER BY object_id LIMIT 5 OFFSET 0",
			"SEARCH protocols USING INDEX protocols_key (tenant=?)"},
		{"count", "SELECT count(*) FROM protocols WHERE tenant = 'a'", "SEARCH protocols USING COVERING INDEX protocols_key (tenant=?)"},
		{"object ids", "SELECT object_id FROM protocols WHERE tenant = 'a' ORDER BY object_id",
			"SEARCH protocols USING COVERING INDEX protocols_key (tenant=?)"},
	})
}
