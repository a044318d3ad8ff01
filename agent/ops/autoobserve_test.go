package ops

import (
	"context"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/registry"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// A device listens when it is always online, or inside the awake window
// of its last Register or Update short of the send guard; the awake time
// comes from its parameter, its registration, else the global setting.
func TestListening(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenTest(t)
	if err := st.SaveDeviceRegistration(ctx, "acme", "param", store.DeviceRegistration{Params: map[string]any{registry.ParamAwakeTime: int64(0)}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	reg := func(device string, updated time.Duration, at time.Duration) lwm2m.Registration {
		return lwm2m.Registration{Tenant: "acme", DeviceID: device, UpdatedAt: now.Add(-updated), AwakeTime: at, HasAwakeTime: at > 0}
	}
	tests := []struct {
		name   string
		global time.Duration
		reg    lwm2m.Registration
		want   bool
	}{
		{"always online", 0, reg("a", time.Hour, 0), true},
		{"inside the window of its registration's awake time", 0, reg("a", time.Second, 10*time.Second), true},
		{"after the window", 0, reg("a", 11*time.Second, 10*time.Second), false},
		{"within the send guard of the window's end", 0, reg("a", 9800*time.Millisecond, 10*time.Second), false},
		{"global awake time, asleep", 10 * time.Second, reg("a", time.Minute, 0), false},
		{"global awake time, awake", 10 * time.Second, reg("a", time.Second, 0), true},
		{"its parameter (0) over the registration's", 0, reg("param", time.Minute, 10*time.Second), true},
	}
	for _, tc := range tests {
		r := New(Config{Store: st, AwakeTime: tc.global})
		got, err := r.listening(ctx, tc.reg, now)
		if err != nil || got != tc.want {
			t.Errorf("%s: listening = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
