package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/customactions"
	pmapping "github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
	pb "github.com/lwm2m-agent/lwm2m-agent/sdk/proto/lwm2m/plugin/v1"
)

// Client reaches the bundled mapping and custom action plugins: their
// processes through the plugin host, or their code in process. Its errors
// are retryable when plugins.IsRetryable says so.
type Client interface {
	Map(ctx context.Context, req *pb.MapRequest) (*pb.MapResponse, error)
	Run(ctx context.Context, req *pb.ActionRequest) (*pb.MapResponse, error)
}

// InProcess calls the bundled plugins' code directly, without a process
// or gRPC in between (--bundled-plugins inprocess).
type InProcess struct{}

// Map calls the mapping plugin's code.
func (InProcess) Map(ctx context.Context, req *pb.MapRequest) (*pb.MapResponse, error) {
	return pmapping.Server{}.Map(ctx, req)
}

// Run calls the custom action plugin's code.
func (InProcess) Run(ctx context.Context, req *pb.ActionRequest) (*pb.MapResponse, error) {
	return customactions.Server{}.Run(ctx, req)
}

// BundledOptions tune how values reach the bundled plugins; zero fields
// take defaults.
type BundledOptions struct {
	// Client reaches the plugins; nil calls them in process.
	Client Client
	// MaxBatch bounds the values of one call (512); MaxDelay how long a
	// batch waits to fill (5 ms).
	MaxBatch int
	MaxDelay time.Duration
	// Workers is how many batches are under way at once (4); each device
	// has one worker, so that its values are mapped, and its alarms
	// raised and cleared, in order.
	Workers int
	// Queue bounds the batches of devices waiting per worker (1024);
	// when full, the pipeline's Handle waits, holding the device back.
	Queue int
	// Attempts, Backoff and Timeout: a call that fails for a reason that
	// may pass (the plugin process restarting) is tried again after
	// Backoff, doubling, up to Attempts times (12 from 50 ms: about a
	// minute), each within Timeout (10 s).
	Attempts int
	Backoff  time.Duration
	Timeout  time.Duration
	// DrainTimeout bounds the mapping of what is queued at stop (10 s).
	DrainTimeout time.Duration
}

func (o BundledOptions) withDefaults() BundledOptions {
	if o.Client == nil {
		o.Client = InProcess{}
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Attempts <= 0 {
		o.Attempts = 12
	}
	if o.Backoff <= 0 {
		o.Backoff = 50 * time.Millisecond
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	return o
}

// retry is how mapJobs calls a plugin: once, or with retries.
type retry func(ctx context.Context, f func(ctx context.Context) error) error

func once(ctx context.Context, f func(ctx context.Context) error) error { return f(ctx) }

// batchRef names the value behind a request's value index.
type batchRef struct {
	out *Output
	v   *jobValue
}

// tenantRequests are the calls of one tenant's values in a batch, with
// the outputs of its devices.
type tenantRequests struct {
	tenant  string
	outs    map[string]*Output // by device ID
	order   []*Output
	mapReq  *pb.MapRequest
	mapRefs []batchRef
	actReq  *pb.ActionRequest
	actRefs []batchRef
	table   map[*rule]uint32 // index of a rule in the batch's table
	actTab  map[*rule]uint32
}

// mapJobs sends the values of jobs to the bundled plugins, one Map and
// one Run per tenant at most, and returns an output per device (in the
// order the devices came) and how many values were not mapped. A call
// that still fails after call's retries raises the mapping alarm on each
// device of it, naming the error. It fails only when ctx ends under way.
func (m *Mapper) mapJobs(ctx context.Context, c Client, jobs []job, call retry) ([]Output, int, error) {
	if call == nil {
		call = once
	}
	byTenant := map[string]*tenantRequests{}
	var tenants []*tenantRequests
	for ji := range jobs {
		j := &jobs[ji]
		tr := byTenant[j.Tenant]
		if tr == nil {
			tr = &tenantRequests{tenant: j.Tenant, outs: map[string]*Output{}}
			byTenant[j.Tenant] = tr
			tenants = append(tenants, tr)
		}
		out := tr.outs[j.ID]
		if out == nil {
			out = &Output{Device: j.Device}
			tr.outs[j.ID] = out
			tr.order = append(tr.order, out)
		}
		for vi := range j.values {
			v := &j.values[vi]
			if v.r.mapped {
				if tr.mapReq == nil {
					tr.mapReq, tr.table = &pb.MapRequest{}, map[*rule]uint32{}
				}
				idx := tableIndex(tr.table, &tr.mapReq.Functionalities, v.r)
				tr.mapReq.Values = append(tr.mapReq.Values, protoValue(j.Device, v, idx))
				tr.mapRefs = append(tr.mapRefs, batchRef{out, v})
			}
			if v.r.action {
				if tr.actReq == nil {
					tr.actReq, tr.actTab = &pb.ActionRequest{}, map[*rule]uint32{}
				}
				idx := tableIndex(tr.actTab, &tr.actReq.Functionalities, v.r)
				tr.actReq.Values = append(tr.actReq.Values, protoValue(j.Device, v, idx))
				tr.actRefs = append(tr.actRefs, batchRef{out, v})
			}
		}
	}
	var outs []Output
	failed := 0
	for _, tr := range tenants {
		if tr.mapReq != nil {
			var resp *pb.MapResponse
			err := call(ctx, func(ctx context.Context) error {
				var err error
				resp, err = c.Map(ctx, tr.mapReq)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, 0, err
				}
				failed += len(tr.mapRefs)
				failedBatch(tr.mapRefs, bundledMapping, err)
			} else {
				m.convert(tr, resp, tr.mapRefs)
			}
		}
		if tr.actReq != nil {
			var resp *pb.MapResponse
			err := call(ctx, func(ctx context.Context) error {
				var err error
				resp, err = c.Run(ctx, tr.actReq)
				return err
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil, 0, err
				}
				failed += len(tr.actRefs)
				failedBatch(tr.actRefs, bundledActions, err)
			} else {
				m.convert(tr, resp, tr.actRefs)
			}
		}
		for _, o := range tr.order {
			outs = append(outs, *o)
		}
	}
	return outs, failed, nil
}

// The bundled plugins as the mapping alarm names them.
const (
	bundledMapping = "mapping"
	bundledActions = "customactions"
)

// failedBatch raises the mapping alarm once per device of a call that
// failed for good.
func failedBatch(refs []batchRef, plugin string, err error) {
	seen := map[*Output]int{}
	for _, r := range refs {
		seen[r.out]++
	}
	for _, r := range refs {
		n, ok := seen[r.out]
		if !ok {
			continue
		}
		delete(seen, r.out)
		pluginFailed(r.out, DecodeRequest{Device: r.out.Device, Decoder: plugin, Time: r.v.t, Path: r.v.rec.Path},
			"bundled plugin", fmt.Sprintf("%v (%d values)", err, n))
	}
}

// tableIndex is r's index in a batch's table, adding it on first use:
// a batch carries each functionality once.
func tableIndex(idx map[*rule]uint32, table *[][]byte, r *rule) uint32 {
	if i, ok := idx[r]; ok {
		return i
	}
	i := uint32(len(*table))
	*table = append(*table, r.raw)
	idx[r] = i
	return i
}

func protoValue(d Device, v *jobValue, fn uint32) *pb.ResourceValue {
	return &pb.ResourceValue{
		Tenant: d.Tenant, DeviceId: d.ID, Endpoint: d.Endpoint, Path: v.rec.Path.String(),
		Value: sdk.ProtoValue(v.rec.Value), Time: timestamppb.New(v.t), Functionality: fn,
	}
}

// convert adds what a plugin answered for a tenant's batch to the
// devices' outputs: items without a time take the first value's, and
// every item goes to the output of its source.
func (m *Mapper) convert(tr *tenantRequests, resp *pb.MapResponse, refs []batchRef) {
	first := refs[0]
	outOf := func(source string) *Output {
		if o := tr.outs[source]; o != nil {
			return o
		}
		return first.out
	}
	at := func(ts *timestamppb.Timestamp) time.Time {
		if ts == nil || ts.CheckValid() != nil {
			return first.v.t
		}
		return ts.AsTime()
	}
	for _, ms := range resp.GetMeasurements() {
		frag := ms.GetFragment()
		if frag == "" {
			frag = ms.GetType()
		}
		addMeasurementFragment(outOf(ms.GetSource()), ms.GetType(), frag, ms.GetSeries(), ms.GetUnit(), ms.GetValue(), at(ms.GetTime()))
	}
	for _, e := range resp.GetEvents() {
		out := outOf(e.GetSource())
		out.Events = append(out.Events, store.Event{Source: out.ID, Type: e.GetType(), Text: e.GetText(), Time: at(e.GetTime())})
	}
	for _, a := range resp.GetAlarms() {
		out := outOf(a.GetSource())
		c := AlarmChange{Clear: a.GetStatus() == "CLEARED", Alarm: store.Alarm{
			Source: out.ID, Type: a.GetType(), Severity: a.GetSeverity(), Status: a.GetStatus(), Text: a.GetText(), Time: at(a.GetTime()),
		}}
		if c.Clear {
			c.Alarm = store.Alarm{Source: out.ID, Type: a.GetType(), Time: at(a.GetTime())}
		}
		if c, keep := m.alarmChange(tr.tenant, c); keep {
			out.Alarms = append(out.Alarms, c)
		}
	}
	for _, u := range resp.GetInventoryUpdates() {
		out := outOf(u.GetDevice())
		var frags map[string]any
		if err := json.Unmarshal(u.GetFragmentsJson(), &frags); err != nil {
			mappingError(out, textContext{value: first.v.rec.Value, path: first.v.rec.Path, time: first.v.t},
				fmt.Sprintf("inventory update of the bundled plugin: %v", err))
			continue
		}
		if out.Inventory == nil {
			out.Inventory = &InventoryUpdate{}
		}
		for frag, fields := range frags {
			if fm, ok := fields.(map[string]any); ok {
				for k, v := range fm {
					out.Inventory.set(frag, k, v)
				}
			}
		}
		out.Inventory.Rename = out.Inventory.Rename || u.GetNameFromHardware()
	}
	for _, e := range resp.GetErrors() {
		i := int(e.GetIndex())
		if i >= len(refs) {
			i = 0
		}
		r := refs[i]
		mappingError(r.out, textContext{value: r.v.rec.Value, path: r.v.rec.Path, time: r.v.t}, e.GetMessage())
	}
}

// batcher gathers the pipeline's jobs into batches for the bundled
// plugins, one worker per shard of devices, and hands the outputs to the
// writer.
type batcher struct {
	m      *Mapper
	w      *Writer
	o      BundledOptions
	log    *slog.Logger
	seed   maphash.Seed
	shards []chan job

	calls, retries, failed atomic.Int64
}

func newBatcher(m *Mapper, w *Writer, o BundledOptions, log *slog.Logger) *batcher {
	o = o.withDefaults()
	b := &batcher{m: m, w: w, o: o, log: log.With("component", "bundled-plugins"), seed: maphash.MakeSeed(), shards: make([]chan job, o.Workers)}
	for i := range b.shards {
		b.shards[i] = make(chan job, o.Queue)
	}
	return b
}

// add queues a job on its device's worker; it blocks while that queue is
// full, until ctx ends.
func (b *batcher) add(ctx context.Context, j job) error {
	ch := b.shards[maphash.String(b.seed, j.ID)%uint64(len(b.shards))]
	select {
	case ch <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run maps batches until ctx ends, then maps what is queued within
// DrainTimeout (the plugins and the writer still run meanwhile).
func (b *batcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, ch := range b.shards {
		wg.Go(func() { b.work(ctx, ch) })
	}
	wg.Wait()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.o.DrainTimeout)
	defer cancel()
	for _, ch := range b.shards {
		var jobs []job
		n := 0
		for more := true; more; {
			select {
			case j := <-ch:
				jobs = append(jobs, j)
				n += len(j.values)
				if n >= b.o.MaxBatch {
					b.flush(dctx, jobs)
					jobs, n = nil, 0
				}
			default:
				more = false
			}
		}
		if len(jobs) > 0 {
			b.flush(dctx, jobs)
		}
	}
}

func (b *batcher) work(ctx context.Context, ch chan job) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first job
		select {
		case <-ctx.Done():
			return
		case first = <-ch:
		}
		jobs := []job{first}
		n := len(first.values)
		timer.Reset(b.o.MaxDelay)
	gather:
		for n < b.o.MaxBatch {
			select {
			case j := <-ch:
				jobs = append(jobs, j)
				n += len(j.values)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		// A stop does not cut a batch under way: its values are mapped
		// and written as the drain's would be, its retries bounded by
		// DrainTimeout from the stop on.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stop := context.AfterFunc(ctx, func() { time.AfterFunc(b.o.DrainTimeout, cancel) })
		b.flush(fctx, jobs)
		stop()
		cancel()
	}
}

// flush maps a batch, retrying calls that may pass, and writes the
// outputs.
func (b *batcher) flush(ctx context.Context, jobs []job) {
	n := 0
	for _, j := range jobs {
		n += len(j.values)
	}
	retries := DecoderOptions{Attempts: b.o.Attempts, Backoff: b.o.Backoff, Timeout: b.o.Timeout}
	call := func(ctx context.Context, f func(ctx context.Context) error) error {
		b.calls.Add(1)
		err := retries.withRetries(ctx, &b.retries, f)
		if err != nil && ctx.Err() == nil {
			b.log.Warn("values not mapped by the bundled plugins", "count", n, "err", err)
		}
		return err
	}
	outs, failed, err := b.m.mapJobs(ctx, b.o.Client, jobs, call)
	if err != nil {
		b.failed.Add(int64(n))
		b.log.Error("values not mapped: stopped under way", "count", n, "err", err)
		return
	}
	b.failed.Add(int64(failed))
	// a device's outputs keep the time its first values were handed over
	at := make(map[string]time.Time, len(jobs))
	for _, j := range jobs {
		if _, ok := at[j.ID]; !ok {
			at[j.ID] = j.at
		}
	}
	for _, o := range outs {
		if o.Len() == 0 {
			continue
		}
		if err := b.w.addAt(ctx, o, at[o.ID], nil); err != nil {
			b.failed.Add(int64(o.Len()))
			b.log.Error("pipeline outputs lost: queue full until the stop", "device", o.ID, "count", o.Len(), "err", err)
		}
	}
}
