package simulator

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
)

// TestManyDevices registers a few hundred devices through one server and
// checks that each costs a bounded number of goroutines: the simulator's
// own work (timers, registrations) must not add one per device.
func TestManyDevices(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	srv := startServer(t)
	runtime.GC()
	before := runtime.NumGoroutine()
	sim := runSim(t, srv, func(c *Config) {
		c.Count = n
		c.Concurrency = 16
		c.NotifyInterval = 100 * time.Millisecond
	})
	for _, i := range []int{0, n / 2, n - 1} {
		ep := "sim-" + strconv.Itoa(i)
		r := srv.must(srv.reg(ep), get("/3/0/2", int(codec.Text)))
		if r.code != codes.Content || string(r.payload) != ep {
			t.Errorf("%s answered %v %q", ep, r.code, r.payload)
		}
	}
	per := float64(runtime.NumGoroutine()-before) / float64(n)
	t.Logf("%d devices: %.2f goroutines per device, simulator and server together", n, per)
	// go-coap runs two per connection on each side (reader and handler).
	if per > 4.5 {
		t.Errorf("%.2f goroutines per device, want at most 4.5", per)
	}
	if s := sim.Stats(); s.Registrations != uint64(n) || s.Errors != 0 {
		t.Errorf("stats %+v", s)
	}
}

// BenchmarkRead measures one device-management Read of /3/0 (server
// request, tree read, encode, answer) over loopback UDP.
func BenchmarkRead(b *testing.B) {
	for _, f := range []codec.Format{codec.TLV, codec.SenMLCBOR} {
		b.Run(f.String(), func(b *testing.B) {
			srv := startServer(b)
			sim := runSim(b, srv, func(c *Config) { c.NotifyInterval = 0 })
			reg := srv.reg(sim.Endpoints()[0])
			b.ReportAllocs()
			for b.Loop() {
				r, err := srv.do(reg, get("/3/0", int(f)))
				if err != nil || r.code != codes.Content {
					b.Fatalf("read: %v %v", r.code, err)
				}
			}
		})
	}
}

// BenchmarkRegistration registers a population of devices against a
// server in the same process (both on this machine's cores) and reports
// the rate, the heap and the goroutines per device once all are
// registered, server included. SIM_BENCH_DEVICES sets the population
// (default 1000; 10000 for the figure at scale; ulimit -n must allow
// twice that many sockets).
func BenchmarkRegistration(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("SIM_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	b.ReportAllocs()
	for b.Loop() {
		srv := startServer(b)
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		start := time.Now()
		_, stop := startSim(b, srv, func(c *Config) { c.Count = n; c.Lifetime = 300 * time.Second; c.NotifyInterval = time.Second })
		elapsed := time.Since(start)
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "registrations/s")
		b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/float64(n)/1024, "heap-KiB/device")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/device")
		b.StopTimer()
		stop()
		srv.stop()
		b.StartTimer()
	}
}

// BenchmarkRegistrationDTLS is BenchmarkRegistration over DTLS with PSK
// (one handshake per device): the rate, and the heap and goroutines a
// device with a DTLS session costs, server side included.
// SIM_BENCH_DEVICES sets the population (default 300).
func BenchmarkRegistrationDTLS(b *testing.B) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("SIM_BENCH_DEVICES")); err == nil && v > 0 {
		n = v
	}
	keys := make(map[string][]byte, n)
	devs := make([]DeviceConfig, n)
	for i := range n {
		id := "dtls-" + strconv.Itoa(i)
		keys[id] = testKey
		devs[i] = DeviceConfig{Endpoint: id, PSKIdentity: id, PSK: testKey}
	}
	b.ReportAllocs()
	for b.Loop() {
		srv := startDTLSServer(b, dtlsOpts{keys: keys})
		runtime.GC()
		var m0 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		start := time.Now()
		_, stop := startSim(b, srv, func(c *Config) {
			c.Server = "coaps://" + srv.addr
			c.Devices, c.Count = devs, n
			c.Lifetime = 300 * time.Second
		})
		elapsed := time.Since(start)
		runtime.GC()
		var m1 runtime.MemStats
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "registrations/s")
		b.ReportMetric(float64(int64(m1.HeapInuse)-int64(m0.HeapInuse))/float64(n)/1024, "heap-KiB/device")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/device")
		b.StopTimer()
		stop()
		b.StartTimer()
	}
}
