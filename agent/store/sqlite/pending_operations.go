package sqlite

import (
	"context"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The operations of the contract are not implemented on this engine yet:
// each answers errUnsupported until its implementation replaces this file.

func (s *Store) CreateOperation(ctx context.Context, tenant string, op store.Operation) (store.Operation, error) {
	return store.Operation{}, errUnsupported
}

func (s *Store) CreateOperations(ctx context.Context, tenant string, ops []store.Operation) ([]store.Operation, error) {
	return nil, errUnsupported
}

func (s *Store) GetOperation(ctx context.Context, tenant, id string) (store.Operation, error) {
	return store.Operation{}, errUnsupported
}

func (s *Store) ListOperations(ctx context.Context, tenant string, f store.OperationFilter) ([]store.Operation, int64, error) {
	return nil, 0, errUnsupported
}

func (s *Store) SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error {
	return errUnsupported
}

func (s *Store) SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error {
	return errUnsupported
}

func (s *Store) Transition(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	return errUnsupported
}

func (s *Store) Unsend(ctx context.Context, tenant string, cur store.Operation) error {
	return errUnsupported
}

func (s *Store) SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error {
	return errUnsupported
}

func (s *Store) Executing(ctx context.Context, limit int) ([]store.TenantOperation, error) {
	return nil, errUnsupported
}

func (s *Store) ExecutingBefore(ctx context.Context, t time.Time, limit int) ([]store.TenantOperation, error) {
	return nil, errUnsupported
}

func (s *Store) Pending(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	return nil, errUnsupported
}

func (s *Store) PendingCount(ctx context.Context, tenant, deviceID string) (int, error) {
	return 0, errUnsupported
}

func (s *Store) QueueOf(ctx context.Context, tenant, deviceID string, limit int) (store.DeviceQueue, error) {
	return store.DeviceQueue{}, errUnsupported
}

func (s *Store) QueuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) error {
	return errUnsupported
}

func (s *Store) RecentOperations(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	return nil, errUnsupported
}

func (s *Store) PostOperations(ctx context.Context, tenant string) ([]string, error) {
	return nil, errUnsupported
}

func (s *Store) SetPostOperations(ctx context.Context, tenant string, cmds []string) error {
	return errUnsupported
}
