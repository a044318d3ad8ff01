package bootstrap

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Security modes of the registration parameters.
const (
	ModeNoSec = "NO_SEC"
	ModePSK   = "PSK"
)

// Defaults of what a device's parameters leave out.
const (
	DefaultShortServerID = 1
	DefaultLifetime      = 86400 // seconds, as the Register operation's lt
	DefaultBinding       = "U"
)

// Params are a device's bootstrap parameters, typed. Optional values are
// pointers: nil means the parameter was not given, and the resource is
// not written (the client keeps its own default).
type Params struct {
	ServerURI      string // lwm2mServerUri
	SecurityMode   string // ModeNoSec or ModePSK
	PSKID          string // lwm2mPskId
	BootstrapPSKID string // bootstrapPskId
	// GenerateBootstrapServerConfig asks for the bootstrap server's own
	// Security instance to be written too.
	GenerateBootstrapServerConfig bool
	SecurityInstanceOffset        uint16  // first Security instance ID to write
	BootstrapShortServerID        *uint16 // Short Server ID of the bootstrap Security instance
	ShortServerID                 uint16  // of the LwM2M server (DefaultShortServerID)
	Lifetime                      int64   // seconds (DefaultLifetime)
	MinPeriod                     *int64  // defaultMinimumPeriod, seconds
	MaxPeriod                     *int64  // defaultMaximumPeriod, seconds
	DisableTimeout                *int64  // seconds
	NotificationStoring           *bool   // notificationIfDisabled (true when absent: resource 6 is mandatory)
	Binding                       string  // bindingMode (DefaultBinding)
}

// ParseParams reads the registration parameters of the store (camelCase
// keys, values as the store returns them: strings, booleans, integers of
// any width, or numbers and booleans written as strings). Errors wrap
// ErrIncomplete and name the parameter.
func ParseParams(m map[string]any) (Params, error) {
	p := Params{
		ServerURI:      str(m["lwm2mServerUri"]),
		SecurityMode:   strings.ToUpper(str(m["securityMode"])),
		PSKID:          str(m["lwm2mPskId"]),
		BootstrapPSKID: str(m["bootstrapPskId"]),
		ShortServerID:  DefaultShortServerID,
		Lifetime:       DefaultLifetime,
		Binding:        str(m["bindingMode"]),
	}
	if p.ServerURI == "" {
		return Params{}, fmt.Errorf("%w: lwm2mServerUri missing", ErrIncomplete)
	}
	switch p.SecurityMode {
	case "":
		p.SecurityMode = ModeNoSec
	case ModeNoSec:
	case ModePSK:
		if p.PSKID == "" {
			return Params{}, fmt.Errorf("%w: lwm2mPskId missing for securityMode PSK", ErrIncomplete)
		}
	default:
		return Params{}, fmt.Errorf("%w: securityMode %q is neither NO_SEC nor PSK", ErrIncomplete, p.SecurityMode)
	}
	if p.Binding == "" {
		p.Binding = DefaultBinding
	}
	var err error
	if p.GenerateBootstrapServerConfig, _, err = boolParam(m, "generateBootstrapServerConfig"); err != nil {
		return Params{}, err
	}
	if v, ok, err := intParam(m, "securityInstanceOffset", 0, 65533); err != nil {
		return Params{}, err
	} else if ok {
		p.SecurityInstanceOffset = uint16(v)
	}
	if v, ok, err := intParam(m, "bootstrapShortServerId", 1, 65534); err != nil {
		return Params{}, err
	} else if ok {
		id := uint16(v)
		p.BootstrapShortServerID = &id
	}
	if v, ok, err := intParam(m, "lwm2mShortServerId", 1, 65534); err != nil {
		return Params{}, err
	} else if ok {
		p.ShortServerID = uint16(v)
	}
	if v, ok, err := intParam(m, "registrationLifetime", 1, math.MaxInt32); err != nil {
		return Params{}, err
	} else if ok {
		p.Lifetime = v
	}
	for _, o := range []struct {
		key string
		dst **int64
	}{
		{"defaultMinimumPeriod", &p.MinPeriod},
		{"defaultMaximumPeriod", &p.MaxPeriod},
		{"disableTimeout", &p.DisableTimeout},
	} {
		if v, ok, err := intParam(m, o.key, 0, math.MaxInt32); err != nil {
			return Params{}, err
		} else if ok {
			*o.dst = &v
		}
	}
	if b, ok, err := boolParam(m, "notificationIfDisabled"); err != nil {
		return Params{}, err
	} else if ok {
		p.NotificationStoring = &b
	}
	return p, nil
}

func str(v any) string {
	s, _ := v.(string)
	return strings.TrimSpace(s)
}

// intParam reads an integer parameter in [lo, hi]; ok is false when it is
// absent or empty.
func intParam(m map[string]any, key string, lo, hi int64) (n int64, ok bool, err error) {
	switch v := m[key].(type) {
	case nil:
		return 0, false, nil
	case int:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false, fmt.Errorf("%w: %s %v is not an integer", ErrIncomplete, key, v)
		}
		n = int64(v)
	case string:
		s := strings.TrimSpace(v)
		if s == "" {
			return 0, false, nil
		}
		if n, err = strconv.ParseInt(s, 10, 64); err != nil {
			return 0, false, fmt.Errorf("%w: %s %q is not an integer", ErrIncomplete, key, v)
		}
	default:
		return 0, false, fmt.Errorf("%w: %s has type %T", ErrIncomplete, key, v)
	}
	if n < lo || n > hi {
		return 0, false, fmt.Errorf("%w: %s %d is not between %d and %d", ErrIncomplete, key, n, lo, hi)
	}
	return n, true, nil
}

// boolParam reads a boolean parameter; ok is false when it is absent.
func boolParam(m map[string]any, key string) (b, ok bool, err error) {
	switch v := m[key].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "":
			return false, false, nil
		case "true", "1", "yes":
			return true, true, nil
		case "false", "0", "no":
			return false, true, nil
		}
		return false, false, fmt.Errorf("%w: %s %q is not a boolean", ErrIncomplete, key, v)
	}
	return false, false, fmt.Errorf("%w: %s has type %T", ErrIncomplete, key, m[key])
}
