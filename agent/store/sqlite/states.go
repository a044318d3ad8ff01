package sqlite

import (
	"context"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// SaveStates merges fragments into objects of the tenant and stores
// events in one change, all or nothing: what UpdateFragmentsMany and
// CreateEvents do, in one commit instead of two. The ids of the objects
// that do not exist are returned, and the events as stored; the events
// of missing objects are stored too.
func (s *Store) SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []store.Event) ([]string, []store.Event, error) {
	if len(fragments) == 0 && len(events) == 0 {
		return nil, nil, nil
	}
	u, err := checkUpdates(fragments, checkFragments)
	if err != nil {
		return nil, nil, err
	}
	ne, err := checkEvents(events)
	if err != nil {
		return nil, nil, err
	}
	var missing []string
	err = s.db.Write(ctx, func(tx *Tx) error {
		var err error
		if missing, err = u.apply(tx, tenant); err != nil {
			return err
		}
		return ne.insert(tx, tenant)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("save the states of %d objects with %d events: %w", len(u.ids), len(events), err)
	}
	return missing, ne.out, nil
}
