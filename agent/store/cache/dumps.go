package cache

import (
	"context"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumps pass through. An import writes what its records name, so the
// cache drops those answers afterwards, the negative ones (an endpoint
// nobody had) included.

func (e *Engine) Export(ctx context.Context, fn func(store.Record) error) error {
	return e.e.Export(ctx, fn)
}

func (e *Engine) DumpKinds() []string { return e.e.DumpKinds() }

func (e *Engine) ImportReady(ctx context.Context) error { return e.e.ImportReady(ctx) }

func (e *Engine) ImportBatch(ctx context.Context, records []store.Record) error {
	var ch change
	for _, r := range records {
		switch x := r.(type) {
		case *store.EndpointRecord:
			ch.endpoints = append(ch.endpoints, x.Endpoint)
		case *store.PSKIdentityRecord:
			ch.identities = append(ch.identities, identKey{x.Type, x.Identity})
		case *store.RegistrationRecord:
			ch.records = append(ch.records, devKey{x.Tenant, x.DeviceID})
		case *store.OperationRecord:
			ch.queues = append(ch.queues, devKey{x.Tenant, x.DeviceID})
		}
	}
	defer e.c.apply(ch)
	return e.e.ImportBatch(ctx, records)
}
