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
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// DecodeHost is what decodes values and runs custom actions: the plugin
// host.
type DecodeHost interface {
	// DecodeEach answers each value on its own: a value that makes the
	// decoder fail does not fail the others of its batch.
	DecodeEach(ctx context.Context, name string, reqs []plugins.DecodeRequest) []plugins.Outcome
	Run(ctx context.Context, name string, req plugins.ActionRequest) (plugins.Result, error)
}

// OutputSink takes what decoders produced: the pipeline's writer.
type OutputSink interface {
	Write(ctx context.Context, out Output) error
}

// DecoderOptions tune a PluginDecoder; zero fields mean the defaults.
type DecoderOptions struct {
	Queue    int           // values waiting at most (10,000)
	Batch    int           // values per call (64)
	Workers  int           // calls under way at once (2)
	Attempts int           // tries of a value before it fails (8)
	Backoff  time.Duration // first wait after a retryable failure, doubling (200 ms, at most 30 s)
	Timeout  time.Duration // per call (10 s)
	Logger   *slog.Logger
}

// PluginDecoder hands the raw values of decoder:<name> resources to the
// decoder plugins in batches, retries what failed for a reason that may
// pass (the plugin restarting, a timeout), and writes what comes back as
// the device's measurements, events, alarms and inventory. The raw value
// is already the device's last known value by then, and the device was
// answered before: a slow or broken decoder holds nothing back.
type PluginDecoder struct {
	host DecodeHost
	sink OutputSink
	opt  DecoderOptions
	log  *slog.Logger
	in   chan DecodeRequest

	decoded, failed, retries atomic.Int64
}

// ErrDecodeQueueFull refuses values while the decoders are that far behind.
var ErrDecodeQueueFull = errors.New("decoder queue full")

// NewPluginDecoder returns a decoder over host writing into sink; run it
// with Run.
func NewPluginDecoder(host DecodeHost, sink OutputSink, opt DecoderOptions) *PluginDecoder {
	opt = opt.withDefaults()
	return &PluginDecoder{host: host, sink: sink, opt: opt, log: opt.Logger.With("component", "decoder"), in: make(chan DecodeRequest, opt.Queue)}
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

// Queue takes values without waiting for their decoding.
func (d *PluginDecoder) Queue(_ context.Context, reqs []DecodeRequest) error {
	for i, r := range reqs {
		select {
		case d.in <- r:
		default:
			return fmt.Errorf("%d of %d values: %w", len(reqs)-i, len(reqs), ErrDecodeQueueFull)
		}
	}
	return nil
}

// DecoderStats counts what the decoder did.
type DecoderStats struct{ Decoded, Failed, Retries int64 }

// Stats returns the counters.
func (d *PluginDecoder) Stats() DecoderStats {
	return DecoderStats{Decoded: d.decoded.Load(), Failed: d.failed.Load(), Retries: d.retries.Load()}
}

// Run decodes until ctx ends; values still queued then are reported lost
// in the log (they remain the devices' last known values).
func (d *PluginDecoder) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range d.opt.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	if n := len(d.in); n > 0 {
		d.log.Warn("values not decoded at shutdown", "count", n)
	}
}

func (d *PluginDecoder) work(ctx context.Context) {
	for {
		var first DecodeRequest
		select {
		case <-ctx.Done():
			return
		case first = <-d.in:
		}
		batch := []DecodeRequest{first}
		var other []DecodeRequest // of other decoders: back in the queue after this batch
	gather:
		for len(batch) < d.opt.Batch {
			select {
			case r := <-d.in:
				if r.Decoder == first.Decoder && r.Action == first.Action && (!r.Action || r.Argument == first.Argument && r.ID == first.ID) {
					batch = append(batch, r)
				} else {
					other = append(other, r)
				}
			default:
				break gather
			}
		}
		d.decode(ctx, batch)
		for _, r := range other {
			select {
			case d.in <- r:
			case <-ctx.Done():
				return
			}
		}
	}
}

// decode calls the decoder for a batch of one decoder's values, retrying
// failures that may pass with a doubling wait.
func (d *PluginDecoder) decode(ctx context.Context, batch []DecodeRequest) {
	if batch[0].Action {
		d.runAction(ctx, batch)
		return
	}
	reqs := make([]plugins.DecodeRequest, len(batch))
	for i, r := range batch {
		reqs[i] = plugins.DecodeRequest{
			ResourcePath: r.Path.String(), Tenant: r.Tenant, DeviceID: r.ID, Endpoint: r.Endpoint,
			ServiceKey: r.Decoder, Value: rawBytes(r.Value), Time: r.Time,
		}
		if r.Argument != "" {
			reqs[i].Args = map[string]string{"argument": r.Argument}
		}
	}
	d.write(ctx, batch, d.decodeEach(ctx, batch[0].Decoder, reqs))
}

// decodeEach gets the decoder's outcome for each value, and asks again,
// waiting twice as long each time (up to 30 s), for the values whose
// failure may pass, until the attempts are used or ctx ends. The host
// bounds each call by the plugin's timeout, and finds the value at fault
// when a batch fails, which may take several calls: no bound of its own.
func (d *PluginDecoder) decodeEach(ctx context.Context, name string, reqs []plugins.DecodeRequest) []plugins.Outcome {
	out := make([]plugins.Outcome, len(reqs))
	pending := make([]int, len(reqs))
	for i := range pending {
		pending[i] = i
	}
	wait := d.opt.Backoff
	for attempt := 1; ; attempt++ {
		sub := make([]plugins.DecodeRequest, len(pending))
		for j, i := range pending {
			sub[j] = reqs[i]
		}
		var again []int
		for j, o := range d.host.DecodeEach(ctx, name, sub) {
			out[pending[j]] = o
			if plugins.IsRetryable(o.Err) {
				again = append(again, pending[j])
			}
		}
		if len(again) == 0 || attempt >= d.opt.Attempts || ctx.Err() != nil {
			return out
		}
		d.retries.Add(1)
		select {
		case <-ctx.Done():
			return out
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
		pending = again
	}
}

// runAction gives a custom action plugin one device's values of one
// action, and writes what it returns.
func (d *PluginDecoder) runAction(ctx context.Context, batch []DecodeRequest) {
	first := batch[0]
	req := plugins.ActionRequest{Action: first.Argument, Values: make([]plugins.ResourceValue, len(batch))}
	for i, r := range batch {
		req.Values[i] = plugins.ResourceValue{Tenant: r.Tenant, DeviceID: r.ID, Endpoint: r.Endpoint, Path: r.Path, Value: r.Value, Time: r.Time}
	}
	var res plugins.Result
	err := d.opt.withRetries(ctx, &d.retries, func(ctx context.Context) error {
		var err error
		res, err = d.host.Run(ctx, first.Decoder, req)
		return err
	})
	if ctx.Err() != nil {
		return
	}
	out := Output{Device: first.Device}
	if err != nil {
		d.failed.Add(int64(len(batch)))
		d.log.Warn("custom action failed", "plugin", first.Decoder, "action", first.Argument, "count", len(batch), "err", err)
		pluginFailed(&out, first, "custom action plugin", err.Error())
	} else {
		d.decoded.Add(int64(len(batch) - len(res.Errors)))
		d.failed.Add(int64(len(res.Errors)))
		convert(&out, first, resultAsDecoded(first.ID, res))
		for _, e := range res.Errors {
			p, _ := node.ParsePath(e.Path)
			pluginFailed(&out, DecodeRequest{Device: first.Device, Decoder: first.Decoder, Time: first.Time, Path: p}, "custom action plugin", e.Message)
		}
	}
	d.emit(ctx, out)
}

func (d *PluginDecoder) write(ctx context.Context, batch []DecodeRequest, res []plugins.Outcome) {
	if ctx.Err() != nil {
		return // shutting down: what failed for that is not the values' fault
	}
	var lost int
	var lastErr error
	for i, r := range batch {
		out := Output{Device: r.Device}
		switch o := res[i]; {
		case o.Err != nil:
			d.failed.Add(1)
			lost, lastErr = lost+1, o.Err
			pluginFailed(&out, r, "decoder", o.Err.Error())
		case !o.Result.Success:
			d.failed.Add(1)
			pluginFailed(&out, r, "decoder", "it cannot be decoded: "+o.Result.Message)
		default:
			d.decoded.Add(1)
			convert(&out, r, o.Result)
		}
		d.emit(ctx, out)
	}
	if lost > 0 {
		d.log.Warn("values not decoded", "decoder", batch[0].Decoder, "count", lost, "of", len(batch), "err", lastErr)
	}
}

func (d *PluginDecoder) emit(ctx context.Context, out Output) {
	if out.Len() == 0 {
		return
	}
	if err := d.sink.Write(ctx, out); err != nil {
		d.log.Error("decoded values not stored", "device", out.ID, "err", err)
	}
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
