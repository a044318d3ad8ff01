package ops

import (
	"context"
	"errors"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Replicas sharing one store.
//
// Each device's operations are sent by the replica holding its
// registration (the one the load balancer sends the device to), and
// each send is claimed in the store (Transition to EXECUTING, which only
// one caller wins). A replica may still hold a registration in memory
// that another has taken over since (the device moved while both ran):
// before it sends to a device or observes it, it reads which replica the
// store names, and forgets the registration if another.

// ReasonTakenOver is the failure reason of an operation another replica
// left EXECUTING when its device moved here.
const ReasonTakenOver = "device moved to another agent replica while executing; outcome unknown, not repeated"

// TakenOver is told of the first Update of a registration taken over
// from the replica from: the operations left EXECUTING for the device
// are settled as a restart settles them, by the worker that serves the
// device next, before its pending operations are sent.
func (r *Runner) TakenOver(tenant, deviceID, from string) {
	k := deviceKey{tenant, deviceID}
	r.mu.Lock()
	r.takenOver[k] = true
	r.mu.Unlock()
	r.takeovers.Add(1)
	r.log.Debug("device taken over", "tenant", tenant, "device", deviceID, "from", from)
	r.kick(k)
}

// SetReplica sets the lease by which this replica runs the watchdog of
// operations stuck in EXECUTING for all replicas; call it before Run.
func (r *Runner) SetReplica(lease interface{ Held() bool }) { r.cfg.Watchdog = lease }

// TakeOvers counts the devices taken over from other replicas.
func (r *Runner) TakeOvers() int64 { return r.takeovers.Load() }

// takeOverBatch bounds the operations of one device settled at its
// takeover: a device has one EXECUTING at a time, a firmware update
// beside it at most.
const takeOverBatch = 100

// settleTakenOver settles what the replica the device was taken from
// left EXECUTING for it.
func (r *Runner) settleTakenOver(ctx context.Context, k deviceKey) {
	r.mu.Lock()
	taken := r.takenOver[k]
	delete(r.takenOver, k)
	r.mu.Unlock()
	if !taken {
		return
	}
	ops, _, err := r.cfg.Store.ListOperations(ctx, k.tenant, store.OperationFilter{
		DeviceID: k.device, Status: store.OpExecuting, Page: store.Page{Size: takeOverBatch, Current: 1}})
	if err != nil {
		r.log.Error("operations left executing by the previous replica not settled", "device", k.device, "err", err)
		return
	}
	for _, op := range ops {
		r.settle(ctx, store.TenantOperation{Tenant: k.tenant, Operation: op}, ReasonTakenOver)
	}
}

// heldHere returns, with a shared store, the devices whose registrations
// this replica holds (nil: every device is this agent's).
func (r *Runner) heldHere() map[deviceKey]bool {
	if !r.cfg.Shared {
		return nil
	}
	held := map[deviceKey]bool{}
	for _, reg := range r.cfg.Server.Registrations() {
		held[deviceKey{reg.Tenant, reg.DeviceID}] = true
	}
	return held
}

// heldElsewhere tells, with a shared store, whether the store names
// another registration of reg's device, or another replica holding it:
// the device moved. The registration is then forgotten here, unrecorded.
// A store that does not answer leaves it as it is.
func (r *Runner) heldElsewhere(ctx context.Context, reg lwm2m.Registration) bool {
	if !r.cfg.Shared {
		return false
	}
	mo, err := r.cfg.Store.GetManagedObject(ctx, reg.Tenant, reg.DeviceID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false
	}
	lw, _ := mo.Fragments["lwm2m"].(map[string]any)
	id, _ := lw["registrationId"].(string)
	replica, _ := lw[store.ReplicaField].(string)
	if err == nil && id == reg.ID && (replica == "" || replica == r.cfg.Replica) {
		return false
	}
	if r.cfg.Server.Release(reg.Endpoint, reg.ID) {
		r.log.Info("registration released: held by another replica now", "endpoint", reg.Endpoint, "reg_id", reg.ID,
			"replica", replica, "stored_reg_id", id)
		if r.cfg.Pipeline != nil {
			r.cfg.Pipeline.Gone(reg.Endpoint, reg.ID)
		}
	}
	return true
}
