package mapping_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

// A test still running after two minutes is stuck: it ends the binary
// with its name and every goroutine's stack, long before go test's
// -timeout would.
func TestMain(m *testing.M) {
	code := testbound.Run(m, 2*time.Minute)
	if testPlugin.path != "" {
		os.RemoveAll(filepath.Dir(testPlugin.path))
	}
	os.Exit(code)
}
