package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schemaTelemetry holds what devices report: measurements, events,
// alarms and the last known values of their resources.
//
// Measurements, events and alarms are rows keyed by their id from the
// shared counter (INTEGER PRIMARY KEY, the rowid: ids only grow, so an
// insert appends to the table's b-tree) with the fixed members in
// columns, times as Unix milliseconds, and the fragments as one JSON
// object, which no query looks into but the fragment filters of
// measurements. Every list names its tenant and orders by time, then
// id, so each index is (tenant, what the list selects by, time): a page
// is a range of one index read in order, forwards or backwards, and
// stops at its size; a total is a count over the same range. The list
// functions name the index they use (INDEXED BY; measurement_fragments is
// read by its primary key, its only order), so that a plan never depends
// on the planner's guess between two equally good ones, and a query no
// index serves is an error rather than a scan.
//
// Measurements are the volume: tens of thousands a second, one row
// each. They are listed by source (the device's history, the common
// read), by type, by fragment (valueFragmentType) or all of the
// tenant's, hence four orders: three indexes and measurement_fragments,
// a row per fragment of each measurement, kept by triggers so that no
// insert or delete can leave it behind. A fragment filter with a source
// or type reads that index and tests the fragment in the row; the
// series filters (valueFragmentSeries) are always such a test: a series
// index would cost as much again on every insert for a rare query.
//
// Events are listed by source, by type or all, newest first. Alarms by
// source, by status (the open ones, out of a growing history of cleared
// ones) or all; alarms_open, unique over the alarms that are not
// CLEARED, is what RaiseAlarm's upsert counts on, so that a source has
// one open alarm of a type by construction, under any concurrency.
//
// A device's last known values are one row per resource path, keyed by
// (tenant, device, path key) WITHOUT ROWID: saving them is an upsert
// per path and reading them one range in path order. The key is the
// path's ids as 2-byte big-endian numbers, which sorts as the MongoDB
// engine sorts paths (numerically, level by level, a parent before its
// children) and makes "/3/0/1" and "3/0/1" one resource. value is ANY,
// so that an integer, a float, a string and bytes keep their type; kind
// says how to read back the types SQLite has not (bool, time, JSON).
const schemaTelemetry = `CREATE TABLE measurements (
	id        INTEGER PRIMARY KEY,
	tenant    TEXT NOT NULL,
	source    TEXT NOT NULL,
	type      TEXT NOT NULL,
	time      INTEGER NOT NULL, -- Unix milliseconds
	fragments TEXT NOT NULL     -- JSON object
) STRICT;
CREATE INDEX measurements_source ON measurements (tenant, source, time);
CREATE INDEX measurements_type ON measurements (tenant, type, time);
CREATE INDEX measurements_time ON measurements (tenant, time);
CREATE TABLE measurement_fragments (
	tenant   TEXT NOT NULL,
	fragment TEXT NOT NULL,
	time     INTEGER NOT NULL,
	id       INTEGER NOT NULL,
	PRIMARY KEY (tenant, fragment, time, id)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER measurements_fragments_insert AFTER INSERT ON measurements BEGIN
	INSERT INTO measurement_fragments (tenant, fragment, time, id)
		SELECT new.tenant, key, new.time, new.id FROM json_each(new.fragments);
END;
CREATE TRIGGER measurements_fragments_delete AFTER DELETE ON measurements BEGIN
	DELETE FROM measurement_fragments WHERE tenant = old.tenant AND time = old.time AND id = old.id
		AND fragment IN (SELECT key FROM json_each(old.fragments));
END;
CREATE TABLE events (
	id            INTEGER PRIMARY KEY,
	tenant        TEXT NOT NULL,
	source        TEXT NOT NULL,
	type          TEXT NOT NULL,
	text          TEXT NOT NULL,
	time          INTEGER NOT NULL, -- Unix milliseconds
	creation_time INTEGER NOT NULL, -- Unix milliseconds
	fragments     TEXT NOT NULL     -- JSON object
) STRICT;
CREATE INDEX events_time ON events (tenant, time);
CREATE INDEX events_source ON events (tenant, source, time);
CREATE INDEX events_type ON events (tenant, type, time);
CREATE TABLE alarms (
	id                    INTEGER PRIMARY KEY,
	tenant                TEXT NOT NULL,
	source                TEXT NOT NULL,
	type                  TEXT NOT NULL,
	text                  TEXT NOT NULL,
	severity              TEXT NOT NULL,
	status                TEXT NOT NULL,
	count                 INTEGER NOT NULL,
	time                  INTEGER NOT NULL, -- Unix milliseconds
	first_occurrence_time INTEGER NOT NULL, -- Unix milliseconds
	creation_time         INTEGER NOT NULL, -- Unix milliseconds
	fragments             TEXT NOT NULL     -- JSON object
) STRICT;
CREATE UNIQUE INDEX alarms_open ON alarms (tenant, source, type) WHERE status <> 'CLEARED';
CREATE INDEX alarms_time ON alarms (tenant, time);
CREATE INDEX alarms_source ON alarms (tenant, source, time);
CREATE INDEX alarms_status ON alarms (tenant, status, time);
CREATE TABLE resource_values (
	tenant TEXT NOT NULL,
	device TEXT NOT NULL,
	key    BLOB NOT NULL,    -- the path's ids, 2 bytes each, big-endian
	path   TEXT NOT NULL,    -- as saved
	type   TEXT NOT NULL,
	value  ANY,
	kind   INTEGER NOT NULL, -- how value reads back: see valueKind
	time   INTEGER NOT NULL, -- Unix milliseconds
	PRIMARY KEY (tenant, device, key)
) STRICT, WITHOUT ROWID`

// reserveIDs takes n ids of the sequence shared by every kind of object
// and returns the first; the others follow it. Changes run one at a
// time, so the increment is the reservation.
func reserveIDs(tx *Tx, n int) (int64, error) {
	var last int64
	err := tx.QueryRow(`INSERT INTO counters (name, value) VALUES ('ids', ?)
		ON CONFLICT (name) DO UPDATE SET value = value + excluded.value RETURNING value`, n).Scan(&last)
	if err != nil {
		return 0, fmt.Errorf("reserve %d ids: %w", n, err)
	}
	return last - int64(n) + 1, nil
}

// seqOf is the row id of an event or alarm id, or -1, which names no
// row, for anything but an id's canonical decimal form: the MongoDB
// engine finds them by the id as written ("07" names none).
func seqOf(id string) int64 {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != id {
		return -1
	}
	return n
}

// stamp is a time as the store keeps it: now if unset, UTC, to the
// millisecond.
func stamp(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t.UTC().Truncate(time.Millisecond)
}

func fromMilli(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// fixedFragments returns the fragments that are neither members of the
// object (fixed) nor reserved, as the MongoDB engine stores them beside
// the fixed members.
func fixedFragments(frags map[string]any, fixed map[string]bool) map[string]any {
	out := make(map[string]any, len(frags))
	for k, v := range frags {
		if !fixed[k] && !reserved[k] {
			out[k] = v
		}
	}
	return out
}

// where collects the conditions and arguments of a list's query.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string { return strings.Join(w.conds, " AND ") }

// getRow reads the row that query selects by its arguments with read;
// none is ErrNotFound, naming what.
func getRow[T any](ctx context.Context, db *DB, what, query string, read func(scanner) (T, error), args ...any) (T, error) {
	v, err := read(db.QueryRow(ctx, query, args...))
	if err := notFound(err, what); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// insertNew stores n new rows in one change, each with a fresh id from
// the shared sequence: head and row are as insertMany's, arg appends
// the arguments of row i after its id. It returns the first id; the
// others follow it.
func (s *Store) insertNew(ctx context.Context, n int, head, row string, arg func(i int, args []any) []any) (int64, error) {
	var first int64
	err := s.db.Write(ctx, func(tx *Tx) error {
		var err error
		first, err = insertNewTx(tx, n, head, row, arg)
		return err
	})
	return first, err
}

// insertNewTx is insertNew in a change already open.
func insertNewTx(tx *Tx, n int, head, row string, arg func(i int, args []any) []any) (int64, error) {
	first, err := reserveIDs(tx, n)
	if err != nil {
		return 0, err
	}
	return first, insertMany(tx, head, row, "", n, func(i int, args []any) []any {
		return arg(i, append(args, first+int64(i)))
	})
}

// insertMany inserts n rows: head is the statement up to VALUES, row one
// row's placeholders, tail what follows the rows (an ON CONFLICT
// clause), and arg appends row i's arguments. Rows go in statements of
// 64, then 8, then 1, which saves most of the per-statement cost of a
// batch with three SQL texts per table.
func insertMany(tx *Tx, head, row, tail string, n int, arg func(i int, args []any) []any) error {
	var args []any
	for i := 0; i < n; {
		k := 1
		switch {
		case n-i >= 64:
			k = 64
		case n-i >= 8:
			k = 8
		}
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = arg(j, args)
		}
		if _, err := tx.Exec(head+" VALUES "+row+strings.Repeat(", "+row, k-1)+" "+tail, args...); err != nil {
			return err
		}
		i += k
	}
	return nil
}

// timeRange selects times from from (inclusive) to to (exclusive), each
// bound to the millisecond, as the MongoDB engine's dates are.
func timeRange(w *where, from, to time.Time) {
	if !from.IsZero() {
		w.add("time >= ?", from.UnixMilli())
	}
	if !to.IsZero() {
		w.add("time < ?", to.UnixMilli())
	}
}

// newestFirst is the order of events and alarms: by time, then id, the
// newest first unless revert.
func newestFirst(revert bool) string {
	if revert {
		return "time, id"
	}
	return "time DESC, id DESC"
}

// deleteValuesOf removes a device's last known values. It is what
// DeleteManagedObject removes of a device's telemetry: the MongoDB
// engine keeps its measurements, events and alarms as history.
func deleteValuesOf(tx *Tx, tenant, device string) error {
	if _, err := tx.Exec("DELETE FROM resource_values WHERE tenant = ? AND device = ?", tenant, device); err != nil {
		return fmt.Errorf("delete values of %s: %w", device, err)
	}
	return nil
}

// deleteHistoryOf removes up to limit each of a source's measurements,
// events and alarms and says how many it removed, so that removing the
// history of a source with millions of measurements is many bounded
// changes (each holding the writer briefly) until it removes none.
func deleteHistoryOf(tx *Tx, tenant, source string, limit int) (int64, error) {
	var n int64
	for _, t := range []struct{ table, index string }{
		{"measurements", "measurements_source"}, {"events", "events_source"}, {"alarms", "alarms_source"},
	} {
		res, err := tx.Exec("DELETE FROM "+t.table+" WHERE id IN (SELECT id FROM "+t.table+" INDEXED BY "+t.index+
			" WHERE tenant = ? AND source = ? LIMIT ?)", tenant, source, limit)
		if err != nil {
			return n, fmt.Errorf("delete %s of %s: %w", t.table, source, err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return n, fmt.Errorf("delete %s of %s: %w", t.table, source, err)
		}
		n += k
	}
	return n, nil
}
