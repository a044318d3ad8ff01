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
	"strconv"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coalesce"
	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/psk"
	"github.com/lwm2m-agent/lwm2m-agent/agent/refusal"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Lifecycle event types, as API.md names them.
const (
	EventRegistration       = "c8y_LWM2MDeviceRegistration"
	EventRegistrationUpdate = "c8y_LWM2MDeviceRegistrationUpdate"
	EventDeregistration     = "c8y_LWM2MDeviceDeRegistration"
	EventExpired            = "c8y_LWM2MDeviceRegistrationExpired"
	// EventSecurity records a refused attempt to register with another
	// device's credentials, or without the security the device requires.
	EventSecurity = "c8y_LWM2MSecurityEvent"
)

// ManagementTenant is where auto-registered endpoints are created.
const ManagementTenant = "management"

// Causes of what Hooks refuse or hold back, as lwm2m_agent_refused_total
// and the log name them.
const (
	CauseUnknownEndpoint  = "register_unknown_endpoint"
	CausePSKWithoutDTLS   = "register_psk_without_dtls"
	CauseIdentityMismatch = "register_identity_mismatch"
	// CauseIncomplete counts Registers of a device whose registration
	// record does not let it in: missing, naming no security mode, still
	// being written, or (over DTLS) naming another identity.
	CauseIncomplete = "register_incomplete_parameters"
	// CauseRegistrationCoalesced and CauseSecurityCoalesced count the
	// lifecycle events held back by Config.EventInterval.
	CauseRegistrationCoalesced = "registration_event_coalesced"
	CauseSecurityCoalesced     = "security_event_coalesced"
)

// CoalescedFragment is the fragment of a lifecycle event stored after
// others of its kind were held back: {"count": N, "since": time of the
// first of them}.
const CoalescedFragment = coalesce.Fragment

// Reasons a Register is refused.
var (
	ErrUnknownEndpoint  = errors.New("endpoint is not registered")
	ErrIdentityMismatch = errors.New("the PSK identity does not belong to the endpoint")
	ErrDTLSRequired     = errors.New("the endpoint is registered with PSK and must connect over DTLS")
	ErrIncomplete       = errors.New("the endpoint's registration parameters are incomplete")
)

// Reachable is told when a device has registered or updated, so that its
// pending operations can be sent while it listens.
type Reachable interface {
	Reachable(tenant, deviceID string)
}

// PostRegistration is told of every full registration (Register, not
// Update) before the device's pending operations are sent, so that it can
// queue operations for the device first. It must not wait for the store
// on the caller's goroutine, which is the device's, and must call ready
// exactly once: when what it queued is stored, or when it gave up.
type PostRegistration interface {
	Registered(tenant, deviceID string, ready func())
}

// Config wires a Hooks.
type Config struct {
	Store  store.Engine
	Values *ValueWriter
	State  *StateWriter
	Ops    Reachable
	// PostOps, when set, queues the tenant's post-registration operations
	// on every full registration; Ops hears of the device after it.
	PostOps PostRegistration
	// Pipeline maps every reported value (measurements, events, alarms,
	// inventory) and starts automatic observations at Register and
	// Update; nil turns mapping off.
	Pipeline     *mapping.Pipeline
	AutoRegister bool
	Logger       *slog.Logger
	// StoreTimeout bounds each store lookup made while a device waits
	// for its answer (Authorize).
	StoreTimeout time.Duration
	// EventInterval coalesces repeated events of one device: of the
	// registration events of Registers that follow each other without a
	// de-registration or expiry between, and of its security events, one
	// per interval is stored; the next one stored counts those held back
	// in CoalescedFragment (0: every event is stored).
	EventInterval time.Duration
	// Refused counts and logs, once per interval and cause, the Registers
	// refused and the events held back (nil: neither).
	Refused *refusal.Log
	// Replica names this agent among the replicas sharing the store, as
	// the server's registrations record it; Shared says that other
	// replicas may use the store (MongoDB), so that a registration held
	// by another is theirs: not restored at start, taken over when its
	// device moves here (Adopt), and its expiry here not recorded.
	Replica string
	Shared  bool
}

// Hooks implements lwm2m.Hooks on top of the store.
type Hooks struct {
	cfg      Config
	log      *slog.Logger
	events   *coalesce.Events
	inflight sync.WaitGroup // hook calls under way, so shutdown can let them finish
	server   Ender          // ends registrations whose security settings changed; nil: none
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
	return &Hooks{cfg: cfg, log: cfg.Logger.With("component", "session"), events: coalesce.New(cfg.EventInterval)}
}

// Authorize binds the endpoint to the device that owns it, and enforces
// how that device must connect, as its registration record says: a
// device registered with PSK only over DTLS and only with the identity
// the record names, a device whose record says NO_SEC only in plain
// CoAP, and a device whose record is missing, says neither or is still
// being written (its import has not finished) not at all: whatever a
// record does not say is never taken for NO_SEC. A refusal that looks
// like someone posing as a device leaves a security event on the device
// whose identity or endpoint was used.
//
// Every refusal is answered alike (4.03 without a diagnostic), and on the
// plain port an unknown endpoint costs the same reads as a PSK device's,
// whose security event is queued rather than written while the device
// waits: neither the answer nor its time tells which endpoints exist.
// The log and lwm2m_agent_refused_total say which it was.
func (h *Hooks) Authorize(ctx context.Context, req lwm2m.AuthRequest) (lwm2m.Identity, error) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	ctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	defer cancel()
	st := h.cfg.Store
	ep := req.Endpoint
	tenant, id, err := st.DeviceByEndpoint(ctx, ep)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, err)
	}
	found := err == nil

	if req.Secure {
		// The session's identity names a device (or the handshake would
		// have failed); it must be the endpoint's device.
		itenant, iid, err := st.DeviceByPSKIdentity(ctx, store.PSKServer, req.PSKIdentity)
		if err != nil {
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: psk identity %q: %w", ep, req.PSKIdentity, err)
		}
		if !found || itenant != tenant || iid != id {
			text := fmt.Sprintf("PSK identity %q tried to register as endpoint %q, which is not its device", req.PSKIdentity, ep)
			h.refuse(CauseIdentityMismatch, req, iid, text)
			h.securityEvent(ctx, itenant, iid, req, text)
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, ErrIdentityMismatch)
		}
		s, err := h.settings(ctx, tenant, id)
		if err != nil {
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, err)
		}
		if s.creating || !s.psk || s.pskIdentity != req.PSKIdentity {
			// an identity still bound while the record moved on (a
			// change cut short) is not the device's any more
			h.refuse(CauseIncomplete, req, id, "registration parameters incomplete or naming another identity")
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, ErrIncomplete)
		}
		return s.identity(tenant, id), nil
	}

	if found {
		s, err := h.settings(ctx, tenant, id)
		if err != nil {
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, err)
		}
		if s.psk {
			text := fmt.Sprintf("Endpoint %q uses PSK but tried to register without DTLS", ep)
			h.refuse(CausePSKWithoutDTLS, req, id, text)
			h.securityEvent(ctx, tenant, id, req, text)
			return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, ErrDTLSRequired)
		}
		if s.noSec {
			return s.identity(tenant, id), nil
		}
		if s.unset && h.cfg.AutoRegister && tenant == ManagementTenant {
			// A device auto-registered before the agent wrote records
			// for such devices: auto-registration gives it the record
			// it would give a new one, unless something else was
			// written meanwhile.
			adopted, err := st.AdoptNoSecDevice(ctx, tenant, id, ep)
			if err != nil {
				return lwm2m.Identity{}, fmt.Errorf("authorize %s: auto-register: %w", ep, err)
			}
			if adopted {
				h.log.Info("endpoint auto-registered", "endpoint", ep, "device", id)
				return s.identity(tenant, id), nil
			}
		}
		h.refuse(CauseIncomplete, req, id, "registration parameters incomplete")
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, ErrIncomplete)
	}
	if !h.cfg.AutoRegister {
		// The read a known endpoint costs, keyed by the endpoint (no
		// tenant "" exists) so that a store cache answers it exactly
		// when it answers the endpoint's lookup, known or not.
		_, _ = st.DeviceSettings(ctx, "", "endpoint/"+ep)
		h.refuse(CauseUnknownEndpoint, req, "", "unknown endpoint")
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: %w", ep, ErrUnknownEndpoint)
	}
	// The device is created with the registration's first state and
	// event, in one store change (Persist): a Register of a new endpoint
	// waits for one commit, not two. Of concurrent Registers of the
	// endpoint, the store gives it to one; the others' Persist fails.
	id, err = st.NewDeviceID(ctx, ManagementTenant)
	if err != nil {
		return lwm2m.Identity{}, fmt.Errorf("authorize %s: auto-register: %w", ep, err)
	}
	return lwm2m.Identity{Tenant: ManagementTenant, DeviceID: id, New: true}, nil
}

// refuse counts and logs a refused Register: a line per request at debug,
// one per cause and interval above.
func (h *Hooks) refuse(cause string, req lwm2m.AuthRequest, device, reason string) {
	attrs := []any{"endpoint", req.Endpoint, "peer", addrString(req.Peer), "psk_identity", req.PSKIdentity, "device", device, "reason", reason}
	h.log.Debug("register refused", append(attrs, "cause", cause)...)
	h.cfg.Refused.Deny(cause, attrs...)
}

// deviceSettings is what a Register needs of a device's registration
// record.
type deviceSettings struct {
	psk           bool   // securityMode PSK, or a key stored
	noSec         bool   // securityMode NO_SEC, no key, complete: the only plain device
	unset         bool   // no record, or one that names no security mode and holds no key
	creating      bool   // the device's creation has not finished
	pskIdentity   string // the lwm2m PSK identity the record names
	serialization string
}

func (s deviceSettings) identity(tenant, id string) lwm2m.Identity {
	out := lwm2m.Identity{Tenant: tenant, DeviceID: id}
	if s.serialization != "" {
		if f, err := codec.ParseFormatName(s.serialization); err == nil {
			out.Serialization, out.HasSerialization = f, true
		}
	}
	return out
}

// settings reads how the device must connect and the serialization set
// for it. An error (the store did not answer) refuses the Register: a
// PSK device must never be let in unsecured for want of its record.
func (h *Hooks) settings(ctx context.Context, tenant, id string) (deviceSettings, error) {
	reg, err := h.cfg.Store.DeviceSettings(ctx, tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return deviceSettings{unset: true}, nil
	}
	if err != nil {
		h.log.Error("read registration parameters", "device", id, "err", err)
		return deviceSettings{}, err
	}
	return settingsOf(reg.Access(), reg.Serialization), nil
}

// settingsOf reads a record as Authorize and Restore both take it.
func settingsOf(a store.RecordAccess, serialization string) deviceSettings {
	return deviceSettings{
		psk:           a.SecurityMode == store.SecurityPSK || a.Keyed,
		noSec:         a.SecurityMode == store.SecurityNoSec && !a.Keyed && !a.Incomplete,
		unset:         a.SecurityMode == "" && !a.Keyed && !a.Incomplete,
		creating:      a.Incomplete,
		pskIdentity:   a.PSKIdentity,
		serialization: serialization,
	}
}

// securityEvent queues a security event on the device, unless one was
// stored less than EventInterval ago.
func (h *Hooks) securityEvent(ctx context.Context, tenant, id string, req lwm2m.AuthRequest, text string) {
	ev := store.Event{Source: id, Type: EventSecurity, Text: text + " from " + addrString(req.Peer), Time: time.Now().UTC()}
	if !h.coalesce(tenant, id, &ev, CauseSecurityCoalesced, "endpoint", req.Endpoint, "peer", addrString(req.Peer)) {
		return
	}
	h.cfg.State.Add(ctx, stateChange{tenant: tenant, device: id, event: ev})
}

// coalesce tells whether ev is stored; when it is after others of its
// kind were held back, it says how many. A held-back event is counted
// under cause.
func (h *Hooks) coalesce(tenant, id string, ev *store.Event, cause string, attrs ...any) bool {
	ok, held := h.events.Admit(tenant+"/"+id+"/"+ev.Type, ev.Time)
	if !ok {
		h.cfg.Refused.Refuse(cause, "--registration-event-interval", append(attrs, "device", id)...)
		return false
	}
	if held.Count > 0 {
		ev.Text += held.Note()
		ev.Fragments = map[string]any{CoalescedFragment: held.Fragment()}
	}
	return true
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Keys returns the PSK key lookup of a DTLS port: kind is store.PSKServer
// or store.PSKBootstrap. Only a device's own key of that kind is found;
// an identity nobody holds, a device without such a key or whose
// creation has not finished, and an identity the device's record no
// longer names (a change cut short before it released it) are
// psk.ErrUnknownIdentity, after the same two reads as a known one, so that
// the time a handshake takes does not tell identities apart.
func Keys(st store.Engine, kind string) func(ctx context.Context, identity string) ([]byte, error) {
	return func(ctx context.Context, identity string) ([]byte, error) {
		tenant, id, err := st.DeviceByPSKIdentity(ctx, kind, identity)
		if errors.Is(err, store.ErrNotFound) {
			// the read a known identity costs, keyed by the identity as
			// Authorize keys its own
			_, _ = st.DeviceRegistrationOf(ctx, "", "psk/"+kind+"/"+identity)
			return nil, fmt.Errorf("%s psk identity: %w", kind, psk.ErrUnknownIdentity)
		}
		if err != nil {
			return nil, err
		}
		reg, err := st.DeviceRegistrationOf(ctx, tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("device %s has no registration: %w", id, psk.ErrUnknownIdentity)
		}
		if err != nil {
			return nil, err
		}
		if reg.PSKIdentity(kind) != identity {
			return nil, fmt.Errorf("device %s: %s psk identity %q is not the one its parameters name: %w", id, kind, identity, psk.ErrUnknownIdentity)
		}
		key := reg.PSKKey
		if kind == store.PSKBootstrap {
			key = reg.BootstrapPSKKey
		}
		if len(key) == 0 {
			return nil, fmt.Errorf("device %s has no %s key: %w", id, kind, psk.ErrUnknownIdentity)
		}
		return key, nil
	}
}

// Persist records what change did to reg: the device's state
// (availability, connection, the lwm2m fragment) and its lifecycle event,
// through the state writer. The server calls it before a Register or an
// Update takes effect and is answered: a Register, and an Update that
// changed the registration, return once both are durable (or why they
// are not, within StoreTimeout), so that a device answered is registered
// as it was answered even if the agent dies right after.
//
// An Update that changed nothing but the time of the device's last
// update is queued and not waited for. It is the most frequent message
// (every device, once per lifetime or more), and all that a crash in the
// writer's interval (10 ms) after its answer can lose is that time: the
// registration it refreshes was durable since its Register or last
// changing Update. Restored from the time before, the registration
// expires earlier than the device expects; the device's next Update is
// then answered 4.04 and it registers again: a registration made once
// more, never a wrong one.
//
// A De-register and an expiry are queued too (the registration has
// ended, nothing is answered that depends on it); the server calls
// Persist for them before any later change of the endpoint, and the
// writer writes changes in the order they were added, so that a
// Register's state is never overwritten by that of the De-register
// before it. Queued changes wait for room in the writer's bounded queue
// (back-pressure on the device's exchange) rather than being dropped.
func (h *Hooks) Persist(ctx context.Context, reg lwm2m.Registration, change lwm2m.Change) error {
	h.inflight.Add(1)
	defer h.inflight.Done()
	switch change {
	case lwm2m.ChangeRegister:
		return h.online(ctx, reg, EventRegistration, fmt.Sprintf("Device %s registered (LwM2M %s, lifetime %s, binding %s)", reg.Endpoint, reg.Version, reg.Lifetime, reg.Binding), true)
	case lwm2m.ChangeUpdate, lwm2m.ChangeRefresh:
		return h.online(ctx, reg, EventRegistrationUpdate, fmt.Sprintf("Device %s updated its registration", reg.Endpoint), change == lwm2m.ChangeUpdate)
	case lwm2m.ChangeDeregister:
		h.offline(ctx, reg, EventDeregistration, fmt.Sprintf("Device %s de-registered", reg.Endpoint))
	case lwm2m.ChangeExpire:
		if !h.holds(ctx, reg) {
			return nil
		}
		h.offline(ctx, reg, EventExpired, fmt.Sprintf("Registration of %s expired after %s without update", reg.Endpoint, reg.Lifetime))
	default:
		return fmt.Errorf("persist %s of %s: unknown change", change, reg.Endpoint)
	}
	return nil
}

// Registered follows a Register whose state Persist stored: it queues the
// post-registration operations, then lets the operation runner know,
// and restarts the automatic observations.
func (h *Hooks) Registered(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	ready := func() { h.reachable(reg) }
	if h.cfg.PostOps != nil {
		h.cfg.PostOps.Registered(reg.Tenant, reg.DeviceID, ready)
	} else {
		ready()
	}
	if h.cfg.Pipeline != nil {
		// A full registration means the device forgot its observations.
		h.cfg.Pipeline.Registered(context.WithoutCancel(ctx), mapping.RegistrationOf(reg))
	}
}

func device(reg lwm2m.Registration) mapping.Device {
	return mapping.Device{Tenant: reg.Tenant, ID: reg.DeviceID, Endpoint: reg.Endpoint}
}

// Updated follows an Update whose state Persist recorded: the device
// listens, so the operation runner hears of it.
func (h *Hooks) Updated(ctx context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.reachable(reg)
	if h.cfg.Pipeline != nil {
		// The device listens now: it may have added instances, the
		// functionalities may have changed while it slept, or the agent
		// restarted since it registered (the tokens of its observations
		// are gone, its notifications got RST). Only what was not asked
		// of this registration yet is sent.
		h.cfg.Pipeline.Listening(context.WithoutCancel(ctx), mapping.RegistrationOf(reg))
	}
}

// Deregistered follows a De-register whose state Persist queued.
func (h *Hooks) Deregistered(_ context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.gone(reg)
}

// gone forgets the automatic observations of a registration that ended.
func (h *Hooks) gone(reg lwm2m.Registration) {
	if h.cfg.Pipeline != nil {
		h.cfg.Pipeline.Gone(reg.Endpoint, reg.ID)
	}
}

// Expired follows the expiry of a registration whose state Persist
// queued.
func (h *Hooks) Expired(_ context.Context, reg lwm2m.Registration) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.gone(reg)
}

// Values records what a device reported in notifications and Send.
func (h *Hooks) Values(ctx context.Context, reg lwm2m.Registration, observed node.Path, recs []node.Record) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	if len(recs) == 0 {
		return
	}
	if h.cfg.Values != nil {
		h.cfg.Values.Add(ctx, reg.Tenant, reg.DeviceID, recs)
	}
	if h.cfg.Pipeline != nil {
		// Like the lifecycle state: wait for room rather than drop.
		h.cfg.Pipeline.Handle(context.WithoutCancel(ctx), mapping.Input{Device: device(reg), Kind: mapping.KindReport, Records: recs})
	}
}

// online records the device as registered, durably when durable (within
// StoreTimeout), else queued.
func (h *Hooks) online(ctx context.Context, reg lwm2m.Registration, event, text string, durable bool) error {
	frag := map[string]any{
		"c8y_Availability": map[string]any{"status": "AVAILABLE", "lastMessage": reg.UpdatedAt.UTC()},
		"c8y_Connection":   map[string]any{"status": "CONNECTED"},
		"lwm2m":            Fragment(reg),
	}
	c := h.change(reg, frag, event, text)
	if !durable {
		h.cfg.State.Add(context.WithoutCancel(ctx), c)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.StoreTimeout)
	defer cancel()
	if err := h.cfg.State.AddDurable(ctx, c); err != nil {
		if c.event.Type == EventRegistration {
			// not stored: the device's next Register is news
			h.events.Forget(reg.Tenant + "/" + reg.DeviceID + "/" + EventRegistration)
		}
		return fmt.Errorf("record %s of %s: %w", event, reg.Endpoint, err)
	}
	if c.create != "" {
		h.log.Info("endpoint auto-registered", "endpoint", reg.Endpoint, "device", reg.DeviceID)
	}
	return nil
}

func (h *Hooks) reachable(reg lwm2m.Registration) {
	if h.cfg.Ops == nil {
		return
	}
	if t, ok := h.cfg.Ops.(TakeOver); ok && reg.TakenOver {
		t.TakenOver(reg.Tenant, reg.DeviceID, reg.Replica)
		return
	}
	h.cfg.Ops.Reachable(reg.Tenant, reg.DeviceID)
}

func (h *Hooks) offline(ctx context.Context, reg lwm2m.Registration, event, text string) {
	// No deadline: a change waits for room in the writer's bounded queue
	// (back-pressure on the device's exchange) rather than being dropped.
	h.cfg.State.Add(context.WithoutCancel(ctx), h.change(reg, offlineFragments(reg), event, text))
}

// offlineFragments are the fragments of a device whose registration
// ended: unavailable, disconnected, no registrationId.
func offlineFragments(reg lwm2m.Registration) map[string]any {
	lw := Fragment(reg)
	lw["registrationId"] = ""
	return map[string]any{
		"c8y_Availability": map[string]any{"status": "UNAVAILABLE", "lastMessage": reg.UpdatedAt.UTC()},
		"c8y_Connection":   map[string]any{"status": "DISCONNECTED"},
		"lwm2m":            lw,
	}
}

// transport names how reg was made, for events.
func transport(reg lwm2m.Registration) string {
	if reg.Secure {
		return "DTLS"
	}
	return "plain CoAP"
}

// change is what recording event of reg changes: the device's fragments
// frag, and the event unless it is held back (coalesce).
func (h *Hooks) change(reg lwm2m.Registration, frag map[string]any, event, text string) stateChange {
	ev := store.Event{Source: reg.DeviceID, Type: event, Text: text, Time: time.Now().UTC()}
	switch event {
	case EventRegistration:
		if !h.coalesce(reg.Tenant, reg.DeviceID, &ev, CauseRegistrationCoalesced, "endpoint", reg.Endpoint, "peer", reg.Address) {
			ev = store.Event{} // the state is still written
		}
	case EventDeregistration, EventExpired:
		// A Register after the registration ended is news again.
		h.events.Forget(reg.Tenant + "/" + reg.DeviceID + "/" + EventRegistration)
	}
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("lifecycle", "endpoint", reg.Endpoint, "reg_id", reg.ID, "device", reg.DeviceID, "event", event)
	}
	c := stateChange{tenant: reg.Tenant, device: reg.DeviceID, fragments: frag, event: ev}
	if reg.New && event == EventRegistration {
		c.create = reg.Endpoint
	}
	return c
}

// Fragment is the lwm2m fragment of a registered device's managed object.
func Fragment(reg lwm2m.Registration) map[string]any {
	objs := make([]string, 0, len(reg.Objects))
	versions := map[string]any{}
	for _, o := range reg.Objects {
		objs = append(objs, o.Path.String())
		if o.Version != "" {
			versions[strconv.Itoa(int(o.Path.Object))] = o.Version
		}
	}
	f := map[string]any{
		"endpoint":       reg.Endpoint,
		"registrationId": reg.ID,
		"lifetime":       int64(reg.Lifetime / time.Second),
		"bindingMode":    reg.Binding,
		"queueMode":      reg.Queue,
		"lwm2mVersion":   reg.Version,
		"address":        reg.Address,
		"secure":         reg.Secure,
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
	// what only restoring the registration after a restart needs
	// (RegistrationFromFragment)
	if reg.Secure {
		f["pskIdentity"] = reg.PSKIdentity
	}
	if reg.RootPath != "" && reg.RootPath != "/" {
		f["rootPath"] = reg.RootPath
	}
	if reg.Replica != "" {
		f[store.ReplicaField] = reg.Replica
	}
	return f
}

// Ender ends live registrations and DTLS sessions; *lwm2m.Server is one.
type Ender interface {
	End(endpoint, tenant, deviceID string, record func(lwm2m.Registration)) (lwm2m.Registration, bool)
	CloseSessions(identity string) int
}

// SetServer sets the LwM2M server whose registrations SecurityChanged
// ends; call it before the API serves.
func (h *Hooks) SetServer(s Ender) { h.server = s }

// SecurityChanged ends the live registration of the tenant's device and
// the DTLS sessions of its old identity after its security mode, key or
// identity changed: they were made under settings that no longer hold
// (a plain registration of a device now PSK, a session opened with a
// key it no longer has). The device must register again; its next
// Update is answered 4.04. The device is marked offline with a security
// event.
func (h *Hooks) SecurityChanged(ctx context.Context, tenant, deviceID, endpoint, oldIdentity string) {
	if h.server == nil {
		return
	}
	h.inflight.Add(1)
	defer h.inflight.Done()
	closed := h.server.CloseSessions(oldIdentity)
	// recorded before a Register that follows the end is
	reg, ok := h.server.End(endpoint, tenant, deviceID, func(reg lwm2m.Registration) {
		h.offline(ctx, reg, EventSecurity, fmt.Sprintf(
			"Registration %s of %s over %s ended: the device's security mode or keys changed; it must register again", reg.ID, endpoint, transport(reg)))
	})
	if !ok {
		if closed > 0 {
			h.log.Info("dtls sessions closed: the device's security settings changed", "endpoint", endpoint, "device", deviceID, "sessions", closed)
		}
		return
	}
	h.log.Info("registration ended: the device's security settings changed", "endpoint", endpoint, "device", deviceID,
		"reg_id", reg.ID, "secure", reg.Secure, "sessions", closed)
	h.gone(reg)
}

// DeviceDeleted ends the live registrations of a deleted device's
// endpoints and closes the DTLS sessions of its lwm2m PSK identities:
// a device that is gone is answered nothing more (its next Update gets
// 4.04; a request over an old session no answer), and its endpoint and
// identities may serve a new device at once. Nothing is written of the
// device, which the store no longer holds.
func (h *Hooks) DeviceDeleted(_ context.Context, tenant, deviceID string, endpoints, identities []string) {
	if h.server == nil {
		return
	}
	h.inflight.Add(1)
	defer h.inflight.Done()
	closed := 0
	for _, ident := range identities {
		closed += h.server.CloseSessions(ident)
	}
	ended := 0
	for _, ep := range endpoints {
		reg, ok := h.server.End(ep, tenant, deviceID, nil)
		if !ok {
			continue
		}
		ended++
		h.log.Info("registration ended: the device was deleted", "endpoint", ep, "device", deviceID, "reg_id", reg.ID, "secure", reg.Secure)
		h.gone(reg)
	}
	if ended == 0 && closed > 0 {
		h.log.Info("dtls sessions closed: the device was deleted", "device", deviceID, "sessions", closed)
	}
}

// SetOps sets who is told when a device becomes reachable; call it before
// the LwM2M server starts.
func (h *Hooks) SetOps(r Reachable) { h.cfg.Ops = r }

// SetPostOps sets who queues post-registration operations; call it before
// the LwM2M server starts.
func (h *Hooks) SetPostOps(p PostRegistration) { h.cfg.PostOps = p }
