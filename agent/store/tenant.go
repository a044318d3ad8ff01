package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
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

type userDoc struct {
	ID       string   `bson:"_id"` // tenant + "/" + userName: looked up by _id
	Tenant   string   `bson:"tenant"`
	UserName string   `bson:"userName"`
	Hash     []byte   `bson:"passwordHash"`
	Roles    []string `bson:"roles"`
}

var tenantIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// CreateTenant creates tenant id with an administrator. The ID is 1 to 32
// lower-case letters, digits or '-', starting with a letter or digit.
func (s *Store) CreateTenant(ctx context.Context, id, adminName, adminPass string) (Tenant, error) {
	if !tenantIDRe.MatchString(id) {
		return Tenant{}, fmt.Errorf("%w: tenant id %q: use 1 to 32 lower-case letters, digits or '-'", ErrInvalid, id)
	}
	if adminName == "" || adminPass == "" {
		return Tenant{}, fmt.Errorf("%w: tenant %s: adminName and adminPass are required", ErrInvalid, id)
	}
	t := Tenant{ID: id, Domain: id, CreationTime: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := s.tenants.InsertOne(ctx, t); err != nil {
		if isDup(err) {
			return Tenant{}, fmt.Errorf("tenant %s: %w", id, ErrConflict)
		}
		return Tenant{}, fmt.Errorf("create tenant %s: %w", id, err)
	}
	if err := s.CreateUser(ctx, id, adminName, adminPass, []string{RoleAdmin}); err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// GetTenant returns tenant id.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	var t Tenant
	err := s.tenants.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Tenant{}, ErrNotFound
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("read tenant %s: %w", id, err)
	}
	return t, nil
}

// CreateUser adds a user to an existing tenant.
func (s *Store) CreateUser(ctx context.Context, tenant, userName, password string, roles []string) error {
	if userName == "" || password == "" {
		return fmt.Errorf("%w: user name and password are required", ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("create user %s/%s: %w", tenant, userName, err)
	}
	if roles == nil {
		roles = []string{}
	}
	_, err = s.users.InsertOne(ctx, userDoc{ID: tenant + "/" + userName, Tenant: tenant, UserName: userName, Hash: hash, Roles: roles})
	if isDup(err) {
		return fmt.Errorf("user %s/%s: %w", tenant, userName, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create user %s/%s: %w", tenant, userName, err)
	}
	return nil
}

// SetPassword changes a user's password; cached logins of the user end.
func (s *Store) SetPassword(ctx context.Context, tenant, userName, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	s.auth.forget(tenant, userName)
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant + "/" + userName}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "passwordHash", Value: hash}}}})
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	// Forget again: a login racing the update may have cached the old one.
	s.auth.forget(tenant, userName)
	if res.MatchedCount == 0 {
		return ErrNotFound
	}
	return nil
}

// Management is what EnsureManagement did.
type Management struct {
	// Generated is the random password of management/admin created on an
	// empty store without a configured one, to be shown once; else "".
	Generated string
	// PasswordChanged is true when the configured password replaced the
	// stored one (or created the admin user that was missing).
	PasswordChanged bool
}

// EnsureManagement creates, on a store without it, the management tenant
// with the user "admin" and password adminPassword, or a random password
// if that is empty. On a store that has the tenant, a non-empty
// adminPassword that the stored one does not match replaces it: an
// operator who sets the password expects it to hold, and keeping an old
// one silently would lock them out or keep a leaked one alive. An empty
// adminPassword changes nothing.
func (s *Store) EnsureManagement(ctx context.Context, adminPassword string) (Management, error) {
	if _, err := s.GetTenant(ctx, ManagementTenant); errors.Is(err, ErrNotFound) {
		pass := adminPassword
		if pass == "" {
			pass = rand.Text()
		}
		if _, err := s.CreateTenant(ctx, ManagementTenant, "admin", pass); err == nil {
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
	err := s.Authenticate(ctx, ManagementTenant, "admin", adminPassword)
	switch {
	case err == nil:
		return Management{}, nil
	case !errors.Is(err, ErrUnauthorized):
		return Management{}, err
	}
	err = s.SetPassword(ctx, ManagementTenant, "admin", adminPassword)
	if errors.Is(err, ErrNotFound) {
		err = s.CreateUser(ctx, ManagementTenant, "admin", adminPassword, []string{RoleAdmin})
	}
	if err != nil {
		return Management{}, fmt.Errorf("management/admin: set the configured password: %w", err)
	}
	return Management{PasswordChanged: true}, nil
}

// Authenticate checks a user's password; ErrUnauthorized when the tenant,
// user or password is wrong.
func (s *Store) Authenticate(ctx context.Context, tenant, userName, password string) error {
	_, err := s.Login(ctx, tenant, userName, password)
	return err
}

// Login is Authenticate returning the user. Successful checks are cached
// for a minute, keyed by a keyed hash of the password, because bcrypt
// costs tens of milliseconds and every API request authenticates.
func (s *Store) Login(ctx context.Context, tenant, userName, password string) (User, error) {
	if u, ok := s.auth.get(tenant, userName, password); ok {
		return u, nil
	}
	var d userDoc
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: tenant + "/" + userName}}).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return User{}, fmt.Errorf("read user %s/%s: %w", tenant, userName, err)
	}
	// An unknown tenant or user costs the same bcrypt as a wrong password,
	// so that the time of an answer does not tell which tenants and users
	// exist.
	hash := d.Hash
	known := err == nil && d.Tenant == tenant
	if !known {
		hash = dummyHash()
	}
	passwordChecks.Add(1)
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return User{}, ErrUnauthorized
	}
	u := User{Tenant: d.Tenant, UserName: d.UserName, Roles: d.Roles}
	s.auth.put(u, password)
	return u, nil
}

// passwordChecks counts bcrypt comparisons of logins, for tests.
var passwordChecks atomic.Int64

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
