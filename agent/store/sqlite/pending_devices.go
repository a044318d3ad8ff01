package sqlite

import (
	"context"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The devices of the contract are not implemented on this engine yet:
// each answers errUnsupported until its implementation replaces this file.

func (s *Store) DeleteManagedObject(ctx context.Context, tenant, id string) (store.DeletedDevice, error) {
	return store.DeletedDevice{}, errUnsupported
}

func (s *Store) CreateDevice(ctx context.Context, tenant, endpoint string) (id string, err error) {
	return "", errUnsupported
}

func (s *Store) CreateIncompleteDevice(ctx context.Context, tenant string, d store.NewDevice) (id string, err error) {
	return "", errUnsupported
}

func (s *Store) RemoveIncompleteDevice(ctx context.Context, tenant, id string) error {
	return errUnsupported
}

func (s *Store) AdoptNoSecDevice(ctx context.Context, tenant, id, endpoint string) (adopted bool, err error) {
	return false, errUnsupported
}

func (s *Store) LiveRegistrations(ctx context.Context, fn func(store.LiveRegistration) error) error {
	return errUnsupported
}
