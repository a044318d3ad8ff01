package ops

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// PostOpDescription is the description of every operation queued from a
// tenant's post-registration commands, so that an operator can tell them
// from the ones a person queued.
const PostOpDescription = "Post-registration operation"

// PostOpsConfig wires a PostOps.
type PostOpsConfig struct {
	Store store.Engine
	// Queue bounds the registrations waiting for their operations; 4096
	// when 0.
	Queue int
	// Workers store operations for that many registrations at once; 2
	// when 0.
	Workers int
	// Wait is the longest a registration waits for room in a full queue
	// before its post-registration operations are skipped (and logged);
	// 1 s when 0. It is time the device's next message waits.
	Wait time.Duration
	// StoreTimeout bounds the store calls for one registration; 10 s when 0.
	StoreTimeout time.Duration
	Logger       *slog.Logger
}

type postReq struct {
	tenant, device string
	ready          func()
}

// PostOps queues a tenant's post-registration commands (PUT
// /lwm2m/postoperations) as ordinary operations of each device that
// registers, in their order, before the device's operations are sent.
// The store work runs on its own goroutines, so a device's exchange never
// waits for it; the queue between is bounded.
type PostOps struct {
	cfg PostOpsConfig
	log *slog.Logger
	in  chan postReq

	created, skipped atomic.Int64
}

// NewPostOps returns a PostOps; call Run to start its workers.
func NewPostOps(cfg PostOpsConfig) *PostOps {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.Wait <= 0 {
		cfg.Wait = time.Second
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &PostOps{cfg: cfg, log: cfg.Logger.With("component", "postops"), in: make(chan postReq, cfg.Queue)}
}

// Registered queues the device's post-registration operations; ready is
// called once they are stored, or at once when the queue stays full for
// PostOpsConfig.Wait (the operations are then skipped, and logged).
func (p *PostOps) Registered(tenant, deviceID string, ready func()) {
	req := postReq{tenant: tenant, device: deviceID, ready: ready}
	select {
	case p.in <- req:
		return
	default:
	}
	t := time.NewTimer(p.cfg.Wait)
	defer t.Stop()
	select {
	case p.in <- req:
	case <-t.C:
		p.skipped.Add(1)
		p.log.Error("post-registration operations skipped: queue full", "tenant", tenant, "device", deviceID, "queue", cap(p.in))
		ready()
	}
}

// Created counts the operations queued so far; Skipped counts the
// registrations whose post-registration operations were not queued.
func (p *PostOps) Created() int64 { return p.created.Load() }
func (p *PostOps) Skipped() int64 { return p.skipped.Load() }

// Run serves registrations until ctx ends. Registrations still queued
// then are let through without their operations: the agent is stopping.
func (p *PostOps) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case req := <-p.in:
					p.queue(ctx, req)
				}
			}
		})
	}
	wg.Wait()
	for {
		select {
		case req := <-p.in:
			req.ready()
		default:
			return
		}
	}
}

// queue stores the operations of one registration, then lets the runner
// know of the device. A failure is logged and the device is served
// without them: the registration itself succeeded.
func (p *PostOps) queue(ctx context.Context, req postReq) {
	defer req.ready()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StoreTimeout)
	defer cancel()
	// made when a line is logged, not for every registration
	log := func() *slog.Logger { return p.log.With("tenant", req.tenant, "device", req.device) }
	cmds, err := p.cfg.Store.PostOperations(ctx, req.tenant)
	if err != nil {
		log().Error("post-registration operations not queued", "err", err)
		return
	}
	if len(cmds) == 0 {
		return
	}
	ops := make([]store.Operation, len(cmds))
	for i, c := range cmds {
		ops[i] = store.Operation{
			DeviceID: req.device, HasCommand: true, Text: c,
			Fragments: map[string]any{"description": PostOpDescription},
		}
	}
	if _, err := p.cfg.Store.CreateOperations(ctx, req.tenant, ops); err != nil {
		log().Error("post-registration operations not queued", "operations", len(ops), "err", err)
		return
	}
	p.created.Add(int64(len(ops)))
	log().Debug("post-registration operations queued", "operations", len(ops))
}
