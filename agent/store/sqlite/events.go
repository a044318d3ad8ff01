package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// eventFixed are an event's members, which a fragment cannot replace.
var eventFixed = map[string]bool{"id": true, "source": true, "type": true, "text": true, "time": true, "creationTime": true}

// CreateEvents stores events (with fresh ids; Time defaults to now) in
// one change and returns them as stored, their fragments as given, as
// the MongoDB engine returns them.
func (s *Store) CreateEvents(ctx context.Context, tenant string, evs []store.Event) ([]store.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	ne, err := checkEvents(evs)
	if err != nil {
		return nil, err
	}
	if err := s.db.Write(ctx, func(tx *Tx) error { return ne.insert(tx, tenant) }); err != nil {
		return nil, fmt.Errorf("create %d events: %w", len(evs), err)
	}
	return ne.out, nil
}

// newEvents are checked events with their encoded fragments, ready to be
// inserted in a change.
type newEvents struct {
	out     []store.Event // as stored, once inserted
	docs    []string
	created time.Time
}

// checkEvents checks and encodes events, outside the writer.
func checkEvents(evs []store.Event) (newEvents, error) {
	ne := newEvents{out: make([]store.Event, len(evs)), docs: make([]string, len(evs)), created: nowMilli()}
	for i, e := range evs {
		if e.Source == "" || e.Type == "" {
			return newEvents{}, fmt.Errorf("%w: event needs source and type", store.ErrInvalid)
		}
		if err := checkFragments(e.Fragments); err != nil {
			return newEvents{}, err
		}
		doc, err := encodeJSON("event fragments", fixedFragments(e.Fragments, eventFixed))
		if err != nil {
			return newEvents{}, err
		}
		ne.docs[i] = doc
		e.CreationTime = ne.created
		e.Time = stamp(e.Time, ne.created)
		ne.out[i] = e
	}
	return ne, nil
}

// without returns the events but those drop names.
func (ne newEvents) without(drop func(store.Event) bool) newEvents {
	out := newEvents{created: ne.created}
	for i, e := range ne.out {
		if !drop(e) {
			out.out = append(out.out, e)
			out.docs = append(out.docs, ne.docs[i])
		}
	}
	return out
}

// insert stores the events in tx with fresh ids, which it sets in out.
func (ne newEvents) insert(tx *Tx, tenant string) error {
	if len(ne.out) == 0 {
		return nil
	}
	first, err := insertNewTx(tx, len(ne.out), "INSERT INTO events (id, tenant, source, type, text, time, creation_time, fragments)",
		"(?, ?, ?, ?, ?, ?, ?, ?)", func(i int, args []any) []any {
			e := ne.out[i]
			return append(args, tenant, e.Source, e.Type, e.Text, e.Time.UnixMilli(), ne.created.UnixMilli(), ne.docs[i])
		})
	if err != nil {
		return err
	}
	for i := range ne.out {
		ne.out[i].ID = strconv.FormatInt(first+int64(i), 10)
	}
	return nil
}

// CreateEvent stores one event.
func (s *Store) CreateEvent(ctx context.Context, tenant string, e store.Event) (store.Event, error) {
	out, err := s.CreateEvents(ctx, tenant, []store.Event{e})
	if err != nil {
		return store.Event{}, err
	}
	return out[0], nil
}

const eventColumns = "id, source, type, text, time, creation_time, fragments"

func readEvent(row scanner) (store.Event, error) {
	var (
		e                 store.Event
		id, at, createdAt int64
		doc               string
	)
	if err := row.Scan(&id, &e.Source, &e.Type, &e.Text, &at, &createdAt, &doc); err != nil {
		return store.Event{}, err
	}
	e.ID, e.Time, e.CreationTime = strconv.FormatInt(id, 10), fromMilli(at), fromMilli(createdAt)
	var err error
	if e.Fragments, err = decodeFragments(doc); err != nil {
		return store.Event{}, fmt.Errorf("event %d: %w", id, err)
	}
	return e, nil
}

// GetEvent returns the tenant's event id.
func (s *Store) GetEvent(ctx context.Context, tenant, id string) (store.Event, error) {
	return getRow(ctx, s.db, "event "+id, "SELECT "+eventColumns+" FROM events WHERE id = ? AND tenant = ?", readEvent, seqOf(id), tenant)
}

// eventQuery is the FROM and WHERE of a list of events: one index
// chosen by the most selective filter (source, then type, else the
// tenant's time order), the other filters tested in the row.
func eventQuery(tenant string, f store.EventFilter) (string, *where) {
	w := &where{}
	var from string
	switch {
	case f.Source != "":
		from = "events INDEXED BY events_source"
		w.add("tenant = ? AND source = ?", tenant, f.Source)
		if f.Type != "" {
			w.add("type = ?", f.Type)
		}
	case f.Type != "":
		from = "events INDEXED BY events_type"
		w.add("tenant = ? AND type = ?", tenant, f.Type)
	default:
		from = "events INDEXED BY events_time"
		w.add("tenant = ?", tenant)
	}
	timeRange(w, f.DateFrom, f.DateTo)
	return from, w
}

// ListEvents lists the tenant's events, newest first (oldest first with
// Revert), those of one time in the order of their ids. total is -1
// unless f.Page.WithTotal.
func (s *Store) ListEvents(ctx context.Context, tenant string, f store.EventFilter) ([]store.Event, int64, error) {
	from, w := eventQuery(tenant, f)
	return listPage(ctx, s.db, "events of "+tenant, eventColumns, from, w.String(), w.args, newestFirst(f.Revert), f.Page, readEvent)
}
