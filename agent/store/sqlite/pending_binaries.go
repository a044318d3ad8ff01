package sqlite

import (
	"context"
	"io"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The binaries of the contract are not implemented on this engine yet:
// each answers errUnsupported until its implementation replaces this file.

func (s *Store) CreateBinary(ctx context.Context, tenant string, b store.Binary, r io.Reader, max int64) (store.Binary, error) {
	return store.Binary{}, errUnsupported
}

func (s *Store) GetBinary(ctx context.Context, tenant, id string) (store.Binary, error) {
	return store.Binary{}, errUnsupported
}

func (s *Store) OpenBinary(ctx context.Context, tenant, id string) (store.Binary, io.ReadCloser, error) {
	return store.Binary{}, nil, errUnsupported
}

func (s *Store) ReadBinary(ctx context.Context, tenant, id string, max int64) (store.Binary, []byte, error) {
	return store.Binary{}, nil, errUnsupported
}

func (s *Store) ListBinaries(ctx context.Context, tenant string, p store.Page) ([]store.Binary, int64, error) {
	return nil, 0, errUnsupported
}

func (s *Store) DeleteBinary(ctx context.Context, tenant, id string) error {
	return errUnsupported
}
