package simulator

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"

	"github.com/lwm2m-agent/lwm2m-agent/agent/codec"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// The composite operations of LwM2M 1.1 (Core TS 6.3.8, 6.3.9, 6.4.3):
// FETCH on the root with a SenML list of names reads or observes several
// paths at once; iPATCH on the root with SenML records writes them.

// maxCompositePaths bounds the paths of one composite request.
const maxCompositePaths = 256

// decodePathList reads the names of a Read- or Observe-Composite payload:
// SenML records with a name (and maybe a base name) and no value, which
// the record decoders skip.
func decodePathList(f codec.Format, payload []byte) ([]node.Path, error) {
	type rec struct {
		BaseName string
		Name     string
	}
	var recs []rec
	switch f {
	case codec.SenMLJSON:
		var raw []struct {
			BN string `json:"bn"`
			N  string `json:"n"`
		}
		if err := json.Unmarshal(payload, &raw); err != nil {
			return nil, fmt.Errorf("%w: path list: %v", codec.ErrMalformed, err)
		}
		for _, r := range raw {
			recs = append(recs, rec{r.BN, r.N})
		}
	case codec.SenMLCBOR:
		var raw []map[int]any
		dm, _ := cbor.DecOptions{MaxArrayElements: maxCompositePaths, MaxMapPairs: 16, MaxNestedLevels: 4}.DecMode()
		if err := dm.Unmarshal(payload, &raw); err != nil {
			return nil, fmt.Errorf("%w: path list: %v", codec.ErrMalformed, err)
		}
		for _, r := range raw {
			bn, _ := r[-2].(string)
			n, _ := r[0].(string)
			recs = append(recs, rec{bn, n})
		}
	default:
		return nil, fmt.Errorf("%w: %v for a path list", codec.ErrUnsupported, f)
	}
	if len(recs) == 0 || len(recs) > maxCompositePaths {
		return nil, fmt.Errorf("%w: path list of %d paths", codec.ErrMalformed, len(recs))
	}
	paths := make([]node.Path, 0, len(recs))
	bn := ""
	for _, r := range recs {
		if r.BaseName != "" {
			bn = r.BaseName
		}
		p, err := node.ParsePath(bn + r.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", codec.ErrMalformed, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// readPathsLocked reads several paths for a composite answer. Paths the
// device lacks are left out; none found at all is a 4.04.
func (d *Device) readPathsLocked(paths []node.Path, now time.Time) ([]node.Record, error) {
	var recs []node.Record
	found := false
	for _, p := range paths {
		if p.Depth >= 1 && defs[p.Object] != nil && defs[p.Object].dmHidden {
			return nil, refuse(codes.Unauthorized, "the security object is not accessible")
		}
		rs, err := d.tree.read(p, now)
		if err != nil {
			if codeOf(err) == codes.NotFound {
				continue
			}
			return nil, err
		}
		found = true
		recs = append(recs, rs...)
	}
	if !found {
		return nil, refuse(codes.NotFound, "none of the %d paths exists", len(paths))
	}
	return recs, nil
}

// fetch answers Read-Composite and Observe-Composite.
func (d *Device) fetch(r *pool.Message, p node.Path, now time.Time) reply {
	if p.Depth != 0 {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: "composite operations address the root"}
	}
	cf, err := r.ContentFormat()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: "fetch without content format"}
	}
	body, err := r.ReadBody()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
	}
	paths, err := decodePathList(codec.Format(cf), body)
	if err != nil {
		return fail(err, true)
	}
	f := codec.Format(cf)
	if a, err := r.Accept(); err == nil {
		f = codec.Format(a)
	}
	if f != codec.SenMLJSON && f != codec.SenMLCBOR {
		return reply{code: codes.NotAcceptable, observe: -1, diag: fmt.Sprintf("composite answers are SenML, not %v", f)}
	}
	obs, obsErr := r.Observe()
	d.mu.Lock()
	defer d.mu.Unlock()
	recs, err := d.readPathsLocked(paths, now)
	if err != nil {
		return fail(err, false)
	}
	payload, err := codec.Encode(f, node.Root, recs)
	if err != nil {
		return fail(err, false)
	}
	rep := content(f, payload)
	if obsErr == nil {
		switch obs {
		case 0:
			if o := d.observeLocked(r.Token(), node.Root, f, now); o != nil {
				o.paths = paths
				rep.observe = int64(o.seq)
			}
		case 1:
			d.cancelLocked(r.Token(), node.Root)
		}
	}
	return rep
}

// ipatch answers Write-Composite: every record is applied, or none.
func (d *Device) ipatch(r *pool.Message, p node.Path, now time.Time) reply {
	if p.Depth != 0 {
		return reply{code: codes.MethodNotAllowed, observe: -1, diag: "composite operations address the root"}
	}
	cf, err := r.ContentFormat()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: "write without content format"}
	}
	if f := codec.Format(cf); f != codec.SenMLJSON && f != codec.SenMLCBOR {
		return reply{code: codes.UnsupportedMediaType, observe: -1, diag: fmt.Sprintf("write-composite takes SenML, not %v", f)}
	}
	body, err := r.ReadBody()
	if err != nil {
		return reply{code: codes.BadRequest, observe: -1, diag: err.Error()}
	}
	recs, err := codec.Decode(codec.Format(cf), node.Root, body, d.sim.objs)
	if err != nil {
		return fail(err, true)
	}
	if len(recs) == 0 {
		return reply{code: codes.BadRequest, observe: -1, diag: "empty write-composite"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Apply to a copy, one instance at a time, and keep the copy only if
	// every instance took its values.
	scratch := d.tree.shallowCopy()
	var changed []node.Path
	byInst := map[node.Path][]node.Record{}
	var order []node.Path
	for _, rec := range recs {
		if rec.Path.Depth < 3 {
			return reply{code: codes.BadRequest, observe: -1, diag: fmt.Sprintf("write-composite value for %v: name a resource", rec.Path)}
		}
		if defs[rec.Path.Object] != nil && defs[rec.Path.Object].dmHidden {
			return reply{code: codes.Unauthorized, observe: -1, diag: "the security object is not accessible"}
		}
		ip := node.InstancePath(rec.Path.Object, rec.Path.Instance)
		if _, ok := byInst[ip]; !ok {
			order = append(order, ip)
		}
		byInst[ip] = append(byInst[ip], rec)
	}
	for _, ip := range order {
		c, err := scratch.write(ip, byInst[ip], writeUpdate)
		if err != nil {
			return fail(err, true)
		}
		changed = append(changed, c...)
	}
	d.tree = scratch
	rep := answer(codes.Changed)
	var more []node.Path
	rep.work, more = d.afterWriteLocked(changed)
	rep.out = d.changedLocked(append(changed, more...), now)
	return rep
}

// shallowCopy copies the tree's structure but shares its instances and
// resources, which writes replace rather than change.
func (t *tree) shallowCopy() tree {
	c := tree{objs: make(map[uint16]*objState, len(t.objs)), clock: t.clock}
	for id, o := range t.objs {
		c.objs[id] = &objState{def: o.def, insts: append([]*instance(nil), o.insts...)}
	}
	return c
}
