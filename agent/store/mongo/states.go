package mongo

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// SaveStates merges fragments into objects of the tenant, then stores
// events: UpdateFragmentsMany and CreateEvents, with the events checked
// first, so that input that cannot be stored changes nothing. MongoDB
// has no cheap atomicity across documents and collections here: a
// failure between the two writes (the server unreachable) leaves the
// fragments written without the events, as the two calls would.
func (s *Store) SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []store.Event) ([]string, []store.Event, error) {
	for _, e := range events {
		if err := checkEvent(e); err != nil {
			return nil, nil, err
		}
	}
	missing, err := s.UpdateFragmentsMany(ctx, tenant, fragments)
	if err != nil {
		return nil, nil, err
	}
	stored, err := s.CreateEvents(ctx, tenant, events)
	if err != nil {
		return nil, nil, fmt.Errorf("save the states of %d objects: %w", len(fragments), err)
	}
	return missing, stored, nil
}
