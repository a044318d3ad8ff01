package firmware

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
)

// BenchmarkConcurrentPulls has 1,000 devices, each on a socket of its
// own, pull a 64 KiB package over CoAP at once, block by block at 1024
// bytes, and reports the heap the agent's side holds at its peak and
// the open file descriptors of the process at their peak (both ends: the
// devices' 1,000 sockets are in it). Run with
// -benchtime=1x; figures in docs/performance.md.
func BenchmarkConcurrentPulls(b *testing.B) {
	const devices, size = 1000, 64 << 10
	for range b.N {
		e := startBench(b, size)
		paths := make([]string, devices)
		for i := range paths {
			uri, err := e.svc.Grant(context.Background(), Grant{Tenant: "acme", DeviceID: fmt.Sprint(100 + i), OperationID: fmt.Sprint("op", i),
				Source: Source{BinaryID: e.bin.ID}, Scheme: "coap", Expires: time.Now().Add(time.Hour)})
			check(b, err)
			paths[i] = uri[len(e.svc.cfg.CoAPBase):]
		}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peak, peakFDs atomic.Uint64
		stop := make(chan struct{})
		var sampler sync.WaitGroup
		sampler.Go(func() {
			for {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
				if n := uint64(openFiles()); n > peakFDs.Load() {
					peakFDs.Store(n)
				}
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
		start := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		var busy atomic.Int64
		for _, p := range paths {
			wg.Go(func() {
				cc, err := udp.Dial(e.srv.Addr().String(), options.WithBlockwise(false, blockwise.SZX1024, time.Minute))
				if err != nil {
					failed.Add(1)
					return
				}
				defer cc.Close()
				var got []byte
				for num := uint32(0); ; {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					req, _ := cc.NewGetRequest(ctx, p)
					req.SetOptionUint32(0x17, num<<4|6)
					resp, err := cc.Do(req)
					cancel()
					if err != nil {
						failed.Add(1)
						return
					}
					if resp.Code() == codes.ServiceUnavailable {
						busy.Add(1)
						continue // a real device waits Max-Age; here at once
					}
					body, _ := resp.ReadBody()
					got = append(got, body...)
					blk, _ := resp.GetOptionUint32(0x17)
					if blk&8 == 0 {
						break
					}
					num++
				}
				if !bytes.Equal(got, e.data) {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(stop)
		sampler.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d of %d pulls failed", failed.Load(), devices)
		}
		b.ReportMetric(float64(peak.Load()-min(peak.Load(), before.HeapInuse))/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(devices*size)/took.Seconds()/(1<<20), "MiB/s")
		b.ReportMetric(took.Seconds(), "s/1000-pulls")
		b.ReportMetric(float64(busy.Load()), "5.03-answers")
		b.ReportMetric(float64(peakFDs.Load()), "peak-fds")
	}
}
