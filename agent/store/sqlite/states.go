package sqlite

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"

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

// idBlock hands out device ids from a block reserved in the ids counter,
// so that reserving the id of a new endpoint's device costs a commit of
// its own once per idBlockSize devices instead of once per Register. The
// ids of a block left unused when the process stops are never used.
type idBlock struct {
	mu       sync.Mutex
	next, hi int64 // next free, one past the last reserved
}

const idBlockSize = 256

// NewDeviceID reserves the id of a device SaveNewStates creates.
func (s *Store) NewDeviceID(ctx context.Context, _ string) (string, error) {
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	if s.ids.next >= s.ids.hi {
		var first int64
		err := s.db.Write(ctx, func(tx *Tx) error {
			var err error
			first, err = reserveIDs(tx, idBlockSize)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("reserve device ids: %w", err)
		}
		s.ids.next, s.ids.hi = first, first+idBlockSize
	}
	id := s.ids.next
	s.ids.next++
	return strconv.FormatInt(id, 10), nil
}

// SaveNewStates creates the devices of created, as CreateDevice does,
// and saves the states, as SaveStates does, in one change. A new
// device's fragments are written with its creation, so that it costs
// one insert rather than an insert and a merge.
func (s *Store) SaveNewStates(ctx context.Context, tenant string, created []store.NewEndpoint, fragments map[string]map[string]any, events []store.Event) (missing, conflicts []string, stored []store.Event, err error) {
	if len(created) == 0 {
		missing, stored, err = s.SaveStates(ctx, tenant, fragments, events)
		return missing, nil, stored, err
	}
	rest := maps.Clone(fragments)
	if rest == nil {
		rest = map[string]map[string]any{}
	}
	devs := make([]deviceRows, len(created))
	seqs := make([]int64, len(created))
	for i, c := range created {
		if seqs[i] = seqOf(c.ID); seqs[i] < 0 {
			return nil, nil, nil, fmt.Errorf("%w: device id %q was not reserved by NewDeviceID", store.ErrInvalid, c.ID)
		}
		d := store.AutoRegistered(c.Endpoint)
		for k, v := range rest[c.ID] {
			if v == nil {
				delete(d.Fragments, k)
			} else {
				d.Fragments[k] = v
			}
		}
		delete(rest, c.ID)
		if devs[i], err = deviceRowsOf(d, true); err != nil {
			return nil, nil, nil, fmt.Errorf("create device %s: %w", c.Endpoint, err)
		}
	}
	u, err := checkUpdates(rest, checkFragments)
	if err != nil {
		return nil, nil, nil, err
	}
	ne, err := checkEvents(events)
	if err != nil {
		return nil, nil, nil, err
	}
	err = s.db.Write(ctx, func(tx *Tx) error {
		conflicts = conflicts[:0]
		lost := map[string]bool{}
		for i, nd := range devs {
			_, err := nd.insert(tx, tenant, seqs[i])
			if errors.Is(err, store.ErrConflict) {
				conflicts = append(conflicts, created[i].ID)
				lost[created[i].ID] = true
				continue
			}
			if err != nil {
				return fmt.Errorf("create device %s: %w", created[i].Endpoint, err)
			}
		}
		var err error
		if missing, err = u.apply(tx, tenant); err != nil {
			return err
		}
		out := ne
		if len(lost) > 0 {
			out = ne.without(func(e store.Event) bool { return lost[e.Source] })
		}
		if err := out.insert(tx, tenant); err != nil {
			return err
		}
		stored = out.out
		return nil
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("save the states of %d objects, %d of them new, with %d events: %w", len(fragments), len(created), len(events), err)
	}
	if len(conflicts) == 0 {
		conflicts = nil
	}
	return missing, conflicts, stored, nil
}
