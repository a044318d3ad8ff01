package ops

import (
	"context"
	"errors"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Automatic observations of devices already registered.
//
// When a protocol or functionality is stored, the devices registered
// before it should be observed as its autoObserve says, without waiting
// for them to register anew. The runner knows which devices listen, so
// it decides when: a device that listens now (always online, or inside
// the awake window of its last Register or Update) at once; a sleeping
// device at its next Update, where the session asks the pipeline for
// whatever the registration lacks. Nothing is queued for sleeping
// devices and no operation is created: the observations are the
// functionality's doing, as at a Register, not an operator's request,
// and the pipeline already keeps per registration what was observed.

// ProtocolsChanged is called after a tenant's protocol of an object was
// written or deleted. It returns at once: the registrations are looked
// at by the runner's own goroutine. A change of the management tenant's
// protocols reaches every tenant, as those without their own protocol
// inherit it.
func (r *Runner) ProtocolsChanged(tenant string, _ uint16) {
	if r.cfg.Pipeline == nil {
		return
	}
	r.protoMu.Lock()
	if tenant == store.ManagementTenant {
		r.protoAll = true
	} else if !r.protoAll {
		// bounded by the tenants; emptied at every pass
		r.protoTenants[tenant] = true
	}
	r.protoMu.Unlock()
	select {
	case r.protoWake <- struct{}{}:
	default:
	}
}

// observeChanged looks at the registrations of the tenants whose
// protocols changed, at every ProtocolsChanged, until ctx ends. At start
// it looks at every registration: those restored from before a restart
// have lost their observations' tokens.
func (r *Runner) observeChanged(ctx context.Context) {
	if r.cfg.Pipeline == nil {
		return
	}
	r.observeListening(ctx, nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.protoWake:
		}
		r.protoMu.Lock()
		var tenants map[string]bool
		if !r.protoAll {
			tenants = r.protoTenants
		}
		r.protoAll, r.protoTenants = false, map[string]bool{}
		r.protoMu.Unlock()
		r.observeListening(ctx, tenants)
	}
}

// observeListening starts the automatic observations that the
// registrations of tenants (nil: of all tenants) lack, on the devices
// that listen now. Most registrations lack none, and cost no store read.
func (r *Runner) observeListening(ctx context.Context, tenants map[string]bool) {
	p := r.cfg.Pipeline
	for _, reg := range r.cfg.Server.Registrations() {
		if ctx.Err() != nil {
			return
		}
		if tenants != nil && !tenants[reg.Tenant] {
			continue
		}
		areg := mapping.RegistrationOf(reg)
		if !p.Missing(ctx, areg) {
			continue
		}
		ok, err := r.listening(ctx, reg, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("automatic observations: awake time", "device", reg.DeviceID, "endpoint", reg.Endpoint, "err", err)
			}
			continue
		}
		if !ok {
			continue // asleep: its next Update starts them
		}
		if r.heldElsewhere(ctx, reg) {
			continue // the replica holding it observes it
		}
		p.Listening(ctx, areg)
	}
}

// listening reports whether the device listens at now: always online, or
// inside the awake window of its last Register or Update, short of the
// guard a request needs to reach it in time.
func (r *Runner) listening(ctx context.Context, reg lwm2m.Registration, now time.Time) (bool, error) {
	var params map[string]any
	settings, err := r.cfg.Store.DeviceSettings(ctx, reg.Tenant, reg.DeviceID)
	switch {
	case err == nil:
		params = settings.Params
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	awake := AwakeTime(params, reg, r.cfg.AwakeTime)
	if awake <= 0 {
		return true, nil
	}
	w := &window{start: reg.UpdatedAt, end: reg.UpdatedAt.Add(awake)}
	return now.Add(sendGuard(w)).Before(w.end), nil
}
