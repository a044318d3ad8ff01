package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/shell"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/lwm2m-agent/lwm2m-agent/plugins/validation"
)

// Audit against a reference device (API.md, "LWM2M-specific resources").
//
// GET /lwm2m/devices/{id}/audit?reference={refId} compares the last known
// values of two devices of the caller's tenant, per object instance;
// POST /lwm2m/devices/{id}/audit/sync writes chosen values of the
// reference to the device, as write operations the runner delivers like
// any other. Both devices must be the caller's tenant's (404 otherwise).

// MaxSyncPaths bounds the paths of one sync request: a device has at most
// a few hundred writable resources.
const MaxSyncPaths = 1000

// auditSyncFragment marks the operations a sync created, with the
// reference they copy.
const auditSyncFragment = "lwm2m_AuditSync"

// auditPair is one value path of either device.
type auditPair struct {
	path      node.Path
	device    *store.ResourceValue
	reference *store.ResourceValue
}

// auditDevices reads both devices of the tenant; ok is false after an
// answered error (404 for a device that is not the tenant's).
func (a *API) auditDevices(w http.ResponseWriter, r *http.Request, u store.User, refID string) (dev, ref store.ManagedObject, ok bool) {
	if refID == "" {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", "reference is required: the ID of the device to compare with")
		return dev, ref, false
	}
	dev, err := a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, r.PathValue("id"))
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return dev, ref, false
	}
	ref, err = a.cfg.Store.GetManagedObject(r.Context(), u.Tenant, refID)
	if err != nil {
		a.storeError(w, r, "lwm2m", fmt.Errorf("reference %q: %w", refID, err))
		return dev, ref, false
	}
	return dev, ref, true
}

// audit answers, for every object instance either device has values of,
// how many values are the same and how many differ, and each value of
// both devices. A value only one device has counts as different.
//
//	{"deviceId":"1","referenceId":"2","same":12,"different":3,
//	 "instances":[{"path":"/3/0","objectId":3,"instanceId":0,"name":"Device","same":10,"different":2,
//	   "resources":[{"path":"/3/0/14","id":14,"name":"UTC Offset","writable":true,"same":false,
//	                 "value":"+01:00","referenceValue":"+02:00"}, ...]}, ...],
//	 "self":"..."}
func (a *API) audit(w http.ResponseWriter, r *http.Request, u store.User) {
	dev, ref, ok := a.auditDevices(w, r, u, r.URL.Query().Get("reference"))
	if !ok {
		return
	}
	pairs, err := a.auditPairs(r.Context(), u.Tenant, dev.ID, ref.ID)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	type instKey struct{ o, i uint16 }
	byInst := map[instKey][]auditPair{}
	for _, p := range pairs {
		k := instKey{p.path.Object, p.path.Instance}
		byInst[k] = append(byInst[k], p)
	}
	keys := slices.SortedFunc(maps.Keys(byInst), func(x, y instKey) int {
		if x.o != y.o {
			return int(x.o) - int(y.o)
		}
		return int(x.i) - int(y.i)
	})
	objs := map[uint16]objectDefinition{}
	instances := make([]map[string]any, 0, len(keys))
	totalSame, totalDiff := 0, 0
	for _, k := range keys {
		def, known := a.objectDef(u.Tenant, k.o, objs)
		same, diff := 0, 0
		res := make([]map[string]any, 0, len(byInst[k]))
		for _, p := range byInst[k] {
			eq := sameValue(p.device, p.reference)
			if eq {
				same++
			} else {
				diff++
			}
			rj := map[string]any{"path": p.path.String(), "id": p.path.Resource, "same": eq, "writable": false}
			if p.path.Depth == 4 {
				rj["resourceInstanceId"] = p.path.ResourceInstance
			}
			if rd, ok := def.Resource(p.path.Resource); known && ok {
				rj["name"] = rd.Name
				rj["writable"] = rd.Writable()
			}
			if p.device != nil {
				rj["value"] = jsonValue(p.device.Value)
			}
			if p.reference != nil {
				rj["referenceValue"] = jsonValue(p.reference.Value)
			}
			res = append(res, rj)
		}
		ij := map[string]any{
			"path": node.InstancePath(k.o, k.i).String(), "objectId": k.o, "instanceId": k.i,
			"same": same, "different": diff, "resources": res,
		}
		if known {
			ij["name"] = def.Name
		}
		instances = append(instances, ij)
		totalSame += same
		totalDiff += diff
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"deviceId": dev.ID, "referenceId": ref.ID, "same": totalSame, "different": totalDiff,
		"instances": instances, "self": self(r, r.URL.Path) + "?reference=" + url.QueryEscape(ref.ID),
	})
}

type objectDefinition struct {
	def   model.ObjectDef
	known bool
}

// objectDef looks an object up once per request.
func (a *API) objectDef(tenant string, id uint16, seen map[uint16]objectDefinition) (model.ObjectDef, bool) {
	if d, ok := seen[id]; ok {
		return d.def, d.known
	}
	var d objectDefinition
	if a.cfg.Models != nil {
		d.def, d.known = a.cfg.Models.ObjectFor(tenant, id)
	}
	seen[id] = d
	return d.def, d.known
}

// auditPairs pairs the last known values of two devices by path, in path
// order; values of instance or object paths (none are stored) are left out.
func (a *API) auditPairs(ctx context.Context, tenant, deviceID, refID string) ([]auditPair, error) {
	devVals, err := a.cfg.Store.Values(ctx, tenant, deviceID)
	if err != nil {
		return nil, err
	}
	refVals, err := a.cfg.Store.Values(ctx, tenant, refID)
	if err != nil {
		return nil, err
	}
	at := map[node.Path]*auditPair{}
	add := func(vals []store.ResourceValue, ref bool) {
		for i := range vals {
			p, err := node.ParsePath(vals[i].Path)
			if err != nil || p.Depth < 3 {
				continue
			}
			pr := at[p]
			if pr == nil {
				pr = &auditPair{path: p}
				at[p] = pr
			}
			if ref {
				pr.reference = &vals[i]
			} else {
				pr.device = &vals[i]
			}
		}
	}
	add(devVals, false)
	add(refVals, true)
	out := make([]auditPair, 0, len(at))
	for _, p := range at {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(x, y auditPair) int { return slices.Compare(x.path.IDs(), y.path.IDs()) })
	return out, nil
}

// sameValue compares two last known values as typed values: a FLOAT 1 and
// an INTEGER 1 differ, two times are the same instant in any zone.
func sameValue(x, y *store.ResourceValue) bool {
	if x == nil || y == nil {
		return false
	}
	vx, okx := validation.StoredValue(*x)
	vy, oky := validation.StoredValue(*y)
	return okx && oky && vx.Equal(vy)
}

// auditSyncBody is the body of POST /lwm2m/devices/{id}/audit/sync.
type auditSyncBody struct {
	Reference string   `json:"reference"`
	Paths     []string `json:"paths"`
}

// auditSync queues one write per path with the reference's last known
// value, each typed by the tenant's definition and validated like any
// write. Every path is checked before anything is stored: a path that is
// not a writable resource, has no reference value, or whose value fails
// validation answers 422 naming every such path; nothing is queued. The
// answer, 201, lists the operations in the order of the paths:
//
//	{"operations":[{"id":"12","deviceId":"1","status":"PENDING","c8y_Command":{"text":"write /3/0/14 +02:00"},
//	                "lwm2m_AuditSync":{"reference":"2","path":"/3/0/14"}, ...}, ...]}
func (a *API) auditSync(w http.ResponseWriter, r *http.Request, u store.User) {
	var body auditSyncBody
	if !a.readStrictJSON(w, r, &body) {
		return
	}
	if len(body.Paths) == 0 {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", `paths is required: the resource paths to write with the reference's values, e.g. ["/3/0/14"]`)
		return
	}
	if len(body.Paths) > MaxSyncPaths {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", fmt.Sprintf("%d paths, at most %d per request", len(body.Paths), MaxSyncPaths))
		return
	}
	paths := make([]node.Path, 0, len(body.Paths))
	seen := map[node.Path]bool{}
	var problems []string
	for _, s := range body.Paths {
		p, err := node.ParsePath(s)
		switch {
		case err != nil || p.Depth < 3:
			problems = append(problems, fmt.Sprintf("%q is not a resource path /objectId/instanceId/resourceId[/resourceInstanceId]", s))
		case seen[p]:
			problems = append(problems, fmt.Sprintf("%s is given twice", p))
		default:
			seen[p] = true
			paths = append(paths, p)
		}
	}
	if len(problems) > 0 {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", strings.Join(problems, "\n"))
		return
	}
	dev, ref, ok := a.auditDevices(w, r, u, body.Reference)
	if !ok {
		return
	}
	refVals, err := a.cfg.Store.Values(r.Context(), u.Tenant, ref.ID)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	byPath := make(map[node.Path]store.ResourceValue, len(refVals))
	for _, v := range refVals {
		if p, err := node.ParsePath(v.Path); err == nil {
			byPath[p] = v
		}
	}
	objs := map[uint16]objectDefinition{}
	cmds := make([]shell.Command, 0, len(paths))
	for _, p := range paths {
		def, known := a.objectDef(u.Tenant, p.Object, objs)
		rd, defined := def.Resource(p.Resource)
		if !known || !defined {
			problems = append(problems, fmt.Sprintf("%s: no definition of the resource, so it cannot be written", p))
			continue
		}
		if !rd.Writable() {
			problems = append(problems, fmt.Sprintf("%s (%s) is not writable (operations %s)", p, rd.Name, rd.Operations))
			continue
		}
		rv, ok := byPath[p]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: the reference has no last known value", p))
			continue
		}
		v, ok := validation.StoredValue(rv)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: the reference's value %v cannot be written", p, rv.Value))
			continue
		}
		cmd, err := shell.Parse(writeCommand(p, v))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		cmds = append(cmds, cmd)
	}
	if len(problems) > 0 {
		writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", strings.Join(problems, "\n"))
		return
	}
	if err := a.checkWrites(r.Context(), u.Tenant, dev.ID, cmds, nil); err != nil {
		if ref, ok := err.(*refusedWrites); ok {
			writeError(w, r, http.StatusUnprocessableEntity, "lwm2m/unprocessable", ref.Error())
			return
		}
		a.storeError(w, r, "lwm2m", err)
		return
	}
	queue := make([]store.Operation, len(cmds))
	for i, c := range cmds {
		queue[i] = store.Operation{DeviceID: dev.ID, HasCommand: true, Text: c.Raw, Fragments: map[string]any{
			auditSyncFragment: map[string]any{"reference": ref.ID, "path": paths[i].String()},
		}}
	}
	stored, err := a.cfg.Store.CreateOperations(r.Context(), u.Tenant, queue)
	if err != nil {
		a.storeError(w, r, "lwm2m", err)
		return
	}
	if a.cfg.Ops != nil {
		// The runner keeps working on them after this request ends.
		ctx := context.WithoutCancel(r.Context())
		for _, op := range stored {
			a.cfg.Ops.Submit(ctx, u.Tenant, op)
		}
	}
	items := make([]map[string]any, len(stored))
	for i, op := range stored {
		items[i] = opJSON(r, op)
	}
	a.log.Info("audit sync queued", "tenant", u.Tenant, "device", dev.ID, "reference", ref.ID, "operations", len(stored))
	writeJSON(w, http.StatusCreated, map[string]any{"operations": items})
}

// writeCommand is the shell line that writes v to p: `write PATH VALUE`,
// or, for text the write command cannot carry (empty, surrounded by
// white space, several lines), `cwrite {"PATH": "..."}`, whose JSON
// string carries any text.
func writeCommand(p node.Path, v node.Value) string {
	text := v.Text()
	if (v.Type == node.TypeString || v.Type == node.TypeCorelnk) &&
		(text == "" || strings.TrimSpace(text) != text || strings.ContainsAny(text, "\r\n")) {
		b, _ := json.Marshal(map[string]string{p.String(): text})
		return "cwrite " + string(b)
	}
	return "write " + p.String() + " " + text
}
