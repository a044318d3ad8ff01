package lwm2m

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	piondtls "github.com/pion/dtls/v3"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// The benchmarks below run server and device on one machine over
// loopback UDP; they measure a full CoAP exchange each.

func BenchmarkRegister(b *testing.B) {
	s, h := startServerB(b)
	d := newDevice(b, s.Addr())
	go func() {
		for range h.events { // drain hook calls
		}
	}()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i > 0 && i%30000 == 0 {
			// a fresh socket before the message IDs come round: the
			// server takes a message ID seen within the exchange
			// lifetime (247 s) for a duplicate
			_ = d.conn.Close()
			d = newDevice(b, s.Addr())
		}
		res, _ := d.register([]string{"ep=bench", "lt=300", "lwm2m=1.1"}, testLinks)
		if res.code != codes.Created {
			b.Fatalf("register: %v", res.code)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	s, h := startServerB(b)
	d := newDevice(b, s.Addr())
	go func() {
		for range h.events {
		}
	}()
	if res, _ := d.register([]string{"ep=bench", "lt=300", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
		b.Fatalf("register: %v", res.code)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Read(ctx, "bench", node.InstancePath(3, 0)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDTLSHandshakeRegister is a device's first contact over DTLS: a
// full PSK handshake (no session resumption) and a Register, from clients
// on two goroutines per core; client and server share the machine, so
// about half the CPU goes to the clients.
func BenchmarkDTLSHandshakeRegister(b *testing.B) {
	s, h := startServerB(b, func(c *Config) { c.SecureAddr, c.Keys = "127.0.0.1:0", keyFunc })
	go func() {
		for range h.events {
		}
	}()
	b.ReportAllocs()
	b.SetParallelism(2)
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, _, err := newSecureDevice(b, s.SecureAddr(), "id-1", testKeys["id-1"], piondtls.TLS_PSK_WITH_AES_128_CCM_8, false)
			if err != nil {
				b.Fatalf("handshake: %v", err)
			}
			ep := fmt.Sprintf("ep=dtls-%d", n.Add(1))
			if res, _ := d.register([]string{ep, "lt=300", "lwm2m=1.1"}, testLinks); res.code != codes.Created {
				b.Fatalf("register: %v", res.code)
			}
			_ = d.conn.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

func startServerB(b *testing.B, mods ...func(*Config)) (*Server, *recorder) {
	b.Helper()
	h := newRecorder()
	// one device sends every request: neither its datagrams nor its
	// Registers of one endpoint are limited
	cfg := Config{Addr: "127.0.0.1:0", Types: testTypes, MaxRegistrations: 1 << 22, PeerRate: -1, RegisterInterval: -1}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; close(h.events) })
	return s, h
}
