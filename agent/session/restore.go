package session

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// RestoreStats counts what Restore did.
type RestoreStats struct {
	Restored int // live again, expiring from their last update
	Skipped  int // unreadable, or refused by the server (logged)
	// Ended were not restored but recorded as ended: the device's
	// registration record no longer allows them (logged by reason).
	Ended int
	// Elsewhere are held by other replicas sharing the store: theirs
	// until their devices move here.
	Elsewhere int
	Took      time.Duration
}

// Reasons a stored registration is ended instead of restored, as the log
// names them.
const (
	RestoreNoRecord        = "no_record"               // the device has no registration record
	RestoreIncomplete      = "record_incomplete"       // the device is being created or deleted
	RestorePSK             = "record_psk"              // a plain registration of a device that must use DTLS
	RestoreNoSecurityMode  = "record_no_security"      // a plain registration of a device whose record names no mode
	RestoreNotPSK          = "record_not_psk"          // a DTLS registration of a device whose record no longer says PSK
	RestoreIdentityChanged = "record_identity_changed" // a DTLS registration of an identity the record no longer names
)

var restoreReasonText = map[string]string{
	RestoreNoRecord:        "the device has no registration parameters",
	RestoreIncomplete:      "the device's registration parameters are being written or deleted",
	RestorePSK:             "the device's security mode is PSK",
	RestoreNoSecurityMode:  "the device's registration parameters name no security mode",
	RestoreNotPSK:          "the device's security mode is no longer PSK",
	RestoreIdentityChanged: "the device's PSK identity changed",
}

// restoreRefusal tells why the device's registration record (nil: none)
// does not allow reg now, "" when it does: the rules of Authorize, for a
// registration made before the record changed.
func restoreRefusal(reg lwm2m.Registration, rec *store.RecordAccess) string {
	if rec == nil {
		return RestoreNoRecord
	}
	s := settingsOf(*rec, "")
	switch {
	case s.creating:
		return RestoreIncomplete
	case reg.Secure && !s.psk:
		return RestoreNotPSK
	case reg.Secure && s.pskIdentity != reg.PSKIdentity:
		return RestoreIdentityChanged
	case reg.Secure:
		return ""
	case s.psk:
		return RestorePSK
	case !s.noSec:
		return RestoreNoSecurityMode
	}
	return ""
}

// Restore puts every registration the store holds from before the agent
// started (the lwm2m fragments that Fragment wrote) back into srv, so
// that the devices' Updates are answered 2.04 and operations reach them
// without a new Register. Those whose lifetime ran out meanwhile are
// restored too and expire at once when srv serves, which marks them
// UNAVAILABLE through Expired like any other expiry. Call it before
// srv.Serve. lwm2m.ErrFull stops it: srv holds as many as it may.
//
// A registration the device's registration record does not allow now is
// ended instead, as SecurityChanged ends a live one: the agent may have
// stopped after a change of the record and before it ended the
// registration, or the registration may be older than the record's
// rules. Its device is marked offline with a security event, and its
// next Update is answered 4.04.
func Restore(ctx context.Context, h *Hooks, srv *lwm2m.Server) (RestoreStats, error) {
	start := time.Now()
	var stats RestoreStats
	ended := newRestoreEnds()
	err := h.cfg.Store.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
		reg, err := RegistrationFromFragment(l.Tenant, l.DeviceID, l.Fragment, l.Serialization)
		if err == nil && h.elsewhere(reg) {
			stats.Elsewhere++
			return nil
		}
		if err == nil {
			if why := restoreRefusal(reg, l.Record); why != "" {
				ended.add(reg, why)
				return nil
			}
			err = srv.Restore(reg)
		}
		if errors.Is(err, lwm2m.ErrFull) {
			return err
		}
		if err != nil {
			stats.Skipped++
			h.log.Warn("registration not restored; the device must register again", "device", l.DeviceID, "err", err)
			return nil
		}
		stats.Restored++
		return nil
	})
	if err == nil || errors.Is(err, lwm2m.ErrFull) {
		stats.Ended = ended.n
		ended.write(ctx, h)
	}
	stats.Took = time.Since(start)
	if err != nil {
		return stats, fmt.Errorf("restore registrations: %w", err)
	}
	return stats, nil
}

// restoreEnds gathers the registrations Restore ends, to record them in
// a few bulk writes once the records are read: the state writer does not
// run yet, and its bounded queue would stop the start after a large
// number of them.
type restoreEnds struct {
	n        int
	byReason map[string][]lwm2m.Registration
}

func newRestoreEnds() *restoreEnds { return &restoreEnds{byReason: map[string][]lwm2m.Registration{}} }

func (e *restoreEnds) add(reg lwm2m.Registration, reason string) {
	e.n++
	e.byReason[reason] = append(e.byReason[reason], reg)
}

// restoreEndsBatch bounds the devices of one bulk write.
const restoreEndsBatch = 1000

// write marks each device offline, its registration ended, with a
// security event that says why, and logs how many per reason. A failed
// write is logged: the registration stays ended, and the next start
// ends it again.
func (e *restoreEnds) write(ctx context.Context, h *Hooks) {
	type batch struct {
		fragments map[string]map[string]any
		events    []store.Event
	}
	batches := map[string]*batch{}
	flush := func(tenant string, b *batch) {
		if _, err := h.cfg.Store.UpdateFragmentsMany(ctx, tenant, b.fragments); err != nil {
			h.log.Error("record registrations ended at start", "tenant", tenant, "devices", len(b.fragments), "err", err)
		}
		if _, err := h.cfg.Store.CreateEvents(ctx, tenant, b.events); err != nil {
			h.log.Error("record registrations ended at start", "tenant", tenant, "events", len(b.events), "err", err)
		}
	}
	now := time.Now().UTC()
	for reason, regs := range e.byReason {
		h.log.Warn("registrations not restored: the devices' registration parameters no longer allow them; they must register again",
			"reason", reason, "registrations", len(regs))
		for _, reg := range regs {
			h.log.Debug("registration not restored", "reason", reason, "endpoint", reg.Endpoint, "device", reg.DeviceID, "reg_id", reg.ID, "secure", reg.Secure)
			b := batches[reg.Tenant]
			if b == nil {
				b = &batch{fragments: map[string]map[string]any{}}
				batches[reg.Tenant] = b
			}
			b.fragments[reg.DeviceID] = offlineFragments(reg)
			b.events = append(b.events, store.Event{Source: reg.DeviceID, Type: EventSecurity, Time: now, Text: fmt.Sprintf(
				"Registration %s of %s over %s not restored at start: %s; it must register again",
				reg.ID, reg.Endpoint, transport(reg), restoreReasonText[reason])})
			if len(b.events) >= restoreEndsBatch {
				flush(reg.Tenant, b)
				delete(batches, reg.Tenant)
			}
		}
	}
	for tenant, b := range batches {
		flush(tenant, b)
	}
}

// RegistrationFromFragment reads back a registration from the lwm2m
// fragment Fragment wrote (values as the store answers them: plain Go
// values, numbers as int64 or float64). serialization is the device's
// serialization setting, "" for none.
func RegistrationFromFragment(tenant, deviceID string, f map[string]any, serialization string) (lwm2m.Registration, error) {
	str := func(k string) string { s, _ := f[k].(string); return s }
	reg := lwm2m.Registration{
		ID:           str("registrationId"),
		Endpoint:     str("endpoint"),
		Version:      str("lwm2mVersion"),
		Lifetime:     time.Duration(number(f["lifetime"])) * time.Second,
		Binding:      str("bindingMode"),
		SMS:          str("sms"),
		RootPath:     str("rootPath"),
		Address:      str("address"),
		PSKIdentity:  str("pskIdentity"),
		Replica:      str(store.ReplicaField),
		Tenant:       tenant,
		DeviceID:     deviceID,
		RegisteredAt: timeOf(f["registered"]),
		UpdatedAt:    timeOf(f["lastUpdate"]),
	}
	reg.Queue, _ = f["queueMode"].(bool)
	reg.Secure, _ = f["secure"].(bool)
	if reg.ID == "" || reg.Endpoint == "" {
		return lwm2m.Registration{}, fmt.Errorf("lwm2m fragment of %s: no registration", deviceID)
	}
	if reg.Version == "" {
		reg.Version = "1.0"
	}
	if reg.UpdatedAt.IsZero() {
		return lwm2m.Registration{}, fmt.Errorf("lwm2m fragment of %s: no lastUpdate", deviceID)
	}
	if cf, ok := f["contentFormat"]; ok {
		reg.ContentFormat = codec.Format(number(cf))
	}
	if at, ok := f["awakeTimeMs"]; ok {
		reg.AwakeTime, reg.HasAwakeTime = time.Duration(number(at))*time.Millisecond, true
	}
	versions, _ := f["objectVersions"].(map[string]any)
	objs, _ := f["objects"].([]any)
	versioned := map[uint16]bool{}
	for _, o := range objs {
		s, _ := o.(string)
		p, err := node.ParsePath(s)
		if err != nil || p.Depth == 0 || p.Depth > 2 {
			return lwm2m.Registration{}, fmt.Errorf("lwm2m fragment of %s: object link %q", deviceID, s)
		}
		link := lwm2m.ObjectLink{Path: p}
		// versions are kept per object; the device gave each on the
		// object's first link
		if v, _ := versions[strconv.Itoa(int(p.Object))].(string); v != "" && !versioned[p.Object] {
			link.Version = v
			versioned[p.Object] = true
		}
		reg.Objects = append(reg.Objects, link)
	}
	if serialization != "" {
		if sf, err := codec.ParseFormatName(serialization); err == nil {
			reg.Serialization, reg.HasSerialization = sf, true
		}
	}
	return reg, nil
}

func number(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

func timeOf(v any) time.Time {
	t, _ := v.(time.Time)
	return t
}
