package session

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/rawcoap"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/cache"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/storetest"
	"github.com/plgd-dev/go-coap/v3/message/codes"
)

// BenchmarkRegister is a known NO_SEC device's plain Register, over
// loopback UDP, through the LwM2M server and these hooks, to the store
// (the embedded engine), with and without the store cache: the
// Register's lookups, the state and event the writer stores before the
// answer, and the answer.
func BenchmarkRegister(b *testing.B) {
	for _, name := range []string{"engine", "cached"} {
		b.Run(name, func(b *testing.B) {
			srv, _ := startRegisterBench(b, name == "cached", 1)
			msg := rawcoap.Post(1, []byte{1}, "rd", []string{"ep=plain-0", "lt=300", "lwm2m=1.1"}, []byte("</3/0>"))
			b.ReportAllocs()
			for b.Loop() {
				if ans := rawcoap.Exchange(b, srv.Addr(), msg); len(ans) < 2 || codes.Code(ans[1]) != codes.Created {
					b.Fatalf("register answered % x", ans)
				}
			}
		})
	}
}

// BenchmarkRegisterParallel is BenchmarkRegister from 16 devices at once,
// each on a socket of its own registering again as soon as it has its
// answer: the load of many devices registering together, whose state
// writes share the writer's store rounds.
func BenchmarkRegisterParallel(b *testing.B) {
	const clients = 16
	for _, name := range []string{"engine", "cached"} {
		b.Run(name, func(b *testing.B) {
			srv, state := startRegisterBench(b, name == "cached", clients)
			registerParallel(b, srv, state, clients, func(c int, _ int64) string { return fmt.Sprintf("plain-%d", c) })
		})
	}
}

// BenchmarkRegisterNewParallel is BenchmarkRegisterParallel with a new
// endpoint in every Register, auto-registered through the store cache:
// the device created with its first state and event, which the answer
// waits for.
func BenchmarkRegisterNewParallel(b *testing.B) {
	st := cache.New(cache.Config{Size: 1000}).Wrap(storetest.OpenTest(b))
	a := startAgent(b, st, st, 10*time.Millisecond, autoRegister)
	registerParallel(b, a.srv, a.state, 16, func(_ int, n int64) string { return fmt.Sprintf("new-%d", n) })
}

// registerParallel sends b.N Registers from clients sockets, each
// registering the endpoint ep names as soon as its previous one is
// answered 2.01, and reports the rate and the Registers a store round.
func registerParallel(b *testing.B, srv *lwm2m.Server, state *StateWriter, clients int, ep func(client int, n int64) string) {
	conns := make([]*net.UDPConn, clients)
	for c := range conns {
		conn, err := net.DialUDP("udp", nil, srv.Addr().(*net.UDPAddr))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conns[c] = conn
	}
	rounds := state.Flushes()
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for c, conn := range conns {
		wg.Go(func() {
			for mid := uint16(1); ; mid++ {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				query := []string{"ep=" + ep(c, n), "lt=300", "lwm2m=1.1"}
				if err := registerOn(conn, rawcoap.Post(mid, []byte{byte(c)}, "rd", query, []byte("</3/0>")), mid); err != nil {
					b.Errorf("client %d: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registers/s")
	b.ReportMetric(float64(b.N)/float64(max(state.Flushes()-rounds, 1)), "registers/round")
}

// registerOn sends a Register on conn and waits for the ACK of message
// ID mid, which must be 2.01.
func registerOn(conn *net.UDPConn, msg []byte, mid uint16) error {
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("no answer to register %d: %w", mid, err)
		}
		if n < 4 || buf[0]>>4&3 != 2 || uint16(buf[2])<<8|uint16(buf[3]) != mid {
			continue // not the ACK of this request
		}
		if codes.Code(buf[1]) != codes.Created {
			return fmt.Errorf("register %d answered %v", mid, codes.Code(buf[1]))
		}
		return nil
	}
}

// startRegisterBench serves the LwM2M server with these hooks over a test
// store that holds NO_SEC devices plain-0 to plain-(devices-1), until the
// benchmark ends.
func startRegisterBench(b *testing.B, cached bool, devices int) (*lwm2m.Server, *StateWriter) {
	b.Helper()
	var st store.Engine = storetest.OpenTest(b)
	if cached {
		st = cache.New(cache.Config{Size: 1000}).Wrap(st)
	}
	createNoSecDevices(b, st, devices)
	a := startAgent(b, st, st, 10*time.Millisecond, nil)
	return a.srv, a.state
}
