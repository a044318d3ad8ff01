package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

// run executes one shell command on a registered device and returns the
// result text.
func (r *Runner) run(ctx context.Context, reg lwm2m.Registration, text string) (string, error) {
	cmd, err := shell.Parse(text)
	if err != nil {
		return "", err
	}
	srv, ep := r.cfg.Server, reg.Endpoint
	switch cmd.Kind {
	case shell.Read:
		p := cmd.Paths[0]
		recs, err := srv.Read(ctx, ep, p)
		if err != nil {
			return "", fmt.Errorf("read %s: %w", p, err)
		}
		r.record(ctx, reg, recs)
		return r.formatRecords(reg.Tenant, p, recs), nil
	case shell.Observe:
		p := cmd.Paths[0]
		recs, err := srv.Observe(ctx, ep, p)
		if err != nil {
			return "", fmt.Errorf("observe %s: %w", p, err)
		}
		r.record(ctx, reg, recs)
		return "Observing " + p.String() + "\n" + r.formatRecords(reg.Tenant, p, recs), nil
	case shell.CancelObservation:
		if len(cmd.Paths) > 1 {
			if err := srv.CancelObserveComposite(ctx, ep, cmd.Paths); err != nil {
				return "", fmt.Errorf("cancel composite observation: %w", err)
			}
			return "Composite observation of " + pathList(cmd.Paths) + " cancelled", nil
		}
		p := cmd.Paths[0]
		if err := srv.CancelObserve(ctx, ep, p); err != nil {
			return "", fmt.Errorf("cancel observation %s: %w", p, err)
		}
		// a cobserve of this one path is cancelled by naming it too
		if err := srv.CancelObserveComposite(ctx, ep, cmd.Paths); err != nil {
			return "", fmt.Errorf("cancel composite observation %s: %w", p, err)
		}
		return "Observation of " + p.String() + " cancelled", nil
	case shell.Execute:
		p := cmd.Paths[0]
		if err := srv.Execute(ctx, ep, p, cmd.Args); err != nil {
			return "", fmt.Errorf("execute %s: %w", p, err)
		}
		return "Executed " + p.String(), nil
	case shell.Write:
		p := cmd.Paths[0]
		v, typed, err := typedText(r.cfg.Models, reg.Tenant, p, cmd.Value)
		if err != nil {
			return "", fmt.Errorf("write %s: %w", p, err)
		}
		recs := []node.Record{{Path: p, Value: v}}
		if cur, ok := srv.Registration(ep); !typed && ok && !cur.HasSerialization {
			// Without a definition the value is the text as typed: in
			// text/plain, which every version takes for one resource, the
			// device reads it by its own type ("5" for an integer, a
			// string, a float), where any other format would have to
			// guess one.
			err = srv.WriteFormat(ctx, ep, codec.Text, p, recs, true)
		} else {
			err = srv.Write(ctx, ep, p, recs, true)
		}
		if err != nil {
			return "", fmt.Errorf("write %s: %w", p, err)
		}
		r.recordWritten(ctx, reg, []node.Record{{Path: p, Value: v}})
		return "Wrote " + p.String() + " = " + v.Text(), nil
	case shell.WriteBinary:
		return r.writeBinary(ctx, reg, cmd)
	case shell.Serialization:
		return r.serialization(ctx, reg, cmd.Format)
	case shell.Delete:
		p := cmd.Paths[0]
		if err := srv.Delete(ctx, ep, p); err != nil {
			return "", fmt.Errorf("delete %s: %w", p, err)
		}
		return "Deleted " + p.String(), nil
	case shell.Discover:
		p := cmd.Paths[0]
		links, err := srv.Discover(ctx, ep, p)
		if err != nil {
			return "", fmt.Errorf("discover %s: %w", p, err)
		}
		return string(codec.FormatLinks(links)), nil
	case shell.Create:
		p := cmd.Paths[0]
		inst := freeInstance(reg, p)
		recs, err := r.createRecords(reg.Tenant, inst, cmd.JSON)
		if err != nil {
			return "", fmt.Errorf("create %s: %w", p, err)
		}
		created, err := srv.Create(ctx, ep, inst, recs)
		if err != nil {
			return "", fmt.Errorf("create %s: %w", p, err)
		}
		if created.Depth == 2 {
			return "Created " + created.String(), nil
		}
		return "Created an instance of " + p.String(), nil
	case shell.CompositeRead:
		recs, err := srv.ReadComposite(ctx, ep, cmd.Paths)
		if err != nil {
			return "", fmt.Errorf("cread: %w", err)
		}
		r.record(ctx, reg, recs)
		return r.formatRecords(reg.Tenant, node.Root, recs), nil
	case shell.CompositeObserve:
		recs, err := srv.ObserveComposite(ctx, ep, cmd.Paths)
		if err != nil {
			return "", fmt.Errorf("cobserve: %w", err)
		}
		r.record(ctx, reg, recs)
		return "Observing " + pathList(cmd.Paths) + "\n" + r.formatRecords(reg.Tenant, node.Root, recs), nil
	case shell.CompositeWrite:
		recs := make([]node.Record, 0, len(cmd.Paths))
		for _, p := range cmd.Paths {
			rec, err := r.typedJSON(reg.Tenant, p, cmd.JSON[p.String()])
			if err != nil {
				return "", fmt.Errorf("cwrite %s: %w", p, err)
			}
			recs = append(recs, rec)
		}
		if err := srv.WriteComposite(ctx, ep, recs); err != nil {
			return "", fmt.Errorf("cwrite: %w", err)
		}
		r.recordWritten(ctx, reg, recs)
		return "Wrote " + pathList(cmd.Paths), nil
	case shell.WriteAttributes:
		p := cmd.Paths[0]
		q := cmd.Attrs.Query()
		if err := srv.WriteAttributes(ctx, ep, p, q); err != nil {
			return "", fmt.Errorf("writeattr %s: %w", p, err)
		}
		return "Attributes of " + p.String() + " set: " + strings.Join(q, "&"), nil
	}
	return "", fmt.Errorf("%s: not supported by this agent yet", cmd.Kind)
}

// writeBinary writes bytes to an opaque resource in the encoding the
// device's binaryDeliveryEncoding parameter names.
func (r *Runner) writeBinary(ctx context.Context, reg lwm2m.Registration, cmd shell.Command) (string, error) {
	p := cmd.Paths[0]
	var v node.Value
	if cmd.Binary != "" {
		_, data, err := r.cfg.Store.ReadBinary(ctx, reg.Tenant, cmd.Binary, MaxWriteBinary)
		if err != nil {
			return "", fmt.Errorf("writeb %s: binary:%s: %w", p, cmd.Binary, err)
		}
		v = node.Opaque(data)
	} else {
		var err error
		if v, err = node.ParseText(node.TypeOpaque, cmd.Value); err != nil {
			return "", fmt.Errorf("writeb %s: %w", p, err)
		}
	}
	enc, f, err := r.binaryEncoding(ctx, reg)
	if err != nil {
		return "", fmt.Errorf("writeb %s: %w", p, err)
	}
	recs := []node.Record{{Path: p, Value: v}}
	if err := r.cfg.Server.WriteFormat(ctx, reg.Endpoint, f, p, recs, true); err != nil {
		return "", fmt.Errorf("writeb %s: %w", p, err)
	}
	r.recordWritten(ctx, reg, recs)
	return fmt.Sprintf("Wrote %d bytes to %s as %s (%v)", len(v.Bytes), p, enc, f), nil
}

// MaxWriteBinary bounds the stored binary one writeb sends; the API's
// largest binary (its default) fits.
const MaxWriteBinary = 64 << 20

// Binary delivery encodings, the values of the binaryDeliveryEncoding
// registration parameter.
const (
	binaryOpaque = "OPAQUE"
	binaryTLV    = "TLV"
	binaryJSON   = "JSON"
	binaryText   = "TEXT"
)

// binaryEncoding returns the device's binary delivery encoding (OPAQUE
// when it has none) and the content format that carries it: JSON is
// LwM2M JSON for an LwM2M 1.0 device, SenML JSON (bytes in "vd") for a
// later one; TEXT is base64 in text/plain (Core TS 1.1, 7.4.1).
func (r *Runner) binaryEncoding(ctx context.Context, reg lwm2m.Registration) (string, codec.Format, error) {
	enc := binaryOpaque
	dr, err := r.cfg.Store.DeviceRegistrationOf(ctx, reg.Tenant, reg.DeviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return "", 0, fmt.Errorf("binary delivery encoding: %w", err)
	default:
		if s, _ := dr.Params["binaryDeliveryEncoding"].(string); s != "" {
			enc = strings.ToUpper(s)
		}
	}
	switch enc {
	case binaryOpaque:
		return enc, codec.Opaque, nil
	case binaryTLV:
		return enc, codec.TLV, nil
	case binaryJSON:
		if reg.Version == "1.0" {
			return enc, codec.LwM2MJSON, nil
		}
		return enc, codec.SenMLJSON, nil
	case binaryText:
		return enc, codec.Text, nil
	}
	return "", 0, fmt.Errorf("the device's binaryDeliveryEncoding %q is none of OPAQUE, TLV, JSON, TEXT", enc)
}

// serialization sets the content format of the device's later requests
// (DEFAULT: the one its registration suggests), in the Server and, so
// that a new Register keeps it, in the store.
func (r *Runner) serialization(ctx context.Context, reg lwm2m.Registration, name string) (string, error) {
	srv, ep := r.cfg.Server, reg.Endpoint
	prev, ok := srv.Registration(ep)
	if !ok {
		return "", fmt.Errorf("serialization: %w: %s", lwm2m.ErrNotRegistered, ep)
	}
	restore := func() {
		if prev.HasSerialization {
			_ = srv.SetFormat(ep, prev.Serialization)
		} else {
			_ = srv.ClearFormat(ep)
		}
	}
	stored := ""
	if name == "DEFAULT" {
		if err := srv.ClearFormat(ep); err != nil {
			return "", fmt.Errorf("serialization: %w", err)
		}
	} else {
		f, err := codec.ParseFormatName(name)
		if err != nil {
			return "", fmt.Errorf("serialization: %w", err)
		}
		if err := srv.SetFormat(ep, f); err != nil {
			return "", fmt.Errorf("serialization: %w", err)
		}
		stored = name
	}
	if err := r.cfg.Store.SetDeviceSerialization(ctx, reg.Tenant, reg.DeviceID, stored); err != nil {
		restore()
		return "", fmt.Errorf("serialization: %w", err)
	}
	f, err := srv.Format(ep)
	if err != nil {
		return "", fmt.Errorf("serialization: %w", err)
	}
	if stored == "" {
		if wf, err := srv.WritesFormat(ep); err == nil && wf != f {
			return fmt.Sprintf("Serialization back to the default: later reads use %v, the format the registration suggests, and writes and creates %v, which every LwM2M %s device takes", f, wf, reg.Version), nil
		}
		return fmt.Sprintf("Serialization back to the default: later requests use %v, the format the registration suggests", f), nil
	}
	return fmt.Sprintf("Serialization set to %s: later requests use %v, also after the device registers again", name, f), nil
}

func pathList(ps []node.Path) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// record keeps what the device answered as its last known values and
// maps it like any value the device reports.
func (r *Runner) record(ctx context.Context, reg lwm2m.Registration, recs []node.Record) {
	r.recordWritten(ctx, reg, recs)
	if r.cfg.Pipeline != nil && len(recs) > 0 {
		r.cfg.Pipeline.Handle(context.WithoutCancel(ctx), mapping.Input{
			Device:  mapping.Device{Tenant: reg.Tenant, ID: reg.DeviceID, Endpoint: reg.Endpoint},
			Kind:    mapping.KindRead,
			Records: recs,
		})
	}
}

// recordWritten keeps values written to the device as its last known
// values; they are the operator's, not the device's report, so they are
// not mapped.
func (r *Runner) recordWritten(ctx context.Context, reg lwm2m.Registration, recs []node.Record) {
	if r.cfg.Values != nil && len(recs) > 0 {
		r.cfg.Values.Add(ctx, reg.Tenant, reg.DeviceID, recs)
	}
}

// typedText parses a shell value by the resource's definition. A
// resource the agent has no definition for gets the text as a string and
// typed false: the runner then sends it as text/plain, the one format in
// which the device itself reads the text by the resource's type (see
// run). Guessing a type from the text would turn a string resource's
// "0042" or "12345" into an integer the device refuses.
func typedText(defs Definitions, tenant string, p node.Path, text string) (v node.Value, typed bool, err error) {
	res, ok := resourceDef(defs, tenant, p)
	if !ok {
		return node.String(text), false, nil
	}
	if res.Type == node.TypeNone {
		return node.Value{}, true, fmt.Errorf("resource is executable, not writable")
	}
	v, err = node.ParseText(res.Type, text)
	return v, true, err
}

// Written returns the values a command writes to a device, typed by the
// tenant's definitions exactly as the runner types them when it sends the
// command: write's value, cwrite's values, create's resources (under
// instance, the instance a create of object /O is expected to make; the
// runner picks a free one when it runs) and writeb's hex bytes. Other
// commands write nothing: nil. A value its resource's type cannot hold is
// an error naming the path, so that it can be refused before it is
// queued.
func Written(defs Definitions, tenant string, cmd shell.Command, instance node.Path) ([]node.Record, error) {
	switch cmd.Kind {
	case shell.Write:
		p := cmd.Paths[0]
		v, _, err := typedText(defs, tenant, p, cmd.Value)
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
		return []node.Record{{Path: p, Value: v}}, nil
	case shell.CompositeWrite:
		recs := make([]node.Record, 0, len(cmd.Paths))
		for _, p := range cmd.Paths {
			rec, err := typedJSONValue(defs, tenant, p, cmd.JSON[p.String()])
			if err != nil {
				return nil, fmt.Errorf("cwrite %s: %w", p, err)
			}
			recs = append(recs, rec)
		}
		return recs, nil
	case shell.Create:
		recs, err := createRecords(defs, tenant, instance, cmd.JSON)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", cmd.Paths[0], err)
		}
		return recs, nil
	case shell.WriteBinary:
		if cmd.Binary != "" {
			return nil, nil
		}
		p := cmd.Paths[0]
		v, err := node.ParseText(node.TypeOpaque, cmd.Value)
		if err != nil {
			return nil, fmt.Errorf("writeb %s: %w", p, err)
		}
		return []node.Record{{Path: p, Value: v}}, nil
	}
	return nil, nil
}

// freeInstance picks the lowest instance ID of object p that the device
// did not register, so that Create names its instance in every content
// format (SenML and TLV alike) and cannot collide with an existing one.
func freeInstance(reg lwm2m.Registration, p node.Path) node.Path {
	if p.Depth != 1 {
		return p
	}
	used := map[uint16]bool{}
	for _, o := range reg.Objects {
		if o.Path.Object == p.Object && o.Path.Depth >= 2 {
			used[o.Path.Instance] = true
		}
	}
	var id uint16
	for used[id] {
		id++
	}
	return p.Child(id)
}

// createRecords types the JSON of `create /O {"0": v, ...}` by definition.
func (r *Runner) createRecords(tenant string, p node.Path, fields map[string]any) ([]node.Record, error) {
	return createRecords(r.cfg.Models, tenant, p, fields)
}

func createRecords(defs Definitions, tenant string, p node.Path, fields map[string]any) ([]node.Record, error) {
	ids := make([]int, 0, len(fields))
	for k := range fields {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || id > node.MaxID {
			return nil, fmt.Errorf("%q is not a resource ID", k)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	inst := p
	recs := make([]node.Record, 0, len(ids))
	for _, id := range ids {
		rp := inst.Child(uint16(id))
		raw := fields[strconv.Itoa(id)]
		if multi, ok := raw.(map[string]any); ok { // {"<riid>": value} for a multiple resource
			riids := make([]int, 0, len(multi))
			for k := range multi {
				ri, err := strconv.Atoi(k)
				if err != nil || ri < 0 || ri > node.MaxID {
					return nil, fmt.Errorf("resource %d: %q is not a resource instance ID", id, k)
				}
				riids = append(riids, ri)
			}
			sort.Ints(riids)
			for _, ri := range riids {
				rec, err := typedJSONValue(defs, tenant, rp.Child(uint16(ri)), multi[strconv.Itoa(ri)])
				if err != nil {
					return nil, fmt.Errorf("resource %d/%d: %w", id, ri, err)
				}
				recs = append(recs, rec)
			}
			continue
		}
		rec, err := typedJSONValue(defs, tenant, rp, raw)
		if err != nil {
			return nil, fmt.Errorf("resource %d: %w", id, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// typedJSON types one JSON value of create by the resource's definition.
func (r *Runner) typedJSON(tenant string, p node.Path, raw any) (node.Record, error) {
	return typedJSONValue(r.cfg.Models, tenant, p, raw)
}

// typedJSONValue types one JSON value of create or cwrite: by the
// resource's definition where the agent has one, else by the JSON value
// itself, since JSON says what it is: a number without fraction or
// exponent is an integer (unsigned above the int64 range), any other
// number a float, true and false booleans, a string a string. A device
// that checks types (most do, in SenML and TLV alike) refuses a string
// for its integer resource.
func typedJSONValue(defs Definitions, tenant string, p node.Path, raw any) (node.Record, error) {
	if _, ok := resourceDef(defs, tenant, p); !ok {
		v, err := jsonValue(raw)
		if err != nil {
			return node.Record{}, err
		}
		return node.Record{Path: p, Value: v}, nil
	}
	var text string
	switch v := raw.(type) {
	case string:
		text = v
	case json.Number:
		text = v.String()
	case float64:
		text = strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		text = strconv.FormatBool(v)
	default:
		return node.Record{}, fmt.Errorf("value %v is neither string, number nor boolean", raw)
	}
	v, _, err := typedText(defs, tenant, p, text)
	if err != nil {
		return node.Record{}, err
	}
	return node.Record{Path: p, Value: v}, nil
}

// jsonValue is a JSON scalar as the value of its own kind.
func jsonValue(raw any) (node.Value, error) {
	switch v := raw.(type) {
	case string:
		return node.String(v), nil
	case bool:
		return node.Bool(v), nil
	case float64:
		return node.Float(v), nil
	case json.Number:
		s := v.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return node.Int(i), nil
			}
			if u, err := strconv.ParseUint(s, 10, 64); err == nil {
				return node.Uint(u), nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return node.Value{}, fmt.Errorf("number %s is out of range", s)
		}
		return node.Float(f), nil
	}
	return node.Value{}, fmt.Errorf("value %v is neither string, number nor boolean", raw)
}

// formatRecords writes one line per value: path, resource name where the
// definition is known, and the value.
func (r *Runner) formatRecords(tenant string, base node.Path, recs []node.Record) string {
	if len(recs) == 0 {
		return base.String() + ": no value"
	}
	var b strings.Builder
	for i, rec := range recs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(rec.Path.String())
		if name := r.resourceName(tenant, rec.Path); name != "" {
			b.WriteString(" (" + name + ")")
		}
		b.WriteString(" = ")
		if rec.Value.Type == node.TypeTime {
			b.WriteString(rec.Value.Time.UTC().Format(time.RFC3339))
		} else {
			b.WriteString(rec.Value.Text())
		}
	}
	return b.String()
}

func (r *Runner) resourceName(tenant string, p node.Path) string {
	res, _ := r.resource(tenant, p)
	return res.Name
}

// resource finds the definition of the resource of p for the tenant.
func (r *Runner) resource(tenant string, p node.Path) (model.ResourceDef, bool) {
	return resourceDef(r.cfg.Models, tenant, p)
}

func resourceDef(defs Definitions, tenant string, p node.Path) (model.ResourceDef, bool) {
	if defs == nil || p.Depth < 3 {
		return model.ResourceDef{}, false
	}
	obj, ok := defs.ObjectFor(tenant, p.Object)
	if !ok {
		return model.ResourceDef{}, false
	}
	return obj.Resource(p.Resource)
}
