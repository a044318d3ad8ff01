package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// What every engine shares of the tenants' credentials, so that each
// hashes, checks and caches passwords alike and a hash written by one
// verifies in another.

// PasswordCost is the bcrypt cost of stored password hashes.
const PasswordCost = bcrypt.DefaultCost

// ValidTenantID reports whether id is a tenant ID CreateTenant accepts:
// 1 to 32 lower-case letters, digits or '-', starting with a letter or
// digit.
func ValidTenantID(id string) bool { return tenantIDRe.MatchString(id) }

// DummyHash is a hash of PasswordCost that no password matches in
// practice: a login of an unknown tenant or user is checked against it,
// so that it costs the same time as a wrong password.
func DummyHash() []byte { return dummyHash() }

// LoginCache remembers successful logins for a minute, keyed by a keyed
// hash of the password, as the MongoDB engine does: bcrypt costs tens of
// milliseconds and every API request authenticates.
type LoginCache struct{ c *authCache }

// NewLoginCache returns an empty cache of the engines' size and lifetime.
func NewLoginCache() *LoginCache { return &LoginCache{c: newAuthCache(4096, time.Minute)} }

// Get returns the user of a cached login with the same password.
func (c *LoginCache) Get(tenant, userName, password string) (User, bool) {
	return c.c.get(tenant, userName, password)
}

// Put caches a successful login.
func (c *LoginCache) Put(u User, password string) { c.c.put(u, password) }

// Forget ends the cached login of a user, whose password changes.
func (c *LoginCache) Forget(tenant, userName string) { c.c.forget(tenant, userName) }

// EnsureManagement is every engine's EnsureManagement, over its tenant
// methods: on a store without the management tenant it creates it with
// the user "admin" and password adminPassword, or a random password if
// that is empty. On a store that has the tenant, a non-empty
// adminPassword that the stored one does not match replaces it: an
// operator who sets the password expects it to hold, and keeping an old
// one silently would lock them out or keep a leaked one alive. An empty
// adminPassword changes nothing.
func EnsureManagement(ctx context.Context, t Tenants, adminPassword string) (Management, error) {
	if _, err := t.GetTenant(ctx, ManagementTenant); errors.Is(err, ErrNotFound) {
		pass := adminPassword
		if pass == "" {
			pass = rand.Text()
		}
		if _, err := t.CreateTenant(ctx, ManagementTenant, "admin", pass); err == nil {
			if adminPassword == "" {
				return Management{Generated: pass}, nil
			}
			return Management{}, nil
		} else if !errors.Is(err, ErrConflict) {
			return Management{}, err
		}
		// another replica was first: its password is checked below
	} else if err != nil {
		return Management{}, err
	}
	if adminPassword == "" {
		return Management{}, nil
	}
	err := t.Authenticate(ctx, ManagementTenant, "admin", adminPassword)
	switch {
	case err == nil:
		return Management{}, nil
	case !errors.Is(err, ErrUnauthorized):
		return Management{}, err
	}
	err = t.SetPassword(ctx, ManagementTenant, "admin", adminPassword)
	if errors.Is(err, ErrNotFound) {
		err = t.CreateUser(ctx, ManagementTenant, "admin", adminPassword, []string{RoleAdmin})
	}
	if err != nil {
		return Management{}, fmt.Errorf("management/admin: set the configured password: %w", err)
	}
	return Management{PasswordChanged: true}, nil
}
