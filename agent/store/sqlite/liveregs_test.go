package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// lwm2mFragment is the lwm2m fragment the session layer writes for a
// registered device (session.Fragment), with a device's usual objects.
func lwm2mFragment(endpoint, regID string, at time.Time) map[string]any {
	return map[string]any{
		"endpoint": endpoint, "registrationId": regID, "lifetime": int64(300), "bindingMode": "U",
		"queueMode": false, "lwm2mVersion": "1.1", "address": "192.0.2.10:5683", "secure": false,
		"registered": at, "lastUpdate": at,
		"objects":        []string{"/1/0", "/3/0", "/4/0", "/5/0", "/6/0", "/3303/0", "/3303/1", "/3316/0"},
		"objectVersions": map[string]any{"3": "1.1", "4": "1.2"},
		"contentFormat":  int64(11543),
	}
}

// fleet stores n devices of tenant acme as auto-registration and the
// session layer write them, each with the other fragments a device's
// object holds; every live one (i%liveEvery == 0) has a registration, the
// others an ended one.
func fleet(t testing.TB, s *Store, n, liveEvery int) {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const chunk = 5_000
	for start := 0; start < n; start += chunk {
		err := s.db.Write(context.Background(), func(tx *Tx) error {
			for i := start; i < min(start+chunk, n); i++ {
				ep := fmt.Sprint("urn:imei:", 350000000000000+i)
				doc, err := objectFragments(map[string]any{
					"c8y_IsDevice": map[string]any{}, "c8y_SupportedOperations": []any{"c8y_Command", "c8y_Restart"},
					"c8y_Availability": map[string]any{"status": "AVAILABLE", "lastMessage": at},
					"c8y_Hardware":     map[string]any{"model": "sensor", "serialNumber": ep, "revision": "1.0"},
				})
				if err != nil {
					return err
				}
				id, err := insertObject(tx, "acme", ep, store.DeviceType, doc, at)
				if err != nil {
					return err
				}
				if err := saveRegistration(tx, "acme", id, store.DeviceRegistration{Params: map[string]any{
					store.ParamEndpointID: ep, store.ParamSecurityMode: store.SecurityNoSec,
				}}); err != nil {
					return err
				}
				regID := ""
				if i%liveEvery == 0 {
					regID = fmt.Sprint("r", i)
				}
				if err := updateFragments(tx, "acme", id, map[string]any{"lwm2m": lwm2mFragment(ep, regID, at)}, at); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkLiveRegistrations streams the live registrations of 100,000
// devices, as the start restores them.
func BenchmarkLiveRegistrations(b *testing.B) {
	const n = 100_000
	s := newStore(b)
	fleet(b, s, n, 1)
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		if err := s.LiveRegistrations(context.Background(), func(l store.LiveRegistration) error {
			got++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("%d live registrations, want %d", got, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "registrations/s")
}

// The live registrations are read from the partial index, which holds
// the live objects alone.
func TestLiveRegistrationsIndex(t *testing.T) {
	s := newStore(t)
	fleet(t, s, 100, 10)
	plan := explain(t, s.db, selectLive)
	if !strings.Contains(plan, "COVERING INDEX managed_objects_live") {
		t.Errorf("plan of the live registrations does not read them from their index alone:\n%s", plan)
	}
	if n := intOf(t, s.db, "SELECT count(*) FROM managed_objects INDEXED BY managed_objects_live WHERE ("+liveFragment+") IS NOT NULL"); n != 10 {
		t.Errorf("%d objects in the index, want the 10 live ones", n)
	}
	got := 0
	if err := s.LiveRegistrations(context.Background(), func(store.LiveRegistration) error { got++; return nil }); err != nil || got != 10 {
		t.Errorf("%d live registrations (%v), want 10", got, err)
	}
}

// A stop in the middle, by fn's error or the context's end, returns
// that, and leaves no read connection held by the rows read ahead.
func TestLiveRegistrationsStop(t *testing.T) {
	s := newStore(t)
	fleet(t, s, 5*liveBatch, 1)
	stop := errors.New("stop")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name string
		fn   func(n int) error
		want error
	}{
		{"fn's error", func(n int) error {
			if n == liveBatch+1 {
				return stop
			}
			return nil
		}, stop},
		{"context's end", func(n int) error {
			if n == liveBatch+1 {
				cancel()
			}
			return nil
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := s.LiveRegistrations(ctx, func(store.LiveRegistration) error { n++; return tc.fn(n) })
			if !errors.Is(err, tc.want) || n != liveBatch+1 {
				t.Fatalf("%v after %d registrations, want %v", err, n, tc.want)
			}
			if inUse := s.db.readers.Stats().InUse; inUse != 0 {
				t.Fatalf("%d read connections in use after the stop", inUse)
			}
		})
	}
}
