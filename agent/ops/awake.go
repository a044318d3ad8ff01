package ops

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
)

// AwakeTime is how long a device listens after each Register or Update:
// its awakeTimeRegistrationParameter (milliseconds, from the bulk file,
// the bootstrap resource or the managed object), else the awake time its
// registration announced (at=), else global. 0 means always online: the
// device is sent operations whenever it is registered. params are the
// device's registration parameters, nil when it has none.
func AwakeTime(params map[string]any, reg lwm2m.Registration, global time.Duration) time.Duration {
	if d, ok := millis(params[registry.ParamAwakeTime]); ok {
		return d
	}
	if reg.HasAwakeTime {
		return reg.AwakeTime
	}
	return max(global, 0)
}

// RequestTimeout is how long the agent waits for a device's answer: its
// lwm2mRequestTimeout parameter capped by maxTimeout, else global (0
// leaves the LwM2M server's own).
func RequestTimeout(params map[string]any, global, maxTimeout time.Duration) time.Duration {
	d, ok := millis(params[registry.ParamRequestTimeout])
	if !ok || d <= 0 {
		return global
	}
	if maxTimeout > 0 && d > maxTimeout {
		return maxTimeout
	}
	return d
}

// millis reads a parameter in milliseconds as the store gives it back: a
// BSON integer, a JSON number or a decimal string. Anything else, negative
// or out of range is not a setting.
func millis(v any) (time.Duration, bool) {
	var n int64
	switch x := v.(type) {
	case int32:
		n = int64(x)
	case int64:
		n = x
	case int:
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x > math.MaxInt32 {
			return 0, false
		}
		n = int64(x)
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if err != nil {
			return 0, false
		}
		n = i
	default:
		return 0, false
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// Repeatable says whether an operation may be sent again when its outcome
// is unknown (the agent stopped while the device was asked): reading,
// observing and writing the same value twice leave the device as once;
// executing, creating, deleting and firmware updates do not, and neither
// does a text that is not a command.
func Repeatable(text string) bool {
	c, err := shell.Parse(text)
	if err != nil {
		return false
	}
	switch c.Kind {
	case shell.Read, shell.CompositeRead, shell.Discover, shell.Observe, shell.CompositeObserve,
		shell.CancelObservation, shell.Write, shell.CompositeWrite, shell.WriteBinary,
		shell.WriteAttributes, shell.Serialization:
		return true
	}
	return false
}
