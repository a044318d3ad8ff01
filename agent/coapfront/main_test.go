package coapfront

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/testbound"
)

func TestMain(m *testing.M) {
	testbound.Main(m, time.Minute)
}
