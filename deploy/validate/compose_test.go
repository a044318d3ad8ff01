package validate

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

var composeDir = filepath.Join(repo, "deploy", "compose")

// loadCompose loads the compose file as `docker compose config` does:
// interpolated, checked against the compose specification's JSON schema
// (which compose-go carries), normalized.
func loadCompose(t *testing.T, content []byte) (*types.Project, error) {
	t.Helper()
	return loadComposeEnv(t, content, types.Mapping{"LWM2M_AGENT_ADMIN_PASSWORD": "test-password", "LWM2M_AGENT_DTLS_STATE_KEY": testStateKey})
}

// testStateKey is the DTLS state key the compose file is loaded with.
var testStateKey = strings.Repeat("ab", 32)

func loadComposeEnv(t *testing.T, content []byte, env types.Mapping) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(composeDir)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml"), Content: content}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("lwm2m", true) })
}

// The compose file has the manifests' shape: a replica set of three and
// its init, several agents that wait for it and check their readiness,
// and a balancer publishing the devices' ports, whose nginx.conf hashes
// the source address over every agent on every port.
func TestCompose(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadCompose(t, data)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var agents, mongos []string
	for name, s := range p.Services {
		switch {
		case strings.HasPrefix(name, "agent-"):
			agents = append(agents, name)
			if s.HealthCheck == nil || !slices.Contains(s.HealthCheck.Test, "--ready") {
				t.Errorf("%s: health check %v does not ask for readiness", name, s.HealthCheck)
			}
			if d, ok := s.DependsOn["mongo-init"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s: does not wait for the replica set's initiation", name)
			}
			if id := s.Environment["LWM2M_AGENT_REPLICA_ID"]; id == nil || *id != name {
				t.Errorf("%s: replica id %v, want its name", name, id)
			}
			// every agent seals and opens the DTLS session states with
			// the one key given
			if k := s.Environment["LWM2M_AGENT_DTLS_STATE_KEY"]; k == nil || *k != testStateKey {
				t.Errorf("%s: DTLS state key %v, want the one given to compose", name, k)
			}
			if uri := s.Environment["LWM2M_AGENT_MONGO_URI"]; uri == nil || !strings.Contains(*uri, "replicaSet=rs0") {
				t.Errorf("%s: MongoDB URI %v without replicaSet=rs0", name, uri)
			}
			if len(s.Ports) > 0 {
				t.Errorf("%s publishes ports: devices must come through the balancer", name)
			}
		case strings.HasPrefix(name, "mongo-") && name != "mongo-init":
			mongos = append(mongos, name)
			if !slices.Contains(s.Command, "rs0") || len(s.Volumes) == 0 {
				t.Errorf("%s: want --replSet rs0 and a volume", name)
			}
		}
	}
	if len(agents) < 2 || len(mongos) != 3 {
		t.Fatalf("agents %v, MongoDB members %v: want several and three", agents, mongos)
	}
	script := strings.Join(p.Services["mongo-init"].Command, " ")
	for _, m := range mongos {
		if !strings.Contains(script, m+":27017") {
			t.Errorf("mongo-init does not name member %s", m)
		}
	}
	lb, ok := p.Services["lb"]
	if !ok {
		t.Fatal("no service lb")
	}
	published := map[string]bool{}
	for _, port := range lb.Ports {
		published[strconv.Itoa(int(port.Target))+"/"+port.Protocol] = true
	}
	conf, err := os.ReadFile(filepath.Join(composeDir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	upstreams := parseUpstreams(string(conf))
	for name, port := range agentPorts(t) {
		proto := "udp"
		if name == "http" {
			proto = "tcp"
		}
		key := strings.ReplaceAll(name, "-", "_")
		if name == "http" {
			key = "api"
		}
		if !published[itoa(port)+"/"+proto] {
			t.Errorf("lb does not publish %d/%s", port, proto)
		}
		u, ok := upstreams[key]
		if !ok {
			t.Errorf("nginx.conf: no upstream %s", key)
			continue
		}
		if !u.hashed {
			t.Errorf("nginx.conf: upstream %s does not hash $remote_addr consistently", key)
		}
		for _, a := range agents {
			if !slices.Contains(u.servers, a+":"+itoa(port)) {
				t.Errorf("nginx.conf: upstream %s lacks %s:%d", key, a, port)
			}
		}
		if !strings.Contains(string(conf), "listen "+itoa(port)) {
			t.Errorf("nginx.conf: nothing listens on %d", port)
		}
	}
}

// Compose refuses to start the agents without the shared secrets: an
// agent would otherwise generate a DTLS state key of its own, which no
// other agent opens.
func TestComposeNeedsSecrets(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, missing := range []string{"LWM2M_AGENT_ADMIN_PASSWORD", "LWM2M_AGENT_DTLS_STATE_KEY"} {
		env := types.Mapping{"LWM2M_AGENT_ADMIN_PASSWORD": "test-password", "LWM2M_AGENT_DTLS_STATE_KEY": testStateKey}
		delete(env, missing)
		if _, err := loadComposeEnv(t, data, env); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v, want a refusal naming it", missing, err)
		}
	}
}

// The schema check refuses what compose would refuse, so that the test
// above can fail.
func TestComposeSchemaRefuses(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"unknown service key", "services:\n  a:\n    image: x\n    helthcheck: {test: [CMD, x]}\n"},
		{"wrong type", "services:\n  a:\n    image: x\n    ports: 5783\n"},
		{"unknown top-level key", "services:\n  a:\n    image: x\nvolumez: {}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadCompose(t, []byte(tc.doc)); err == nil {
				t.Errorf("accepted:\n%s", tc.doc)
			}
		})
	}
}

type upstream struct {
	servers []string
	hashed  bool
}

var (
	upstreamRe = regexp.MustCompile(`(?s)upstream\s+(\w+)\s*\{(.*?)\}`)
	serverRe   = regexp.MustCompile(`(?m)^\s*server\s+(\S+)`)
)

func parseUpstreams(conf string) map[string]upstream {
	out := map[string]upstream{}
	for _, m := range upstreamRe.FindAllStringSubmatch(conf, -1) {
		u := upstream{hashed: strings.Contains(m[2], "hash $remote_addr consistent;")}
		for _, s := range serverRe.FindAllStringSubmatch(m[2], -1) {
			u.servers = append(u.servers, strings.TrimSuffix(s[1], ";"))
		}
		out[m[1]] = u
	}
	return out
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
