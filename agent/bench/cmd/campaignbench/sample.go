package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/bench/machine"
)

// sampler follows the agent's process and metrics during the campaign:
// peaks of its resident set, goroutines and firmware transfers, and the
// CPU of the agent and the simulators.
type sampler struct {
	pid    int
	sims   []*exec.Cmd
	metric func(context.Context, string) (float64, error)

	mu                                      sync.Mutex
	start                                   time.Time
	cpu0, simCPU0                           float64
	cpu1, simCPU1                           float64
	end                                     time.Time
	peakRSS, hwm                            int64
	goroutines0, goroutines, peakGoroutines float64
	peakTransfers                           float64
	peakHeap                                float64
}

func newSampler(pid int, sims []*exec.Cmd, metric func(context.Context, string) (float64, error)) *sampler {
	return &sampler{pid: pid, sims: sims, metric: metric, goroutines0: -1}
}

// run samples every period until ctx ends, and once more then.
func (s *sampler) run(ctx context.Context, period time.Duration) {
	s.mu.Lock()
	s.start, s.cpu0, s.simCPU0 = time.Now(), machine.CPUSeconds(s.pid), s.simCPU()
	s.mu.Unlock()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		s.sample(ctx)
		select {
		case <-ctx.Done():
			s.sample(context.Background())
			return
		case <-t.C:
		}
	}
}

func (s *sampler) simCPU() float64 {
	var sum float64
	for _, c := range s.sims {
		sum += machine.CPUSeconds(c.Process.Pid)
	}
	return sum
}

func (s *sampler) sample(ctx context.Context) {
	rss, hwm, _ := memory(s.pid)
	g, gerr := s.metric(ctx, "go_goroutines")
	tr, terr := s.metric(ctx, "lwm2m_agent_firmware_transfers")
	heap, herr := s.metric(ctx, "go_memstats_heap_alloc_bytes")
	cpu, sims := machine.CPUSeconds(s.pid), s.simCPU()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.end, s.cpu1, s.simCPU1 = time.Now(), cpu, sims
	s.peakRSS, s.hwm = max(s.peakRSS, rss), max(s.hwm, hwm)
	if gerr == nil {
		if s.goroutines0 < 0 {
			s.goroutines0 = g
		}
		s.goroutines, s.peakGoroutines = g, max(s.peakGoroutines, g)
	}
	if terr == nil {
		s.peakTransfers = max(s.peakTransfers, tr)
	}
	if herr == nil {
		s.peakHeap = max(s.peakHeap, heap)
	}
}

type cpuUse struct{ agent, sims, wall float64 }

func (s *sampler) cpu() cpuUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cpuUse{agent: s.cpu1 - s.cpu0, sims: s.simCPU1 - s.simCPU0, wall: max(s.end.Sub(s.start).Seconds(), 1e-3)}
}

// memory reads the resident set and its high-water mark of process pid,
// in bytes.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kib, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kib << 10
		case "VmHWM:":
			hwm = kib << 10
		}
	}
	return rss, hwm, nil
}

// footprint is the agent's resident set, live heap and store on disk
// at a moment.
type footprint struct{ rss, heap, disk int64 }

// footprint lets the agent collect its garbage, then reads its resident
// set and the size of its data directory.
func (r *run) footprint(ctx context.Context) (footprint, error) {
	// a heap profile with gc=1 makes the agent collect
	if req, err := http.NewRequestWithContext(ctx, "GET", r.agent.Pprof+"/debug/pprof/heap?gc=1", nil); err == nil {
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	rss, _, err := memory(r.agent.Cmd.Process.Pid)
	if err != nil {
		return footprint{}, err
	}
	heap, err := r.metric(ctx, "go_memstats_heap_alloc_bytes")
	if err != nil {
		return footprint{}, err
	}
	disk, err := machine.DirSize(filepath.Join(r.agent.Dir, "data"))
	return footprint{rss: rss, heap: int64(heap), disk: disk}, err
}
