package lwm2m

import (
	"context"
	"testing"

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
	for b.Loop() {
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

func startServerB(b *testing.B) (*Server, *recorder) {
	b.Helper()
	h := newRecorder()
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Types: testTypes}, h)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.Serve(ctx); close(done) }()
	b.Cleanup(func() { cancel(); <-done; close(h.events) })
	return s, h
}
