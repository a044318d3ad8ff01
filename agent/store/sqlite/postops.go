package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// PostOperations returns the tenant's post-registration commands in
// order, nil when the tenant set none. Unlike the MongoDB engine, which
// keeps them a few seconds for the other replicas' sake, it reads them
// each time: a point read of one row costs microseconds and is never
// stale.
func (s *Store) PostOperations(ctx context.Context, tenant string) ([]string, error) {
	var doc string
	err := s.db.QueryRow(ctx, "SELECT commands FROM post_operations WHERE tenant = ?", tenant).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read post-registration operations of %s: %w", tenant, err)
	}
	var cmds []string
	if err := json.Unmarshal([]byte(doc), &cmds); err != nil {
		return nil, fmt.Errorf("read post-registration operations of %s: %w", tenant, err)
	}
	return cmds, nil
}

// SetPostOperations replaces the tenant's post-registration commands;
// an empty list removes them. The commands are stored as given: their
// grammar is the caller's to check. Too many, or an empty or overlong
// one, is ErrInvalid.
func (s *Store) SetPostOperations(ctx context.Context, tenant string, cmds []string) error {
	if err := store.CheckPostOperations(cmds); err != nil {
		return err
	}
	doc, err := marshal("post-registration operations", cmds)
	if err != nil {
		return err
	}
	err = s.db.Write(ctx, func(tx *Tx) error {
		if len(cmds) == 0 {
			_, err := tx.Exec("DELETE FROM post_operations WHERE tenant = ?", tenant)
			return err
		}
		_, err := tx.Exec(`INSERT INTO post_operations (tenant, commands, updated) VALUES (?, ?, ?)
			ON CONFLICT (tenant) DO UPDATE SET commands = excluded.commands, updated = excluded.updated`,
			tenant, doc, nowMilli().UnixMilli())
		return err
	})
	if err != nil {
		return fmt.Errorf("store post-registration operations of %s: %w", tenant, err)
	}
	return nil
}
