package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Engine is a store.Engine behind a Cache. The concerns that hold no
// cached answer (telemetry, binaries, device protocols, tenants, the
// decode backlog) pass through embedded;
// every method of the others is written out, so that a method added to
// them does not compile here until it is known whether it changes a
// cached answer (TestPassThroughConcerns watches the embedded ones).
type Engine struct {
	store.Telemetry
	store.Binaries
	store.ProtocolRecords
	store.Tenants
	// Expire removes finished operations and history only, none of
	// which the cache holds.
	store.Retention
	store.DecodeBacklog
	// Firmware grants are read once per transfer and cached by the
	// firmware service, which owns their expiry.
	store.FirmwareGrants
	// Child references change no device's endpoint, record or queue.
	store.References
	// DTLS sessions are kept by the DTLS listener, which holds the
	// parked ones itself.
	store.DTLSSessions
	e store.Engine
	c *Cache
}

var _ store.Engine = (*Engine)(nil)

// Close closes the engine beneath; the cache stays usable by the others.
func (e *Engine) Close(ctx context.Context) error { return e.e.Close(ctx) }

func one(tenant, device string) []devKey { return []devKey{{tenant, device}} }

// removal is what removing a device may change: the endpoints and
// identities bound to it (which the caller does not name), its record
// and its queue.
func removal(tenant, device string) change {
	k := one(tenant, device)
	return change{records: k, queues: k, devices: k}
}

// notFound tells a negative answer, which is kept, from a failure, which
// is not.
func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// Identities.

func (e *Engine) DeviceByEndpoint(ctx context.Context, endpoint string) (tenant, id string, err error) {
	o := lookup(e.c, e.c.endpoints, endpoint, func() (owner, bool, bool, *devKey) {
		t, id, err := e.e.DeviceByEndpoint(ctx, endpoint)
		return owned(t, id, err)
	})
	return o.tenant, o.device, o.err
}

func (e *Engine) DeviceByPSKIdentity(ctx context.Context, kind, identity string) (tenant, id string, err error) {
	o := lookup(e.c, e.c.identities, identKey{kind, identity}, func() (owner, bool, bool, *devKey) {
		t, id, err := e.e.DeviceByPSKIdentity(ctx, kind, identity)
		return owned(t, id, err)
	})
	return o.tenant, o.device, o.err
}

// owned is a loaded owner with how to keep it: a device found names the
// device, whose removal makes the entry stale.
func owned(tenant, id string, err error) (owner, bool, bool, *devKey) {
	switch {
	case err == nil:
		return owner{tenant: tenant, device: id}, true, false, &devKey{tenant, id}
	case notFound(err):
		return owner{err: err}, true, true, nil
	}
	return owner{tenant: tenant, device: id, err: err}, false, false, nil
}

func (e *Engine) BindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	defer e.c.apply(change{identities: []identKey{{kind, identity}}})
	return e.e.BindPSKIdentity(ctx, kind, identity, tenant, deviceID)
}

func (e *Engine) UnbindPSKIdentity(ctx context.Context, kind, identity, tenant, deviceID string) error {
	defer e.c.apply(change{identities: []identKey{{kind, identity}}})
	return e.e.UnbindPSKIdentity(ctx, kind, identity, tenant, deviceID)
}

// ReleasePendingIdentities unbinds identities the call does not name:
// every identity entry of the device goes.
func (e *Engine) ReleasePendingIdentities(ctx context.Context, tenant, id string) error {
	defer e.c.apply(change{records: one(tenant, id), devices: one(tenant, id)})
	return e.e.ReleasePendingIdentities(ctx, tenant, id)
}

// Registrations.

func (e *Engine) DeviceSettings(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	r := e.settings(ctx, tenant, deviceID)
	return cloneRegistration(r.reg), r.err
}

// DeviceRegistrationOf is DeviceSettings without the records the
// contract hides from it.
func (e *Engine) DeviceRegistrationOf(ctx context.Context, tenant, deviceID string) (store.DeviceRegistration, error) {
	r := e.settings(ctx, tenant, deviceID)
	if r.err != nil {
		return store.DeviceRegistration{}, r.err
	}
	if hidden(r.reg) {
		return store.DeviceRegistration{}, fmt.Errorf("registration of %s: %w", deviceID, store.ErrNotFound)
	}
	return cloneRegistration(r.reg), nil
}

// hidden tells a record DeviceRegistrationOf answers ErrNotFound for: of
// a device whose creation has not finished, or holding neither
// parameters nor secrets (only a serialization).
func hidden(r store.DeviceRegistration) bool {
	return r.Incomplete || r.Params == nil && len(r.PSKKey) == 0 && len(r.BootstrapPSKKey) == 0 && len(r.CredentialsHash) == 0
}

// settings returns the cached record, which the caller must not change.
func (e *Engine) settings(ctx context.Context, tenant, deviceID string) record {
	return lookup(e.c, e.c.records, devKey{tenant, deviceID}, func() (record, bool, bool, *devKey) {
		reg, err := e.e.DeviceSettings(ctx, tenant, deviceID)
		switch {
		case err == nil:
			// the caller gets copies; what the engine handed over may be
			// the caller's to change
			return record{reg: cloneRegistration(reg)}, true, false, nil
		case notFound(err):
			return record{err: err}, true, true, nil
		}
		return record{err: err}, false, false, nil
	})
}

func (e *Engine) SaveDeviceRegistration(ctx context.Context, tenant, deviceID string, r store.DeviceRegistration) error {
	defer e.c.apply(change{records: one(tenant, deviceID)})
	return e.e.SaveDeviceRegistration(ctx, tenant, deviceID, r)
}

func (e *Engine) SetDeviceSerialization(ctx context.Context, tenant, deviceID, format string) error {
	defer e.c.apply(change{records: one(tenant, deviceID)})
	return e.e.SetDeviceSerialization(ctx, tenant, deviceID, format)
}

func (e *Engine) LiveRegistrations(ctx context.Context, fn func(store.LiveRegistration) error) error {
	return e.e.LiveRegistrations(ctx, fn)
}

// Devices.

func (e *Engine) CreateManagedObject(ctx context.Context, tenant string, mo store.ManagedObject) (store.ManagedObject, error) {
	return e.e.CreateManagedObject(ctx, tenant, mo)
}

func (e *Engine) GetManagedObject(ctx context.Context, tenant, id string) (store.ManagedObject, error) {
	return e.e.GetManagedObject(ctx, tenant, id)
}

func (e *Engine) UpdateManagedObject(ctx context.Context, tenant, id string, fields map[string]any) (store.ManagedObject, error) {
	return e.e.UpdateManagedObject(ctx, tenant, id, fields)
}

func (e *Engine) UpdateFragments(ctx context.Context, tenant, id string, fragments map[string]any) error {
	return e.e.UpdateFragments(ctx, tenant, id, fragments)
}

func (e *Engine) UpdateFragmentsMany(ctx context.Context, tenant string, updates map[string]map[string]any) ([]string, error) {
	return e.e.UpdateFragmentsMany(ctx, tenant, updates)
}

func (e *Engine) UpdateFieldsMany(ctx context.Context, tenant string, updates map[string]map[string]any) ([]string, error) {
	return e.e.UpdateFieldsMany(ctx, tenant, updates)
}

// DeleteManagedObject removes a device with its bindings, record and
// queue, or an object that is no device, which changes nothing cached
// but costs nothing to drop.
func (e *Engine) DeleteManagedObject(ctx context.Context, tenant, id string) (store.DeletedDevice, error) {
	defer e.c.apply(removal(tenant, id))
	return e.e.DeleteManagedObject(ctx, tenant, id)
}

func (e *Engine) ListManagedObjects(ctx context.Context, tenant string, f store.ManagedObjectFilter) ([]store.ManagedObject, int64, error) {
	return e.e.ListManagedObjects(ctx, tenant, f)
}

// The external IDs are not the endpoint bindings: creating a c8y_Id
// binds no endpoint, deleting one unbinds none.

func (e *Engine) CreateExternalID(ctx context.Context, tenant string, x store.ExternalID) error {
	return e.e.CreateExternalID(ctx, tenant, x)
}

func (e *Engine) GetExternalID(ctx context.Context, tenant, typ, ext string) (store.ExternalID, error) {
	return e.e.GetExternalID(ctx, tenant, typ, ext)
}

func (e *Engine) ExternalIDsOf(ctx context.Context, tenant, id string) ([]store.ExternalID, error) {
	return e.e.ExternalIDsOf(ctx, tenant, id)
}

func (e *Engine) DeleteExternalID(ctx context.Context, tenant, typ, ext string) error {
	return e.e.DeleteExternalID(ctx, tenant, typ, ext)
}

func (e *Engine) CreateDevice(ctx context.Context, tenant, endpoint string) (id string, err error) {
	defer func() { e.c.apply(creation(tenant, id, err, store.NewDevice{Endpoint: endpoint})) }()
	return e.e.CreateDevice(ctx, tenant, endpoint)
}

func (e *Engine) CreateIncompleteDevice(ctx context.Context, tenant string, d store.NewDevice) (id string, err error) {
	defer func() { e.c.apply(creation(tenant, id, err, d)) }()
	return e.e.CreateIncompleteDevice(ctx, tenant, d)
}

// creation is what creating d may change: its endpoint's binding, the
// identities its record names (an engine may bind them with it) and
// the new device's record. A creation that failed for another reason
// than a conflict or invalid input may have been seen half-written under
// an id it does not return: every record goes.
func creation(tenant, id string, err error, d store.NewDevice) change {
	ch := change{endpoints: []string{d.Endpoint}}
	for _, kind := range []string{store.PSKServer, store.PSKBootstrap} {
		if ident := d.Registration.PSKIdentity(kind); ident != "" {
			ch.identities = append(ch.identities, identKey{kind, ident})
		}
	}
	if id != "" {
		ch.records = one(tenant, id)
	}
	if err != nil && id == "" && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrInvalid) {
		ch.allRecords = true
	}
	return ch
}

func (e *Engine) CompleteDevice(ctx context.Context, tenant, deviceID string) error {
	defer e.c.apply(change{records: one(tenant, deviceID)})
	return e.e.CompleteDevice(ctx, tenant, deviceID)
}

func (e *Engine) RemoveIncompleteDevice(ctx context.Context, tenant, id string) error {
	defer e.c.apply(removal(tenant, id))
	return e.e.RemoveIncompleteDevice(ctx, tenant, id)
}

func (e *Engine) AdoptNoSecDevice(ctx context.Context, tenant, id, endpoint string) (bool, error) {
	defer e.c.apply(change{records: one(tenant, id)})
	return e.e.AdoptNoSecDevice(ctx, tenant, id, endpoint)
}

// Operations. Only an empty Pending answer is kept: a write drops it
// when it may add a PENDING operation to a queue (a creation, a return
// to PENDING); a change away from PENDING cannot make an empty queue
// hold one.

func (e *Engine) Pending(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	var ops []store.Operation
	var err error
	q := lookup(e.c, e.c.queues, devKey{tenant, deviceID}, func() (queue, bool, bool, *devKey) {
		ops, err = e.e.Pending(ctx, tenant, deviceID, limit)
		// empty for one limit is empty for any: a queue with an
		// operation answers at least one
		return queue{slice: ops != nil}, err == nil && len(ops) == 0, false, nil
	})
	if ops != nil || err != nil {
		return ops, err
	}
	if q.slice {
		return []store.Operation{}, nil
	}
	return nil, nil
}

func (e *Engine) CreateOperation(ctx context.Context, tenant string, op store.Operation) (store.Operation, error) {
	defer e.c.apply(change{queues: one(tenant, op.DeviceID)})
	return e.e.CreateOperation(ctx, tenant, op)
}

func (e *Engine) CreateOperations(ctx context.Context, tenant string, ops []store.Operation) ([]store.Operation, error) {
	ch := change{queues: make([]devKey, len(ops))}
	for i, op := range ops {
		ch.queues[i] = devKey{tenant, op.DeviceID}
	}
	defer e.c.apply(ch)
	return e.e.CreateOperations(ctx, tenant, ops)
}

// statusChange is what setting an operation, known only by its id, to
// status may change: every queue, if it may now hold a PENDING one.
func statusChange(status string) change {
	return change{allQueues: status == store.OpPending}
}

func (e *Engine) SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error {
	defer e.c.apply(statusChange(status))
	return e.e.SetStatus(ctx, tenant, id, status, result, failureReason)
}

func (e *Engine) SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error {
	defer e.c.apply(statusChange(status))
	return e.e.SetStatusFrom(ctx, tenant, id, from, status, result, failureReason)
}

func (e *Engine) Transition(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	if status == store.OpPending {
		defer e.c.apply(change{queues: one(tenant, cur.DeviceID)})
	}
	return e.e.Transition(ctx, tenant, cur, status, result, failureReason)
}

func (e *Engine) Unsend(ctx context.Context, tenant string, cur store.Operation) error {
	defer e.c.apply(change{queues: one(tenant, cur.DeviceID)})
	return e.e.Unsend(ctx, tenant, cur)
}

func (e *Engine) Executed(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	return e.e.Executed(ctx, tenant, cur, status, result, failureReason)
}

func (e *Engine) GetOperation(ctx context.Context, tenant, id string) (store.Operation, error) {
	return e.e.GetOperation(ctx, tenant, id)
}

func (e *Engine) ListOperations(ctx context.Context, tenant string, f store.OperationFilter) ([]store.Operation, int64, error) {
	return e.e.ListOperations(ctx, tenant, f)
}

func (e *Engine) SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error {
	return e.e.SetOperationFragment(ctx, tenant, id, name, value)
}

func (e *Engine) Executing(ctx context.Context, limit int) ([]store.TenantOperation, error) {
	return e.e.Executing(ctx, limit)
}

func (e *Engine) ExecutingBefore(ctx context.Context, t time.Time, limit int) ([]store.TenantOperation, error) {
	return e.e.ExecutingBefore(ctx, t, limit)
}

func (e *Engine) PendingCount(ctx context.Context, tenant, deviceID string) (int, error) {
	return e.e.PendingCount(ctx, tenant, deviceID)
}

func (e *Engine) QueueOf(ctx context.Context, tenant, deviceID string, limit int) (store.DeviceQueue, error) {
	return e.e.QueueOf(ctx, tenant, deviceID, limit)
}

func (e *Engine) QueuedDevices(ctx context.Context, fn func(tenant, deviceID string) error) error {
	return e.e.QueuedDevices(ctx, fn)
}

func (e *Engine) RecentOperations(ctx context.Context, tenant, deviceID string, limit int) ([]store.Operation, error) {
	return e.e.RecentOperations(ctx, tenant, deviceID, limit)
}

// PostOperations are read on every Register of the tenant's devices and
// change only through SetPostOperations: the answer is kept, a copy
// handed out each time.
func (e *Engine) PostOperations(ctx context.Context, tenant string) ([]string, error) {
	var err error
	cmds := lookup(e.c, e.c.postOps, tenant, func() ([]string, bool, bool, *devKey) {
		var cmds []string
		cmds, err = e.e.PostOperations(ctx, tenant)
		return cmds, err == nil, false, nil
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(cmds), nil
}

func (e *Engine) SetPostOperations(ctx context.Context, tenant string, cmds []string) error {
	defer e.c.apply(change{postOps: tenant})
	return e.e.SetPostOperations(ctx, tenant, cmds)
}

// States.

// SaveStates changes fragments and adds events, neither of them cached:
// it passes through, as UpdateFragmentsMany does.
func (e *Engine) SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []store.Event) ([]string, []store.Event, error) {
	return e.e.SaveStates(ctx, tenant, fragments, events)
}

func (e *Engine) NewDeviceID(ctx context.Context, tenant string) (string, error) {
	return e.e.NewDeviceID(ctx, tenant)
}

// SaveNewStates creates devices as CreateDevice does: each creation
// changes what CreateDevice's does, whatever its outcome.
func (e *Engine) SaveNewStates(ctx context.Context, tenant string, created []store.NewEndpoint, fragments map[string]map[string]any, events []store.Event) (missing, conflicts []string, stored []store.Event, err error) {
	defer func() {
		for _, c := range created {
			e.c.apply(creation(tenant, c.ID, err, store.NewDevice{Endpoint: c.Endpoint}))
		}
	}()
	return e.e.SaveNewStates(ctx, tenant, created, fragments, events)
}
