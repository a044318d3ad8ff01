package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Device protocols.
//
// A device protocol is an object definition (parsed from DDF) with what an
// operator configured per resource: functionalities (how values become
// measurements, alarms, events, custom actions) and validation rules for
// writes. Each tenant has its own; a tenant that has none for an object
// inherits the management tenant's, and else the definition built into
// the binary (model.CoreObjects), which has no functionalities (the
// default mappings of API.md are the pipeline's, not stored ones).
//
// Protocols is generic in the functionality type so that the store does
// not depend on the mapping layer, which depends on the store: the agent
// uses Protocols[mapping.Functionality], and that type is the mapping
// pipeline's mapping.Source. It keeps protocols in any engine's
// ProtocolRecords, as JSON: the definition as objectDoc, the
// functionalities as F's JSON, the validation rules as groups of rules.
// Those are the member names the MongoDB engine's documents had when the
// store encoded them in BSON itself (F's json and bson names must agree,
// as mapping.Functionality's do), so that documents written then read
// the same now.
//
// Functionalities and the type resolvers are asked per value, so effective
// protocols are cached in memory (bounded, for protocolCacheTTL). A write
// through a Protocols clears its cache at once; a write through another
// agent sharing the database (or another Protocols value: use one per
// process) is seen when the entry expires.

// Functionality is what the store needs of a resource functionality: it
// checks itself, and its zero value means "none".
type Functionality interface {
	comparable
	Validate() error
}

// Protocols stores device protocols with functionalities of type F. It is
// safe for concurrent use; make one per process with NewProtocols and
// share it, so that a write clears the cache every reader uses.
type Protocols[F Functionality] struct {
	recs ProtocolRecords
	// mu serializes the read-modify-writes (SaveProtocol keeps
	// functionalities of the definition it replaces, changeResource
	// copies or changes one resource), so that two of them never write
	// back each other's reads. It is per Protocols, as one per process
	// is the rule (see above); agents sharing a MongoDB database were
	// never serialized with each other.
	mu       sync.Mutex
	cache    *protocolCache[F]
	core     map[uint16]*Protocol[F]
	onChange atomic.Pointer[func(tenant string, objectID uint16)]
}

// OnChange sets who hears of every protocol written or deleted through
// ps, after the store took it: the agent observes, on devices that are
// already registered, what a new functionality asks to observe. f must
// not block (it runs while other writes wait).
func (ps *Protocols[F]) OnChange(f func(tenant string, objectID uint16)) {
	ps.onChange.Store(&f)
}

func (ps *Protocols[F]) changed(tenant string, objectID uint16) {
	if f := ps.onChange.Load(); f != nil {
		(*f)(tenant, objectID)
	}
}

// NewProtocols returns the device protocols kept in recs.
func NewProtocols[F Functionality](recs ProtocolRecords) *Protocols[F] {
	core := make(map[uint16]*Protocol[F])
	for _, o := range model.CoreObjects() {
		core[o.ID] = &Protocol[F]{Object: o, Source: SourceCore, Functionalities: map[uint16]F{}, Validation: map[uint16]ValidationRules{}}
	}
	return &Protocols[F]{recs: recs, cache: newProtocolCache[F](protocolCacheSize, protocolCacheTTL), core: core}
}

// Source of the definitions built into the binary.
const SourceCore = "core"

// Protocol is a device protocol as the store answers it. Its Object,
// Functionalities and Validation may be shared with the cache: treat them
// as read-only.
type Protocol[F Functionality] struct {
	// Tenant owning the definition; "" for a built-in one.
	Tenant string
	Object model.ObjectDef
	// Source says where the definition came from: the uploaded file's
	// name, SourceCore, or "copy of <tenant> (<its source>)" for a
	// definition a tenant took over to configure it.
	Source          string
	Functionalities map[uint16]F
	Validation      map[uint16]ValidationRules
	Updated         time.Time
}

// Builtin reports whether p is a built-in definition rather than a
// tenant's.
func (p Protocol[F]) Builtin() bool { return p.Tenant == "" }

// ruleGroupDoc is one group of validation rules: the embedded FerretDB
// keeps no arrays of arrays, so each group is an object.
type ruleGroupDoc struct {
	Rules []ValidationRule `json:"rules"`
}

// objectDoc mirrors model.ObjectDef, so that renaming a Go field never
// changes what is stored; types are stored by name.
type objectDoc struct {
	Name         string        `json:"name"`
	Description  string        `json:"description,omitempty"`
	URN          string        `json:"urn,omitempty"`
	Version      string        `json:"version,omitempty"`
	LwM2MVersion string        `json:"lwm2mVersion,omitempty"`
	Multiple     bool          `json:"multiple"`
	Mandatory    bool          `json:"mandatory"`
	Resources    []resourceDoc `json:"resources"`
}

type resourceDoc struct {
	ID               int32  `json:"id"`
	Name             string `json:"name"`
	Operations       string `json:"operations"`
	Multiple         bool   `json:"multiple"`
	Mandatory        bool   `json:"mandatory"`
	Type             string `json:"type"`
	RangeEnumeration string `json:"rangeEnumeration,omitempty"`
	Units            string `json:"units,omitempty"`
	Description      string `json:"description,omitempty"`
}

func toRecord[F Functionality](p Protocol[F]) (ProtocolRecord, error) {
	o := p.Object
	def := objectDoc{
		Name: o.Name, Description: o.Description, URN: o.URN, Version: o.Version, LwM2MVersion: o.LwM2MVersion,
		Multiple: o.Multiple, Mandatory: o.Mandatory, Resources: make([]resourceDoc, len(o.Resources)),
	}
	for i, r := range o.Resources {
		def.Resources[i] = resourceDoc{
			ID: int32(r.ID), Name: r.Name, Operations: r.Operations, Multiple: r.Multiple, Mandatory: r.Mandatory,
			Type: r.Type.String(), RangeEnumeration: r.RangeEnumeration, Units: r.Units, Description: r.Description,
		}
	}
	funcs := make(map[string]F, len(p.Functionalities))
	for id, f := range p.Functionalities {
		funcs[strconv.Itoa(int(id))] = f
	}
	validation := make(map[string][]ruleGroupDoc, len(p.Validation))
	for id, v := range p.Validation {
		groups := make([]ruleGroupDoc, len(v.Groups))
		for i, g := range v.Groups {
			groups[i] = ruleGroupDoc{Rules: g}
		}
		validation[strconv.Itoa(int(id))] = groups
	}
	r := ProtocolRecord{Tenant: p.Tenant, ObjectID: o.ID, Source: p.Source, Updated: p.Updated}
	var err error
	if r.Definition, err = json.Marshal(def); err != nil {
		return ProtocolRecord{}, fmt.Errorf("protocol %d of %s: definition: %w", o.ID, p.Tenant, err)
	}
	if r.Functionalities, err = json.Marshal(funcs); err != nil {
		return ProtocolRecord{}, fmt.Errorf("protocol %d of %s: functionalities: %w", o.ID, p.Tenant, err)
	}
	if r.Validation, err = json.Marshal(validation); err != nil {
		return ProtocolRecord{}, fmt.Errorf("protocol %d of %s: validation: %w", o.ID, p.Tenant, err)
	}
	return r, nil
}

func fromRecord[F Functionality](r ProtocolRecord) (Protocol[F], error) {
	var (
		def        objectDoc
		funcs      map[string]F
		validation map[string][]ruleGroupDoc
	)
	for _, f := range []struct {
		name string
		json json.RawMessage
		v    any
	}{{"definition", r.Definition, &def}, {"functionalities", r.Functionalities, &funcs}, {"validation", r.Validation, &validation}} {
		if len(f.json) == 0 {
			continue
		}
		if err := json.Unmarshal(f.json, f.v); err != nil {
			return Protocol[F]{}, fmt.Errorf("stored protocol %d of %s: %s: %w", r.ObjectID, r.Tenant, f.name, err)
		}
	}
	p := Protocol[F]{
		Tenant: r.Tenant, Source: r.Source, Updated: r.Updated,
		Object: model.ObjectDef{
			ID: r.ObjectID, Name: def.Name, Description: def.Description, URN: def.URN,
			Version: def.Version, LwM2MVersion: def.LwM2MVersion, Multiple: def.Multiple, Mandatory: def.Mandatory,
			Resources: make([]model.ResourceDef, len(def.Resources)),
		},
		Functionalities: make(map[uint16]F, len(funcs)),
		Validation:      make(map[uint16]ValidationRules, len(validation)),
	}
	for i, res := range def.Resources {
		t, err := node.ParseType(res.Type)
		if err != nil {
			return Protocol[F]{}, fmt.Errorf("stored protocol %d of %s: resource %d: %w", r.ObjectID, r.Tenant, res.ID, err)
		}
		p.Object.Resources[i] = model.ResourceDef{
			ID: uint16(res.ID), Name: res.Name, Operations: res.Operations, Multiple: res.Multiple, Mandatory: res.Mandatory,
			Type: t, RangeEnumeration: res.RangeEnumeration, Units: res.Units, Description: res.Description,
		}
	}
	for k, f := range funcs {
		id, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			return Protocol[F]{}, fmt.Errorf("stored protocol %d of %s: functionality key %q: %w", r.ObjectID, r.Tenant, k, err)
		}
		p.Functionalities[uint16(id)] = f
	}
	for k, v := range validation {
		id, err := strconv.ParseUint(k, 10, 16)
		if err != nil {
			return Protocol[F]{}, fmt.Errorf("stored protocol %d of %s: validation key %q: %w", r.ObjectID, r.Tenant, k, err)
		}
		rules := ValidationRules{Groups: make([][]ValidationRule, len(v))}
		for i, g := range v {
			rules.Groups[i] = g.Rules
		}
		p.Validation[uint16(id)] = rules
	}
	return p, nil
}

// SaveProtocol creates or replaces the tenant's definition of def.ID.
// Functionalities of resources that remain in the new definition are
// kept, and validation rules of resources that remain writable; those of
// resources it no longer has are dropped. source names where the
// definition came from (the uploaded file). The definition must pass
// def.Validate (ErrInvalid otherwise).
func (ps *Protocols[F]) SaveProtocol(ctx context.Context, tenant string, def model.ObjectDef, source string) (Protocol[F], error) {
	if err := def.Validate(); err != nil {
		return Protocol[F]{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	old, err := ps.ownProtocol(ctx, tenant, def.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Protocol[F]{}, err
	}
	p := Protocol[F]{
		Tenant: tenant, Object: def, Source: source, Updated: now(),
		Functionalities: map[uint16]F{}, Validation: map[uint16]ValidationRules{},
	}
	for id, f := range old.Functionalities {
		if _, ok := def.Resource(id); ok {
			p.Functionalities[id] = f
		}
	}
	for id, v := range old.Validation {
		if r, ok := def.Resource(id); ok && r.Writable() {
			p.Validation[id] = v
		}
	}
	if err := ps.writeProtocol(ctx, p); err != nil {
		return Protocol[F]{}, err
	}
	return p, nil
}

// writeProtocol replaces (or inserts) p and clears the cache. The caller
// holds mu.
func (ps *Protocols[F]) writeProtocol(ctx context.Context, p Protocol[F]) error {
	r, err := toRecord(p)
	if err != nil {
		return err
	}
	err = ps.recs.PutProtocolRecord(ctx, r)
	ps.cache.clear()
	if err != nil {
		return fmt.Errorf("save protocol %d of %s: %w", p.Object.ID, p.Tenant, err)
	}
	ps.changed(p.Tenant, p.Object.ID)
	return nil
}

// ownProtocol reads the tenant's own definition of objectID.
func (ps *Protocols[F]) ownProtocol(ctx context.Context, tenant string, objectID uint16) (Protocol[F], error) {
	r, err := ps.recs.GetProtocolRecord(ctx, tenant, objectID)
	if err != nil {
		return Protocol[F]{}, err
	}
	return fromRecord[F](r)
}

// OwnProtocol returns the tenant's own definition of objectID, not an
// inherited one: ErrNotFound when the tenant has none.
func (ps *Protocols[F]) OwnProtocol(ctx context.Context, tenant string, objectID uint16) (Protocol[F], error) {
	return ps.ownProtocol(ctx, tenant, objectID)
}

// DeleteProtocol deletes the tenant's own definition of objectID; the
// tenant then inherits the management tenant's or the built-in one again.
// ErrNotFound when the tenant has none of its own.
func (ps *Protocols[F]) DeleteProtocol(ctx context.Context, tenant string, objectID uint16) error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	err := ps.recs.DeleteProtocolRecord(ctx, tenant, objectID)
	ps.cache.clear()
	if errors.Is(err, ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("delete protocol %d: %w", objectID, err)
	}
	// the tenant inherits again, maybe functionalities to observe
	ps.changed(tenant, objectID)
	return nil
}

// Protocol returns the definition of objectID that applies to the tenant:
// its own, else the management tenant's, else the built-in one
// (ErrNotFound when there is none). The answer comes from the cache when
// it can; compare its Tenant with tenant to see whether it is inherited.
func (ps *Protocols[F]) Protocol(ctx context.Context, tenant string, objectID uint16) (Protocol[F], error) {
	p, err := ps.effectiveProtocol(ctx, tenant, objectID)
	if err != nil {
		return Protocol[F]{}, err
	}
	if p == nil {
		return Protocol[F]{}, ErrNotFound
	}
	return *p, nil
}

// Functionalities returns the functionalities, by resource ID, of the
// protocol that applies to the tenant for objectID (see Protocol). An
// object nobody defined has none: an empty map and no error. It is meant
// to be called per batch of values: after the first call it answers from
// memory. The map is shared: do not change it.
func (ps *Protocols[F]) Functionalities(ctx context.Context, tenant string, objectID uint16) (map[uint16]F, error) {
	p, err := ps.effectiveProtocol(ctx, tenant, objectID)
	if err != nil || p == nil {
		return map[uint16]F{}, err
	}
	return p.Functionalities, nil
}

// effectiveProtocol resolves inheritance through the cache; nil means no
// definition anywhere.
func (ps *Protocols[F]) effectiveProtocol(ctx context.Context, tenant string, objectID uint16) (*Protocol[F], error) {
	return ps.cache.get(ctx, cacheKey{tenant: tenant, object: objectID}, func(ctx context.Context) (*Protocol[F], error) {
		for _, t := range []string{tenant, ManagementTenant} {
			p, err := ps.ownProtocol(ctx, t, objectID)
			if err == nil {
				return &p, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			if t == ManagementTenant {
				break
			}
		}
		return ps.core[objectID], nil
	})
}

// globalProtocol resolves objectID for decoding before the tenant is
// considered: the management tenant's definition, else the built-in one,
// else the first tenant's (by tenant ID) that defines the object.
func (ps *Protocols[F]) globalProtocol(ctx context.Context, objectID uint16) (*Protocol[F], error) {
	return ps.cache.get(ctx, cacheKey{global: true, object: objectID}, func(ctx context.Context) (*Protocol[F], error) {
		p, err := ps.ownProtocol(ctx, ManagementTenant, objectID)
		if err == nil {
			return &p, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if c := ps.core[objectID]; c != nil {
			return c, nil
		}
		r, err := ps.recs.FirstProtocolRecord(ctx, objectID)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("find protocol %d: %w", objectID, err)
		}
		p, err = fromRecord[F](r)
		if err != nil {
			return nil, err
		}
		return &p, nil
	})
}

// ProtocolFilter selects a list of protocols.
type ProtocolFilter struct {
	// Inherited also lists the definitions the tenant inherits (from the
	// management tenant, and the built-in ones) where it has none of its
	// own; otherwise only its own are listed.
	Inherited bool
	Page      Page
}

// ListProtocols lists protocols by object ID, one page at a time; total
// is -1 unless f.Page.WithTotal.
func (ps *Protocols[F]) ListProtocols(ctx context.Context, tenant string, f ProtocolFilter) ([]Protocol[F], int64, error) {
	p := f.Page.Norm()
	if !f.Inherited {
		recs, total, err := ps.recs.ListProtocolRecords(ctx, tenant, p)
		if err != nil {
			return nil, 0, err
		}
		out := make([]Protocol[F], 0, len(recs))
		for _, r := range recs {
			pr, err := fromRecord[F](r)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, pr)
		}
		return out, total, nil
	}
	// The union of the tenant's, management's and the built-in object
	// IDs, each with the tenant it comes from; then one page of it.
	owner := make(map[uint16]string)
	for id := range ps.core {
		owner[id] = ""
	}
	tenants := []string{ManagementTenant, tenant}
	if tenant == ManagementTenant {
		tenants = tenants[:1]
	}
	for _, t := range tenants {
		ids, err := ps.recs.ProtocolObjectIDs(ctx, t)
		if err != nil {
			return nil, 0, err
		}
		for _, id := range ids {
			owner[id] = t
		}
	}
	all := slices.Sorted(maps.Keys(owner))
	total := int64(-1)
	if p.WithTotal {
		total = int64(len(all))
	}
	from := min(int(p.Skip()), len(all))
	page := all[from:min(from+p.Size, len(all))]
	out := make([]Protocol[F], 0, len(page))
	for _, id := range page {
		if owner[id] == "" {
			out = append(out, *ps.core[id])
			continue
		}
		pr, err := ps.ownProtocol(ctx, owner[id], id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, pr)
	}
	return out, total, nil
}

// SetFunctionality sets the functionality of one resource of the
// protocol that applies to the tenant; a zero Functionality removes it.
// When the tenant inherits that protocol (from the management tenant or
// the built-in definitions), it first gets a copy of its own, with the
// inherited functionalities and validation rules, so that configuring an
// object never changes what other tenants see; from then on the copy no
// longer follows the management tenant's changes (delete it to inherit
// again). ErrNotFound for an unknown object or resource; ErrInvalid for a
// functionality that fails Validate or an executable resource, which has
// no values to map.
func (ps *Protocols[F]) SetFunctionality(ctx context.Context, tenant string, objectID, resourceID uint16, f F) (Protocol[F], error) {
	if err := f.Validate(); err != nil {
		return Protocol[F]{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return ps.changeResource(ctx, tenant, objectID, resourceID, func(p *Protocol[F], r model.ResourceDef) error {
		if r.Executable() {
			return fmt.Errorf("%w: resource /%d/x/%d (%s) is executable and has no values to map", ErrInvalid, objectID, resourceID, r.Name)
		}
		var none F
		if f == none {
			delete(p.Functionalities, resourceID)
		} else {
			p.Functionalities[resourceID] = f
		}
		return nil
	})
}

// Generation changes with every write through ps: callers that keep what
// they derived from protocols (the mapper's compiled functionalities)
// start over when it changes, so a change applies to the next value.
func (ps *Protocols[F]) Generation() uint64 { return ps.cache.currentGeneration() }

// SetValidation sets the validation rules of one writable resource of the
// protocol that applies to the tenant, copying an inherited protocol as
// SetFunctionality does; rules without groups remove them. ErrNotFound
// for an unknown object or resource; ErrInvalid for rules that fail Check
// or a resource that is not writable.
func (ps *Protocols[F]) SetValidation(ctx context.Context, tenant string, objectID, resourceID uint16, v ValidationRules) (Protocol[F], error) {
	if err := v.Check(); err != nil {
		return Protocol[F]{}, err
	}
	return ps.changeResource(ctx, tenant, objectID, resourceID, func(p *Protocol[F], r model.ResourceDef) error {
		if !r.Writable() {
			ops := r.Operations
			if ops == "" {
				ops = "none"
			}
			return fmt.Errorf("%w: resource /%d/x/%d (%s) is not writable (operations %s); validation rules apply to writes", ErrInvalid, objectID, resourceID, r.Name, ops)
		}
		if v.Empty() {
			delete(p.Validation, resourceID)
		} else {
			p.Validation[resourceID] = v
		}
		return nil
	})
}

// changeResource applies change to the tenant's own copy of the protocol
// that applies to it, creating the copy when the protocol is inherited.
func (ps *Protocols[F]) changeResource(ctx context.Context, tenant string, objectID, resourceID uint16, change func(*Protocol[F], model.ResourceDef) error) (Protocol[F], error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p, err := ps.ownProtocol(ctx, tenant, objectID)
	if errors.Is(err, ErrNotFound) {
		// Read past the cache: it may be up to a TTL old.
		inherited, ierr := ps.ownProtocol(ctx, ManagementTenant, objectID)
		switch {
		case ierr == nil:
		case errors.Is(ierr, ErrNotFound) && ps.core[objectID] != nil:
			inherited = *ps.core[objectID]
		case errors.Is(ierr, ErrNotFound):
			return Protocol[F]{}, fmt.Errorf("protocol %d: %w", objectID, ErrNotFound)
		default:
			return Protocol[F]{}, ierr
		}
		from := inherited.Tenant
		if from == "" {
			from = SourceCore
		}
		p = Protocol[F]{
			Tenant: tenant, Object: inherited.Object, Source: "copy of " + from + " (" + inherited.Source + ")",
			Functionalities: maps.Clone(inherited.Functionalities), Validation: maps.Clone(inherited.Validation),
		}
		err = nil
	}
	if err != nil {
		return Protocol[F]{}, err
	}
	r, ok := p.Object.Resource(resourceID)
	if !ok {
		return Protocol[F]{}, fmt.Errorf("resource /%d/x/%d: %w", objectID, resourceID, ErrNotFound)
	}
	if p.Functionalities == nil {
		p.Functionalities = map[uint16]F{}
	}
	if p.Validation == nil {
		p.Validation = map[uint16]ValidationRules{}
	}
	if err := change(&p, r); err != nil {
		return Protocol[F]{}, err
	}
	p.Updated = now()
	if err := ps.writeProtocol(ctx, p); err != nil {
		return Protocol[F]{}, err
	}
	return p, nil
}

// TypesFor returns the resource types as the tenant's protocols define
// them (its own, else the management tenant's, else the built-in ones),
// for codecs that decode a tenant's device's values. Lookups are answered
// from memory after the first one per object; a miss reads the store
// with a short timeout of its own, as node.Resolver carries no context.
func (ps *Protocols[F]) TypesFor(tenant string) node.Resolver {
	return node.ResolverFunc(func(p node.Path) (node.Type, bool) {
		return resourceType(p, ps.core, func(ctx context.Context) (*Protocol[F], error) { return ps.effectiveProtocol(ctx, tenant, p.Object) })
	})
}

// GlobalTypes returns the resource types for decoding before the tenant of
// a device is known (the LwM2M server's single resolver): the management
// tenant's definitions first, then the built-in ones, then, for objects
// neither has, the definition of the first tenant (by tenant ID) that has
// one. Tenants' definitions of the same object can disagree; the
// management tenant's and the built-in ones are what every tenant shares,
// so they win, and a tenant's own definition only fills gaps. A decoder
// that needs one tenant's types exactly uses TypesFor.
func (ps *Protocols[F]) GlobalTypes() node.Resolver {
	return node.ResolverFunc(func(p node.Path) (node.Type, bool) {
		return resourceType(p, ps.core, func(ctx context.Context) (*Protocol[F], error) { return ps.globalProtocol(ctx, p.Object) })
	})
}

// resolveTimeout bounds a resolver's store read on a cache miss.
const resolveTimeout = 5 * time.Second

func resourceType[F Functionality](p node.Path, core map[uint16]*Protocol[F], lookup func(context.Context) (*Protocol[F], error)) (node.Type, bool) {
	if p.Depth < 3 {
		return node.TypeNone, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	pr, err := lookup(ctx)
	if err != nil || pr == nil {
		// Unknown: the codecs then keep the value as opaque bytes.
		if c := core[p.Object]; c != nil && err != nil {
			pr = c
		} else {
			return node.TypeNone, false
		}
	}
	r, ok := pr.Object.Resource(p.Resource)
	if !ok {
		return node.TypeNone, false
	}
	return r.Type, true
}

// ObjectFor returns the definition of an object as the tenant's devices
// are typed by it (its own protocol, else the management tenant's, else
// the built-in one); false when none defines it.
func (ps *Protocols[F]) ObjectFor(tenant string, id uint16) (model.ObjectDef, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	pr, err := ps.effectiveProtocol(ctx, tenant, id)
	if err != nil || pr == nil {
		if c := ps.core[id]; c != nil {
			return c.Object, true
		}
		return model.ObjectDef{}, false
	}
	return pr.Object, true
}
