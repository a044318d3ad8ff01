package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// alarmFixed are an alarm's members, which a fragment cannot replace.
var alarmFixed = map[string]bool{
	"id": true, "source": true, "type": true, "text": true, "severity": true, "status": true,
	"count": true, "time": true, "firstOccurrenceTime": true, "creationTime": true,
}

const alarmColumns = "id, source, type, text, severity, status, count, time, first_occurrence_time, creation_time, fragments"

func readAlarm(row scanner) (store.Alarm, error) {
	var (
		a                     store.Alarm
		id, at, first, create int64
		doc                   string
	)
	if err := row.Scan(&id, &a.Source, &a.Type, &a.Text, &a.Severity, &a.Status, &a.Count, &at, &first, &create, &doc); err != nil {
		return store.Alarm{}, err
	}
	a.ID = strconv.FormatInt(id, 10)
	a.Time, a.FirstOccurrenceTime, a.CreationTime = fromMilli(at), fromMilli(first), fromMilli(create)
	var err error
	if a.Fragments, err = decodeFragments(doc); err != nil {
		return store.Alarm{}, fmt.Errorf("alarm %d: %w", id, err)
	}
	return a, nil
}

// jsonSet is the SQL expression that sets each fragment of frags in the
// JSON object of column col, replacing it whole, with its arguments.
// Only the number of fragments shapes the SQL text.
func jsonSet(col string, frags map[string]any) (string, []any, error) {
	if len(frags) == 0 {
		return col, nil, nil
	}
	args := make([]any, 0, 2*len(frags))
	for k, v := range frags {
		doc, err := encodeJSON("fragment "+k, v)
		if err != nil {
			return "", nil, err
		}
		args = append(args, path(k), doc)
	}
	return "json_set(" + col + strings.Repeat(", ?, json(?)", len(frags)) + ")", args, nil
}

// RaiseAlarm raises a.Type on a.Source: if the source has an open alarm
// (ACTIVE or ACKNOWLEDGED) of that type, it increments its count and
// takes the new time, text, severity and fragments; otherwise it creates
// an ACTIVE alarm with count 1. It returns the alarm as stored. The one
// statement is an insert that, finding the open alarm in alarms_open,
// updates it instead: concurrent raises count on one alarm, each once.
func (s *Store) RaiseAlarm(ctx context.Context, tenant string, a store.Alarm) (store.Alarm, error) {
	if err := store.CheckRaise(&a); err != nil {
		return store.Alarm{}, err
	}
	if err := checkFragments(a.Fragments); err != nil {
		return store.Alarm{}, err
	}
	now := nowMilli()
	a.Time = stamp(a.Time, now)
	frags := fixedFragments(a.Fragments, alarmFixed)
	doc, err := encodeJSON("alarm fragments", frags)
	if err != nil {
		return store.Alarm{}, err
	}
	set, setArgs, err := jsonSet("fragments", frags)
	if err != nil {
		return store.Alarm{}, err
	}
	var (
		got store.Alarm
		id  int64
	)
	err = s.db.Write(ctx, func(tx *Tx) error {
		var err error
		if id, err = nextID(tx); err != nil {
			return err
		}
		got, err = readAlarm(tx.QueryRow(`INSERT INTO alarms (id, tenant, source, type, text, severity, status, count,
				time, first_occurrence_time, creation_time, fragments)
			VALUES (?, ?, ?, ?, ?, ?, 'ACTIVE', 1, ?, ?, ?, ?)
			ON CONFLICT (tenant, source, type) WHERE status <> 'CLEARED' DO UPDATE SET
				count = count + 1, time = excluded.time, text = excluded.text, severity = excluded.severity,
				fragments = `+set+`
			RETURNING `+alarmColumns,
			append([]any{id, tenant, a.Source, a.Type, a.Text, a.Severity, a.Time.UnixMilli(), a.Time.UnixMilli(), now.UnixMilli(), doc},
				setArgs...)...))
		return err
	})
	if err != nil {
		return store.Alarm{}, fmt.Errorf("raise alarm %s on %s: %w", a.Type, a.Source, err)
	}
	if got.ID == strconv.FormatInt(id, 10) {
		// A new alarm answers with the fragments as given, as the
		// MongoDB engine answers.
		got.Fragments = a.Fragments
		if got.Fragments == nil {
			got.Fragments = map[string]any{}
		}
	}
	return got, nil
}

// GetAlarm returns the tenant's alarm id.
func (s *Store) GetAlarm(ctx context.Context, tenant, id string) (store.Alarm, error) {
	return getRow(ctx, s.db, "alarm "+id, "SELECT "+alarmColumns+" FROM alarms WHERE id = ? AND tenant = ?", readAlarm, seqOf(id), tenant)
}

// nullIfEmpty is NULL for an unset member of an update.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// UpdateAlarm changes an alarm's status, severity or text; empty fields
// stay as they are. A CLEARED alarm stays cleared (ErrInvalid when asked
// otherwise): the next raise opens a new one. The update is one
// statement that refuses to reopen a cleared alarm, so a raise or clear
// at the same time comes wholly before or after it.
func (s *Store) UpdateAlarm(ctx context.Context, tenant, id string, u store.AlarmUpdate) (store.Alarm, error) {
	if u.Status != "" && !store.ValidAlarmStatus(u.Status) {
		return store.Alarm{}, fmt.Errorf("%w: alarm status %q: use ACTIVE, ACKNOWLEDGED or CLEARED", store.ErrInvalid, u.Status)
	}
	if u.Severity != "" && !store.ValidSeverity(u.Severity) {
		return store.Alarm{}, fmt.Errorf("%w: alarm severity %q: use CRITICAL, MAJOR, MINOR or WARNING", store.ErrInvalid, u.Severity)
	}
	if u == (store.AlarmUpdate{}) {
		return s.GetAlarm(ctx, tenant, id)
	}
	n := seqOf(id)
	var a store.Alarm
	err := s.db.Write(ctx, func(tx *Tx) error {
		var err error
		a, err = readAlarm(tx.QueryRow(`UPDATE alarms SET
				status = coalesce(?1, status), severity = coalesce(?2, severity), text = coalesce(?3, text)
			WHERE id = ?4 AND tenant = ?5 AND NOT (status = 'CLEARED' AND coalesce(?1, 'CLEARED') <> 'CLEARED')
			RETURNING `+alarmColumns, nullIfEmpty(u.Status), nullIfEmpty(u.Severity), nullIfEmpty(u.Text), n, tenant))
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		// Nothing updated: the alarm is missing, or cleared.
		var status string
		if err := notFound(tx.QueryRow("SELECT status FROM alarms WHERE id = ? AND tenant = ?", n, tenant).Scan(&status), "alarm "+id); err != nil {
			return err
		}
		return fmt.Errorf("%w: alarm %s is cleared and cannot become %s", store.ErrInvalid, id, u.Status)
	})
	if err != nil {
		return store.Alarm{}, fmt.Errorf("update alarm %s: %w", id, err)
	}
	return a, nil
}

// ClearAlarm clears the open alarm of a type on a source, if there is
// one, and returns it as cleared (the zero Alarm when there was none).
func (s *Store) ClearAlarm(ctx context.Context, tenant, source, typ string) (store.Alarm, error) {
	var cleared store.Alarm
	err := s.db.Write(ctx, func(tx *Tx) error {
		cleared = store.Alarm{}
		a, err := readAlarm(tx.QueryRow(`UPDATE alarms INDEXED BY alarms_open SET status = 'CLEARED'
			WHERE tenant = ? AND source = ? AND type = ? AND status <> 'CLEARED'
			RETURNING `+alarmColumns, tenant, source, typ))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return err
		}
		cleared = a
		return nil
	})
	if err != nil {
		return store.Alarm{}, fmt.Errorf("clear alarm %s on %s: %w", typ, source, err)
	}
	return cleared, nil
}

// alarmQuery is the FROM and WHERE of a list of alarms: one index chosen
// by the most selective filter (source, then status, else the tenant's
// time order), the other filters tested in the row. A list of statuses
// reads each one's range and sorts what they hold: the open alarms are
// few beside the cleared ones.
func alarmQuery(tenant string, f store.AlarmFilter) (string, *where) {
	w := &where{}
	var from string
	switch {
	case f.Source != "":
		from = "alarms INDEXED BY alarms_source"
		w.add("tenant = ? AND source = ?", tenant, f.Source)
	case len(f.Status) > 0:
		from = "alarms INDEXED BY alarms_status"
		w.add("tenant = ?", tenant)
	default:
		from = "alarms INDEXED BY alarms_time"
		w.add("tenant = ?", tenant)
	}
	if len(f.Status) > 0 {
		args := make([]any, len(f.Status))
		for i, st := range f.Status {
			args[i] = st
		}
		w.add("status IN (?"+strings.Repeat(", ?", len(f.Status)-1)+")", args...)
	}
	if f.Type != "" {
		w.add("type = ?", f.Type)
	}
	if f.Severity != "" {
		w.add("severity = ?", f.Severity)
	}
	timeRange(w, f.DateFrom, f.DateTo)
	return from, w
}

// ListAlarms lists the tenant's alarms, newest first (oldest first with
// Revert), those of one time in the order of their ids. total is -1
// unless f.Page.WithTotal.
func (s *Store) ListAlarms(ctx context.Context, tenant string, f store.AlarmFilter) ([]store.Alarm, int64, error) {
	from, w := alarmQuery(tenant, f)
	return listPage(ctx, s.db, "alarms of "+tenant, alarmColumns, from, w.String(), w.args, newestFirst(f.Revert), f.Page, readAlarm)
}
