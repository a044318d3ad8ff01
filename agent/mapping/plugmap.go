package mapping

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// MapHost runs mapping plugins: the plugin host.
type MapHost interface {
	Map(ctx context.Context, name string, values []plugins.ResourceValue) (plugins.Result, error)
	Names(kind string) []string
}

// PluginMappers gives every batch of values, after the agent's own
// mapping, to each configured mapping plugin, and writes what they return.
// Like decoding, it happens after the device was answered, in batches, with
// retries while a plugin restarts.
type PluginMappers struct {
	host  MapHost
	sink  OutputSink
	names []string
	opt   DecoderOptions
	log   *slog.Logger
	in    chan Input

	mapped, failed, retries atomic.Int64
}

// ErrMapQueueFull refuses values while the mapping plugins are that far
// behind.
var ErrMapQueueFull = errors.New("mapping plugin queue full")

// NewPluginMappers returns the mapping plugins of host writing into sink,
// or nil when host has none; run it with Run.
func NewPluginMappers(host MapHost, sink OutputSink, opt DecoderOptions) *PluginMappers {
	names := host.Names(sdk.KindMapping)
	if len(names) == 0 {
		return nil
	}
	opt = opt.withDefaults()
	return &PluginMappers{host: host, sink: sink, names: names, opt: opt, log: opt.Logger.With("component", "mapping-plugins"),
		in: make(chan Input, opt.Queue/opt.Batch+1)}
}

// Queue takes a batch without waiting for its mapping.
func (m *PluginMappers) Queue(in Input) error {
	select {
	case m.in <- in:
		return nil
	default:
		return fmt.Errorf("%d values: %w", len(in.Records), ErrMapQueueFull)
	}
}

// Stats returns the values mapped and failed, and the calls retried.
func (m *PluginMappers) Stats() DecoderStats {
	return DecoderStats{Decoded: m.mapped.Load(), Failed: m.failed.Load(), Retries: m.retries.Load()}
}

// Run maps until ctx ends.
func (m *PluginMappers) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range m.opt.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case in := <-m.in:
					for _, name := range m.names {
						m.mapBatch(ctx, name, in)
					}
				}
			}
		})
	}
	wg.Wait()
}

func (m *PluginMappers) mapBatch(ctx context.Context, name string, in Input) {
	values := make([]plugins.ResourceValue, len(in.Records))
	for i, r := range in.Records {
		t := in.Arrived
		if !r.Time.IsZero() {
			t = r.Time
		}
		values[i] = plugins.ResourceValue{Tenant: in.Tenant, DeviceID: in.ID, Endpoint: in.Endpoint, Path: r.Path, Value: r.Value, Time: t}
	}
	var res plugins.Result
	err := m.opt.withRetries(ctx, &m.retries, func(ctx context.Context) error {
		var err error
		res, err = m.host.Map(ctx, name, values)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			m.failed.Add(int64(len(values)))
			m.log.Warn("values not mapped by plugin", "plugin", name, "device", in.ID, "count", len(values), "err", err)
			// the operator sees it on the device, as for a decoder
			out := Output{Device: in.Device}
			pluginFailed(&out, DecodeRequest{Device: in.Device, Decoder: name, Time: in.Arrived, Path: in.Records[0].Path},
				"mapping plugin", fmt.Sprintf("%v (%d values of the batch)", err, len(values)))
			if err := m.sink.Write(ctx, out); err != nil {
				m.log.Error("mapping alarm not stored", "plugin", name, "device", in.ID, "err", err)
			}
		}
		return
	}
	m.mapped.Add(int64(len(values) - len(res.Errors)))
	m.failed.Add(int64(len(res.Errors)))
	out := Output{Device: in.Device}
	convert(&out, DecodeRequest{Device: in.Device, Time: in.Arrived}, resultAsDecoded(in.ID, res))
	for _, e := range res.Errors {
		p, _ := node.ParsePath(e.Path)
		pluginFailed(&out, DecodeRequest{Device: in.Device, Decoder: name, Time: in.Arrived, Path: p}, "mapping plugin", e.Message)
	}
	if out.Len() > 0 {
		if err := m.sink.Write(ctx, out); err != nil {
			m.log.Error("mapped values not stored", "plugin", name, "device", in.ID, "err", err)
		}
	}
}

// resultAsDecoded is a plugin's result in the shape a decoder answers:
// inventory updates of the device become its data fragments.
func resultAsDecoded(device string, res plugins.Result) plugins.DecodeResult {
	d := plugins.DecodeResult{Success: true, Measurements: res.Measurements, Events: res.Events, Alarms: res.Alarms}
	for _, u := range res.InventoryUpdates {
		if u.Device != "" && u.Device != device {
			continue // only the device's own managed object
		}
		for k, v := range u.Fragments {
			d.DataFragments = append(d.DataFragments, plugins.DataFragment{Key: k, Value: v})
		}
	}
	return d
}
