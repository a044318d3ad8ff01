// Package session connects the LwM2M server to the rest of the agent: it
// decides which endpoints may register, keeps each device's managed object
// in step with its registration (availability, connection, the lwm2m
// fragment), writes lifecycle events, records the values devices report,
// and tells the operation runner when a device is reachable.
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Lifecycle event types, as API.md names them.
const (
	EventRegistration       = "c8y_LWM2MDeviceRegistration"
	EventRegistrationUpdate = "c8y_LWM2MDeviceRegistrationUpdate"
	EventDeregistration     = "c8y_LWM2MDeviceDeRegistration"
	EventExpired            = "c8y_LWM2MDeviceRegistrationExpired"
)

// ManagementTenant is where auto-registered endpoints are created.
const ManagementTenant = "management"

// ErrUnknownEndpoint refuses an endpoint that nobody registered.
var ErrUnknownEndpoint = errors.New("endpoint is not registered")

// Reachable is told when a device has registered or updated, so that its
// pending operations can be sent while it listens.
type Reachable interface {
	Reachable(tenant, deviceID string)
}

// Config wires a Hooks.
type Config struct {
	Store        *store.Store
	Values       *ValueWriter
	State        *StateWriter
	Ops          Reachable
	AutoRegister bool
	Logger       *slog.Logger
	// StoreTimeout bounds each store lookup made while a device waits
	// for its answer (Authorize).
	StoreTimeout time.Duration
}

// Hooks implements lwm2m.Hooks on top of the store.
type Hooks struct {
	cfg      Config
	log      *slog.Logger
	inflight sync.WaitGroup // hook calls under way, so shutdown can let them finish
}

// Wait returns when no hook call is under way; the store must stay open
// until then, or the last lifecycle events are lost.
func (h *Hooks) Wait() { h.inflight.Wait() }

// New returns the hooks; cfg.Store and cfg.State are required.
func New(cfg Config) *Hooks {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	return &Hooks{cfg: cfg, log: cfg.Logger.With("component", "session")}
}

// Authorize binds the endpoint to the device that owns it.
func (h *Hooks) Authorize(ctx context.Context, endpoint string, peer net.Addr) (lwm2m.Identity, error) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	ctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	defer cancel()
	tenant, id, err := h.cfg.Store.DeviceByEndpoint(ctx, endpoint)
	if err == nil {
		return lwm2m.Identity{Tenant: tenant, DeviceID: id}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", endpoint, err)
	}
	if !h.cfg.AutoRegister {
		h.log.Warn("register refused", "endpoint", endpoint, "peer", peer.String(), "reason", "unknown endpoint")
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", endpoint, ErrUnknownEndpoint)
	}
	id, err = h.cfg.Store.CreateDevice(ctx, ManagementTenant, endpoint)
	if err != nil {
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: auto-register: %w", endpoint, err)
	}
	h.log.Info("endpoint auto-registered", "endpoint", endpoint, "device", id)
	return lwm2m.Identity{Tenant: ManagementTenant, DeviceID: id}, nil
}

// Registered marks the device available and records the registration.
func (h *Hooks) Registered(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.online(ctx, reg, EventRegistration, fmt.Sprintf("Device %s registered (LwM2M %s, lifetime %s, binding %s)", reg.Endpoint, reg.Version, reg.Lifetime, reg.Binding))
}

// Updated refreshes the registration.
func (h *Hooks) Updated(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.online(ctx, reg, EventRegistrationUpdate, fmt.Sprintf("Device %s updated its registration", reg.Endpoint))
}

// Deregistered marks the device unavailable.
func (h *Hooks) Deregistered(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.offline(ctx, reg, EventDeregistration, fmt.Sprintf("Device %s de-registered", reg.Endpoint))
}

// Expired marks the device unavailable after its lifetime ran out.
func (h *Hooks) Expired(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.offline(ctx, reg, EventExpired, fmt.Sprintf("Registration of %s expired after %s without update", reg.Endpoint, reg.Lifetime))
}

// Values records what a device reported in notifications and Send.
func (h *Hooks) Values(ctx context.Context, reg lwm2m.Registration, observed node.Path, recs []node.Record) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	if h.cfg.Values == nil || len(recs) == 0 {
		return
	}
	h.cfg.Values.Add(ctx, reg.Tenant, reg.DeviceID, recs)
}

func (h *Hooks) online(ctx context.Context, reg lwm2m.Registration, event, text string) {
	// No deadline: a change waits for room in the writer's bounded queue
	// (back-pressure on the device's exchange) rather than being dropped.
	ctx = context.WithoutCancel(ctx)
	frag := bson.M{
		"c8y_Availability": bson.M{"status": "AVAILABLE", "lastMessage": reg.UpdatedAt.UTC()},
		"c8y_Connection":   bson.M{"status": "CONNECTED"},
		"lwm2m":            Fragment(reg),
	}
	h.write(ctx, reg, frag, event, text)
	if h.cfg.Ops != nil {
		h.cfg.Ops.Reachable(reg.Tenant, reg.DeviceID)
	}
}

func (h *Hooks) offline(ctx context.Context, reg lwm2m.Registration, event, text string) {
	// No deadline: a change waits for room in the writer's bounded queue
	// (back-pressure on the device's exchange) rather than being dropped.
	ctx = context.WithoutCancel(ctx)
	lw := Fragment(reg)
	lw["registrationId"] = ""
	frag := bson.M{
		"c8y_Availability": bson.M{"status": "UNAVAILABLE", "lastMessage": reg.UpdatedAt.UTC()},
		"c8y_Connection":   bson.M{"status": "DISCONNECTED"},
		"lwm2m":            lw,
	}
	h.write(ctx, reg, frag, event, text)
}

func (h *Hooks) write(ctx context.Context, reg lwm2m.Registration, frag bson.M, event, text string) {
	ev := store.Event{Source: reg.DeviceID, Type: event, Text: text, Time: time.Now().UTC()}
	h.cfg.State.Add(ctx, stateChange{tenant: reg.Tenant, device: reg.DeviceID, fragments: frag, event: ev})
	h.log.Debug("lifecycle", "endpoint", reg.Endpoint, "reg_id", reg.ID, "device", reg.DeviceID, "event", event)
}

// Fragment is the lwm2m fragment of a registered device's managed object.
func Fragment(reg lwm2m.Registration) bson.M {
	objs := make([]string, 0, len(reg.Objects))
	versions := bson.M{}
	for _, o := range reg.Objects {
		objs = append(objs, o.Path.String())
		if o.Version != "" {
			versions[fmt.Sprint(o.Path.Object)] = o.Version
		}
	}
	f := bson.M{
		"endpoint":       reg.Endpoint,
		"registrationId": reg.ID,
		"lifetime":       int64(reg.Lifetime / time.Second),
		"bindingMode":    reg.Binding,
		"queueMode":      reg.Queue,
		"lwm2mVersion":   reg.Version,
		"address":        reg.Address,
		"registered":     reg.RegisteredAt.UTC(),
		"lastUpdate":     reg.UpdatedAt.UTC(),
		"objects":        objs,
		"objectVersions": versions,
	}
	if reg.ContentFormat != 0 {
		f["contentFormat"] = int(reg.ContentFormat)
	}
	if reg.HasAwakeTime {
		f["awakeTimeMs"] = reg.AwakeTime.Milliseconds()
	}
	if reg.SMS != "" {
		f["sms"] = reg.SMS
	}
	return f
}

// SetOps sets who is told when a device becomes reachable; call it before
// the LwM2M server starts.
func (h *Hooks) SetOps(r Reachable) { h.cfg.Ops = r }
