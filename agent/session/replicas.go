package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// TakeOver is told, instead of Reachable, of the first Update of a
// registration taken over from another replica (from, "" when it named
// none), so that the operations that replica left EXECUTING for the
// device are settled as a restart settles them before the device's
// pending ones are sent.
type TakeOver interface {
	TakenOver(tenant, deviceID, from string)
}

// ErrNotShared says that no other replica shares the store: a
// registration unknown to the server is no one's.
var ErrNotShared = errors.New("the store is not shared with other replicas")

// elsewhere tells whether reg, read from the store, is held by another
// replica sharing it.
func (h *Hooks) elsewhere(reg lwm2m.Registration) bool {
	return h.cfg.Shared && reg.Replica != "" && reg.Replica != h.cfg.Replica
}

// Adopt finds the live registration id in the store, for a device the
// load balancer moved here from another replica (lwm2m.Adopter): the
// registration as the device's record allows it now, by the rules of a
// restore.
func (h *Hooks) Adopt(ctx context.Context, id string) (lwm2m.Registration, error) {
	if !h.cfg.Shared {
		return lwm2m.Registration{}, fmt.Errorf("take over registration %s: %w", id, ErrNotShared)
	}
	h.inflight.Add(1)
	defer h.inflight.Done()
	l, err := h.cfg.Store.RegistrationByID(ctx, id)
	if err != nil {
		return lwm2m.Registration{}, fmt.Errorf("take over registration %s: %w", id, err)
	}
	reg, err := RegistrationFromFragment(l.Tenant, l.DeviceID, l.Fragment, l.Serialization)
	if err != nil {
		return lwm2m.Registration{}, fmt.Errorf("take over registration %s: %w", id, err)
	}
	if why := restoreRefusal(reg, l.Record); why != "" {
		return lwm2m.Registration{}, fmt.Errorf("take over registration %s of %s: %s", id, reg.Endpoint, restoreReasonText[why])
	}
	return reg, nil
}

// holds tells whether the store still names reg as the device's live
// registration held here: a registration whose device moved to another
// replica, or registered anew elsewhere, ends here unrecorded. A store
// that does not answer leaves it to be recorded.
func (h *Hooks) holds(ctx context.Context, reg lwm2m.Registration) bool {
	if !h.cfg.Shared {
		return true
	}
	mo, err := h.cfg.Store.GetManagedObject(ctx, reg.Tenant, reg.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		return true
	}
	lw, _ := mo.Fragments["lwm2m"].(map[string]any)
	id, _ := lw["registrationId"].(string)
	replica, _ := lw[store.ReplicaField].(string)
	if id == reg.ID && (replica == "" || replica == h.cfg.Replica) {
		return true
	}
	h.log.Debug("expiry not recorded: the registration is held elsewhere", "endpoint", reg.Endpoint, "reg_id", reg.ID,
		"stored_reg_id", id, "replica", replica)
	return false
}
