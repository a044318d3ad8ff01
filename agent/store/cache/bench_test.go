package cache_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
)

// registerDevices creates n devices as a bulk registration does (PSK,
// with the parameters of a typical line) and returns their endpoints and
// ids.
func registerDevices(b *testing.B, s store.Engine, n int) (eps, ids []string) {
	for i := range n {
		ep := fmt.Sprintf("bench-ep-%05d", i)
		id := must(s.CreateIncompleteDevice(ctx, "acme", store.NewDevice{Endpoint: ep, Registration: typicalRecord(ep)}))
		if err := s.CompleteDevice(ctx, "acme", id); err != nil {
			b.Fatal(err)
		}
		eps, ids = append(eps, ep), append(ids, id)
	}
	return eps, ids
}

// typicalRecord is the record of a PSK device imported with its server
// and bootstrap parameters.
func typicalRecord(ep string) store.DeviceRegistration {
	return store.DeviceRegistration{
		Params: map[string]any{
			"endpointId": ep, "securityMode": "PSK", "lwm2mPskId": ep + "-psk", "bootstrapPskId": ep + "-bs",
			"serverUri": "coaps://lwm2m.example.com:5684", "bootstrapUri": "coaps://bs.example.com:5684",
			"lwm2mServerUri": "coaps://lwm2m.example.com:5684", "serverPublicKey": "", "registrationLifetime": int64(3600),
			"defaultMinimumPeriod": int64(1), "defaultMaximumPeriod": int64(300), "awakeTimeRegistrationParameter": int64(0),
			"binaryDeliveryEncoding": "OPAQUE", "generateBootstrapServerConfig": false,
		},
		PSKKey:          []byte("0123456789abcdef"),
		BootstrapPSKKey: []byte("fedcba9876543210"),
	}
}

// The store's part of a plain Register: the endpoint's device and its
// record (Authorize), then its queue (the operation runner's wake-up);
// each lookup alone too. "engine" is the MongoDB engine over the
// embedded FerretDB, "cached" the same behind the cache, warm.
func BenchmarkRegisterStorePath(b *testing.B) {
	raw := storetest.OpenTest(b)
	eps, ids := registerDevices(b, raw, 200)
	steps := map[string]func(s store.Engine, i int) error{
		"DeviceByEndpoint": func(s store.Engine, i int) error { _, _, err := s.DeviceByEndpoint(ctx, eps[i]); return err },
		"DeviceSettings":   func(s store.Engine, i int) error { _, err := s.DeviceSettings(ctx, "acme", ids[i]); return err },
		"Pending":          func(s store.Engine, i int) error { _, err := s.Pending(ctx, "acme", ids[i], 10); return err },
	}
	steps["Register"] = func(s store.Engine, i int) error {
		for _, step := range []string{"DeviceByEndpoint", "DeviceSettings", "Pending"} {
			if err := steps[step](s, i); err != nil {
				return err
			}
		}
		return nil
	}
	for _, name := range []string{"Register", "DeviceByEndpoint", "DeviceSettings", "Pending"} {
		for _, cached := range []bool{false, true} {
			s := store.Engine(raw)
			label := "engine"
			if cached {
				s, label = cache.New(cache.Config{Size: 100_000}).Wrap(raw), "cached"
				for i := range ids {
					if err := steps["Register"](s, i); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.Run(name+"/"+label, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := steps[name](s, i%len(ids)); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}

// The cache's memory per device with every answer of a device cached:
// its endpoint, its two identities, its record as typicalRecord and its
// empty queue. Reported as heap bytes per device after a collection.
func BenchmarkMemoryPerDevice(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		e := &fixed{}
		c := cache.New(cache.Config{Size: n})
		st := c.Wrap(e)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			ep := fmt.Sprintf("urn:imei:35%013d", i)
			id := fmt.Sprint(1_000_000 + i)
			e.tenant, e.id, e.rec = "acme", id, typicalRecord(ep)
			_, _, _ = st.DeviceByEndpoint(ctx, ep)
			_, _, _ = st.DeviceByPSKIdentity(ctx, store.PSKServer, ep+"-psk")
			_, _, _ = st.DeviceByPSKIdentity(ctx, store.PSKBootstrap, ep+"-bs")
			_, _ = st.DeviceSettings(ctx, "acme", id)
			_, _ = st.Pending(ctx, "acme", id, 10)
		}
		e.rec = store.DeviceRegistration{}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if s := c.Stats(); s[2].Entries != n {
			b.Fatalf("records cached: %+v", s)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/device")
		runtime.KeepAlive(c)
	}
}

// fixed answers every lookup with the device it was last given.
type fixed struct {
	store.Engine
	tenant, id string
	rec        store.DeviceRegistration
}

func (f *fixed) DeviceByEndpoint(context.Context, string) (string, string, error) {
	return f.tenant, f.id, nil
}

func (f *fixed) DeviceByPSKIdentity(context.Context, string, string) (string, string, error) {
	return f.tenant, f.id, nil
}

func (f *fixed) DeviceSettings(context.Context, string, string) (store.DeviceRegistration, error) {
	return f.rec, nil
}

func (f *fixed) Pending(context.Context, string, string, int) ([]store.Operation, error) {
	return nil, nil
}
