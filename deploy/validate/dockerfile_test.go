package validate

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile's build line builds the agent here, as it would in the
// image (no Docker needed), and its final stage runs as non-root with
// nothing but the binary.
func TestDockerfileBuildLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agent")
	}
	data, err := os.ReadFile(filepath.Join(repo, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(data), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*?) -o /out/lwm2m-agent (\S+)`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("Dockerfile: no RUN CGO_ENABLED=0 go build ... -o /out/lwm2m-agent PKG line")
	}
	line := strings.ReplaceAll(m[1], "${VERSION}", "validate")
	out := filepath.Join(t.TempDir(), "lwm2m-agent")
	cmd := exec.Command("sh", "-c", line+" -o "+out+" "+m[2])
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, b)
	}
	v, err := exec.Command(out, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "validate") {
		t.Errorf("the built agent's version: %q %v, want the stamped one", v, err)
	}
	stages := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(df, -1)
	if len(stages) < 2 || !strings.Contains(stages[len(stages)-1][1], "distroless/static") {
		t.Errorf("final stage %v: want a distroless static image (no shell)", stages)
	}
	if !regexp.MustCompile(`(?m)^USER 65532`).MatchString(df) {
		t.Error("Dockerfile: no USER 65532 (non-root)")
	}
}
