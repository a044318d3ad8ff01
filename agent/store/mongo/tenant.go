package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"golang.org/x/crypto/bcrypt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

type userDoc struct {
	ID       string   `bson:"_id"` // tenant + "/" + userName: looked up by _id
	Tenant   string   `bson:"tenant"`
	UserName string   `bson:"userName"`
	Hash     []byte   `bson:"passwordHash"`
	Roles    []string `bson:"roles"`
}

// CreateTenant creates tenant id with an administrator. The ID is 1 to 32
// lower-case letters, digits or '-', starting with a letter or digit.
func (s *Store) CreateTenant(ctx context.Context, id, adminName, adminPass string) (store.Tenant, error) {
	if !store.ValidTenantID(id) {
		return store.Tenant{}, fmt.Errorf("%w: tenant id %q: use 1 to 32 lower-case letters, digits or '-'", store.ErrInvalid, id)
	}
	if adminName == "" || adminPass == "" {
		return store.Tenant{}, fmt.Errorf("%w: tenant %s: adminName and adminPass are required", store.ErrInvalid, id)
	}
	t := store.Tenant{ID: id, Domain: id, CreationTime: time.Now().UTC().Truncate(time.Millisecond)}
	if _, err := s.tenants.InsertOne(ctx, t); err != nil {
		if isDup(err) {
			return store.Tenant{}, fmt.Errorf("tenant %s: %w", id, store.ErrConflict)
		}
		return store.Tenant{}, fmt.Errorf("create tenant %s: %w", id, err)
	}
	if err := s.CreateUser(ctx, id, adminName, adminPass, []string{store.RoleAdmin}); err != nil {
		return store.Tenant{}, err
	}
	return t, nil
}

// GetTenant returns tenant id.
func (s *Store) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	var t store.Tenant
	err := s.tenants.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Tenant{}, store.ErrNotFound
	}
	if err != nil {
		return store.Tenant{}, fmt.Errorf("read tenant %s: %w", id, err)
	}
	return t, nil
}

// ListTenants lists the tenants by ID; total is -1 unless p.WithTotal.
func (s *Store) ListTenants(ctx context.Context, p store.Page) ([]store.Tenant, int64, error) {
	out := []store.Tenant{}
	total, err := s.findPage(ctx, s.tenants, bson.D{}, bson.D{{Key: "_id", Value: 1}}, p, &out)
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// CreateUser adds a user to an existing tenant.
func (s *Store) CreateUser(ctx context.Context, tenant, userName, password string, roles []string) error {
	if userName == "" || password == "" {
		return fmt.Errorf("%w: user name and password are required", store.ErrInvalid)
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
		return fmt.Errorf("user %s/%s: %w", tenant, userName, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create user %s/%s: %w", tenant, userName, err)
	}
	return nil
}

// SetPassword changes a user's password; cached logins of the user end.
func (s *Store) SetPassword(ctx context.Context, tenant, userName, password string) error {
	if password == "" {
		return fmt.Errorf("%w: empty password", store.ErrInvalid)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	s.auth.Forget(tenant, userName)
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant + "/" + userName}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "passwordHash", Value: hash}}}})
	if err != nil {
		return fmt.Errorf("set password of %s/%s: %w", tenant, userName, err)
	}
	// Forget again: a login racing the update may have cached the old one.
	s.auth.Forget(tenant, userName)
	if res.MatchedCount == 0 {
		return store.ErrNotFound
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

// Login is Authenticate returning the user. Successful checks are cached
// for a minute, keyed by a keyed hash of the password, because bcrypt
// costs tens of milliseconds and every API request authenticates.
func (s *Store) Login(ctx context.Context, tenant, userName, password string) (store.User, error) {
	if u, ok := s.auth.Get(tenant, userName, password); ok {
		return u, nil
	}
	var d userDoc
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: tenant + "/" + userName}}).Decode(&d)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return store.User{}, fmt.Errorf("read user %s/%s: %w", tenant, userName, err)
	}
	// An unknown tenant or user costs the same bcrypt as a wrong password,
	// so that the time of an answer does not tell which tenants and users
	// exist.
	hash := d.Hash
	known := err == nil && d.Tenant == tenant
	if !known {
		hash = store.DummyHash()
	}
	passwordChecks.Add(1)
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !known {
		return store.User{}, store.ErrUnauthorized
	}
	u := store.User{Tenant: d.Tenant, UserName: d.UserName, Roles: d.Roles}
	s.auth.Put(u, password)
	return u, nil
}

// passwordChecks counts bcrypt comparisons of logins, for tests.
var passwordChecks atomic.Int64
