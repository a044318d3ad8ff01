package ops

import (
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
)

func TestAwakeTime(t *testing.T) {
	at := func(d time.Duration) lwm2m.Registration { return lwm2m.Registration{AwakeTime: d, HasAwakeTime: true} }
	tests := []struct {
		name   string
		params map[string]any
		reg    lwm2m.Registration
		global time.Duration
		want   time.Duration
	}{
		{"nothing anywhere: always online", nil, lwm2m.Registration{}, 0, 0},
		{"global only", nil, lwm2m.Registration{}, 20 * time.Second, 20 * time.Second},
		{"registration at wins over global", nil, at(5 * time.Second), 20 * time.Second, 5 * time.Second},
		{"registration at=0 means always online", nil, at(0), 20 * time.Second, 0},
		{"parameter wins over registration", map[string]any{"awakeTimeRegistrationParameter": int64(3000)}, at(5 * time.Second), 20 * time.Second, 3 * time.Second},
		{"parameter 0 means always online", map[string]any{"awakeTimeRegistrationParameter": int32(0)}, at(5 * time.Second), 20 * time.Second, 0},
		{"parameter as BSON int32", map[string]any{"awakeTimeRegistrationParameter": int32(1500)}, lwm2m.Registration{}, 0, 1500 * time.Millisecond},
		{"parameter as JSON number", map[string]any{"awakeTimeRegistrationParameter": float64(2000)}, lwm2m.Registration{}, 0, 2 * time.Second},
		{"parameter as decimal text", map[string]any{"awakeTimeRegistrationParameter": " 250 "}, lwm2m.Registration{}, 0, 250 * time.Millisecond},
		{"unusable parameter is ignored", map[string]any{"awakeTimeRegistrationParameter": "soon"}, at(5 * time.Second), 0, 5 * time.Second},
		{"negative parameter is ignored", map[string]any{"awakeTimeRegistrationParameter": int64(-1)}, lwm2m.Registration{}, 7 * time.Second, 7 * time.Second},
		{"fractional parameter is ignored", map[string]any{"awakeTimeRegistrationParameter": 1.5}, lwm2m.Registration{}, 7 * time.Second, 7 * time.Second},
		{"other parameters only", map[string]any{"lwm2mRequestTimeout": int64(9000)}, lwm2m.Registration{}, 7 * time.Second, 7 * time.Second},
		{"negative global is always online", nil, lwm2m.Registration{}, -time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AwakeTime(tt.params, tt.reg, tt.global); got != tt.want {
				t.Errorf("AwakeTime = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	tests := []struct {
		name        string
		params      map[string]any
		global, max time.Duration
		want        time.Duration
	}{
		{"no parameter: global", nil, 30 * time.Second, 5 * time.Minute, 30 * time.Second},
		{"parameter shorter than global", map[string]any{"lwm2mRequestTimeout": int64(2000)}, 30 * time.Second, 5 * time.Minute, 2 * time.Second},
		{"parameter longer than global", map[string]any{"lwm2mRequestTimeout": int32(120000)}, 30 * time.Second, 5 * time.Minute, 2 * time.Minute},
		{"parameter capped by the maximum", map[string]any{"lwm2mRequestTimeout": int64(600000)}, 30 * time.Second, 5 * time.Minute, 5 * time.Minute},
		{"zero parameter: global", map[string]any{"lwm2mRequestTimeout": int64(0)}, 30 * time.Second, 5 * time.Minute, 30 * time.Second},
		{"no maximum", map[string]any{"lwm2mRequestTimeout": int64(600000)}, 30 * time.Second, 0, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestTimeout(tt.params, tt.global, tt.max); got != tt.want {
				t.Errorf("RequestTimeout = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRepeatable(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"read /3/0", true},
		{"cread /3/0/0 /3/0/1", true},
		{"discover /3", true},
		{"observe /3303/0/5700", true},
		{"cobserve /3303/0/5700 /3/0/9", true},
		{"cancelobservation /3303/0/5700", true},
		{"write /3/0/14 +02", true},
		{`cwrite {"/3/0/14": "+02"}`, true},
		{"writeb /5/0/0 0A0B", true},
		{"writeattr /3303/0/5700 pmin=5", true},
		{"serialization TLV", true},
		{"execute /3/0/4", false},
		{"create /3303", false},
		{"delete /3303/1", false},
		{"fwupdate fw;1.0;http://example.com/fw.bin", false},
		{"", false},
		{"nonsense /3/0", false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := Repeatable(tt.text); got != tt.want {
				t.Errorf("Repeatable(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

// Only commands that change nothing on the device are sent before their
// EXECUTING is durable.
func TestReadOnly(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"read /3/0", true},
		{"read /3/0/9", true},
		{"cread /3/0/0 /3/0/1", true},
		{"discover /3", true},
		{"observe /3303/0/5700", false},
		{"cancelobservation /3303/0/5700", false},
		{"write /3/0/14 +02", false},
		{"writeattr /3303/0/5700 pmin=5", false},
		{"execute /3/0/4", false},
		{"fwupdate fw;1.0;http://example.com/fw.bin", false},
		{"", false},
		{"nonsense /3/0", false},
	}
	for _, tt := range tests {
		if got := ReadOnly(tt.text); got != tt.want {
			t.Errorf("ReadOnly(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}
