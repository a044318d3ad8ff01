package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// A suite case gets an engine of its own, so that no case depends on
// what another left behind and any case can run alone with -run.
type suiteCase struct {
	name string
	fn   func(t *testing.T, s store.Engine)
}

// Run holds the engine that open returns to the storage contract: it
// runs every case of the suite as a subtest, each on a fresh engine from
// open, which should close it at the test's cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Engine) {
	groups := []struct {
		name  string
		cases []suiteCase
	}{
		{"Tenants", tenantCases},
		{"Devices", deviceCases},
		{"Identities", identityCases},
		{"Registrations", registrationCases},
		{"Operations", operationCases},
		{"Telemetry", telemetryCases},
		{"NewStates", newStateCases},
		{"Binaries", binaryCases},
		{"Protocols", protocolCases},
		{"Isolation", isolationCases},
		{"Retention", retentionCases},
		{"DecodeBacklog", decodeBacklogCases},
		{"FirmwareGrants", firmwareGrantCases},
		{"References", referenceCases},
		{"BulkOperations", bulkCases},
		{"DTLSSessions", dtlsSessionCases},
		{"Replicas", replicaCases},
		{"Dumps", dumpCases(open)},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					c.fn(t, open(t))
				})
			}
		})
	}
}

var ctx = context.Background()

// must unwraps a result in a case's setup; a failure panics, failing the
// test with the stack of the call.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// settled turns the answer of UpdateFragmentsMany or UpdateFieldsMany
// into an error: ErrNotFound for any object missing, which holds a batch
// to the rule of a single update.
// statesSettled is settled of SaveStates' answer.
func statesSettled(missing []string, _ []store.Event, err error) error { return settled(missing, err) }

func settled(missing []string, err error) error {
	if err == nil && len(missing) > 0 {
		return fmt.Errorf("objects missing: %v: %w", missing, store.ErrNotFound)
	}
	return err
}
