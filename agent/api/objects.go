package api

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/render"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
)

type objView struct {
	instances map[uint16]*instView
	ops       opLists // operations at object level
}

type instView struct {
	resources map[uint16]*resView
	ops       opLists
}

type resView struct {
	value  *store.ResourceValue            // single resource
	values map[uint16]*store.ResourceValue // resource instances
}

// objectLinks returns the links the device registered: its lwm2m.objects
// fragment, else what the registration source knows.
func (a *API) objectLinks(u store.User, mo store.ManagedObject) []string {
	var links []string
	if l, ok := mo.Fragments["lwm2m"].(map[string]any); ok {
		if objs, ok := l["objects"].([]any); ok {
			for _, o := range objs {
				if s, ok := o.(string); ok {
					links = append(links, s)
				}
			}
			return links
		}
	}
	if a.cfg.Registrations != nil {
		links, _ = a.cfg.Registrations.Objects(u.Tenant, mo.ID)
	}
	return links
}

// linkPath parses "/3/0", "</3/0>" or "</3/0>;ver=1.1".
func linkPath(s string) (node.Path, bool) {
	s, _, _ = strings.Cut(strings.TrimSpace(s), ";")
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	p, err := node.ParsePath(s)
	if err != nil || p.Depth == 0 || p.Depth > 2 {
		return node.Path{}, false
	}
	return p, true
}

// objectsView answers every object, instance and resource the device has:
// the objects and instances it registered and those it sent values for;
// for a known object, every resource of its definition with name, type,
// operations and units; for an unknown one (or an undefined resource)
// "raw": true. Each resource carries its last known value and time, a
// multiple resource its instances under "values".
func (a *API) objectsView(w http.ResponseWriter, r *http.Request, u store.User) {
	ctx := r.Context()
	mo, err := a.cfg.Store.GetManagedObject(ctx, u.Tenant, r.PathValue("id"))
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	vals, err := a.cfg.Store.Values(ctx, u.Tenant, mo.ID)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	dq, err := a.cfg.Store.QueueOf(ctx, u.Tenant, mo.ID, viewOpsScan)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	pending, queued, executing := dq.PendingCount, dq.Pending, dq.Executing
	ended, err := a.cfg.Store.RecentOperations(ctx, u.Tenant, mo.ID, viewOpsScan)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	objs := map[uint16]*objView{}
	object := func(id uint16) *objView {
		o := objs[id]
		if o == nil {
			o = &objView{instances: map[uint16]*instView{}}
			objs[id] = o
		}
		return o
	}
	instance := func(o, i uint16) *instView {
		ov := object(o)
		iv := ov.instances[i]
		if iv == nil {
			iv = &instView{resources: map[uint16]*resView{}}
			ov.instances[i] = iv
		}
		return iv
	}
	for _, l := range a.objectLinks(u, mo) {
		p, ok := linkPath(l)
		if !ok {
			continue
		}
		if p.Depth == 1 {
			object(p.Object)
		} else {
			instance(p.Object, p.Instance)
		}
	}
	for i := range vals {
		v := &vals[i]
		p, err := node.ParsePath(v.Path)
		if err != nil || p.Depth < 3 {
			continue
		}
		iv := instance(p.Object, p.Instance)
		rv := iv.resources[p.Resource]
		if rv == nil {
			rv = &resView{}
			iv.resources[p.Resource] = rv
		}
		if p.Depth == 3 {
			rv.value = v
		} else {
			if rv.values == nil {
				rv.values = map[uint16]*store.ResourceValue{}
			}
			rv.values[p.ResourceInstance] = v
		}
	}

	// what is under way now is listed first among what has not ended
	placeOps(objs, append(executing, queued...), ended)

	out := []map[string]any{}
	for _, oid := range slices.Sorted(maps.Keys(objs)) {
		ov := objs[oid]
		var def model.ObjectDef
		known := false
		if a.cfg.Models != nil {
			def, known = a.cfg.Models.ObjectFor(u.Tenant, oid)
		}
		oj := map[string]any{"id": oid, "path": node.ObjectPath(oid).String(), "raw": !known}
		if known {
			oj["name"] = def.Name
			oj["multipleInstances"] = def.Multiple
		}
		insts := []map[string]any{}
		for _, iid := range slices.Sorted(maps.Keys(ov.instances)) {
			iv := ov.instances[iid]
			ids := slices.Collect(maps.Keys(iv.resources))
			if known {
				for _, rd := range def.Resources {
					ids = append(ids, rd.ID)
				}
			}
			slices.Sort(ids)
			ress := []map[string]any{}
			for _, rid := range slices.Compact(ids) {
				ress = append(ress, resourceJSON(node.ResourcePath(oid, iid, rid), def, known, iv.resources[rid]))
			}
			insts = append(insts, map[string]any{"id": iid, "path": node.InstancePath(oid, iid).String(), "resources": ress,
				"operations": iv.ops.json()})
		}
		oj["instances"] = insts
		oj["operations"] = ov.ops.json()
		out = append(out, oj)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"deviceId": mo.ID, "name": mo.Name, "pendingOperations": pending, "executingOperations": len(executing), "objects": out,
		"operationsScanned": map[string]any{
			"pending": len(queued), "ended": len(ended), "limit": viewOpsScan,
			// every pending operation was read, and every ended one of
			// the device up to the limit
			"complete": len(queued) >= pending && len(ended) < viewOpsScan,
		},
		"self": self(r, r.URL.Path),
	})
}

func resourceJSON(p node.Path, def model.ObjectDef, known bool, rv *resView) map[string]any {
	rj := map[string]any{"id": p.Resource, "path": p.String()}
	rd, defined := model.ResourceDef{}, false
	if known {
		rd, defined = def.Resource(p.Resource)
	}
	if defined {
		rj["name"] = rd.Name
		rj["type"] = rd.Type.String()
		rj["operations"] = rd.Operations
		rj["units"] = rd.Units
		rj["multiple"] = rd.Multiple
		rj["mandatory"] = rd.Mandatory
	} else {
		rj["raw"] = true
	}
	if rv == nil {
		return rj
	}
	if rv.value != nil {
		rj["value"] = jsonValue(rv.value.Value)
		rj["time"] = jsonTime(rv.value.Time)
		if !defined && rv.value.Type != "" {
			rj["type"] = rv.value.Type
		}
	}
	if len(rv.values) > 0 {
		vs := []map[string]any{}
		var last time.Time
		for _, ri := range slices.Sorted(maps.Keys(rv.values)) {
			v := rv.values[ri]
			vs = append(vs, map[string]any{"id": ri, "value": jsonValue(v.Value), "time": jsonTime(v.Time)})
			if v.Time.After(last) {
				last = v.Time
			}
			if !defined && v.Type != "" {
				rj["type"] = v.Type
			}
		}
		rj["values"] = vs
		if _, ok := rj["time"]; !ok {
			rj["time"] = jsonTime(last)
		}
	}
	return rj
}

// jsonValue writes opaque bytes as hex, like node.Value.Interface.
func jsonValue(v any) any { return render.Value(v) }

// Bounds of the operations the objects view shows: it reads at most
// viewOpsScan pending and viewOpsScan ended operations of the device, and
// lists at most viewOpsPerNode of each kind under one instance or object.
const (
	viewOpsScan    = 500
	viewOpsPerNode = 10
)

// opLists are the operations addressed to one instance (or object) of the
// objects view: how many of the pending ones that were read address it,
// the oldest viewOpsPerNode of them, and the newest viewOpsPerNode that
// ended.
type opLists struct {
	pendingCount int
	pending      []store.Operation
	history      []store.Operation
}

func (l *opLists) json() map[string]any {
	pending := make([]map[string]any, 0, len(l.pending))
	for _, op := range l.pending {
		pending = append(pending, map[string]any{
			"id": op.ID, "text": opText(op), "status": op.Status, "creationTime": jsonTime(op.CreationTime), "attempts": op.Attempts,
		})
	}
	history := make([]map[string]any, 0, len(l.history))
	for _, op := range l.history {
		h := map[string]any{"id": op.ID, "text": opText(op), "status": op.Status, "lastUpdated": jsonTime(op.LastUpdated)}
		if op.Result != "" {
			h["result"] = op.Result
		}
		if op.FailureReason != "" {
			h["failureReason"] = op.FailureReason
		}
		history = append(history, h)
	}
	return map[string]any{
		"pending": map[string]any{"count": l.pendingCount, "operations": pending},
		"history": history,
	}
}

// opText is the command of an operation, or for a firmware update made
// with the c8y_Firmware fragment, a line that says so.
func opText(op store.Operation) string {
	if op.HasCommand {
		return op.Text
	}
	if fw, ok := op.Fragments["c8y_Firmware"].(map[string]any); ok {
		name, _ := fw["name"].(string)
		version, _ := fw["version"].(string)
		return strings.TrimSpace("c8y_Firmware " + name + " " + version)
	}
	return ""
}

// firmwareInstance is where a firmware update acts: the Firmware Update
// object's instance (Core TS, object 5 is single-instance).
var firmwareInstance = node.InstancePath(5, 0)

// opTargets returns the instances and objects an operation addresses:
// the instance of every path at instance level or below, the object of
// a path at object level; none for a command without a path
// (serialization). A composite command yields each once.
func opTargets(op store.Operation) []node.Path {
	if !op.HasCommand {
		if _, ok := op.Fragments["c8y_Firmware"]; ok {
			return []node.Path{firmwareInstance}
		}
		return nil
	}
	cmd, err := shell.Parse(op.Text)
	if err != nil {
		return nil
	}
	if cmd.Kind == shell.FirmwareUpdate {
		return []node.Path{firmwareInstance}
	}
	var out []node.Path
	for _, p := range cmd.Paths {
		var t node.Path
		switch {
		case p.Depth >= 2:
			t = node.InstancePath(p.Object, p.Instance)
		case p.Depth == 1:
			t = node.ObjectPath(p.Object)
		default:
			continue
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// placeOps lists each operation under every instance it addresses. An
// operation on a whole object, or on an instance the view does not have
// (one the device deleted, or not yet created), is listed at the object;
// one on an object the view does not have is not listed. queued is
// oldest first, ended newest first, as the store answers them.
func placeOps(objs map[uint16]*objView, queued, ended []store.Operation) {
	lists := func(t node.Path) *opLists {
		ov := objs[t.Object]
		if ov == nil {
			return nil
		}
		if t.Depth == 2 {
			if iv := ov.instances[t.Instance]; iv != nil {
				return &iv.ops
			}
		}
		return &ov.ops
	}
	for _, op := range queued {
		var seen []*opLists
		for _, t := range opTargets(op) {
			l := lists(t)
			if l == nil || slices.Contains(seen, l) {
				continue
			}
			seen = append(seen, l)
			l.pendingCount++
			if len(l.pending) < viewOpsPerNode {
				l.pending = append(l.pending, op)
			}
		}
	}
	for _, op := range ended {
		var seen []*opLists
		for _, t := range opTargets(op) {
			l := lists(t)
			if l == nil || slices.Contains(seen, l) {
				continue
			}
			seen = append(seen, l)
			if len(l.history) < viewOpsPerNode {
				l.history = append(l.history, op)
			}
		}
	}
}
