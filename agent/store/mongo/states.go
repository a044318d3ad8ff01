package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

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

// NewDeviceID reserves the id of a device SaveNewStates creates, from
// the block of ids this process holds (newIDs).
func (s *Store) NewDeviceID(ctx context.Context, _ string) (string, error) {
	ids, err := s.newIDs(ctx, 1)
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(ids[0], 10), nil
}

// SaveNewStates creates the devices of created one by one, as
// CreateDevice does (the unique index of external IDs gives an endpoint
// to one creation among replicas), then saves the states of the devices
// it created and of the others with SaveStates. A creation that fails
// for another reason than a conflict fails the call; the devices created
// before it stay, without their state.
func (s *Store) SaveNewStates(ctx context.Context, tenant string, created []store.NewEndpoint, fragments map[string]map[string]any, events []store.Event) (missing, conflicts []string, stored []store.Event, err error) {
	for _, e := range events {
		if err := checkEvent(e); err != nil {
			return nil, nil, nil, err
		}
	}
	for id, f := range fragments {
		if err := checkFragments(f); err != nil {
			return nil, nil, nil, fmt.Errorf("update fragments of %s: %w", id, err)
		}
	}
	lost := map[string]bool{}
	for _, c := range created {
		seq, perr := strconv.ParseInt(c.ID, 10, 64)
		if perr != nil || seq <= 0 {
			return nil, nil, nil, fmt.Errorf("%w: device id %q was not reserved by NewDeviceID", store.ErrInvalid, c.ID)
		}
		_, err := s.createDevice(ctx, tenant, c.Endpoint, seq)
		if errors.Is(err, store.ErrConflict) {
			conflicts = append(conflicts, c.ID)
			lost[c.ID] = true
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("create device %s: %w", c.Endpoint, err)
		}
	}
	if len(lost) > 0 {
		fragments = maps.Clone(fragments)
		maps.DeleteFunc(fragments, func(id string, _ map[string]any) bool { return lost[id] })
		events = slices.DeleteFunc(slices.Clone(events), func(e store.Event) bool { return lost[e.Source] })
	}
	missing, stored, err = s.SaveStates(ctx, tenant, fragments, events)
	return missing, conflicts, stored, err
}
