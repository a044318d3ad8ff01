package cache

import (
	"context"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Bulk operations. Only a step creates an operation, which makes its
// device's queue not empty; the rest changes nothing the cache holds.

func (e *Engine) CreateBulkOperation(ctx context.Context, tenant string, b store.BulkOperation) (store.BulkOperation, error) {
	return e.e.CreateBulkOperation(ctx, tenant, b)
}

func (e *Engine) GetBulkOperation(ctx context.Context, tenant, id string) (store.BulkOperation, error) {
	return e.e.GetBulkOperation(ctx, tenant, id)
}

func (e *Engine) ListBulkOperations(ctx context.Context, tenant string, p store.Page) ([]store.BulkOperation, int64, error) {
	return e.e.ListBulkOperations(ctx, tenant, p)
}

func (e *Engine) SetBulkStatus(ctx context.Context, tenant, id, status string) (store.BulkOperation, error) {
	return e.e.SetBulkStatus(ctx, tenant, id, status)
}

func (e *Engine) DueBulkOperations(ctx context.Context, now time.Time, limit int) ([]store.TenantBulkOperation, error) {
	return e.e.DueBulkOperations(ctx, now, limit)
}

func (e *Engine) CreateBulkStep(ctx context.Context, tenant string, b store.BulkOperation, next time.Time) (store.Operation, error) {
	op, err := e.e.CreateBulkStep(ctx, tenant, b, next)
	if op.DeviceID != "" {
		e.c.apply(change{queues: one(tenant, op.DeviceID)})
	}
	return op, err
}

func (e *Engine) BulkOperationIDs(ctx context.Context, tenant, id, status string, limit int) ([]string, error) {
	return e.e.BulkOperationIDs(ctx, tenant, id, status, limit)
}
