package realtime_test

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

// A test still running after two minutes is stuck: it ends the binary
// with its name and every goroutine's stack.
func TestMain(m *testing.M) {
	testbound.Main(m, 2*time.Minute)
}
