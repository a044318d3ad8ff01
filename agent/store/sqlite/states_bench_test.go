package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// registrationState is what the session writes of a device at its
// Register: availability, connection and the lwm2m fragment.
func registrationState(ep, regID string, at time.Time) map[string]any {
	return map[string]any{
		"c8y_Availability": map[string]any{"status": "AVAILABLE", "lastMessage": at},
		"c8y_Connection":   map[string]any{"status": "CONNECTED"},
		"lwm2m": map[string]any{
			"endpoint": ep, "registrationId": regID, "lifetime": int64(86400), "bindingMode": "U", "queueMode": false,
			"lwm2mVersion": "1.1", "address": "127.0.0.1:40000", "secure": false, "registered": at, "lastUpdate": at,
			"objects":        []string{"/1/0", "/2", "/3/0", "/4/0", "/5/0", "/6/0", "/7/0", "/3303/0"},
			"objectVersions": map[string]any{}, "contentFormat": 112, "replica": "r1",
		},
	}
}

// cpuStore is the engine without the sync of each commit, so that a
// benchmark of its writes measures their CPU, not the disk's latency.
func cpuStore(b *testing.B) *Store {
	return New(open(b, b.TempDir(), Config{migrations: migrations, SyncNormal: true}))
}

// statesBatch is the state writer's batch of n Registers: each device's
// state and its registration event.
func statesBatch(ids, eps []string, round int) (map[string]map[string]any, []store.Event) {
	at := time.Now().UTC()
	frags := make(map[string]map[string]any, len(ids))
	evs := make([]store.Event, len(ids))
	for i, id := range ids {
		frags[id] = registrationState(eps[i], fmt.Sprintf("%016x", round*len(ids)+i), at)
		evs[i] = store.Event{Source: id, Type: "c8y_LWM2MDeviceRegistration", Text: "Device " + eps[i] + " registered", Time: at}
	}
	return frags, evs
}

// BenchmarkSaveStates is the store's part of known devices' Registers:
// one SaveStates of 8 devices' state and events (a group commit holds
// about 8 Registers of 16 sockets), per op, commits not synced (the
// time is the writer's CPU); µs/register is per device.
func BenchmarkSaveStates(b *testing.B) {
	const batch = 8
	s := cpuStore(b)
	ctx := context.Background()
	ids, eps := make([]string, 1024), make([]string, 1024)
	for i := range ids {
		eps[i] = fmt.Sprintf("known-%d", i)
		id, err := s.CreateDevice(ctx, "management", eps[i])
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := i * batch % len(ids)
		frags, evs := statesBatch(ids[k:k+batch], eps[k:k+batch], i)
		if _, _, err := s.SaveStates(ctx, "management", frags, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/register")
}

// BenchmarkSaveNewStates is the store's part of new endpoints'
// Registers: 8 devices created with their first state and events in one
// SaveNewStates, per op.
func BenchmarkSaveNewStates(b *testing.B) {
	const batch = 8
	s := cpuStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ids, eps := make([]string, batch), make([]string, batch)
		created := make([]store.NewEndpoint, batch)
		for j := range ids {
			eps[j] = fmt.Sprintf("new-%d-%d", i, j)
			id, err := s.NewDeviceID(ctx, "management")
			if err != nil {
				b.Fatal(err)
			}
			ids[j] = id
			created[j] = store.NewEndpoint{ID: ids[j], Endpoint: eps[j]}
		}
		frags, evs := statesBatch(ids, eps, i)
		if _, _, _, err := s.SaveNewStates(ctx, "management", created, frags, evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*batch), "µs/register")
}
