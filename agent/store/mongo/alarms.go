package mongo

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

var alarmFixed = map[string]bool{
	"id": true, "source": true, "type": true, "text": true, "severity": true, "status": true,
	"count": true, "time": true, "firstOccurrenceTime": true, "creationTime": true,
}

func alarmFromDoc(m map[string]any) store.Alarm {
	a := store.Alarm{
		ID: str(m, "id"), Source: str(m, "source"), Type: str(m, "type"), Text: str(m, "text"),
		Severity: str(m, "severity"), Status: str(m, "status"),
		Time: asTime(m["time"]), FirstOccurrenceTime: asTime(m["firstOccurrenceTime"]),
		CreationTime: asTime(m["creationTime"]), Fragments: fragmentsOf(m, alarmFixed),
	}
	switch c := m["count"].(type) {
	case int64:
		a.Count = c
	case int32:
		a.Count = int64(c)
	case float64:
		a.Count = int64(c)
	}
	return a
}

// openKey is the _id of the openAlarms entry naming the open alarm of a
// source and type: finding it is a lookup by _id, not a scan of alarms.
func openKey(tenant, source, typ string) string {
	return key(tenant, url.PathEscape(source)+"/"+url.PathEscape(typ))
}

type openDoc struct {
	Key     string `bson:"_id"`
	AlarmID string `bson:"alarmId"`
}

// RaiseAlarm raises a.Type on a.Source: if the source has an open alarm of
// that type, it increments its count and takes the new time, text and
// severity; otherwise it creates an ACTIVE alarm with count 1. It returns
// the alarm as stored.
func (s *Store) RaiseAlarm(ctx context.Context, tenant string, a store.Alarm) (store.Alarm, error) {
	if err := store.CheckRaise(&a); err != nil {
		return store.Alarm{}, err
	}
	if err := checkFragments(a.Fragments); err != nil {
		return store.Alarm{}, err
	}
	if a.Time.IsZero() {
		a.Time = now()
	}
	a.Time = a.Time.UTC().Truncate(time.Millisecond)
	ok := openKey(tenant, a.Source, a.Type)
	// FerretDB applies $inc by reading the alarm and writing it back, so
	// concurrent repeats on the embedded store would lose counts.
	defer s.lockEmbedded(&s.alarmMu, ok)()
	// A few rounds settle races between concurrent raises and clears.
	for range 4 {
		var od openDoc
		err := s.openAlarms().FindOne(ctx, bson.D{{Key: "_id", Value: ok}}).Decode(&od)
		if err == nil {
			set := flatDoc(bson.D{{Key: "time", Value: a.Time}, {Key: "text", Value: a.Text}, {Key: "severity", Value: a.Severity}}, a.Fragments, alarmFixed)
			var m map[string]any
			err = s.alarms.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: key(tenant, od.AlarmID)}},
				bson.D{{Key: "$set", Value: set}, {Key: "$inc", Value: bson.D{{Key: "count", Value: 1}}}},
				options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&m)
			if err == nil && str(m, "status") != store.AlarmCleared {
				return alarmFromDoc(m), nil
			}
			if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
				return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: %w", a.Type, a.Source, err)
			}
			// A stale entry (its alarm was cleared or deleted meanwhile).
			_, _ = s.openAlarms().DeleteOne(ctx, bson.D{{Key: "_id", Value: ok}})
			continue
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: %w", a.Type, a.Source, err)
		}
		ids, err := s.newIDs(ctx, 1)
		if err != nil {
			return store.Alarm{}, err
		}
		n := a
		n.ID = strconv.FormatInt(ids[0], 10)
		n.Status, n.Count = store.AlarmActive, 1
		n.FirstOccurrenceTime = n.Time
		n.CreationTime = now()
		doc := flatDoc(bson.D{
			{Key: "_id", Value: key(tenant, n.ID)}, {Key: "id", Value: n.ID}, {Key: "tenant", Value: tenant},
			{Key: "seq", Value: ids[0]}, {Key: "source", Value: n.Source}, {Key: "type", Value: n.Type},
			{Key: "text", Value: n.Text}, {Key: "severity", Value: n.Severity}, {Key: "status", Value: n.Status},
			{Key: "count", Value: n.Count}, {Key: "time", Value: n.Time},
			{Key: "firstOccurrenceTime", Value: n.FirstOccurrenceTime}, {Key: "creationTime", Value: n.CreationTime},
		}, n.Fragments, alarmFixed)
		if _, err := s.alarms.InsertOne(ctx, doc); err != nil {
			return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: %w", a.Type, a.Source, err)
		}
		_, err = s.openAlarms().InsertOne(ctx, openDoc{Key: ok, AlarmID: n.ID})
		if err == nil {
			if n.Fragments == nil {
				n.Fragments = map[string]any{}
			}
			return n, nil
		}
		// Someone else opened one first: drop ours and count on theirs.
		_, _ = s.alarms.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: key(tenant, n.ID)}})
		if !isDup(err) {
			return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: %w", a.Type, a.Source, err)
		}
	}
	return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: too much contention", a.Type, a.Source)
}

func (s *Store) openAlarms() *mongo.Collection { return s.db.Collection("openAlarms") }

// GetAlarm returns the tenant's alarm id.
func (s *Store) GetAlarm(ctx context.Context, tenant, id string) (store.Alarm, error) {
	var m map[string]any
	if err := findKey(ctx, s.alarms, tenant, id, &m); err != nil {
		return store.Alarm{}, err
	}
	return alarmFromDoc(m), nil
}

// UpdateAlarm changes an alarm's status, severity or text. A CLEARED alarm
// stays cleared (ErrInvalid when asked otherwise): the next raise opens a
// new one.
func (s *Store) UpdateAlarm(ctx context.Context, tenant, id string, u store.AlarmUpdate) (store.Alarm, error) {
	if u.Status != "" && !store.ValidAlarmStatus(u.Status) {
		return store.Alarm{}, fmt.Errorf("%w: alarm status %q: use ACTIVE, ACKNOWLEDGED or CLEARED", store.ErrInvalid, u.Status)
	}
	if u.Severity != "" && !store.ValidSeverity(u.Severity) {
		return store.Alarm{}, fmt.Errorf("%w: alarm severity %q: use CRITICAL, MAJOR, MINOR or WARNING", store.ErrInvalid, u.Severity)
	}
	cur, err := s.GetAlarm(ctx, tenant, id)
	if err != nil {
		return store.Alarm{}, err
	}
	if cur.Status == store.AlarmCleared && u.Status != "" && u.Status != store.AlarmCleared {
		return store.Alarm{}, fmt.Errorf("%w: alarm %s is cleared and cannot become %s", store.ErrInvalid, id, u.Status)
	}
	set := bson.D{}
	if u.Status != "" {
		set = append(set, bson.E{Key: "status", Value: u.Status})
	}
	if u.Severity != "" {
		set = append(set, bson.E{Key: "severity", Value: u.Severity})
	}
	if u.Text != "" {
		set = append(set, bson.E{Key: "text", Value: u.Text})
	}
	if len(set) == 0 {
		return cur, nil
	}
	if u.Status == store.AlarmCleared && cur.Status != store.AlarmCleared {
		// Close the entry first, so a raise racing this update opens a
		// new alarm instead of counting on one about to be cleared.
		if err := s.dropOpenEntry(ctx, tenant, cur); err != nil {
			return store.Alarm{}, err
		}
	}
	var m map[string]any
	err = s.alarms.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: key(tenant, id)}}, bson.D{{Key: "$set", Value: set}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Alarm{}, store.ErrNotFound
	}
	if err != nil {
		return store.Alarm{}, fmt.Errorf("update alarm %s: %w", id, err)
	}
	return alarmFromDoc(m), nil
}

func (s *Store) dropOpenEntry(ctx context.Context, tenant string, a store.Alarm) error {
	ok := openKey(tenant, a.Source, a.Type)
	var od openDoc
	err := s.openAlarms().FindOne(ctx, bson.D{{Key: "_id", Value: ok}}).Decode(&od)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clear alarm %s: %w", a.ID, err)
	}
	if od.AlarmID == a.ID {
		if _, err := s.openAlarms().DeleteOne(ctx, bson.D{{Key: "_id", Value: ok}}); err != nil {
			return fmt.Errorf("clear alarm %s: %w", a.ID, err)
		}
	}
	return nil
}

// ClearAlarm clears the open alarm of a type on a source, if there is
// one, and returns it as cleared (the zero Alarm when there was none).
func (s *Store) ClearAlarm(ctx context.Context, tenant, source, typ string) (store.Alarm, error) {
	var od openDoc
	err := s.openAlarms().FindOne(ctx, bson.D{{Key: "_id", Value: openKey(tenant, source, typ)}}).Decode(&od)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Alarm{}, nil
	}
	if err != nil {
		return store.Alarm{}, fmt.Errorf("clear alarm %s on %s: %w", typ, source, err)
	}
	a, err := s.UpdateAlarm(ctx, tenant, od.AlarmID, store.AlarmUpdate{Status: store.AlarmCleared})
	if errors.Is(err, store.ErrNotFound) {
		_, _ = s.openAlarms().DeleteOne(ctx, bson.D{{Key: "_id", Value: openKey(tenant, source, typ)}})
		return store.Alarm{}, nil
	}
	if err != nil {
		return store.Alarm{}, err
	}
	return a, nil
}

// ListAlarms lists the tenant's alarms; total is -1 unless f.Page.WithTotal.
func (s *Store) ListAlarms(ctx context.Context, tenant string, f store.AlarmFilter) ([]store.Alarm, int64, error) {
	filter := bson.D{{Key: "tenant", Value: tenant}}
	if f.Source != "" {
		filter = append(filter, bson.E{Key: "source", Value: f.Source})
	}
	if f.Type != "" {
		filter = append(filter, bson.E{Key: "type", Value: f.Type})
	}
	if len(f.Status) == 1 {
		filter = append(filter, bson.E{Key: "status", Value: f.Status[0]})
	} else if len(f.Status) > 1 {
		filter = append(filter, bson.E{Key: "status", Value: bson.D{{Key: "$in", Value: f.Status}}})
	}
	if f.Severity != "" {
		filter = append(filter, bson.E{Key: "severity", Value: f.Severity})
	}
	filter = timeRange(filter, "time", f.DateFrom, f.DateTo)
	dir := -1
	if f.Revert {
		dir = 1
	}
	var docs []map[string]any
	total, err := s.findPage(ctx, s.alarms, filter, bson.D{{Key: "time", Value: dir}, {Key: "seq", Value: dir}}, f.Page, &docs)
	if err != nil {
		return nil, 0, err
	}
	out := make([]store.Alarm, len(docs))
	for i, d := range docs {
		out[i] = alarmFromDoc(d)
	}
	return out, total, nil
}
