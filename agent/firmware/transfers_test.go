package firmware

import (
	"testing"
	"time"
)

func TestTransfers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	stall := time.Minute
	type step struct {
		do         string // acquire, release, done, revoke, expire
		key, dev   string
		at         time.Duration
		wantOK     bool
		wantReason string
		wantActive int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a block-wise transfer holds its slot between blocks", []step{
			{do: "acquire", key: "g1", dev: "d1", wantOK: true, wantActive: 1},
			{do: "release", key: "g1", at: time.Second, wantActive: 1},
			{do: "acquire", key: "g1", dev: "d1", at: 2 * time.Second, wantOK: true, wantActive: 1},
			{do: "done", key: "g1", at: 3 * time.Second, wantActive: 0},
		}},
		{"total bound, freed by a stall", []step{
			{do: "acquire", key: "g1", dev: "d1", wantOK: true, wantActive: 1},
			{do: "release", key: "g1", wantActive: 1},
			{do: "acquire", key: "g2", dev: "d2", wantOK: true, wantActive: 2},
			{do: "release", key: "g2", at: 30 * time.Second, wantActive: 2},
			{do: "acquire", key: "g3", dev: "d3", at: 59 * time.Second, wantReason: refusedBusy, wantActive: 2},
			{do: "acquire", key: "g3", dev: "d3", at: 61 * time.Second, wantOK: true, wantActive: 2}, // g1 stalled
			{do: "expire", at: 91 * time.Second, wantActive: 1},                                      // g2 stalled too
		}},
		{"an open HTTP request never stalls", []step{
			{do: "acquire", key: "g1", dev: "d1", wantOK: true, wantActive: 1},
			{do: "expire", at: time.Hour, wantActive: 1},
			{do: "release", key: "g1", at: time.Hour, wantActive: 1},
			{do: "expire", at: time.Hour + stall, wantActive: 0},
		}},
		{"one transfer per device", []step{
			{do: "acquire", key: "g1", dev: "d1", wantOK: true, wantActive: 1},
			{do: "release", key: "g1", wantActive: 1},
			{do: "acquire", key: "g2", dev: "d1", at: time.Second, wantReason: refusedDeviceBusy, wantActive: 1},
			{do: "acquire", key: "g2", dev: "d1", at: stall, wantOK: true, wantActive: 1}, // g1 stalled
		}},
		{"revoking frees the operation's slots", []step{
			{do: "acquire", key: "g1", dev: "d1", wantOK: true, wantActive: 1},
			{do: "acquire", key: "g2", dev: "d2", wantOK: true, wantActive: 2},
			{do: "revoke", key: "op-g1", wantActive: 1},
			{do: "acquire", key: "g3", dev: "d1", wantOK: true, wantActive: 2},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTransfers(2, stall)
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				switch s.do {
				case "acquire":
					ok, reason := tr.acquire(s.key, s.dev, "op-"+s.key, now)
					if ok != s.wantOK || reason != s.wantReason {
						t.Fatalf("step %d: acquire %s: %v %q, want %v %q", i, s.key, ok, reason, s.wantOK, s.wantReason)
					}
				case "release", "done":
					tr.release(s.key, s.do == "done", now)
				case "revoke":
					tr.revoke(s.key)
				case "expire":
					tr.expire(now)
				}
				if n := tr.active(); n != s.wantActive {
					t.Fatalf("step %d (%s %s): %d active, want %d", i, s.do, s.key, n, s.wantActive)
				}
			}
		})
	}
}
