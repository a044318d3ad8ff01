package validation

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"strconv"
	"sync"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// RuleSource answers a resource's validation rules as they apply to a
// tenant (its own protocol, else the one it inherits); empty rules when
// there are none. *store.Protocols implements it, answering from memory
// after the first lookup of an object.
type RuleSource interface {
	ValidationRules(ctx context.Context, tenant string, objectID, resourceID uint16) (store.ValidationRules, error)
}

// ValueSource answers the last known values of a device; *mongo.Store
// implements it.
type ValueSource interface {
	Values(ctx context.Context, tenant, deviceID string) ([]store.ResourceValue, error)
}

// Config wires a Validator. Rules is required; Values only for rules that
// compare with another resource (without it those rules fail).
type Config struct {
	Rules  RuleSource
	Values ValueSource
	// CacheSize bounds the compiled rulesets kept (default
	// DefaultCacheSize); one entry per tenant and resource with rules.
	CacheSize int
	Logger    *slog.Logger
}

// DefaultCacheSize holds the rules of a few hundred resources for each of
// a few dozen tenants; a miss costs one compilation, well under a
// millisecond for real rules.
const DefaultCacheSize = 4096

// Validator checks writes against the validation rules of the tenant's
// device protocols. It is safe for concurrent use.
type Validator struct {
	cfg Config
	log *slog.Logger

	seed maphash.Seed

	mu    sync.Mutex
	lru   *list.List // of *cached, most recently used first
	cache map[cacheKey]*list.Element
}

type cacheKey struct {
	tenant           string
	object, resource uint16
}

type cached struct {
	key  cacheKey
	hash uint64
	rs   *Ruleset
}

// New returns a Validator.
func New(cfg Config) *Validator {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Validator{cfg: cfg, log: cfg.Logger.With("component", "validation"), seed: maphash.MakeSeed(), lru: list.New(), cache: map[cacheKey]*list.Element{}}
}

// Check checks values written to one device, each against its resource's
// rules (records of resources without rules pass). It returns nil when
// every value is valid; otherwise every *Failure, joined (IsFailure
// reports them), or another error when the rules or the device's last
// known values cannot be read. Rules that compare with another resource
// compare with its last known value as stored, read once per call.
func (v *Validator) Check(ctx context.Context, tenant, deviceID string, recs []node.Record) error {
	var (
		failures []error
		last     []store.ResourceValue
		loaded   bool
	)
	for _, rec := range recs {
		p := rec.Path
		if p.Depth < 3 {
			continue
		}
		rs, err := v.Ruleset(ctx, tenant, p.Object, p.Resource)
		if err != nil {
			return err
		}
		if rs == nil {
			continue
		}
		var lookup Lookup
		if len(rs.Refs()) > 0 {
			if !loaded {
				last, err = v.values(ctx, tenant, deviceID)
				if err != nil {
					return err
				}
				loaded = true
			}
			lookup = func(rp node.Path) (node.Value, bool) {
				// A device has tens of values and a ruleset a few
				// references: a scan beats building a map per write.
				for _, rv := range last {
					if samePath(rv.Path, rp) {
						return StoredValue(rv)
					}
				}
				return node.Value{}, false
			}
		}
		if err := rs.Check(p, rec.Value, lookup); err != nil {
			if !IsFailure(err) {
				return err
			}
			failures = append(failures, err)
		}
	}
	if len(failures) > 0 {
		v.log.Debug("write refused", "tenant", tenant, "device", deviceID, "err", errors.Join(failures...))
	}
	return errors.Join(failures...)
}

func (v *Validator) values(ctx context.Context, tenant, deviceID string) ([]store.ResourceValue, error) {
	if v.cfg.Values == nil {
		return nil, nil
	}
	vals, err := v.cfg.Values.Values(ctx, tenant, deviceID)
	if err != nil {
		return nil, fmt.Errorf("validation: last known values of %s: %w", deviceID, err)
	}
	return vals, nil
}

// samePath compares a stored path ("/3/0/15", canonical as the store
// writes it) with p without formatting p.
func samePath(s string, p node.Path) bool {
	q, err := node.ParsePath(s)
	return err == nil && q == p
}

// Ruleset returns the compiled rules of a resource for the tenant, nil
// when it has none. Rules that no longer compile (stored before a check
// was tightened) are an error wrapping store.ErrInvalid that names the
// resource.
func (v *Validator) Ruleset(ctx context.Context, tenant string, objectID, resourceID uint16) (*Ruleset, error) {
	rules, err := v.cfg.Rules.ValidationRules(ctx, tenant, objectID, resourceID)
	if err != nil {
		return nil, fmt.Errorf("validation rules of /%d/x/%d: %w", objectID, resourceID, err)
	}
	if rules.Empty() {
		return nil, nil
	}
	k := cacheKey{tenant: tenant, object: objectID, resource: resourceID}
	h := hashRules(v.seed, rules)
	v.mu.Lock()
	if el, ok := v.cache[k]; ok {
		c := el.Value.(*cached)
		if c.hash == h {
			v.lru.MoveToFront(el)
			v.mu.Unlock()
			return c.rs, nil
		}
	}
	v.mu.Unlock()

	// Compiled outside the lock: two callers may compile the same rules
	// at once, which costs time, not correctness.
	rs, err := Compile(rules)
	if err != nil {
		return nil, fmt.Errorf("%w: the validation rules of /%d/x/%d do not compile: %w", store.ErrInvalid, objectID, resourceID, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if el, ok := v.cache[k]; ok {
		el.Value = &cached{key: k, hash: h, rs: rs}
		v.lru.MoveToFront(el)
		return rs, nil
	}
	v.cache[k] = v.lru.PushFront(&cached{key: k, hash: h, rs: rs})
	for v.lru.Len() > v.cfg.CacheSize {
		old := v.lru.Back()
		v.lru.Remove(old)
		delete(v.cache, old.Value.(*cached).key)
	}
	return rs, nil
}

// cached reports how many rulesets the cache holds.
func (v *Validator) cached() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lru.Len()
}

// hashRules identifies a ruleset's content, so that changed rules (through
// this agent or another sharing the store) are compiled again.
func hashRules(seed maphash.Seed, r store.ValidationRules) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var num [8]byte
	for _, g := range r.Groups {
		_ = h.WriteByte('|')
		for _, rule := range g {
			_, _ = h.WriteString(rule.Type)
			_ = h.WriteByte(0)
			_, _ = h.WriteString(rule.Rule)
			_ = h.WriteByte(0)
			_, _ = h.WriteString(rule.Resource)
			_ = h.WriteByte(0)
			switch c := rule.Value.(type) {
			case nil:
				_ = h.WriteByte('n')
			case string:
				_ = h.WriteByte('s')
				_, _ = h.WriteString(c)
			case float64:
				_ = h.WriteByte('f')
				_, _ = h.Write(strconv.AppendUint(num[:0], math.Float64bits(c), 16))
			default:
				_ = h.WriteByte('o')
				_, _ = h.WriteString(fmt.Sprint(c))
			}
			_ = h.WriteByte(0)
		}
	}
	return h.Sum64()
}
