package store

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"regexp"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ManagementTenant is the tenant whose admins create the other tenants.
const ManagementTenant = "management"

// RoleAdmin is the role of a tenant's administrator.
const RoleAdmin = "ROLE_ADMIN"

// Tenant is one customer's space.
type Tenant struct {
	ID           string    `bson:"_id" json:"id"`
	Domain       string    `bson:"domain" json:"domain"`
	CreationTime time.Time `bson:"creationTime" json:"creationTime"`
}

// User is a user of a tenant, without the password hash.
type User struct {
	Tenant   string   `json:"tenant"`
	UserName string   `json:"userName"`
	Roles    []string `json:"roles"`
}

// IsAdmin reports whether the user administers its tenant.
func (u User) IsAdmin() bool {
	for _, r := range u.Roles {
		if r == RoleAdmin {
			return true
		}
	}
	return false
}

var tenantIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Management is what EnsureManagement did.
type Management struct {
	// Generated is the random password of management/admin created on an
	// empty store without a configured one, to be shown once; else "".
	Generated string
	// PasswordChanged is true when the configured password replaced the
	// stored one (or created the admin user that was missing).
	PasswordChanged bool
}

// dummyHash is a bcrypt hash of the users' cost that no password matches
// in practice, compared against for unknown users.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), bcrypt.DefaultCost)
	if err != nil {
		panic(fmt.Sprintf("store: dummy password hash: %v", err))
	}
	return h
})

// authCache remembers successful logins for a short time. It holds at most
// max entries; a full cache drops expired entries, then arbitrary ones.
type authCache struct {
	mu  sync.Mutex
	key []byte
	ttl time.Duration
	max int
	m   map[string]authEntry
}

type authEntry struct {
	sum     [32]byte
	user    User
	expires time.Time
}

func newAuthCache(max int, ttl time.Duration) *authCache {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return &authCache{key: k, ttl: ttl, max: max, m: make(map[string]authEntry)}
}

func (c *authCache) sum(password string) [32]byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(password))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func (c *authCache) get(tenant, user, password string) (User, bool) {
	sum := c.sum(password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tenant+"/"+user]
	if !ok || time.Now().After(e.expires) || !hmac.Equal(e.sum[:], sum[:]) {
		return User{}, false
	}
	return e.user, true
}

func (c *authCache) put(u User, password string) {
	sum := c.sum(password)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[u.Tenant+"/"+u.UserName] = authEntry{sum: sum, user: u, expires: now.Add(c.ttl)}
}

func (c *authCache) forget(tenant, user string) {
	c.mu.Lock()
	delete(c.m, tenant+"/"+user)
	c.mu.Unlock()
}
