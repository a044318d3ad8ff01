package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// The types callers exchange with plugins; they are the SDK's, so a
// plugin and the agent share one definition.
type (
	ResourceValue   = sdk.ResourceValue
	Result          = sdk.Result
	Measurement     = sdk.Measurement
	Event           = sdk.Event
	Alarm           = sdk.Alarm
	InventoryUpdate = sdk.InventoryUpdate
	Operation       = sdk.Operation
	ValueError      = sdk.ValueError
	ActionRequest   = sdk.ActionRequest
	DecodeRequest   = sdk.DecodeRequest
	DecodeResult    = sdk.DecodeResult
	DataFragment    = sdk.DataFragment
)

// Errors of a Host's calls.
var (
	// ErrUnavailable: the plugin cannot answer now (not running,
	// restarting, unreachable or timed out). Retry later.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrUnknownPlugin: no plugin of that name and kind is configured.
	ErrUnknownPlugin = errors.New("unknown plugin")
	// ErrClosed: the host is closed.
	ErrClosed = errors.New("plugin host closed")
)

// IsRetryable reports whether err means the same input may succeed later
// (the plugin was down, restarting, slow or temporarily failing), so the
// caller should keep the input and retry instead of recording a failure.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, sdk.ErrTemporary)
}

// backend is one configured plugin, however it is reached.
type backend interface {
	// impl returns the current client (sdk.Mapper, sdk.CustomAction or
	// sdk.DecoderClient), or an error wrapping ErrUnavailable.
	impl() (any, error)
	// failed tells the backend a call failed: timeout says it ran out of
	// time, which hints at a hung process.
	failed(timeout bool)
	// succeeded tells the backend a call was answered.
	succeeded()
	up() bool
	pid() int
	via() string
	close()
}

type entry struct {
	spec Spec
	b    backend
	c    *counters
	// iso is held for reading by every call, and for writing by a call
	// that must run alone (DecodeEach proving a value at fault).
	iso sync.RWMutex
}

// Host owns the configured plugins: it starts and supervises plugin
// processes, dials plugin services, and calls them. Its methods are safe
// for concurrent use. Close (or the end of the context given to New) stops
// everything it started.
type Host struct {
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	plugins map[string]*entry
	wg      sync.WaitGroup
	once    sync.Once
}

// New starts every plugin of cfg (cfg must have passed Validate, as
// LoadConfig does) and returns when each process plugin has made its
// first start attempt. A plugin that failed to start is retried in the
// background; calls to it fail with ErrUnavailable meanwhile.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Host, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &Host{log: log.With("component", "plugins"), ctx: ctx, cancel: cancel, plugins: map[string]*entry{}}
	var started []chan struct{}
	for _, s := range cfg.Plugins {
		e := &entry{spec: s, c: &counters{}}
		l := h.log.With("plugin", s.Name, "kind", s.Kind)
		switch {
		case s.Path != "":
			p := newProcess(s, l, e.c)
			first := make(chan struct{})
			started = append(started, first)
			h.wg.Go(func() { p.supervise(ctx, first) })
			e.b = p
		case s.Address != "":
			r, err := newRemote(s)
			if err != nil {
				h.Close()
				return nil, fmt.Errorf("plugin %s: %w", s.Name, err)
			}
			e.b = r
		case s.URL != "":
			e.b = newHTTPBackend(s)
		}
		h.plugins[s.Name] = e
	}
	for _, ch := range started {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	return h, nil
}

// Close stops every plugin process, closes connections and waits for the
// supervising goroutines; calls after Close fail with ErrClosed.
func (h *Host) Close() {
	h.once.Do(func() {
		h.cancel()
		h.wg.Wait()
		for _, e := range h.plugins {
			if e.b != nil {
				e.b.close()
			}
		}
	})
}

// Names returns the names of the plugins of a kind, sorted: those device
// protocols and the plugins file can refer to. With kind "" it returns
// every plugin, the bundled ones too.
func (h *Host) Names(kind string) []string {
	var out []string
	for n, e := range h.plugins {
		if kind == "" || e.spec.Kind == kind && !e.spec.Bundled {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Stats returns the counters of every plugin, sorted by name.
func (h *Host) Stats() []Stats {
	out := make([]Stats, 0, len(h.plugins))
	for _, n := range h.Names("") {
		e := h.plugins[n]
		s := Stats{Name: n, Kind: e.spec.Kind, Via: e.b.via(), Up: e.b.up(), PID: e.b.pid()}
		e.c.fill(&s)
		out = append(out, s)
	}
	return out
}

// Collector returns a Prometheus collector of the plugins' counters
// (lwm2m_agent_plugin_calls_total, _errors_total, _restarts_total, _up,
// _process_id of plugin processes, and _call_duration_seconds, labelled
// plugin and kind).
func (h *Host) Collector() prometheus.Collector { return collector{h} }

// call runs fn with the named plugin's client under its timeout, and
// counts it.
func (h *Host) call(ctx context.Context, name, kind string, bundled bool, fn func(ctx context.Context, impl any) error) error {
	e, err := h.lookup(name, kind, bundled)
	if err != nil {
		return err
	}
	_, err = h.invoke(ctx, e, false, fn)
	return err
}

func (h *Host) lookup(name, kind string, bundled bool) (*entry, error) {
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	e, ok := h.plugins[name]
	if !ok || e.spec.Kind != kind || e.spec.Bundled != bundled {
		return nil, fmt.Errorf("%w: %s %q", ErrUnknownPlugin, kind, name)
	}
	return e, nil
}

// attempt is how a call went, beyond its error: which process it
// reached, and whether it ran out of time.
type attempt struct {
	reached  bool   // the plugin was called
	gen      uint64 // the plugin process's generation (0: not a process)
	timedOut bool
}

// invoke runs fn with e's client under its timeout, and counts it. With
// alone, no other call to the plugin is under way meanwhile, so that what
// happens to the plugin is this call's doing.
func (h *Host) invoke(ctx context.Context, e *entry, alone bool, fn func(ctx context.Context, impl any) error) (attempt, error) {
	name := e.spec.Name
	var a attempt
	if alone {
		e.iso.Lock()
		defer e.iso.Unlock()
		// a process that died of an earlier call, and is not yet replaced,
		// must not be taken for one this call killed
		if err := h.settle(ctx, e); err != nil {
			return a, err
		}
	} else {
		e.iso.RLock()
		defer e.iso.RUnlock()
	}
	start := time.Now()
	var impl any
	var err error
	if p, ok := e.b.(*process); ok {
		impl, a.gen, err = p.current()
	} else {
		impl, err = e.b.impl()
	}
	if err != nil {
		e.c.observe(time.Since(start), true)
		return a, fmt.Errorf("plugin %s: %w", name, err)
	}
	a.reached = true
	cctx, cancel := context.WithTimeout(ctx, time.Duration(e.spec.Timeout))
	err = fn(cctx, impl)
	// gRPC may report its deadline a moment before the context's own timer
	// fires, so its status counts as a timeout too.
	a.timedOut = err != nil && ctx.Err() == nil &&
		(cctx.Err() == context.DeadlineExceeded || status.Code(err) == codes.DeadlineExceeded)
	cancel()
	e.c.observe(time.Since(start), err != nil)
	switch {
	case err == nil:
		e.b.succeeded()
		return a, nil
	case a.timedOut:
		e.b.failed(true)
		return a, fmt.Errorf("plugin %s: %w: no answer within %v", name, ErrUnavailable, time.Duration(e.spec.Timeout))
	case errors.Is(err, sdk.ErrTemporary):
		e.b.failed(false)
		return a, fmt.Errorf("plugin %s: %w: %w", name, ErrUnavailable, err)
	}
	return a, fmt.Errorf("plugin %s: %w", name, err)
}

// Map sends a batch of values to the mapping plugin name.
func (h *Host) Map(ctx context.Context, name string, values []ResourceValue) (Result, error) {
	var res Result
	err := h.call(ctx, name, sdk.KindMapping, false, func(ctx context.Context, impl any) error {
		var err error
		res, err = impl.(sdk.Mapper).Map(ctx, values)
		return err
	})
	return res, err
}

// Run runs a custom action of the plugin name over a batch of values.
func (h *Host) Run(ctx context.Context, name string, req ActionRequest) (Result, error) {
	var res Result
	err := h.call(ctx, name, sdk.KindCustomAction, false, func(ctx context.Context, impl any) error {
		var err error
		res, err = impl.(sdk.CustomAction).Run(ctx, req)
		return err
	})
	return res, err
}

// Decode decodes one value with the decoder name. A result with Success
// false is the decoder's verdict on the bytes (not retryable); an error is
// a failure to get a verdict (see IsRetryable).
func (h *Host) Decode(ctx context.Context, name string, req DecodeRequest) (DecodeResult, error) {
	var res DecodeResult
	err := h.call(ctx, name, sdk.KindDecoder, false, func(ctx context.Context, impl any) error {
		var err error
		res, err = impl.(sdk.Decoder).Decode(ctx, req)
		return err
	})
	return res, err
}

// DecodeBatch decodes several values with the decoder name in one round
// trip; it returns one result per request, in order.
func (h *Host) DecodeBatch(ctx context.Context, name string, reqs []DecodeRequest) ([]DecodeResult, error) {
	var res []DecodeResult
	err := h.call(ctx, name, sdk.KindDecoder, false, func(ctx context.Context, impl any) error {
		var err error
		res, err = impl.(sdk.DecoderClient).DecodeBatch(ctx, reqs)
		return err
	})
	return res, err
}

// MapBundled sends a batch to the bundled mapping plugin name (a spec with
// Bundled set), under the same timeout, counters and restarts as any
// plugin; errors as for Map.
func (h *Host) MapBundled(ctx context.Context, name string, req *pb.MapRequest) (*pb.MapResponse, error) {
	var resp *pb.MapResponse
	err := h.call(ctx, name, sdk.KindMapping, true, func(ctx context.Context, impl any) error {
		var err error
		resp, err = impl.(pb.MappingClient).Map(ctx, req)
		return bundledErr(ctx, "map", err)
	})
	return resp, err
}

// RunBundled sends a batch to the bundled custom action plugin name;
// errors as for Run.
func (h *Host) RunBundled(ctx context.Context, name string, req *pb.ActionRequest) (*pb.MapResponse, error) {
	var resp *pb.MapResponse
	err := h.call(ctx, name, sdk.KindCustomAction, true, func(ctx context.Context, impl any) error {
		var err error
		resp, err = impl.(pb.CustomActionClient).Run(ctx, req)
		return bundledErr(ctx, "run", err)
	})
	return resp, err
}

// bundledErr marks the gRPC failures that may pass (the process going
// away under the call, a full transport) with sdk.ErrTemporary, as the
// SDK's clients do, so that callers retry them.
func bundledErr(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		return fmt.Errorf("%s: %w: %w", method, sdk.ErrTemporary, err)
	case codes.Canceled:
		if ctx.Err() == nil {
			return fmt.Errorf("%s: %w: %w", method, sdk.ErrTemporary, err)
		}
	}
	return fmt.Errorf("%s: %w", method, err)
}
