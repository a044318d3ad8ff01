package realtime

import (
	"context"
	"slices"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Wrap returns e behind a wrapper that announces to the hub every change
// of measurements, events, alarms, operations and managed objects made
// through it, once e has it. Every part of the agent that writes must
// write through a wrapper of the same hub. Reads pass through.
//
// The wrapper keeps the objects its callers passed (measurements) or got
// back for the dispatcher to render: callers do not change what they
// have stored.
func (h *Hub) Wrap(e store.Engine) store.Engine { return &engine{Engine: e, h: h} }

// engine is the wrapper. The methods it does not write out pass through
// embedded: reads, and writes of what has no channel (registration
// records, protocols, tenants, binaries). Retention's
// Expire and ImportBatch are not announced: Cumulocity announces neither
// its retention nor a restore.
type engine struct {
	store.Engine
	h *Hub
}

var _ store.Engine = (*engine)(nil)

func stamp() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// announce hands one change over when the tenant has subscribers of its
// kind.
func (e *engine) announce(tenant string, k kind, action, device, id string, obj any) {
	if e.h.wants(tenant, k) {
		e.h.publish([]change{{tenant: tenant, kind: k, action: action, device: device, id: id, obj: obj, at: time.Now()}})
	}
}

// Measurements: their time defaults to now in the engines; it is set here
// first, so that what is announced is what is stored.
func (e *engine) AddMeasurements(ctx context.Context, tenant string, ms []store.Measurement) ([]string, error) {
	if !e.h.wants(tenant, kindMeasurement) {
		return e.Engine.AddMeasurements(ctx, tenant, ms)
	}
	now := stamp()
	stamped := ms
	for i := range ms {
		if ms[i].Time.IsZero() {
			if &stamped[0] == &ms[0] {
				stamped = append([]store.Measurement(nil), ms...)
			}
			stamped[i].Time = now
		}
	}
	ids, err := e.Engine.AddMeasurements(ctx, tenant, stamped)
	if err != nil || len(ids) != len(stamped) {
		return ids, err
	}
	stored := make([]store.Measurement, len(stamped))
	for i, m := range stamped {
		m.ID = ids[i]
		stored[i] = m
	}
	created(e, tenant, kindMeasurement, stored, func(m store.Measurement) (string, string) { return m.Source, m.ID })
	return ids, nil
}

// created hands over a CREATE of each object when the tenant has
// subscribers of its kind; key names its channel's device and its id.
func created[T any](e *engine, tenant string, k kind, objs []T, key func(T) (device, id string)) {
	if len(objs) == 0 || !e.h.wants(tenant, k) {
		return
	}
	at := time.Now()
	cs := make([]change, len(objs))
	for i, o := range objs {
		device, id := key(o)
		cs[i] = change{tenant: tenant, kind: k, action: actionCreate, device: device, id: id, obj: o, at: at}
	}
	e.h.publish(cs)
}

func (e *engine) CreateEvent(ctx context.Context, tenant string, ev store.Event) (store.Event, error) {
	got, err := e.Engine.CreateEvent(ctx, tenant, ev)
	if err == nil {
		e.announce(tenant, kindEvent, actionCreate, got.Source, got.ID, got)
	}
	return got, err
}

func (e *engine) CreateEvents(ctx context.Context, tenant string, evs []store.Event) ([]store.Event, error) {
	got, err := e.Engine.CreateEvents(ctx, tenant, evs)
	if err == nil {
		e.events(tenant, got)
	}
	return got, err
}

func (e *engine) events(tenant string, evs []store.Event) {
	created(e, tenant, kindEvent, evs, func(ev store.Event) (string, string) { return ev.Source, ev.ID })
}

// RaiseAlarm creates an alarm, or counts a repeat on the open one: an
// update.
func (e *engine) RaiseAlarm(ctx context.Context, tenant string, a store.Alarm) (store.Alarm, error) {
	got, err := e.Engine.RaiseAlarm(ctx, tenant, a)
	if err == nil {
		action := actionUpdate
		if got.Count == 1 {
			action = actionCreate
		}
		e.announce(tenant, kindAlarm, action, got.Source, got.ID, got)
	}
	return got, err
}

func (e *engine) UpdateAlarm(ctx context.Context, tenant, id string, u store.AlarmUpdate) (store.Alarm, error) {
	got, err := e.Engine.UpdateAlarm(ctx, tenant, id, u)
	if err == nil {
		e.announce(tenant, kindAlarm, actionUpdate, got.Source, got.ID, got)
	}
	return got, err
}

func (e *engine) ClearAlarm(ctx context.Context, tenant, source, typ string) (store.Alarm, error) {
	got, err := e.Engine.ClearAlarm(ctx, tenant, source, typ)
	if err == nil && got.ID != "" {
		e.announce(tenant, kindAlarm, actionUpdate, got.Source, got.ID, got)
	}
	return got, err
}

// Operations. A status change answers nothing of the operation: the
// dispatcher reads it.

func (e *engine) CreateOperation(ctx context.Context, tenant string, op store.Operation) (store.Operation, error) {
	got, err := e.Engine.CreateOperation(ctx, tenant, op)
	if err == nil {
		e.announce(tenant, kindOperation, actionCreate, got.DeviceID, got.ID, got)
	}
	return got, err
}

func (e *engine) CreateOperations(ctx context.Context, tenant string, ops []store.Operation) ([]store.Operation, error) {
	got, err := e.Engine.CreateOperations(ctx, tenant, ops)
	if err == nil {
		created(e, tenant, kindOperation, got, func(op store.Operation) (string, string) { return op.DeviceID, op.ID })
	}
	return got, err
}

// CreateBulkStep creates an operation as CreateOperations does; a step
// that passed over a deleted device created none.
func (e *engine) CreateBulkStep(ctx context.Context, tenant string, b store.BulkOperation, next time.Time) (store.Operation, error) {
	op, err := e.Engine.CreateBulkStep(ctx, tenant, b, next)
	if err == nil && op.ID != "" {
		e.announce(tenant, kindOperation, actionCreate, op.DeviceID, op.ID, op)
	}
	return op, err
}

func (e *engine) SetStatus(ctx context.Context, tenant, id, status, result, failureReason string) error {
	err := e.Engine.SetStatus(ctx, tenant, id, status, result, failureReason)
	if err == nil {
		e.announce(tenant, kindOperation, actionUpdate, "", id, nil)
	}
	return err
}

func (e *engine) SetStatusFrom(ctx context.Context, tenant, id, from, status, result, failureReason string) error {
	err := e.Engine.SetStatusFrom(ctx, tenant, id, from, status, result, failureReason)
	if err == nil {
		e.announce(tenant, kindOperation, actionUpdate, "", id, nil)
	}
	return err
}

func (e *engine) Transition(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	err := e.Engine.Transition(ctx, tenant, cur, status, result, failureReason)
	if err == nil {
		e.announce(tenant, kindOperation, actionUpdate, cur.DeviceID, cur.ID, nil)
	}
	return err
}

func (e *engine) Unsend(ctx context.Context, tenant string, cur store.Operation) error {
	err := e.Engine.Unsend(ctx, tenant, cur)
	if err == nil {
		e.announce(tenant, kindOperation, actionUpdate, cur.DeviceID, cur.ID, nil)
	}
	return err
}

// Executed announces both steps, in order: EXECUTING as the operation
// stood between them (it is not read back: the store holds the outcome
// already), then the outcome.
func (e *engine) Executed(ctx context.Context, tenant string, cur store.Operation, status, result, failureReason string) error {
	err := e.Engine.Executed(ctx, tenant, cur, status, result, failureReason)
	if err == nil {
		executing := cur
		executing.Status, executing.Attempts, executing.LastUpdated = store.OpExecuting, cur.Attempts+1, time.Now()
		e.announce(tenant, kindOperation, actionUpdate, cur.DeviceID, cur.ID, executing)
		e.announce(tenant, kindOperation, actionUpdate, cur.DeviceID, cur.ID, nil)
	}
	return err
}

func (e *engine) SetOperationFragment(ctx context.Context, tenant, id, name string, value any) error {
	err := e.Engine.SetOperationFragment(ctx, tenant, id, name, value)
	if err == nil {
		e.announce(tenant, kindOperation, actionUpdate, "", id, nil)
	}
	return err
}

// Managed objects. Merges of fragments answer nothing of the object:
// the dispatcher reads it.

func (e *engine) CreateManagedObject(ctx context.Context, tenant string, mo store.ManagedObject) (store.ManagedObject, error) {
	got, err := e.Engine.CreateManagedObject(ctx, tenant, mo)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionCreate, got.ID, got.ID, got)
	}
	return got, err
}

func (e *engine) UpdateManagedObject(ctx context.Context, tenant, id string, fields map[string]any) (store.ManagedObject, error) {
	got, err := e.Engine.UpdateManagedObject(ctx, tenant, id, fields)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionUpdate, got.ID, got.ID, got)
	}
	return got, err
}

func (e *engine) UpdateFragments(ctx context.Context, tenant, id string, fragments map[string]any) error {
	err := e.Engine.UpdateFragments(ctx, tenant, id, fragments)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionUpdate, id, id, nil)
	}
	return err
}

func (e *engine) UpdateFragmentsMany(ctx context.Context, tenant string, updates map[string]map[string]any) ([]string, error) {
	missing, err := e.Engine.UpdateFragmentsMany(ctx, tenant, updates)
	if err == nil {
		e.updated(tenant, updates, missing)
	}
	return missing, err
}

func (e *engine) UpdateFieldsMany(ctx context.Context, tenant string, updates map[string]map[string]any) ([]string, error) {
	missing, err := e.Engine.UpdateFieldsMany(ctx, tenant, updates)
	if err == nil {
		e.updated(tenant, updates, missing)
	}
	return missing, err
}

// updated announces the objects of updates that exist.
func (e *engine) updated(tenant string, updates map[string]map[string]any, missing []string) {
	if len(updates) == len(missing) || !e.h.wants(tenant, kindManagedObject) {
		return
	}
	gone := make(map[string]bool, len(missing))
	for _, id := range missing {
		gone[id] = true
	}
	at := time.Now()
	cs := make([]change, 0, len(updates)-len(missing))
	for id := range updates {
		if !gone[id] {
			cs = append(cs, change{tenant: tenant, kind: kindManagedObject, action: actionUpdate, device: id, id: id, at: at})
		}
	}
	e.h.publish(cs)
}

// SaveStates is the registration state: availability and the lwm2m
// fragment of devices, with their lifecycle events.
func (e *engine) SaveStates(ctx context.Context, tenant string, fragments map[string]map[string]any, events []store.Event) ([]string, []store.Event, error) {
	missing, stored, err := e.Engine.SaveStates(ctx, tenant, fragments, events)
	if err == nil {
		e.updated(tenant, fragments, missing)
		e.events(tenant, stored)
	}
	return missing, stored, err
}

// SaveNewStates makes the devices it created appear, then announces
// their state as SaveStates does.
func (e *engine) SaveNewStates(ctx context.Context, tenant string, created []store.NewEndpoint, fragments map[string]map[string]any, events []store.Event) ([]string, []string, []store.Event, error) {
	missing, conflicts, stored, err := e.Engine.SaveNewStates(ctx, tenant, created, fragments, events)
	if err == nil {
		for _, c := range created {
			if !slices.Contains(conflicts, c.ID) {
				e.announce(tenant, kindManagedObject, actionCreate, c.ID, c.ID, nil)
			}
		}
		e.updated(tenant, fragments, slices.Concat(missing, conflicts))
		e.events(tenant, stored)
	}
	return missing, conflicts, stored, err
}

func (e *engine) DeleteManagedObject(ctx context.Context, tenant, id string) (store.DeletedDevice, error) {
	gone, err := e.Engine.DeleteManagedObject(ctx, tenant, id)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionDelete, id, id, nil)
	}
	return gone, err
}

// CreateDevice (auto-registration) and CompleteDevice (the end of an
// import line's creation) make a device appear.
func (e *engine) CreateDevice(ctx context.Context, tenant, endpoint string) (string, error) {
	id, err := e.Engine.CreateDevice(ctx, tenant, endpoint)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionCreate, id, id, nil)
	}
	return id, err
}

func (e *engine) CompleteDevice(ctx context.Context, tenant, deviceID string) error {
	err := e.Engine.CompleteDevice(ctx, tenant, deviceID)
	if err == nil {
		e.announce(tenant, kindManagedObject, actionCreate, deviceID, deviceID, nil)
	}
	return err
}

// SaveValues announces a device's last known values on its
// /lwm2mvalues/ channel. Its one writer (session.ValueWriter) coalesces
// them per device over a second, so a device notifying every 100 ms
// makes one notification a second, holding the newest value of each path.
func (e *engine) SaveValues(ctx context.Context, tenant, deviceID string, vals []store.ResourceValue) error {
	err := e.Engine.SaveValues(ctx, tenant, deviceID, vals)
	if err == nil && len(vals) > 0 {
		e.announce(tenant, kindValues, actionUpdate, deviceID, deviceID, deviceValues(vals))
	}
	return err
}
