package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// DecodeHost is what decodes values and runs custom actions: the plugin
// host.
type DecodeHost interface {
	// DecodeEach answers each value on its own: a value that makes the
	// decoder fail does not fail the others of its batch.
	DecodeEach(ctx context.Context, name string, reqs []plugins.DecodeRequest) []plugins.Outcome
	Run(ctx context.Context, name string, req plugins.ActionRequest) (plugins.Result, error)
	// Names lists the configured plugins of a kind.
	Names(kind string) []string
}

// OutputSink takes what plugins produced: the pipeline's writer.
type OutputSink interface {
	Write(ctx context.Context, out Output) error
}

// DecoderSink is an OutputSink that also says when an output is stored
// (the pipeline): a raw value leaves the decode backlog only once what it
// became is durable.
type DecoderSink interface {
	OutputSink
	WriteAcked(ctx context.Context, out Output, ack func(stored bool)) error
}

// DecoderOptions tune a PluginDecoder and PluginMappers; zero fields mean
// the defaults.
type DecoderOptions struct {
	Queue    int           // values waiting for the mapping plugins at most (10,000)
	Batch    int           // values per call (64)
	Workers  int           // calls under way at once, per plugin (2)
	Attempts int           // tries of a batch of the mapping plugins before it fails (8)
	Backoff  time.Duration // first wait after a retryable failure, doubling (200 ms)
	Timeout  time.Duration // per call (10 s)
	Logger   *slog.Logger

	// Backlog keeps the values of decoders and custom action plugins
	// until they are decoded; NewPluginDecoder needs it.
	Backlog store.DecodeBacklog
	// MaxWaiting bounds the values waiting per tenant (100,000): more are
	// dropped, each device told by a mapping alarm.
	MaxWaiting int
	// RetryFor is how long a value is retried while its plugin fails
	// for a reason that may pass (24 h); then it is dropped with a
	// mapping alarm.
	RetryFor time.Duration
	// MaxBackoff caps the doubling wait between the tries of a plugin
	// that keeps failing (1 min).
	MaxBackoff time.Duration
	// Lease is how long a worker holds the values it took before another
	// may take them (5 min): longer than a call and the storing of what
	// it returned.
	Lease time.Duration
	// Poll is how often an idle worker looks for values due again (1 s);
	// a value appended wakes it at once.
	Poll time.Duration
	// StatsEvery is how often the backlog is counted for the metrics and
	// swept of values past RetryFor (5 s).
	StatsEvery time.Duration
}

// PluginDecoder hands the raw values of decoder:<name> resources to the
// decoder plugins, and the values of plugin:<name> resources to the
// custom action plugins, and writes what comes back as the device's
// measurements, events, alarms and inventory.
//
// A value is stored in the decode backlog (store.DecodeBacklog) before
// Queue returns, and leaves it only once what the plugin made of it is
// stored, or once it was dropped with a mapping alarm on its device: a
// plugin that is down, slow or restarting, and a restart of the agent,
// lose nothing. A device's values for a plugin are decoded in the order
// they came. Workers (Workers per plugin) take them in batches; a call
// that fails for a reason that may pass (the plugin restarting, a
// timeout) leaves its values at the head of their devices' queues, and
// the plugin is tried again after a wait that doubles up to MaxBackoff,
// for RetryFor at most. A value the plugin refuses (not retryable) fails
// at once with its alarm.
type PluginDecoder struct {
	host    DecodeHost
	sink    DecoderSink
	bl      store.DecodeBacklog
	opt     DecoderOptions
	log     *slog.Logger
	plugins map[string]*pluginState // every configured decoder and custom action plugin

	statsMu sync.Mutex
	stats   []store.DecodeBacklogStat // the last count of the backlog

	decoded, failed, retries atomic.Int64
	dropped                  [len(dropReasons)]atomic.Int64
}

// Why values are dropped: lwm2m_agent_decode_dropped_total's reasons.
var dropReasons = [...]string{"full", "expired", "store"}

const (
	dropFull    = iota // the tenant's backlog was full
	dropExpired        // not decoded within RetryFor
	dropStore          // the backlog could not store them
)

// appendTimeout bounds the retries of an append while the store is
// unavailable: the device's exchange waits that long at most.
const appendTimeout = 10 * time.Second

// settleTimeout bounds the retries of a settlement, which makes the
// outputs already stored final: past it the values are decoded again
// once their lease runs out.
const settleTimeout = 30 * time.Second

// stopGrace is how long a worker waits at stop for the outputs it handed
// over to be stored, before it leaves its values for the next start.
const stopGrace = 5 * time.Second

// pluginState is one plugin's workers' shared state: whom to wake when a
// value comes, the wait after failures, and how many values a call
// takes.
//
// The batch shrinks by half with each failure and grows back by one
// value a success, doubling below half the size that last failed (as TCP
// grows its window): a decoder slow enough that a full batch runs past
// its timeout still makes progress, with batches it can answer in time,
// instead of timing out on the same batch forever.
type pluginState struct {
	name   string
	action bool // a custom action plugin, not a decoder
	wake   chan struct{}

	mu       sync.Mutex
	failures int       // in a row
	until    time.Time // no call before
	batch    int       // values per call now
	thresh   int       // below it, the batch doubles
	most     int       // the largest batch
}

// pluginKind names a plugin's kind in alarms.
func pluginKind(action bool) string {
	if action {
		return "custom action plugin"
	}
	return "decoder"
}

func (p *pluginState) wait(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.until.Sub(now)
}

// failedAt notes a call that failed at now for a reason that may pass,
// and returns when to try again: after a wait that doubles with each
// failure in a row, from base up to most. A failure while the plugin
// waits already (another worker's call) does not double it again.
func (p *pluginState) failedAt(now time.Time, base, most time.Duration) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Before(p.until) {
		return p.until
	}
	p.failures++
	p.thresh = max(p.batch/2, 1)
	p.batch = p.thresh
	wait := base
	for i := 1; i < p.failures && wait < most; i++ {
		wait *= 2
	}
	p.until = now.Add(min(wait, most))
	return p.until
}

// succeeded notes a call that was answered and reports whether the
// plugin had been failing.
func (p *pluginState) succeeded() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.failures > 0
	p.failures, p.until = 0, time.Time{}
	if p.batch < p.thresh {
		p.batch = min(2*p.batch, p.thresh)
	} else {
		p.batch = min(p.batch+1, p.most)
	}
	return was
}

// size is how many values the next call takes.
func (p *pluginState) size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.batch
}

// wakeAll tells the plugin's idle workers that values are due.
func (p *pluginState) wakeAll() {
	for {
		select {
		case p.wake <- struct{}{}:
		default:
			return
		}
	}
}

// DecodesRefused is Queue's error when it did not keep every value: the
// plugin does not exist, the tenant's backlog is full, or the store is
// unavailable. Queue has raised the devices' mapping alarms itself.
type DecodesRefused struct{ Refused, Of int }

func (e *DecodesRefused) Error() string {
	return fmt.Sprintf("%d of %d values not kept for decoding", e.Refused, e.Of)
}

// NewPluginDecoder returns a decoder over host writing into sink, with
// its backlog in opt.Backlog; run it with Run.
func NewPluginDecoder(host DecodeHost, sink DecoderSink, opt DecoderOptions) *PluginDecoder {
	opt = opt.withDefaults()
	d := &PluginDecoder{host: host, sink: sink, bl: opt.Backlog, opt: opt, log: opt.Logger.With("component", "decoder"), plugins: map[string]*pluginState{}}
	for _, k := range []string{sdk.KindDecoder, sdk.KindCustomAction} {
		for _, name := range host.Names(k) {
			d.plugins[name] = &pluginState{name: name, action: k == sdk.KindCustomAction, wake: make(chan struct{}, opt.Workers),
				batch: opt.Batch, thresh: opt.Batch, most: opt.Batch}
		}
	}
	return d
}

func (opt DecoderOptions) withDefaults() DecoderOptions {
	if opt.Queue <= 0 {
		opt.Queue = 10000
	}
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 8
	}
	if opt.Backoff <= 0 {
		opt.Backoff = 200 * time.Millisecond
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.MaxWaiting <= 0 {
		opt.MaxWaiting = 100_000
	}
	if opt.RetryFor <= 0 {
		opt.RetryFor = 24 * time.Hour
	}
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = time.Minute
	}
	if opt.Lease <= 0 {
		opt.Lease = 5 * time.Minute
	}
	if opt.Poll <= 0 {
		opt.Poll = time.Second
	}
	if opt.StatsEvery <= 0 {
		opt.StatsEvery = 5 * time.Second
	}
	return opt
}

// withRetries calls f, each call bounded by the timeout, until it
// succeeds, fails for a reason that will not pass, the attempts are used or
// ctx ends; between tries it waits, doubling the wait up to 30 s.
func (opt DecoderOptions) withRetries(ctx context.Context, retries *atomic.Int64, f func(ctx context.Context) error) error {
	wait := opt.Backoff
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, opt.Timeout)
		err := f(cctx)
		cancel()
		if err == nil || !plugins.IsRetryable(err) || attempt >= opt.Attempts || ctx.Err() != nil {
			return err
		}
		retries.Add(1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// Queue stores the values in the decode backlog and returns once they
// are durable, without waiting for their decoding. A value it cannot
// keep raises the mapping alarm on its device here, and makes the error
// a *DecodesRefused.
func (d *PluginDecoder) Queue(ctx context.Context, reqs []DecodeRequest) error {
	now := time.Now()
	var outs []Output
	refused := 0
	byTenant := map[string][]store.DecodeValue{}
	var tenants []string
	for _, r := range reqs {
		if p := d.plugins[r.Decoder]; p == nil || p.action != r.Action {
			d.failed.Add(1)
			refused++
			out := Output{Device: r.Device}
			pluginFailed(&out, r, pluginKind(r.Action), "no such plugin is configured")
			outs = append(outs, out)
			continue
		}
		if _, ok := byTenant[r.Tenant]; !ok {
			tenants = append(tenants, r.Tenant)
		}
		byTenant[r.Tenant] = append(byTenant[r.Tenant], backlogValue(r, now))
	}
	for _, tenant := range tenants {
		vals := byTenant[tenant]
		n, err := d.append(ctx, tenant, vals)
		switch {
		case err != nil:
			n = len(vals)
			d.dropped[dropStore].Add(int64(n))
			d.log.Error("values for decoding not stored, dropped", "tenant", tenant, "count", n, "err", err)
			outs = append(outs, droppedAlarms(vals, "the decode backlog could not store them: "+err.Error(), now)...)
		case n > 0:
			d.dropped[dropFull].Add(int64(n))
			d.log.Warn("decode backlog full, values dropped", "tenant", tenant, "count", n, "max_waiting", d.opt.MaxWaiting)
			outs = append(outs, droppedAlarms(vals[len(vals)-n:],
				fmt.Sprintf("the tenant's decode backlog is full (%d values wait for their decoders)", d.opt.MaxWaiting), now)...)
		}
		refused += n
		for _, v := range vals[:len(vals)-n] {
			d.plugins[v.Decoder].wakeAll()
		}
	}
	for _, o := range outs {
		if err := d.sink.Write(ctx, o); err != nil {
			d.log.Error("mapping alarm not stored", "device", o.ID, "err", err)
		}
	}
	if refused > 0 {
		return &DecodesRefused{Refused: refused, Of: len(reqs)}
	}
	return nil
}

// append appends vals, retrying while the store is unavailable, for
// appendTimeout at most.
func (d *PluginDecoder) append(ctx context.Context, tenant string, vals []store.DecodeValue) (int, error) {
	deadline := time.Now().Add(appendTimeout)
	wait := 50 * time.Millisecond
	for {
		n, err := d.bl.AppendDecodes(ctx, tenant, vals, d.opt.MaxWaiting)
		if err == nil || errors.Is(err, store.ErrInvalid) || time.Now().Add(wait).After(deadline) {
			return n, err
		}
		d.log.Warn("decode backlog unavailable, will retry", "tenant", tenant, "count", len(vals), "err", err)
		if !sleep(ctx, wait) {
			return n, err
		}
		wait = min(2*wait, time.Second)
	}
}

// sleep waits for d or the end of ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// DecoderStats counts what the decoder did.
type DecoderStats struct{ Decoded, Failed, Retries int64 }

// Stats returns the counters.
func (d *PluginDecoder) Stats() DecoderStats {
	return DecoderStats{Decoded: d.decoded.Load(), Failed: d.failed.Load(), Retries: d.retries.Load()}
}

// BacklogStats returns the last count of the backlog (at most
// StatsEvery old), by plugin, with every configured plugin.
func (d *PluginDecoder) BacklogStats() []store.DecodeBacklogStat {
	d.statsMu.Lock()
	counted := slices.Clone(d.stats)
	d.statsMu.Unlock()
	for name := range d.plugins {
		if !slices.ContainsFunc(counted, func(s store.DecodeBacklogStat) bool { return s.Decoder == name }) {
			counted = append(counted, store.DecodeBacklogStat{Decoder: name})
		}
	}
	slices.SortFunc(counted, func(a, b store.DecodeBacklogStat) int { return strings.Compare(a.Decoder, b.Decoder) })
	return counted
}

// Dropped returns the values dropped, by reason (full, expired, store).
func (d *PluginDecoder) Dropped() map[string]int64 {
	out := make(map[string]int64, len(dropReasons))
	for i, r := range dropReasons {
		out[r] = d.dropped[i].Load()
	}
	return out
}

// Run decodes until ctx ends. Values waiting then stay in the backlog
// for the next start.
func (d *PluginDecoder) Run(ctx context.Context) {
	// values that waited for a retry when the agent stopped are tried at
	// once: their plugins may be back
	if err := d.bl.ResumeDecodes(ctx, "", time.Now()); err != nil && ctx.Err() == nil {
		d.log.Warn("decode backlog not resumed; waiting values are tried at their next try", "err", err)
	}
	var wg sync.WaitGroup
	for _, p := range d.plugins {
		for range d.opt.Workers {
			wg.Go(func() { d.work(ctx, p) })
		}
	}
	wg.Go(func() { d.sweep(ctx) })
	wg.Wait()
}

// work takes p's due values in batches and hands them to p until ctx
// ends.
func (d *PluginDecoder) work(ctx context.Context, p *pluginState) {
	for ctx.Err() == nil {
		if wait := p.wait(time.Now()); wait > 0 {
			sleep(ctx, wait)
			continue
		}
		vals, err := d.bl.TakeDecodes(ctx, p.name, time.Now(), d.opt.Lease, p.size())
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("decode backlog unavailable", "plugin", p.name, "err", err)
				sleep(ctx, d.opt.Poll)
			}
			continue
		}
		if len(vals) == 0 {
			t := time.NewTimer(d.opt.Poll)
			select {
			case <-ctx.Done():
			case <-p.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		d.handle(ctx, p, vals)
	}
}

// outcome is what came of a batch's calls: the outputs of the values
// done, which values are to be retried, and why.
type outcome struct {
	outs            []Output
	retry           []bool // by the batch's index
	decoded, failed int64
	err             error
}

// handle hands taken values to their plugin, stores what it made of
// them, and settles them in the backlog.
func (d *PluginDecoder) handle(ctx context.Context, p *pluginState, vals []store.DecodeValue) {
	var (
		outs        []Output
		done, tried []store.DecodeValue
		reqs        []DecodeRequest
		unreadable  int64
	)
	for _, v := range vals {
		r, err := request(v)
		if err != nil {
			// cannot happen but with a damaged store: it fails alone
			unreadable++
			done = append(done, v)
			outs = append(outs, droppedAlarms([]store.DecodeValue{v}, "it cannot be read back from the decode backlog: "+err.Error(), time.Now())...)
			continue
		}
		reqs = append(reqs, r)
		tried = append(tried, v)
	}
	var res outcome
	if p.action {
		res = d.runActions(ctx, p, reqs)
	} else {
		res = d.decode(ctx, p, reqs)
	}
	outs = append(outs, res.outs...)
	var retry []store.DecodeValue
	for i, v := range tried {
		if res.retry[i] {
			retry = append(retry, v)
		} else {
			done = append(done, v)
		}
	}
	now, next := time.Now(), time.Now()
	var expired []store.DecodeValue
	if len(retry) > 0 {
		if ctx.Err() == nil {
			next = p.failedAt(now, d.opt.Backoff, d.opt.MaxBackoff)
			d.retries.Add(1)
			d.log.Warn("plugin unavailable; values kept for a retry", "plugin", p.name, "count", len(retry),
				"retry_in", next.Sub(now).Round(time.Millisecond), "err", res.err)
		}
		// values past their time are dropped rather than retried
		keep := retry[:0:0]
		for _, v := range retry {
			if now.Sub(v.Queued) >= d.opt.RetryFor {
				expired = append(expired, v)
			} else {
				keep = append(keep, v)
			}
		}
		if len(expired) > 0 {
			outs = append(outs, droppedAlarms(expired, fmt.Sprintf("not decoded within %v: %v", d.opt.RetryFor, res.err), now)...)
			done = append(done, expired...)
		}
		retry = keep
	} else if len(tried) > 0 && p.succeeded() {
		// the plugin is back: what waits for it is due at once
		if err := d.bl.ResumeDecodes(ctx, p.name, now); err != nil && ctx.Err() == nil {
			d.log.Warn("decode backlog not resumed", "plugin", p.name, "err", err)
		}
		p.wakeAll()
	}
	if !d.durable(ctx, outs) {
		d.log.Warn("outputs of decoded values not stored; the values are decoded again", "plugin", p.name, "count", len(vals))
		return
	}
	if !d.settle(ctx, done, retry, now, next) {
		return
	}
	d.decoded.Add(res.decoded)
	d.failed.Add(res.failed + unreadable)
	d.dropped[dropExpired].Add(int64(len(expired)))
}

// durable hands outs to the sink and waits until each is stored; false
// when one was not, or not in time (the agent stopping with the store
// down): the values then stay leased, and are decoded again.
func (d *PluginDecoder) durable(ctx context.Context, outs []Output) bool {
	if len(outs) == 0 {
		return true
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opt.Lease/2)
	defer cancel()
	acks := make(chan bool, len(outs))
	handed := 0
	for _, o := range outs {
		if err := d.sink.WriteAcked(wctx, o, func(stored bool) { acks <- stored }); err != nil {
			d.log.Error("decoded values not handed to the writer", "device", o.ID, "err", err)
			break
		}
		handed++
	}
	ok := handed == len(outs)
	// At stop the writer still runs, and stores what it holds within the
	// grace unless the store is down.
	timeout := time.NewTimer(d.opt.Lease / 2)
	defer timeout.Stop()
	stopping := ctx.Done()
	for got := 0; got < handed; {
		select {
		case stored := <-acks:
			ok = ok && stored
			got++
		case <-stopping:
			stopping = nil
			timeout.Reset(stopGrace)
		case <-timeout.C:
			return false
		}
	}
	return ok
}

// settle ends the values' lease in the backlog, retrying while the
// store is unavailable, for settleTimeout at most.
func (d *PluginDecoder) settle(ctx context.Context, done, retry []store.DecodeValue, now, next time.Time) bool {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		err := d.bl.SettleDecodes(sctx, done, retry, now, next)
		if err == nil {
			return true
		}
		d.log.Warn("decode backlog not settled, will retry", "count", len(done)+len(retry), "err", err)
		if !sleep(sctx, wait) {
			d.log.Error("decode backlog not settled; the values are decoded again once their lease runs out", "count", len(done)+len(retry), "err", err)
			return false
		}
		wait = min(2*wait, time.Second)
	}
}

// decode has the decoder answer each value of a batch, once.
func (d *PluginDecoder) decode(ctx context.Context, p *pluginState, batch []DecodeRequest) outcome {
	if len(batch) == 0 {
		return outcome{}
	}
	// DecodeEach bounds each call by the plugin's timeout, and may take
	// several to find a value that fails the decoder: no bound of its own.
	reqs := make([]plugins.DecodeRequest, len(batch))
	for i, r := range batch {
		reqs[i] = plugins.DecodeRequest{
			ResourcePath: r.Path.String(), Tenant: r.Tenant, DeviceID: r.ID, Endpoint: r.Endpoint,
			ServiceKey: r.Decoder, Value: rawBytes(r.Value), Time: r.Time,
		}
		if r.Argument != "" {
			reqs[i].Args = map[string]string{sdk.ArgumentKey: r.Argument}
		}
	}
	results := d.host.DecodeEach(ctx, p.name, reqs)
	o := outcome{retry: make([]bool, len(batch))}
	// A value whose failure may pass is tried again later, and so is
	// every later value of its device: a device's values are decoded in
	// order, and those decoded already are decoded again then.
	retrying := map[Device]bool{}
	var lost int
	var lastErr error
	for i, r := range batch {
		res := results[i]
		if retrying[r.Device] || plugins.IsRetryable(res.Err) || res.Err != nil && ctx.Err() != nil {
			retrying[r.Device] = true
			o.retry[i] = true
			if res.Err != nil {
				o.err = res.Err
			}
			continue
		}
		out := Output{Device: r.Device}
		switch {
		case res.Err != nil:
			// the value makes the decoder fail by itself: it fails alone
			o.failed++
			lost, lastErr = lost+1, res.Err
			pluginFailed(&out, r, "decoder", res.Err.Error())
		case !res.Result.Success:
			o.failed++
			pluginFailed(&out, r, "decoder", "it cannot be decoded: "+res.Result.Message)
		default:
			o.decoded++
			convert(&out, r, res.Result)
		}
		if out.Len() > 0 {
			o.outs = append(o.outs, out)
		}
	}
	if lost > 0 {
		d.log.Warn("values not decoded", "decoder", p.name, "count", lost, "of", len(batch), "err", lastErr)
	}
	return o
}

// runActions gives a custom action plugin its values, one call per run
// of one device's values of one action, in order, until a call fails for
// a reason that may pass.
func (d *PluginDecoder) runActions(ctx context.Context, p *pluginState, batch []DecodeRequest) outcome {
	o := outcome{retry: make([]bool, len(batch))}
	for start := 0; start < len(batch); {
		first := batch[start]
		end := start + 1
		for end < len(batch) && batch[end].Device == first.Device && batch[end].Argument == first.Argument {
			end++
		}
		run := batch[start:end]
		req := plugins.ActionRequest{Action: first.Argument, Values: make([]plugins.ResourceValue, len(run))}
		for i, r := range run {
			req.Values[i] = plugins.ResourceValue{Tenant: r.Tenant, DeviceID: r.ID, Endpoint: r.Endpoint, Path: r.Path, Value: r.Value, Time: r.Time}
		}
		cctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
		res, err := d.host.Run(cctx, p.name, req)
		cancel()
		if err != nil && (plugins.IsRetryable(err) || ctx.Err() != nil) {
			for i := start; i < len(batch); i++ {
				o.retry[i] = true
			}
			o.err = err
			return o
		}
		out := Output{Device: first.Device}
		if err != nil {
			o.failed += int64(len(run))
			d.log.Warn("custom action failed", "plugin", p.name, "action", first.Argument, "count", len(run), "err", err)
			pluginFailed(&out, first, "custom action plugin", err.Error())
		} else {
			o.decoded += int64(len(run) - len(res.Errors))
			o.failed += int64(len(res.Errors))
			convert(&out, first, resultAsDecoded(first.ID, res))
			for _, e := range res.Errors {
				path, _ := node.ParsePath(e.Path)
				pluginFailed(&out, DecodeRequest{Device: first.Device, Decoder: first.Decoder, Time: first.Time, Path: path}, "custom action plugin", e.Message)
			}
		}
		if out.Len() > 0 {
			o.outs = append(o.outs, out)
		}
		start = end
	}
	return o
}

// sweep counts the backlog every StatsEvery, and drops the values past
// RetryFor and those of plugins no longer configured, until ctx ends.
func (d *PluginDecoder) sweep(ctx context.Context) {
	t := time.NewTicker(d.opt.StatsEvery)
	defer t.Stop()
	for {
		d.sweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *PluginDecoder) sweepOnce(ctx context.Context) {
	stats, err := d.bl.DecodeBacklogStats(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("decode backlog not counted", "err", err)
		}
		return
	}
	d.statsMu.Lock()
	d.stats = stats
	d.statsMu.Unlock()
	now := time.Now()
	for _, st := range stats {
		p := d.plugins[st.Decoder]
		switch {
		case p == nil:
			// appended while the plugin was configured: nothing will
			// decode them now
			d.drain(ctx, st.Decoder, func() ([]store.DecodeValue, error) {
				return d.bl.TakeDecodes(ctx, st.Decoder, time.Now(), d.opt.Lease, d.opt.Batch)
			}, "no plugin of that name is configured any more", nil)
		case now.Sub(st.Oldest) >= d.opt.RetryFor:
			d.drain(ctx, st.Decoder, func() ([]store.DecodeValue, error) {
				now := time.Now()
				return d.bl.TakeExpiredDecodes(ctx, st.Decoder, now.Add(-d.opt.RetryFor), now, d.opt.Lease, d.opt.Batch)
			}, fmt.Sprintf("not decoded within %v", d.opt.RetryFor), &d.dropped[dropExpired])
		}
	}
}

// drain drops what take gives, with the devices' alarms, until it gives
// nothing or ctx ends; dropped counts them (nil: as failed).
func (d *PluginDecoder) drain(ctx context.Context, plugin string, take func() ([]store.DecodeValue, error), why string, dropped *atomic.Int64) {
	for ctx.Err() == nil {
		vals, err := take()
		if err != nil {
			d.log.Warn("decode backlog unavailable", "plugin", plugin, "err", err)
			return
		}
		if len(vals) == 0 {
			return
		}
		now := time.Now()
		if !d.durable(ctx, droppedAlarms(vals, why, now)) || !d.settle(ctx, vals, nil, now, now) {
			return
		}
		d.log.Warn("values dropped from the decode backlog", "plugin", plugin, "count", len(vals), "why", why)
		if dropped == nil {
			dropped = &d.failed
		}
		dropped.Add(int64(len(vals)))
	}
}

// droppedAlarms raises, on each device, the mapping alarm that says how
// many of its values for a plugin were dropped, which, and why.
func droppedAlarms(vals []store.DecodeValue, why string, now time.Time) []Output {
	type key struct {
		g      store.DecodeGroup
		action bool
	}
	byGroup := map[key][]store.DecodeValue{}
	var order []key
	for _, v := range vals {
		k := key{v.Group(), v.Action}
		if _, ok := byGroup[k]; !ok {
			order = append(order, k)
		}
		byGroup[k] = append(byGroup[k], v)
	}
	outs := make([]Output, 0, len(order))
	for _, k := range order {
		vs := byGroup[k]
		out := Output{Device: Device{Tenant: k.g.Tenant, ID: k.g.Device, Endpoint: vs[0].Endpoint}}
		out.Alarms = append(out.Alarms, AlarmChange{Alarm: store.Alarm{
			Source: k.g.Device, Type: MappingErrorAlarm, Severity: store.SeverityMajor, Time: now,
			Text: fmt.Sprintf("%d values of %s for %s %q dropped: %s", len(vs), pathsOf(vs), pluginKind(k.action), k.g.Decoder, why),
		}})
		outs = append(outs, out)
	}
	return outs
}

// pathsOf names the values' resources, the first three and how many
// more.
func pathsOf(vals []store.DecodeValue) string {
	var paths []string
	for _, v := range vals {
		if !slices.Contains(paths, v.Path) {
			paths = append(paths, v.Path)
		}
	}
	if len(paths) > 3 {
		return fmt.Sprintf("%s and %d more", strings.Join(paths[:3], ", "), len(paths)-3)
	}
	return strings.Join(paths, ", ")
}

// backlogValue is a request as the backlog keeps it: the raw bytes of an
// opaque value (or one of no known type), the text of any other, which
// request reads back to the same value.
func backlogValue(r DecodeRequest, queued time.Time) store.DecodeValue {
	v := store.DecodeValue{
		Tenant: r.Tenant, Device: r.ID, Endpoint: r.Endpoint, Path: r.Path.String(), Decoder: r.Decoder,
		Argument: r.Argument, Action: r.Action, Type: r.Value.Type.String(), Time: r.Time, Queued: queued,
	}
	if r.Value.Type == node.TypeOpaque || r.Value.Type == node.TypeNone {
		v.Value = r.Value.Bytes
	} else {
		v.Value = []byte(r.Value.Text())
	}
	return v
}

// request reads a value of the backlog back into the request it was.
func request(v store.DecodeValue) (DecodeRequest, error) {
	p, err := node.ParsePath(v.Path)
	if err != nil {
		return DecodeRequest{}, err
	}
	t, err := node.ParseType(v.Type)
	if err != nil {
		return DecodeRequest{}, err
	}
	val := node.Value{Type: t, Bytes: v.Value}
	if t != node.TypeOpaque && t != node.TypeNone {
		if val, err = node.ParseText(t, string(v.Value)); err != nil {
			return DecodeRequest{}, err
		}
	}
	return DecodeRequest{
		Device: Device{Tenant: v.Tenant, ID: v.Device, Endpoint: v.Endpoint}, Path: p, Value: val, Time: v.Time,
		Decoder: v.Decoder, Argument: v.Argument, Action: v.Action,
	}, nil
}

// pluginFailed raises the mapping alarm for a value a plugin (r.Decoder
// names it) did not turn into anything; kind says what the plugin is.
func pluginFailed(out *Output, r DecodeRequest, kind, why string) {
	out.Alarms = append(out.Alarms, AlarmChange{Alarm: store.Alarm{
		Source: r.ID, Type: MappingErrorAlarm, Severity: store.SeverityMajor, Time: r.Time,
		Text: fmt.Sprintf("Value of %s was not handled by %s %q: %s", r.Path, kind, r.Decoder, why),
	}})
}

// convert turns a decoder's result into the device's outputs; items
// without a time take the value's, items without a source the device.
func convert(out *Output, r DecodeRequest, res plugins.DecodeResult) {
	at := func(t time.Time) time.Time {
		if t.IsZero() {
			return r.Time
		}
		return t
	}
	src := func(s string) string {
		if s == "" {
			return r.ID
		}
		return s
	}
	for _, m := range res.Measurements {
		frag := m.Fragment
		if frag == "" {
			frag = m.Type
		}
		if src(m.Source) == r.ID {
			addMeasurementFragment(out, m.Type, frag, m.Series, m.Unit, m.Value, at(m.Time))
			continue
		}
		out.Measurements = append(out.Measurements, store.Measurement{
			Source: src(m.Source), Type: m.Type, Time: at(m.Time),
			Fragments: map[string]any{frag: map[string]any{m.Series: store.SeriesValue(m.Value, m.Unit)}},
		})
	}
	for _, e := range res.Events {
		out.Events = append(out.Events, store.Event{Source: src(e.Source), Type: e.Type, Text: e.Text, Time: at(e.Time), Fragments: e.Fragments})
	}
	for _, a := range res.Alarms {
		sev := a.Severity
		if sev == "" {
			sev = store.SeverityMajor
		}
		out.Alarms = append(out.Alarms, AlarmChange{
			Clear: a.Status == "CLEARED",
			Alarm: store.Alarm{Source: src(a.Source), Type: a.Type, Text: a.Text, Severity: sev, Status: a.Status, Time: at(a.Time), Fragments: a.Fragments},
		})
	}
	for _, f := range res.DataFragments {
		if out.Inventory == nil {
			out.Inventory = &InventoryUpdate{}
		}
		if m, ok := f.Value.(map[string]any); ok {
			for k, v := range m {
				out.Inventory.set(f.Key, k, v)
			}
		}
	}
}

// addMeasurementFragment adds a series to the device's measurement of that
// type and time, or starts one: values sent together become one
// measurement. The fragment may be named apart from the type.
func addMeasurementFragment(out *Output, typ, frag, series, unit string, v float64, t time.Time) {
	for i := len(out.Measurements) - 1; i >= 0; i-- {
		ms := &out.Measurements[i]
		if ms.Type != typ || !ms.Time.Equal(t) {
			continue
		}
		f, ok := ms.Fragments[frag].(map[string]any)
		if !ok {
			f = map[string]any{}
			ms.Fragments[frag] = f
		}
		if _, taken := f[series]; taken {
			break
		}
		f[series] = store.SeriesValue(v, unit)
		return
	}
	out.Measurements = append(out.Measurements, store.Measurement{
		Source: out.ID, Type: typ, Time: t,
		Fragments: map[string]any{frag: map[string]any{series: store.SeriesValue(v, unit)}},
	})
}

// rawBytes is what a decoder gets of a value: the bytes of an opaque
// resource, the text of any other.
func rawBytes(v node.Value) []byte {
	if v.Type == node.TypeOpaque {
		return v.Bytes
	}
	return []byte(v.Text())
}
