package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// Observer starts observations on a registered device; the LwM2M server
// is one.
type Observer interface {
	Observe(ctx context.Context, endpoint string, p node.Path) ([]node.Record, error)
}

// ValueSink records last known values; the first answer of an automatic
// observation goes there as well as through the mapper.
type ValueSink interface {
	Add(ctx context.Context, tenant, device string, recs []node.Record)
}

// Config wires a Pipeline.
type Config struct {
	Store store.Engine // required
	// Source gives the tenants' functionalities; nil means none (the
	// default mappings apply).
	Source Source
	// Decoder takes the values of decoder:<name> resources; with none,
	// such values raise the mapping alarm.
	Decoder Decoder
	// Values records the first answers of automatic observations.
	Values ValueSink
	Mapper MapperOptions
	Writer WriterOptions
	// Bundled says how values reach the bundled mapping and custom action
	// plugins (in process when its Client is nil) and how they are batched.
	Bundled BundledOptions
	// ObserveWorkers bound the automatic observations under way at once
	// (default 4); ObserveQueue bounds the registrations waiting for them
	// (default 1024); ObserveTimeout bounds each Observe (default 30 s).
	ObserveWorkers int
	ObserveQueue   int
	ObserveTimeout time.Duration
	Logger         *slog.Logger
}

// Stats counts what the pipeline did.
type Stats struct {
	Values      int64 // values taken (mapped, or queued for mapping)
	MapFailures int64 // batches not mapped (functionalities unavailable)
	Lost        int64 // outputs not queued because the caller gave up
	// BundledCalls counts the calls to the bundled plugins (a batch each),
	// BundledRetries those repeated after a failure that may pass, and
	// BundledFailed the values they did not map after every retry (each
	// device with a mapping alarm) or left unmapped at stop.
	BundledCalls, BundledRetries, BundledFailed int64
	Decodes                                     int64 // values handed to the decoder
	// AutoObserved counts the observations autoObserve started (at a
	// registration, an Update, or a change of the protocols), and
	// ObserveFails those that failed.
	AutoObserved, ObserveFails int64
	Writer                     WriterStats
}

// Pipeline is what every value a device reports goes through: the Mapper
// finds each value's functionality, decoder values go to the decoders,
// and the rest go in batches to the bundled mapping and custom action
// plugins; the Writer stores what comes back. It also starts the
// observations the functionalities ask for (autoObserve) on the devices
// that listen, once per registration and path.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	mapper  *Mapper
	writer  *Writer
	batcher *batcher

	mu       sync.RWMutex
	observer Observer
	mappers  *PluginMappers // nil without mapping plugins

	registered chan autoJob
	autoMu     sync.Mutex
	auto       map[string]*autoSet // by endpoint; see autoobserve.go
	stopped    chan struct{}       // closed when RunObservers has returned
	done       chan struct{}       // closed when RunWriter has returned

	values, mapFailures, lost, decodes, observed, observeFails atomic.Int64
}

// New returns a pipeline; run its writer with RunWriter and its automatic
// observations with RunObservers.
func New(cfg Config) *Pipeline {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ObserveWorkers <= 0 {
		cfg.ObserveWorkers = 4
	}
	if cfg.ObserveQueue <= 0 {
		cfg.ObserveQueue = 1024
	}
	if cfg.ObserveTimeout <= 0 {
		cfg.ObserveTimeout = 30 * time.Second
	}
	if cfg.Writer.Logger == nil {
		cfg.Writer.Logger = cfg.Logger
	}
	p := &Pipeline{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "pipeline"),
		mapper:     NewMapper(cfg.Source, cfg.Mapper),
		writer:     NewWriter(cfg.Store, cfg.Writer),
		registered: make(chan autoJob, cfg.ObserveQueue),
		auto:       map[string]*autoSet{},
		stopped:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	p.batcher = newBatcher(p.mapper, p.writer, cfg.Bundled, cfg.Logger)
	return p
}

// SetDecoder sets who takes the values of decoder:<name> resources; call
// it before values flow.
func (p *Pipeline) SetDecoder(d Decoder) {
	p.mu.Lock()
	p.cfg.Decoder = d
	p.mu.Unlock()
}

// SetPluginMappers sets the mapping plugins every batch of values also
// goes to; call it before values flow.
func (p *Pipeline) SetPluginMappers(m *PluginMappers) {
	p.mu.Lock()
	p.mappers = m
	p.mu.Unlock()
}

// Write queues outputs made elsewhere (mapping plugins) for the store.
func (p *Pipeline) Write(ctx context.Context, out Output) error { return p.writer.Add(ctx, out) }

// WriteAcked queues outputs made elsewhere (decoders) for the store and
// calls ack once they are durable (see Writer.AddAcked).
func (p *Pipeline) WriteAcked(ctx context.Context, out Output, ack func(stored bool)) error {
	return p.writer.AddAcked(ctx, out, ack)
}

// Mapper returns the pipeline's mapper.
func (p *Pipeline) Mapper() *Mapper { return p.mapper }

// SetObserver sets who starts automatic observations; call it before
// RunObservers. Without one, none are started.
func (p *Pipeline) SetObserver(o Observer) {
	p.mu.Lock()
	p.observer = o
	p.mu.Unlock()
}

// Stats returns the pipeline's counters.
func (p *Pipeline) Stats() Stats {
	return Stats{
		Values: p.values.Load(), MapFailures: p.mapFailures.Load(), Lost: p.lost.Load(),
		Decodes: p.decodes.Load(), AutoObserved: p.observed.Load(), ObserveFails: p.observeFails.Load(),
		BundledCalls: p.batcher.calls.Load(), BundledRetries: p.batcher.retries.Load(), BundledFailed: p.batcher.failed.Load(),
		Writer: p.writer.Stats(),
	}
}

// Handle takes a batch of a device's values: decoder values go to the
// decoder, the rest to the bundled plugins' batches. It blocks while
// their queue (or the writer's) is full, which holds the device's
// exchange back, until ctx ends.
func (p *Pipeline) Handle(ctx context.Context, in Input) {
	if len(in.Records) == 0 {
		return
	}
	j, decodes, err := p.mapper.route(ctx, in)
	if err != nil {
		p.mapFailures.Add(1)
		p.log.Error("values not mapped", "device", in.ID, "endpoint", in.Endpoint, "count", len(in.Records), "err", err)
		return
	}
	p.values.Add(int64(len(in.Records)))
	p.mu.RLock()
	mappers := p.mappers
	p.mu.RUnlock()
	if mappers != nil {
		if err := mappers.Queue(in); err != nil {
			p.log.Warn("values not given to the mapping plugins", "device", in.ID, "err", err)
		}
	}
	if len(decodes) > 0 {
		out := Output{Device: in.Device, Decodes: decodes}
		p.decode(ctx, &out)
		if err := p.writer.Add(ctx, out); err != nil {
			p.lost.Add(int64(out.Len()))
			p.log.Error("pipeline outputs lost: queue full until the exchange ended", "device", in.ID, "count", out.Len(), "err", err)
		}
	}
	if len(j.values) > 0 {
		if err := p.batcher.add(ctx, j); err != nil {
			p.lost.Add(int64(len(j.values)))
			p.log.Error("values lost: mapping queue full until the exchange ended", "device", in.ID, "count", len(j.values), "err", err)
		}
	}
}

// decode hands the raw values to the decoder; values it cannot take raise
// the mapping alarm, so that nothing is dropped unseen.
func (p *Pipeline) decode(ctx context.Context, out *Output) {
	reqs := out.Decodes
	out.Decodes = nil
	p.mu.RLock()
	dec := p.cfg.Decoder
	p.mu.RUnlock()
	var err error
	if dec == nil {
		err = fmt.Errorf("no decoder is configured")
	} else {
		err = dec.Queue(ctx, reqs)
	}
	if err == nil {
		p.decodes.Add(int64(len(reqs)))
		return
	}
	var refused *DecodesRefused
	if errors.As(err, &refused) {
		// the decoder raised the alarms of those it did not keep
		p.decodes.Add(int64(len(reqs) - refused.Refused))
		return
	}
	for _, r := range reqs {
		mappingError(out, textContext{value: r.Value, path: r.Path, time: r.Time}, fmt.Sprintf("decoder %q: %v", r.Decoder, err))
	}
}

// RunWriter maps values with the bundled plugins and stores outputs until
// ctx ends; then it maps what is queued, and drains the writer. It should
// outlive everything that calls Handle, and the bundled plugins'
// processes should outlive it.
func (p *Pipeline) RunWriter(ctx context.Context) {
	defer close(p.done)
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	go p.writer.Run(wctx)
	p.batcher.run(ctx)
	stopWriter()
	<-p.writer.Done()
}

// Done is closed when RunWriter has returned.
func (p *Pipeline) Done() <-chan struct{} { return p.done }
