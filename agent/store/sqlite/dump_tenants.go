package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Dumpers of the tenants, their users and the counters.

func exportTenants(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "tenants", "SELECT id, domain, created FROM tenants ORDER BY id", func(rows *sql.Rows) error {
		var (
			r  store.TenantRecord
			ms int64
		)
		if err := rows.Scan(&r.ID, &r.Domain, &ms); err != nil {
			return fmt.Errorf("export tenants: %w", err)
		}
		r.CreationTime = store.DumpTime(time.UnixMilli(ms))
		return fn(&r)
	})
}

// importTenant inserts a tenant; the management tenant replaces the
// store's (ImportReady let through only an empty one).
func importTenant(im *importer, rec store.Record) error {
	r := rec.(*store.TenantRecord)
	if !store.ValidTenantID(r.ID) {
		return fmt.Errorf("%w: tenant id %q", store.ErrInvalid, r.ID)
	}
	q := "INSERT INTO tenants (id, domain, created) VALUES (?, ?, ?)"
	if r.ID == store.ManagementTenant {
		q += " ON CONFLICT (id) DO UPDATE SET domain = excluded.domain, created = excluded.created"
	}
	if _, err := im.tx.Exec(q, r.ID, r.Domain, r.CreationTime.Time().UnixMilli()); err != nil {
		return fmt.Errorf("import tenant: %w", err)
	}
	return nil
}

func exportUsers(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "users", "SELECT tenant, name, hash, roles FROM users ORDER BY tenant, name", func(rows *sql.Rows) error {
		var (
			r     store.UserRecord
			roles string
		)
		if err := rows.Scan(&r.Tenant, &r.UserName, &r.PasswordHash, &roles); err != nil {
			return fmt.Errorf("export users: %w", err)
		}
		if err := json.Unmarshal([]byte(roles), &r.Roles); err != nil {
			return fmt.Errorf("export user %s/%s: roles: %w", r.Tenant, r.UserName, err)
		}
		return fn(&r)
	})
}

// importUser inserts a user with its hash; a user of the management
// tenant replaces the store's of that name.
func importUser(im *importer, rec store.Record) error {
	r := rec.(*store.UserRecord)
	if r.UserName == "" || len(r.PasswordHash) == 0 {
		return fmt.Errorf("%w: a user needs a name and a password hash", store.ErrInvalid)
	}
	roles, err := rolesJSON(r.Roles)
	if err != nil {
		return fmt.Errorf("%w: %w", store.ErrInvalid, err)
	}
	u := userRow{tenant: r.Tenant, name: r.UserName, hash: r.PasswordHash, roles: roles}
	if r.Tenant != store.ManagementTenant {
		return u.insert(im.tx)
	}
	_, err = im.tx.Exec(`INSERT INTO users (tenant, name, hash, roles) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, name) DO UPDATE SET hash = excluded.hash, roles = excluded.roles`, u.tenant, u.name, u.hash, u.roles)
	if err != nil {
		return fmt.Errorf("import user: %w", err)
	}
	return nil
}

func exportCounters(ctx context.Context, q *sql.Tx, fn func(store.Record) error) error {
	return eachRow(ctx, q, "counters", "SELECT name, value FROM counters ORDER BY name", func(rows *sql.Rows) error {
		var r store.CounterRecord
		if err := rows.Scan(&r.Name, &r.Value); err != nil {
			return fmt.Errorf("export counters: %w", err)
		}
		return fn(&r)
	})
}

// importCounter raises the counter to the source's: ids handed out
// after the import never take one the source had handed out.
func importCounter(im *importer, rec store.Record) error {
	r := rec.(*store.CounterRecord)
	return raiseCounter(im.tx, r.Name, r.Value)
}
