package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the device protocols.

func exportProtocols(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "protocols", "SELECT "+protocolColumns+" FROM protocols ORDER BY tenant, object_id", func(rows *sql.Rows) error {
		r, err := readProtocol(rows, "protocol")
		if err != nil {
			return fmt.Errorf("export protocols: %w", err)
		}
		return fn(store.ProtocolDumpOf(r))
	})
}

func importProtocol(im *importer, rec store.Record) error {
	r, err := rec.(*store.ProtocolDumpRecord).Record()
	if err != nil {
		return err
	}
	_, err = im.tx.Exec(`INSERT INTO protocols (`+protocolColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.ObjectID, r.Source, r.Updated.UnixMilli(), string(r.Definition), string(r.Functionalities), string(r.Validation))
	if err != nil {
		return fmt.Errorf("import protocol: %w", err)
	}
	return nil
}
