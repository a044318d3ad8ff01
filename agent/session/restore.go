package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	Took     time.Duration
}

// Restore puts every registration the store holds from before the agent
// started (the lwm2m fragments that Fragment wrote) back into srv, so
// that the devices' Updates are answered 2.04 and operations reach them
// without a new Register. Those whose lifetime ran out meanwhile are
// restored too and expire at once when srv serves, which marks them
// UNAVAILABLE through Expired like any other expiry. Call it before
// srv.Serve. lwm2m.ErrFull stops it: srv holds as many as it may.
func Restore(ctx context.Context, st *store.Store, srv *lwm2m.Server, log *slog.Logger) (RestoreStats, error) {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "session")
	start := time.Now()
	var stats RestoreStats
	err := st.LiveRegistrations(ctx, func(l store.LiveRegistration) error {
		reg, err := RegistrationFromFragment(l.Tenant, l.DeviceID, l.Fragment, l.Serialization)
		if err == nil {
			err = srv.Restore(reg)
		}
		if errors.Is(err, lwm2m.ErrFull) {
			return err
		}
		if err != nil {
			stats.Skipped++
			log.Warn("registration not restored; the device must register again", "device", l.DeviceID, "err", err)
			return nil
		}
		stats.Restored++
		return nil
	})
	stats.Took = time.Since(start)
	if err != nil {
		return stats, fmt.Errorf("restore registrations: %w", err)
	}
	return stats, nil
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
