package store

import (
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
