package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Bounds of the post-registration cache. An entry is one tenant; every
// full registration asks for its tenant's list, so it is kept briefly
// rather than read each time. A change made through this Store clears
// the entry at once; one made by another replica is seen after the TTL.
const (
	postOpsCacheSize = 1024
	postOpsCacheTTL  = 5 * time.Second
)

type postOpsDoc struct {
	Key      string    `bson:"_id"`
	Tenant   string    `bson:"tenant"`
	Commands []string  `bson:"commands"`
	Updated  time.Time `bson:"updated"`
}

type postOpsEntry struct {
	cmds    []string
	expires time.Time
}

// postOpsCache holds tenants' post-registration commands. gen changes on
// every write, so that a read that began before a write does not put what
// it read back into the cache after the write cleared it.
type postOpsCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]postOpsEntry
}

func (c *postOpsCache) get(tenant string, now time.Time) ([]string, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[tenant]
	if !ok || now.After(e.expires) {
		return nil, c.gen, false
	}
	return e.cmds, c.gen, true
}

func (c *postOpsCache) put(tenant string, cmds []string, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= postOpsCacheSize {
		c.m = make(map[string]postOpsEntry)
	}
	c.m[tenant] = postOpsEntry{cmds: cmds, expires: now.Add(postOpsCacheTTL)}
}

func (c *postOpsCache) drop(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.m, tenant)
}

// postOpsKey is the _id of a tenant's list: one document per tenant.
func postOpsKey(tenant string) string { return key(tenant, "postoperations") }

// PostOperations returns the tenant's post-registration commands in
// order, none when the tenant set none. The caller must not change the
// slice: it may be shared with other callers.
func (s *Store) PostOperations(ctx context.Context, tenant string) ([]string, error) {
	now := time.Now()
	cmds, gen, ok := s.postOps.get(tenant, now)
	if ok {
		return cmds, nil
	}
	var d postOpsDoc
	err := s.postOperations.FindOne(ctx, bson.D{{Key: "_id", Value: postOpsKey(tenant)}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		d.Commands = nil
	case err != nil:
		return nil, fmt.Errorf("read post-registration operations of %s: %w", tenant, err)
	}
	s.postOps.put(tenant, d.Commands, gen, now)
	return d.Commands, nil
}

// SetPostOperations replaces the tenant's post-registration commands; an
// empty list removes them. The commands are stored as given: checking
// their grammar is the caller's (the store does not know the shell). More
// than MaxPostOperations commands, or an empty or overlong one, is
// ErrInvalid.
func (s *Store) SetPostOperations(ctx context.Context, tenant string, cmds []string) error {
	if err := store.CheckPostOperations(cmds); err != nil {
		return err
	}
	defer s.postOps.drop(tenant)
	k := postOpsKey(tenant)
	if len(cmds) == 0 {
		if _, err := s.postOperations.DeleteOne(ctx, bson.D{{Key: "_id", Value: k}}); err != nil {
			return fmt.Errorf("remove post-registration operations of %s: %w", tenant, err)
		}
		return nil
	}
	d := postOpsDoc{Key: k, Tenant: tenant, Commands: append([]string(nil), cmds...), Updated: now()}
	if _, err := s.postOperations.ReplaceOne(ctx, bson.D{{Key: "_id", Value: k}}, d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("store post-registration operations of %s: %w", tenant, err)
	}
	return nil
}
