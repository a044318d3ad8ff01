package validate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repo is the repository's root, from this package's directory.
const repo = "../.."

// agentDefaults are the settings' defaults as docs/configuration.md
// states them, by flag name (its table is held to the agent's code by
// agent/config's TestConfigurationDoc), and envs the variables it names.
func agentDefaults(t *testing.T) (defaults map[string]string, envs map[string]bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	defaults, envs = map[string]string{}, map[string]bool{}
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		flag := strings.Trim(strings.TrimSpace(cells[1]), "`-")
		defaults[flag] = strings.Trim(strings.TrimSpace(cells[3]), "`")
		envs[strings.Trim(strings.TrimSpace(cells[2]), "`")] = true
	}
	if len(defaults) < 20 {
		t.Fatalf("docs/configuration.md: %d settings found in its table", len(defaults))
	}
	return defaults, envs
}

// pendingEnvs are settings the deployment sets ahead of the agent: the
// replica's id, which the replicas' work reads; the agent ignores
// variables it does not know.
var pendingEnvs = map[string]bool{"LWM2M_AGENT_REPLICA_ID": true}

// agentPorts are the agent's default ports by protocol and number, from
// the addresses' defaults (":5783").
func agentPorts(t *testing.T) map[string]int32 {
	t.Helper()
	defaults, _ := agentDefaults(t)
	ports := map[string]int32{}
	for flag, name := range map[string]string{
		"coap-addr": "coap", "coaps-addr": "coaps", "bootstrap-addr": "bs-coap", "bootstraps-addr": "bs-coaps", "http-addr": "http",
	} {
		v, ok := defaults[flag]
		if !ok {
			t.Fatalf("docs/configuration.md has no --%s", flag)
		}
		_, p, ok := strings.Cut(v, ":")
		var n int32
		for _, c := range p {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			n = n*10 + int32(c-'0')
		}
		if !ok || n == 0 {
			t.Fatalf("--%s default %q: no port", flag, v)
		}
		ports[name] = n
	}
	return ports
}
