package e2e

import (
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
)

// withOperationAttempts sets how many timed-out requests fail an
// operation.
func withOperationAttempts(n int) option {
	return func(c *config.Config) { c.OperationAttempts = n }
}

// withQueue sets the awake-time queue's settings.
func withQueue(awake time.Duration, perWakeup int) option {
	return func(c *config.Config) { c.AwakeTime, c.MaxOperationsPerWakeup = awake, perWakeup }
}
