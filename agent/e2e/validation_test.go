package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// validationPath is the API path of a resource's validation rules.
func validationPath(o, r int) string {
	return fmt.Sprintf("/lwm2m/deviceprotocols/%d/resources/%d/validation", o, r)
}

// setRules stores a resource's validation rules as the management admin.
func (h *harness) setRules(o, r int, groups ...[]map[string]any) {
	h.t.Helper()
	if groups == nil {
		groups = [][]map[string]any{}
	}
	if code, _, e := h.put("management/admin", adminPassword, validationPath(o, r), map[string]any{"groups": groups}); code != 200 {
		h.t.Fatalf("rules of /%d/x/%d: HTTP %d %+v", o, r, code, e)
	}
}

func rule(typ, name string, value any) map[string]any {
	return map[string]any{"type": typ, "rule": name, "value": value}
}

func refRule(typ, name, path string) map[string]any {
	return map[string]any{"type": typ, "rule": name, "resource": path}
}

// postCommand creates an operation as the management admin and returns
// the status and the answer.
func (h *harness) postCommand(deviceID, text string) (int, apiErr) {
	h.t.Helper()
	code, raw := h.send("management/admin", adminPassword, "POST", "/devicecontrol/operations",
		map[string]any{"deviceId": deviceID, "c8y_Command": map[string]string{"text": text}})
	var e apiErr
	_ = json.Unmarshal(raw, &e)
	return code, e
}

// refused checks that text is refused with 422 naming every part of want,
// and that nothing was queued and the device's values did not change.
func (h *harness) refused(sim *simulator.Simulator, ep, deviceID, text string, watch []string, want ...string) {
	h.t.Helper()
	before := len(h.deviceOps("management/admin", adminPassword, deviceID))
	held := map[string]node.Value{}
	for _, p := range watch {
		held[p], _ = sim.Device(ep).Value(node.MustParsePath(p))
	}
	code, e := h.postCommand(deviceID, text)
	if code != 422 {
		h.t.Errorf("%q: HTTP %d %+v, want 422", text, code, e)
		return
	}
	for _, w := range want {
		if !strings.Contains(e.Message, w) {
			h.t.Errorf("%q: message %q does not name %q", text, e.Message, w)
		}
	}
	if after := len(h.deviceOps("management/admin", adminPassword, deviceID)); after != before {
		h.t.Errorf("%q: %d operations after the refusal, %d before", text, after, before)
	}
	for p, v := range held {
		if now, _ := sim.Device(ep).Value(node.MustParsePath(p)); !now.Equal(v) && p != "/3/0/13" {
			h.t.Errorf("%q: the device's %s changed from %q to %q", text, p, v.Text(), now.Text())
		}
	}
}

// Every type and rule through the operations API: a value the rules
// refuse answers 422 naming the rule, no operation is stored and the
// device never sees it; a value they accept is written.
func TestValidationOfWrites(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")
	devTime := func() time.Time {
		v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/13"))
		return v.Time
	}

	tests := []struct {
		name      string
		o, r      int
		rule      map[string]any
		bad, good string // the values written
		named     string // how the refusal names the rule
		holds     string // the path the device holds the good value at
	}{
		{"STRING EQUALS", 3, 14, rule("STRING", "EQUALS", "+01:00"), "+02:00", "+01:00", `STRING EQUALS "+01:00"`, "/3/0/14"},
		{"STRING EQUALS_NOT", 3, 14, rule("STRING", "EQUALS_NOT", "test"), "test", "+03:00", `STRING EQUALS_NOT "test"`, "/3/0/14"},
		{"NUMBER EQUALS", 1, 3, rule("NUMBER", "EQUALS", 60), "61", "60", "NUMBER EQUALS 60", "/1/0/3"},
		{"NUMBER EQUALS_NOT", 1, 3, rule("NUMBER", "EQUALS_NOT", 0), "0", "120", "NUMBER EQUALS_NOT 0", "/1/0/3"},
		{"NUMBER GREATER_THAN", 1, 3, rule("NUMBER", "GREATER_THAN", 30), "30", "31", "NUMBER GREATER_THAN 30", "/1/0/3"},
		{"NUMBER LOWER_THAN", 1, 3, rule("NUMBER", "LOWER_THAN", 3600), "3600", "3599", "NUMBER LOWER_THAN 3600", "/1/0/3"},
		{"NUMBER GREATER_OR_EQUALS", 1, 3, rule("NUMBER", "GREATER_OR_EQUALS", 10), "9", "10", "NUMBER GREATER_OR_EQUALS 10", "/1/0/3"},
		{"NUMBER LOWER_OR_EQUALS", 1, 3, rule("NUMBER", "LOWER_OR_EQUALS", 300), "301", "300", "NUMBER LOWER_OR_EQUALS 300", "/1/0/3"},
		{"DATE EQUALS", 3, 13, rule("DATE", "EQUALS", "2030-01-01T00:00:00Z"), "1893456001", "2030-01-01T00:00:00Z", `DATE EQUALS "2030-01-01T00:00:00Z"`, ""},
		{"DATE EQUALS_NOT", 3, 13, rule("DATE", "EQUALS_NOT", 0), "0", "1893456000", "DATE EQUALS_NOT 0", ""},
		{"DATE GREATER_THAN", 3, 13, rule("DATE", "GREATER_THAN", "2020-01-01T00:00:00Z"), "1000", "2024-05-01T12:00:00Z", `DATE GREATER_THAN "2020-01-01T00:00:00Z"`, ""},
		{"DATE LOWER_THAN", 3, 13, rule("DATE", "LOWER_THAN", "2100-01-01T00:00:00Z"), "2100-01-01T00:00:00Z", "2099-12-31T23:59:59Z", `DATE LOWER_THAN "2100-01-01T00:00:00Z"`, ""},
		{"DATE GREATER_OR_EQUALS", 3, 13, rule("DATE", "GREATER_OR_EQUALS", 1700000000), "1699999999", "1700000000", "DATE GREATER_OR_EQUALS 1700000000", ""},
		{"DATE LOWER_OR_EQUALS", 3, 13, rule("DATE", "LOWER_OR_EQUALS", "2040-01-01T00:00:00+01:00"), "2040-01-01T00:00:01Z", "2039-12-31T23:00:00Z", `DATE LOWER_OR_EQUALS "2040-01-01T00:00:00+01:00"`, ""},
		// a text resource holding object links ("Application Type" here),
		// compared as links: "11:00" is the link 11:0
		{"OBJECTLINK EQUALS", 3303, 5750, rule("OBJECTLINK", "EQUALS", "11:0"), "11:1", "11:00", `OBJECTLINK EQUALS "11:0"`, "/3303/0/5750"},
		{"OBJECTLINK EQUALS_NOT", 3303, 5750, rule("OBJECTLINK", "EQUALS_NOT", "65535:65535"), "65535:65535", "11:2", `OBJECTLINK EQUALS_NOT "65535:65535"`, "/3303/0/5750"},
		{"OBJECTLINK of text that is no link", 3303, 5750, rule("OBJECTLINK", "EQUALS_NOT", "11:0"), "kitchen", "12:0", `OBJECTLINK EQUALS_NOT "11:0" ("kitchen" is not an object link)`, "/3303/0/5750"},
		{"REGEX EQUALS", 3, 15, rule("REGEX", "EQUALS", "[A-Z][a-z]+/[A-Za-z_]+"), "Europe/Berlin!", "Europe/Berlin", `REGEX EQUALS "[A-Z][a-z]+/[A-Za-z_]+"`, "/3/0/15"},
		{"REGEX EQUALS_NOT", 3, 15, rule("REGEX", "EQUALS_NOT", ".*test.*"), "my-test-zone", "Asia/Tokyo", `REGEX EQUALS_NOT ".*test.*"`, "/3/0/15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.setRules(tt.o, tt.r, []map[string]any{tt.rule})
			path := fmt.Sprintf("/%d/0/%d", tt.o, tt.r)
			timeBefore := devTime()
			h.refused(sim, ep, id, "write "+path+" "+tt.bad, []string{path}, "validation of "+path+" failed: group 1: "+tt.named)
			if tt.o == 3 && tt.r == 13 {
				// the device's clock runs on; a refused write must not
				// have set it to the refused date
				if d := devTime().Sub(timeBefore); d < 0 || d > time.Minute {
					t.Errorf("the device's time moved by %s after a refused write", d)
				}
			}
			op := h.shell(id, "write "+path+" "+tt.good, 15*time.Second)
			if op.Status != "SUCCESSFUL" {
				t.Fatalf("accepted value %q: %s %s", tt.good, op.Status, op.FailureReason)
			}
			if tt.holds != "" {
				v, _ := sim.Device(ep).Value(node.MustParsePath(tt.holds))
				if got := v.Text(); got != tt.good {
					t.Errorf("the device holds %s = %q, want %q", tt.holds, got, tt.good)
				}
			}
		})
	}
	h.setRules(1, 3)
	h.setRules(3, 14)
	h.setRules(3, 15)

	// cwrite: each path is checked; only the failing one is named, and
	// nothing of the command is queued
	t.Run("cwrite", func(t *testing.T) {
		h.setRules(3, 15, []map[string]any{rule("STRING", "EQUALS_NOT", "Nowhere/Land")})
		h.setRules(1, 3)
		h.refused(sim, ep, id, `cwrite {"/3/0/14": "+04:00", "/3/0/15": "Nowhere/Land"}`, []string{"/3/0/14", "/3/0/15"},
			`validation of /3/0/15 failed: group 1: STRING EQUALS_NOT "Nowhere/Land"`)
		op := h.shell(id, `cwrite {"/3/0/14": "+04:00", "/3/0/15": "Asia/Dubai"}`, 15*time.Second)
		if op.Status != "SUCCESSFUL" {
			t.Fatalf("valid cwrite: %s %s", op.Status, op.FailureReason)
		}
		if v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/15")); v.Str != "Asia/Dubai" {
			t.Errorf("device holds /3/0/15 = %q", v.Str)
		}
	})

	// create: each resource of the JSON is checked
	t.Run("create", func(t *testing.T) {
		h.setRules(3303, 5750, []map[string]any{rule("REGEX", "EQUALS", "[a-z]+")})
		h.refused(sim, ep, id, `create /3303 {"5750": "Kitchen 2"}`, nil,
			`validation of /3303/1/5750 failed: group 1: REGEX EQUALS "[a-z]+"`)
		if _, ok := sim.Device(ep).Value(node.MustParsePath("/3303/1/5750")); ok {
			t.Error("the refused create made an instance")
		}
		op := h.shell(id, `create /3303 {"5750": "kitchen"}`, 15*time.Second)
		if op.Status != "SUCCESSFUL" {
			t.Fatalf("valid create: %s %s", op.Status, op.FailureReason)
		}
	})

	// several lines: one refused value refuses the whole text, naming its
	// line; the read before it is not queued either
	t.Run("several lines", func(t *testing.T) {
		h.setRules(3, 14, []map[string]any{rule("STRING", "EQUALS_NOT", "test")})
		h.refused(sim, ep, id, "read /3/0/0\n\nwrite /3/0/14 +05:00\nwrite /3/0/14 test", []string{"/3/0/14"},
			`line 4: validation of /3/0/14 failed: group 1: STRING EQUALS_NOT "test"`)
	})

	// a value its resource's type cannot hold is refused at once too
	t.Run("type", func(t *testing.T) {
		h.refused(sim, ep, id, "write /1/0/3 soon", []string{"/1/0/3"}, `write /1/0/3: "soon" is not an integer`)
	})
}

// Two groups: the value is valid when one of them holds; one rule
// compares with the last known value of another resource.
func TestValidationGroupsAndResourceComparison(t *testing.T) {
	h := startAgent(t)
	sim := h.simulate(1, nil)
	ep := sim.Endpoints()[0]
	id := h.device(ep).str("id")

	// UTC offset: an offset "+hh:mm", or (group 2) "Z" while the
	// timezone is UTC
	h.setRules(3, 14,
		[]map[string]any{rule("REGEX", "EQUALS", `[+-][0-9]{2}:[0-9]{2}`)},
		[]map[string]any{rule("STRING", "EQUALS", "Z"), refRule("STRING", "EQUALS", "/3/0/15")},
	)
	h.okShell(id, "write /3/0/14 +05:30") // group 1
	h.refused(sim, ep, id, "write /3/0/14 Z", []string{"/3/0/14"},
		`validation of /3/0/14 failed: group 1: REGEX EQUALS "[+-][0-9]{2}:[0-9]{2}"; group 2: STRING EQUALS resource /3/0/15`)

	// the device reports its timezone Z: group 2 now holds
	sim.Device(ep).SetValue(node.MustParsePath("/3/0/15"), node.String("Z"))
	h.okShell(id, "read /3/0/15")
	h.eventually(10*time.Second, func() error {
		if v, _ := h.objectValue(id, "/3/0/15"); v != "Z" {
			return fmt.Errorf("last known /3/0/15 is %q", v)
		}
		return nil
	})
	h.okShell(id, "write /3/0/14 Z")
	if v, _ := sim.Device(ep).Value(node.MustParsePath("/3/0/14")); v.Str != "Z" {
		t.Errorf("device holds /3/0/14 = %q", v.Str)
	}
	h.refused(sim, ep, id, "write /3/0/14 UTC", []string{"/3/0/14"}, `group 1: REGEX EQUALS`, `group 2: STRING EQUALS "Z"`)

	// pmax above pmin, as the device last reported pmin
	h.okShell(id, "write /1/0/2 20")
	h.okShell(id, "read /1/0/2")
	h.eventually(10*time.Second, func() error {
		if v, _ := h.objectValue(id, "/1/0/2"); v != "20" {
			return fmt.Errorf("last known /1/0/2 is %q", v)
		}
		return nil
	})
	h.setRules(1, 3, []map[string]any{refRule("NUMBER", "GREATER_THAN", "/1/0/2")})
	h.refused(sim, ep, id, "write /1/0/3 20", []string{"/1/0/3"}, "validation of /1/0/3 failed: group 1: NUMBER GREATER_THAN resource /1/0/2")
	h.okShell(id, "write /1/0/3 21")

	// a resource without a last known value fails its rule, saying so
	h.setRules(1, 3, []map[string]any{refRule("NUMBER", "GREATER_THAN", "/1/0/27")})
	h.refused(sim, ep, id, "write /1/0/3 60", []string{"/1/0/3"}, "NUMBER GREATER_THAN resource /1/0/27 (no last known value of /1/0/27)")
}
