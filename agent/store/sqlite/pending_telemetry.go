package sqlite

import (
	"context"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The telemetry of the contract are not implemented on this engine yet:
// each answers errUnsupported until its implementation replaces this file.

func (s *Store) AddMeasurements(ctx context.Context, tenant string, ms []store.Measurement) ([]string, error) {
	return nil, errUnsupported
}

func (s *Store) GetMeasurement(ctx context.Context, tenant, id string) (store.Measurement, error) {
	return store.Measurement{}, errUnsupported
}

func (s *Store) ListMeasurements(ctx context.Context, tenant string, f store.MeasurementFilter) ([]store.Measurement, int64, error) {
	return nil, 0, errUnsupported
}

func (s *Store) CreateEvent(ctx context.Context, tenant string, e store.Event) (store.Event, error) {
	return store.Event{}, errUnsupported
}

func (s *Store) CreateEvents(ctx context.Context, tenant string, evs []store.Event) ([]store.Event, error) {
	return nil, errUnsupported
}

func (s *Store) GetEvent(ctx context.Context, tenant, id string) (store.Event, error) {
	return store.Event{}, errUnsupported
}

func (s *Store) ListEvents(ctx context.Context, tenant string, f store.EventFilter) ([]store.Event, int64, error) {
	return nil, 0, errUnsupported
}

func (s *Store) RaiseAlarm(ctx context.Context, tenant string, a store.Alarm) (store.Alarm, error) {
	return store.Alarm{}, errUnsupported
}

func (s *Store) GetAlarm(ctx context.Context, tenant, id string) (store.Alarm, error) {
	return store.Alarm{}, errUnsupported
}

func (s *Store) UpdateAlarm(ctx context.Context, tenant, id string, u store.AlarmUpdate) (store.Alarm, error) {
	return store.Alarm{}, errUnsupported
}

func (s *Store) ClearAlarm(ctx context.Context, tenant, source, typ string) error {
	return errUnsupported
}

func (s *Store) ListAlarms(ctx context.Context, tenant string, f store.AlarmFilter) ([]store.Alarm, int64, error) {
	return nil, 0, errUnsupported
}

func (s *Store) SaveValues(ctx context.Context, tenant, deviceID string, vals []store.ResourceValue) error {
	return errUnsupported
}

func (s *Store) Values(ctx context.Context, tenant, deviceID string) ([]store.ResourceValue, error) {
	return nil, errUnsupported
}
