package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// CreateTenant creates tenant id with an administrator, both in one
// change: unlike the MongoDB engine, no crash leaves a tenant without
// its admin.
func (s *Store) CreateTenant(ctx context.Context, id, adminName, adminPass string) (store.Tenant, error) {
	if !store.ValidTenantID(id) {
		return store.Tenant{}, fmt.Errorf("%w: tenant id %q: use 1 to 32 lower-case letters, digits or '-'", store.ErrInvalid, id)
	}
	if adminName == "" || adminPass == "" {
		return store.Tenant{}, fmt.Errorf("%w: tenant %s: adminName and adminPass are required", store.ErrInvalid, id)
	}
	// Hashed before the change: bcrypt's tens of milliseconds must not
	// hold the one writer.
	user, err := newUser(id, adminName, adminPass, []string{store.RoleAdmin})
	if err != nil {
		return store.Tenant{}, err
	}
	t := store.Tenant{ID: id, Domain: id, CreationTime: time.Now().UTC().Truncate(time.Millisecond)}
	err = s.db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec("INSERT INTO tenants (id, domain, created) VALUES (?, ?, ?)", t.ID, t.Domain, t.CreationTime.UnixMilli()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("tenant %s: %w", id, store.ErrConflict)
			}
			return fmt.Errorf("create tenant %s: %w", id, err)
		}
		return user.insert(tx)
	})
	if err != nil {
		return store.Tenant{}, err
	}
	return t, nil
}

// GetTenant returns tenant id.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var ms int64
	t := store.Tenant{ID: id}
	err := s.db.QueryRow(ctx, "SELECT domain, created FROM tenants WHERE id = ?", id).Scan(&t.Domain, &ms)
	if err := notFound(err, "tenant "+id); err != nil {
		return store.Tenant{}, err
	}
	t.CreationTime = time.UnixMilli(ms).UTC()
	return t, nil
}

// ListTenants lists the tenants by ID; total is -1 unless p.WithTotal.
func (s *Store) ListTenants(ctx context.Context, p store.Page) ([]store.Tenant, int64, error) {
	return listPage(ctx, s.db, "tenants", "id, domain, created", "tenants", "1 = 1", nil, "id", p,
		func(row scanner) (store.Tenant, error) {
			var t store.Tenant
			var ms int64
			if err := row.Scan(&t.ID, &t.Domain, &ms); err != nil {
				return store.Tenant{}, err
			}
			t.CreationTime = time.UnixMilli(ms).UTC()
			return t, nil
		})
}

// userRow is a user ready to be inserted, its password hashed.
type userRow struct {
	tenant, name string
	hash         []byte
	roles        string
}

func newUser(tenant, userName, password string, roles []string) (userRow, error) {
	if userName == "" || password == "" {
		return userRow{}, fmt.Errorf("%w: user name and password are required", store.ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), store.PasswordCost)
	if err != nil {
		return userRow{}, fmt.Errorf("create user %s/%s: %w", tenant, userName, err)
	}
	r, err := rolesJSON(roles)
	if err != nil {
		return userRow{}, fmt.Errorf("create user %s/%s: %w", tenant, userName, err)
	}
	return userRow{tenant: tenant, name: userName, hash: hash, roles: r}, nil
}

// rolesJSON encodes the roles column; none is [].
func rolesJSON(roles []string) (string, error) {
	if roles == nil {
		roles = []string{}
	}
	r, err := json.Marshal(roles)
	if err != nil {
		return "", fmt.Errorf("roles: %w", err)
	}
	return string(r), nil
}

func (u userRow) insert(tx *Tx) error {
	_, err := tx.Exec("INSERT INTO users (tenant, name, hash, roles) VALUES (?, ?, ?, ?)", u.tenant, u.name, u.hash, u.roles)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("user %s/%s: %w", u.tenant, u.name, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create user %s/%s: %w", u.tenant, u.name, err)
	}
	return nil
}

// CreateUser adds a user to a tenant.
func (s *Store) CreateUser(ctx context.Context, tenant, userName, password string, roles []string) error {
	u, err := newUser(tenant, userName, password, roles)
	if err != nil {
		return err
	}
	return s.db.Write(ctx, u.insert)
}

// SetPassword changes a user's password; cached logins of the user end.
func (s *Store) SetPassword(ctx context.Context, tenant, userName, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", store.ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), store.PasswordCost)
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	s.auth.Forget(tenant, userName)
	err = s.db.Write(ctx, func(tx *Tx) error {
		return tx.execOne("UPDATE users SET hash = ? WHERE tenant = ? AND name = ?", hash, tenant, userName)
	})
	// Forgotten again: a login racing the change may have cached the
	// old password.
	s.auth.Forget(tenant, userName)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("user %s/%s: %w", tenant, userName, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	return nil
}

// EnsureManagement creates the management tenant or sets its admin's
// configured password (store.EnsureManagement).
func (s *Store) EnsureManagement(ctx context.Context, adminPassword string) (store.Management, error) {
	return store.EnsureManagement(ctx, s, adminPassword)
}

// Authenticate checks a user's password; ErrUnauthorized when the tenant,
// user or password is wrong.
func (s *Store) Authenticate(ctx context.Context, tenant, userName, password string) error {
	_, err := s.Login(ctx, tenant, userName, password)
	return err
}

// Login is Authenticate returning the user; successful checks are
// cached (store.LoginCache).
func (s *Store) Login(ctx context.Context, tenant, userName, password string) (store.User, error) {
	if u, ok := s.auth.Get(tenant, userName, password); ok {
		return u, nil
	}
	var hash []byte
	var roles string
	err := s.db.QueryRow(ctx, "SELECT hash, roles FROM users WHERE tenant = ? AND name = ?", tenant, userName).Scan(&hash, &roles)
	known := err == nil
	if err := notFound(err, "user "+tenant+"/"+userName); err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	// An unknown tenant or user costs the same bcrypt as a wrong
	// password, so that the time of an answer does not tell which
	// tenants and users exist.
	if !known {
		hash = store.DummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return store.User{}, store.ErrUnauthorized
	}
	u := store.User{Tenant: tenant, UserName: userName}
	if err := json.Unmarshal([]byte(roles), &u.Roles); err != nil {
		return store.User{}, fmt.Errorf("read user %s/%s: roles: %w", tenant, userName, err)
	}
	s.auth.Put(u, password)
	return u, nil
}
