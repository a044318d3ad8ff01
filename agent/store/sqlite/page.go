package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// norm applies the API's paging defaults and limits, as the MongoDB
// engine does.
func norm(p store.Page) store.Page {
	if p.Size <= 0 {
		p.Size = store.DefaultPageSize
	}
	p.Size = min(p.Size, store.MaxPageSize)
	p.Current = max(p.Current, 1)
	return p
}

// listPage reads one page of "SELECT cols FROM table WHERE where ORDER
// BY order", each row decoded by decode, and the count of every row that
// matches when p.WithTotal (-1 otherwise), as the MongoDB engine's lists
// answer. what names the list in errors.
func listPage[T any](ctx context.Context, db *DB, what, cols, table, where string, args []any, order string, p store.Page,
	decode func(scanner) (T, error)) ([]T, int64, error) {
	return readPage(ctx, db, what, pageQuery{
		list: "SELECT " + cols + " FROM " + table + " WHERE " + where + " ORDER BY " + order, listArgs: args,
		count: "SELECT count(*) FROM " + table + " WHERE " + where, countArgs: args,
	}, p, decode)
}

// pageQuery is a list's statement, without its LIMIT and OFFSET, and the
// statement that counts what it lists. once says that their text is
// built for the call (a query's): they are prepared for their one use
// rather than kept in the statement cache, which such texts would fill.
type pageQuery struct {
	list, count         string
	listArgs, countArgs []any
	once                bool
}

// readPage reads the page p of q's list, each row decoded by decode,
// and its count when p.WithTotal (-1 otherwise).
func readPage[T any](ctx context.Context, db *DB, what string, q pageQuery, p store.Page, decode func(scanner) (T, error)) ([]T, int64, error) {
	p = norm(p)
	query, queryRow := db.Query, db.QueryRow
	if q.once {
		query, queryRow = db.queryOnce, db.queryRowOnce
	}
	rows, err := query(ctx, q.list+" LIMIT ? OFFSET ?",
		append(q.listArgs[:len(q.listArgs):len(q.listArgs)], p.Size, int64(p.Current-1)*int64(p.Size))...)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", what, err)
	}
	out, err := collect(rows, decode)
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", what, err)
	}
	if out == nil {
		out = []T{}
	}
	total := int64(-1)
	if p.WithTotal {
		if err := queryRow(ctx, q.count, q.countArgs...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("count %s: %w", what, err)
		}
	}
	return out, total, nil
}

// collect reads every row with read, and closes rows; nil for none.
func collect[T any](rows *sql.Rows, read func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := read(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
