package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

func commandsOf(t *testing.T, a answer) []string {
	t.Helper()
	raw, ok := a.body["commands"].([]any)
	if !ok {
		t.Fatalf("answer has no commands list: %v", a.body)
	}
	out := make([]string, len(raw))
	for i, c := range raw {
		out[i], _ = c.(string)
	}
	return out
}

func TestPostOperationsAPI(t *testing.T) {
	e := newEnv(t)
	if got := commandsOf(t, e.want(e.do("GET", "/lwm2m/postoperations", "a", nil), 200)); len(got) != 0 {
		t.Fatalf("before any PUT: %q", got)
	}
	put := map[string]any{"commands": []string{"read /3/0", "  observe /3/0/9  ", "writeattr /3/0/9 pmin=10"}}
	want := "read /3/0|observe /3/0/9|writeattr /3/0/9 pmin=10"
	if got := strings.Join(commandsOf(t, e.want(e.do("PUT", "/lwm2m/postoperations", "a", put), 200)), "|"); got != want {
		t.Fatalf("PUT answered %q, want %q", got, want)
	}
	if got := strings.Join(commandsOf(t, e.want(e.do("GET", "/lwm2m/postoperations", "a", nil), 200)), "|"); got != want {
		t.Fatalf("GET answered %q, want %q", got, want)
	}
	// another tenant has its own list
	if got := commandsOf(t, e.want(e.do("GET", "/lwm2m/postoperations", "b", nil), 200)); len(got) != 0 {
		t.Fatalf("tenant b sees a's commands: %q", got)
	}
	e.want(e.do("GET", "/lwm2m/postoperations", "", nil), http.StatusUnauthorized)

	tooMany := make([]string, store.MaxPostOperations+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("read /3/0/%d", i%20)
	}
	tests := []struct {
		name string
		body any
		code int
		msg  []string // parts of the message
	}{
		{"unknown command", map[string]any{"commands": []string{"read /3/0", "reed /3/0"}}, 422, []string{"command 2", `unknown command "reed"`, "nothing was stored"}},
		{"bad path", map[string]any{"commands": []string{"write /3/0 x"}}, 422, []string{"command 1", "a resource path /O/I/R is needed"}},
		{"two bad", map[string]any{"commands": []string{"read", "read /3/0", "serialization XML"}}, 422, []string{"command 1", "command 3", `unknown format "XML"`}},
		{"not a string", map[string]any{"commands": []any{"read /3/0", 7}}, 422, []string{"command 2: not a string"}},
		{"no list", map[string]any{"cmds": []string{"read /3/0"}}, 422, []string{`"commands"`}},
		{"too many", map[string]any{"commands": tooMany}, 422, []string{fmt.Sprintf("at most %d", store.MaxPostOperations)}},
		{"not JSON", "{", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.want(e.do("PUT", "/lwm2m/postoperations", "a", tt.body), tt.code)
			msg, _ := a.body["message"].(string)
			for _, m := range tt.msg {
				if !strings.Contains(msg, m) {
					t.Errorf("message %q does not contain %q", msg, m)
				}
			}
			if got := strings.Join(commandsOf(t, e.want(e.do("GET", "/lwm2m/postoperations", "a", nil), 200)), "|"); got != want {
				t.Fatalf("a refused PUT changed the list: %q", got)
			}
		})
	}

	// an empty list removes them
	e.want(e.do("PUT", "/lwm2m/postoperations", "a", map[string]any{"commands": []string{}}), 200)
	if got := commandsOf(t, e.want(e.do("GET", "/lwm2m/postoperations", "a", nil), 200)); len(got) != 0 {
		t.Fatalf("after an empty PUT: %q", got)
	}
}
