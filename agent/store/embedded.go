package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/mongo"
	_ "modernc.org/sqlite" // the driver FerretDB's SQLite handler uses
)

// indexIDLookups makes lookups by _id in the embedded store use an index.
//
// FerretDB 1.24's SQLite handler indexes _id as _ferretdb_sjson->"_id"
// but queries, updates and deletes by _id with _ferretdb_sjson->'$._id';
// SQLite matches expression indexes by their text, so every lookup by _id
// scanned the whole table, and a store of 10,000 devices answered in
// milliseconds what takes microseconds. A second unique index on the
// expression the queries use fixes that. It is added beside FerretDB's
// own, in the SQLite file itself, for every collection the store uses;
// FerretDB does not track it, and drops it with its table.
func (s *Store) indexIDLookups(ctx context.Context, dbDir, database string, names []string) error {
	for _, name := range names {
		// the table must exist before it can be indexed
		err := s.db.CreateCollection(ctx, name)
		var ce mongo.CommandError
		if err != nil && !(errors.As(err, &ce) && ce.Name == "NamespaceExists") {
			return fmt.Errorf("create collection %s: %w", name, err)
		}
	}
	file := filepath.Join(dbDir, database+".sqlite")
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\_ferretdb\_%' ESCAPE '\'`)
	if err != nil {
		return fmt.Errorf("list tables of %s: %w", file, err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("list tables of %s: %w", file, err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list tables of %s: %w", file, err)
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_id_lookup", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index _id of %s: %w", t, err)
		}
	}
	s.log.Debug("embedded store: _id lookups indexed", "tables", len(tables), "file", file)
	return nil
}

// embeddedBulk is how many statements one update command may carry on the
// embedded store: FerretDB 1.24 keeps a SQLite connection open for every
// statement of an update command until the command ends, from a pool of
// 100, so a long bulk (or a few at once) would wait forever for a
// connection that its own statements hold.
const embeddedBulk = 8

// bulkSize is how many updates to send in one command.
func (s *Store) bulkSize() int {
	if s.embeddedDir != "" {
		return embeddedBulk
	}
	return 1000
}
