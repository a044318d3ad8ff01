package bootstrap

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

// Each test here runs for seconds; a test still running after two minutes
// is stuck, and ends the binary with every goroutine's stack long before
// go test's -timeout would.
func TestMain(m *testing.M) {
	testbound.Main(m, 2*time.Minute)
}
