package mongo

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var eventFixed = map[string]bool{"id": true, "source": true, "type": true, "text": true, "time": true, "creationTime": true}

// flatDoc appends the fragments that do not collide with fixed or
// reserved members to the fixed part of a document.
func flatDoc(d bson.D, frags map[string]any, fixed map[string]bool) bson.D {
	for k, v := range frags {
		if !fixed[k] && !reserved[k] {
			d = append(d, bson.E{Key: k, Value: v})
		}
	}
	return d
}

// fragmentsOf returns the members of a stored document that are neither
// fixed nor reserved.
func fragmentsOf(m map[string]any, fixed map[string]bool) map[string]any {
	f := map[string]any{}
	for k, v := range m {
		if !fixed[k] && !reserved[k] {
			f[k] = Plain(v)
		}
	}
	return f
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

// CreateEvents stores events (with fresh IDs; Time defaults to now) in one
// write and returns them as stored.
func (s *Store) CreateEvents(ctx context.Context, tenant string, evs []store.Event) ([]store.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	ids, err := s.newIDs(ctx, len(evs))
	if err != nil {
		return nil, err
	}
	docs := make([]any, len(evs))
	out := make([]store.Event, len(evs))
	created := now()
	for i, e := range evs {
		if err := checkEvent(e); err != nil {
			return nil, err
		}
		e.ID = strconv.FormatInt(ids[i], 10)
		e.CreationTime = created
		if e.Time.IsZero() {
			e.Time = created
		}
		e.Time = e.Time.UTC().Truncate(time.Millisecond)
		docs[i] = flatDoc(bson.D{
			{Key: "_id", Value: key(tenant, e.ID)}, {Key: "id", Value: e.ID}, {Key: "tenant", Value: tenant},
			{Key: "seq", Value: ids[i]}, {Key: "source", Value: e.Source}, {Key: "type", Value: e.Type},
			{Key: "text", Value: e.Text}, {Key: "time", Value: e.Time}, {Key: "creationTime", Value: e.CreationTime},
		}, e.Fragments, eventFixed)
		out[i] = e
	}
	if _, err := s.events.InsertMany(ctx, docs); err != nil {
		return nil, fmt.Errorf("create events: %w", err)
	}
	return out, nil
}

// checkEvent refuses an event CreateEvents cannot store.
func checkEvent(e store.Event) error {
	if e.Source == "" || e.Type == "" {
		return fmt.Errorf("%w: event needs source and type", store.ErrInvalid)
	}
	return checkFragments(e.Fragments)
}

// CreateEvent stores one event.
func (s *Store) CreateEvent(ctx context.Context, tenant string, e store.Event) (store.Event, error) {
	out, err := s.CreateEvents(ctx, tenant, []store.Event{e})
	if err != nil {
		return store.Event{}, err
	}
	return out[0], nil
}

func eventFromDoc(m map[string]any) store.Event {
	return store.Event{
		ID: str(m, "id"), Source: str(m, "source"), Type: str(m, "type"), Text: str(m, "text"),
		Time: asTime(m["time"]), CreationTime: asTime(m["creationTime"]),
		Fragments: fragmentsOf(m, eventFixed),
	}
}

// GetEvent returns the tenant's event id.
func (s *Store) GetEvent(ctx context.Context, tenant, id string) (store.Event, error) {
	var m map[string]any
	if err := findKey(ctx, s.events, tenant, id, &m); err != nil {
		return store.Event{}, err
	}
	return eventFromDoc(m), nil
}

// ListEvents lists the tenant's events; total is -1 unless f.Page.WithTotal.
func (s *Store) ListEvents(ctx context.Context, tenant string, f store.EventFilter) ([]store.Event, int64, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.Source != "" {
		filter = append(filter, bson.E{Key: "source", Value: f.Source})
	}
	if f.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: f.Type})
	}
	filter = timeRange(filter, "time", f.DateFrom, f.DateTo)
	dir := -1
	if f.Revert {
		dir = 1
	}
	var docs []map[string]any
	total, err := s.findPage(ctx, s.events, filter, bson.D{{Key: "time", Value: dir}, {Key: "seq", Value: dir}}, f.Page, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.Event, len(docs))
	for i, d := range docs {
		out[i] = eventFromDoc(d)
	}
	return out, total, nil
}
