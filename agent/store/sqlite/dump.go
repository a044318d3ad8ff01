package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// The embedded engine's dumps (store.Dumps): each table has a dumper,
// a pair of functions in a file of its concern (dump_tenants.go, ...)
// that exports its rows as records and imports one record, registered in
// dumpers below. A concern that adds a table adds its pair there; until
// then the kinds it would carry are refused by ImportBatch (never
// dropped) and Export has none of them.

// dumper exports and imports the records of one table.
type dumper struct {
	// kinds are the record kinds load takes; the export's records go in
	// the dump where the first one's place is (store.DumpKinds).
	kinds []string
	// export streams the table's rows as records, read in q, the
	// export's one read transaction.
	export func(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error
	// load writes one record in the import's change.
	load func(im *importer, r store.Record) error
}

var dumpers = []dumper{
	{[]string{store.KindTenant}, exportTenants, importTenant},
	{[]string{store.KindUser}, exportUsers, importUser},
	{[]string{store.KindCounter}, exportCounters, importCounter},
	{[]string{store.KindManagedObject}, exportManagedObjects, importManagedObject},
	{[]string{store.KindChildReference}, exportReferences, importReference},
	{[]string{store.KindExternalID}, exportExternalIDs, importExternalID},
	{[]string{store.KindEndpoint}, exportEndpoints, importEndpoint},
	{[]string{store.KindPSKIdentity}, exportPSKIdentities, importPSKIdentity},
	{[]string{store.KindRegistration}, exportRegistrations, importRegistration},
	{[]string{store.KindProtocol}, exportProtocols, importProtocol},
	{[]string{store.KindPostOperations}, exportPostOperations, importPostOperations},
	{[]string{store.KindOperation}, exportOperations, importOperation},
	{[]string{store.KindBulkOperation}, exportBulkOperations, importBulkOperation},
	{[]string{store.KindMeasurement}, exportMeasurements, importMeasurement},
	{[]string{store.KindEvent}, exportEvents, importEvent},
	{[]string{store.KindAlarm}, exportAlarms, importAlarm},
	{[]string{store.KindValues}, exportValues, importValues},
	{[]string{store.KindBinary, store.KindBinaryChunk}, exportBinaries, importBinaries},
}

func dumpRank(kind string) int { return slices.Index(store.DumpKinds, kind) }

// DumpKinds are the kinds of the tables this engine has dumpers for, in
// dump order.
func (s *Store) DumpKinds() []string {
	var kinds []string
	for _, d := range dumpers {
		kinds = append(kinds, d.kinds...)
	}
	slices.SortFunc(kinds, func(a, b string) int { return dumpRank(a) - dumpRank(b) })
	return kinds
}

// Export streams every table in dump order, all read in one transaction:
// the dump is the store as one commit left it, however long it takes,
// and the writer goes on meanwhile.
func (s *Store) Export(ctx context.Context, fn func(store.Record) error) error {
	ds := slices.Clone(dumpers)
	slices.SortStableFunc(ds, func(a, b dumper) int { return dumpRank(a.kinds[0]) - dumpRank(b.kinds[0]) })
	q, err := s.db.ReadTx(ctx)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer q.Rollback()
	for _, d := range ds {
		if err := d.export(ctx, q, fn); err != nil {
			return err
		}
	}
	return nil
}

// eachRow runs query in q and calls scan with every row; an error of
// scan is returned as it is (it may be the export's caller's).
func eachRow(ctx context.Context, q *sql.Tx, what, query string, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("export %s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export %s: %w", what, err)
	}
	return nil
}

// prefixed scans the first columns of a row into first, the others into
// what Scan is given: a table's own decoder reads a row that starts with
// columns it does not know (the tenant).
type prefixed struct {
	s     scanner
	first []any
}

func (p prefixed) Scan(dest ...any) error { return p.s.Scan(append(slices.Clip(p.first), dest...)...) }

// importKept are the tables an import may find rows in: what a first
// start writes (the management tenant, its users), the counters, which
// an import raises, and the store's own description.
var importKept = map[string]bool{"meta": true, "tenants": true, "users": true, "counters": true}

// ImportReady refuses a store that holds anything beyond an empty
// management tenant with its users. Every table of the schema is looked
// at, those of concerns that have no dumper yet included.
func (s *Store) ImportReady(ctx context.Context) error {
	var name string
	err := s.db.QueryRow(ctx, "SELECT id FROM tenants WHERE id <> ? LIMIT 1", store.ManagementTenant).Scan(&name)
	if err == nil {
		return fmt.Errorf("%w: it holds tenant %s", store.ErrNotEmpty, name)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	err = s.db.QueryRow(ctx, "SELECT tenant FROM users WHERE tenant <> ? LIMIT 1", store.ManagementTenant).Scan(&name)
	if err == nil {
		return fmt.Errorf("%w: it holds users of tenant %s", store.ErrNotEmpty, name)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	rows, err := s.db.Query(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	var tables []string
	for rows.Next() {
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("check the store is empty: %w", err)
		}
		if !importKept[name] {
			tables = append(tables, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check the store is empty: %w", err)
	}
	for _, t := range tables {
		var one int
		// The names come from the schema, not from input.
		err := s.db.QueryRow(ctx, `SELECT 1 FROM "`+strings.ReplaceAll(t, `"`, `""`)+`" LIMIT 1`).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: it holds %s", store.ErrNotEmpty, strings.ReplaceAll(t, "_", " "))
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check the store is empty: %w", err)
		}
	}
	return nil
}

// importer is one batch's import, inside its change.
type importer struct {
	tx *Tx
	// top is the highest id of the batch, to which the id counter is
	// raised.
	top int64
}

// seq reads an id of the id sequence, and keeps the highest: a load
// takes every id through it, so that the counter is raised past them.
func (im *importer) seq(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != id {
		return 0, fmt.Errorf("%w: id %q is not a number of the id sequence", store.ErrInvalid, id)
	}
	im.top = max(im.top, n)
	return n, nil
}

// importFragments checks the fragments of a record as the engine checks
// those it is given, and encodes them as it does (encode): a fragment
// under the name of a member of the record (fixed) or a reserved one
// fails the record rather than being dropped.
func importFragments(frags map[string]any, fixed map[string]bool, encode func(what string, v any) (string, error)) (string, error) {
	if err := checkFragments(frags); err != nil {
		return "", err
	}
	for k := range frags {
		if reserved[k] || fixed[k] {
			return "", fmt.Errorf("%w: fragment %q is a fixed member", store.ErrInvalid, k)
		}
	}
	if frags == nil {
		frags = map[string]any{}
	}
	return encode("fragments", frags)
}

// ImportBatch writes the records in one change: all of them or, when
// one fails, none. A record of a kind without a dumper is refused.
func (s *Store) ImportBatch(ctx context.Context, records []store.Record) error {
	loads := make(map[string]func(*importer, store.Record) error)
	for _, d := range dumpers {
		for _, k := range d.kinds {
			loads[k] = d.load
		}
	}
	// Refused before the writer is asked for anything.
	for i, r := range records {
		if loads[r.Kind()] == nil {
			return &store.BatchError{Index: i, Err: fmt.Errorf("%w: the embedded store cannot import %s records (yet)", errors.ErrUnsupported, r.Kind())}
		}
	}
	err := s.db.Write(ctx, func(tx *Tx) error {
		im := &importer{tx: tx}
		for i, r := range records {
			if err := loads[r.Kind()](im, r); err != nil {
				return &store.BatchError{Index: i, Err: err}
			}
		}
		if im.top > 0 {
			return raiseCounter(tx, store.CounterIDs, im.top)
		}
		return nil
	})
	// A login cached before the import must not outlive a replaced user.
	for _, r := range records {
		if u, ok := r.(*store.UserRecord); ok {
			s.auth.Forget(u.Tenant, u.UserName)
		}
	}
	var be *store.BatchError
	if err != nil && !errors.As(err, &be) {
		return fmt.Errorf("import %d records: %w", len(records), err)
	}
	return err
}

// raiseCounter sets a counter to at least value.
func raiseCounter(tx *Tx, name string, value int64) error {
	_, err := tx.Exec(`INSERT INTO counters (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)`, name, value)
	if err != nil {
		return fmt.Errorf("raise counter %s: %w", name, err)
	}
	return nil
}
