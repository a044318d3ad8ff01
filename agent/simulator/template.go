package simulator

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// template holds the initial instances every device starts from. Their
// resources are shared: a device's instance is a fresh slice of pointers
// to the same immutable resources until the device writes one.
type template struct {
	objs  *objTable
	insts map[uint16][]*instance
}

func newTemplate(cfg Config, objs *objTable) *template {
	t := &template{objs: objs, insts: map[uint16][]*instance{}}
	set := func(in *instance, o uint16, id uint16, v node.Value) {
		rd := defs[o].byID[id]
		in.res[rd.idx] = &resource{v: v}
	}
	setMulti := func(in *instance, o uint16, id uint16, vs ...node.Value) {
		rd := defs[o].byID[id]
		res := &resource{}
		for i, v := range vs {
			res.multi = append(res.multi, resInst{id: uint16(i), v: v})
		}
		in.res[rd.idx] = res
	}
	add := func(o uint16, f func(in *instance)) {
		def := defs[o]
		in := newInstance(def, 0)
		for i, rd := range def.res {
			if rd.ops.has(opE) {
				in.res[i] = present
			}
		}
		f(in)
		t.insts[o] = append(t.insts[o], in)
	}
	lifetime := int64(cfg.Lifetime.Round(time.Second) / time.Second)

	add(objServer, func(in *instance) {
		set(in, objServer, 0, node.Int(1))
		set(in, objServer, resServerLifetime, node.Int(lifetime))
		set(in, objServer, resServerPmin, node.Int(0))
		set(in, objServer, resServerPmax, node.Int(0))
		set(in, objServer, 5, node.Int(86400))
		set(in, objServer, 6, node.Bool(true))
		set(in, objServer, resServerBinding, node.String(cfg.Binding))
		// A factory-bootstrapped device has no bootstrap server to ask.
		in.res[defs[objServer].byID[resServerBSTrig].idx] = nil
	})
	add(objDevice, func(in *instance) {
		set(in, objDevice, 0, node.String("lwm2m-agent"))
		set(in, objDevice, 1, node.String("simulator"))
		set(in, objDevice, resDevFirmwareVers, node.String("1.0.0"))
		setMulti(in, objDevice, 6, node.Int(1), node.Int(5))       // internal battery, USB
		setMulti(in, objDevice, 7, node.Int(3800), node.Int(5000)) // mV
		set(in, objDevice, 9, node.Int(100))
		set(in, objDevice, 10, node.Int(15360)) // KiB
		setMulti(in, objDevice, resDevErrorCode, node.Int(0))
		set(in, objDevice, resDevCurrentTime, node.TimeValue(time.Time{})) // follows the clock
		set(in, objDevice, 14, node.String("+00:00"))
		set(in, objDevice, 15, node.String("Etc/UTC"))
		set(in, objDevice, 16, node.String("U"))
		set(in, objDevice, 17, node.String("sensor"))
		set(in, objDevice, 18, node.String("1.0"))
		set(in, objDevice, 19, node.String("1.0.0"))
	})
	add(objConnectivity, func(in *instance) {
		set(in, objConnectivity, 0, node.Int(6))                   // LTE-FDD
		setMulti(in, objConnectivity, 1, node.Int(6), node.Int(7)) // LTE-FDD, NB-IoT
		set(in, objConnectivity, resConnRSSI, node.Int(-75))
		set(in, objConnectivity, 3, node.Int(80))
		setMulti(in, objConnectivity, 4, node.String("10.0.0.1"))
		set(in, objConnectivity, 8, node.Int(0))
		set(in, objConnectivity, 9, node.Int(1))
		set(in, objConnectivity, 10, node.Int(262))
	})
	add(objFirmware, func(in *instance) {
		set(in, objFirmware, resFwPackage, node.Opaque(nil))
		set(in, objFirmware, resFwURI, node.String(""))
		set(in, objFirmware, resFwState, node.Int(0))
		set(in, objFirmware, resFwResult, node.Int(0))
		set(in, objFirmware, resFwName, node.String(""))
		set(in, objFirmware, resFwVersion, node.String(""))
		var protocols []node.Value
		for _, p := range cfg.Firmware.Protocols {
			protocols = append(protocols, node.Int(firmwareProtocols[p]))
		}
		setMulti(in, objFirmware, resFwProtocols, protocols...)
		set(in, objFirmware, resFwDelivery, node.Int(firmwareDelivery[cfg.Firmware.Delivery]))
		if !cfg.Firmware.Cancel { // object version 1.2 only
			in.res[defs[objFirmware].byID[resFwCancel].idx] = nil
		}
	})
	add(objLocation, func(in *instance) {
		set(in, objLocation, 0, node.Float(52.52))
		set(in, objLocation, 1, node.Float(13.405))
		set(in, objLocation, 2, node.Float(34))
		set(in, objLocation, 5, node.TimeValue(time.Now().UTC().Truncate(time.Second)))
	})
	add(objTemperature, func(in *instance) {
		set(in, objTemperature, resTempValue, node.Float(21.5))
		set(in, objTemperature, resTempMin, node.Float(21.5))
		set(in, objTemperature, resTempMax, node.Float(21.5))
		set(in, objTemperature, 5603, node.Float(-40))
		set(in, objTemperature, 5604, node.Float(85))
		set(in, objTemperature, 5701, node.String("Cel"))
		set(in, objTemperature, 5750, node.String("room"))
	})
	add(objAppData, func(in *instance) {
		setMulti(in, objAppData, resAppData, node.Opaque(nil))
		set(in, objAppData, 3, node.String("sensor frames"))
		set(in, objAppData, 4, node.String("binary"))
	})
	add(objTempReadings, func(in *instance) {
		set(in, objTempReadings, resReadingsPeriod, node.Int(900))
		set(in, objTempReadings, resReadingsHistory, node.Opaque(nil))
		set(in, objTempReadings, resReadingsStatus, node.Int(0))
		set(in, objTempReadings, resReadingsLatest, node.Opaque(nil))
	})
	t.addObjects(cfg.Objects)
	return t
}

// addObjects adds the instances of the objects o defines and gives every
// resource o names its first value (Config.Objects, validated).
func (t *template) addObjects(o Objects) {
	for _, od := range o.Defs {
		def := t.objs.byID[od.ID]
		var ids []uint16
		for _, r := range o.Resources {
			if r.Path.Object == od.ID && !slices.Contains(ids, r.Path.Instance) {
				ids = append(ids, r.Path.Instance)
			}
		}
		if len(ids) == 0 {
			ids = []uint16{0}
		}
		slices.Sort(ids)
		for _, id := range ids {
			in := newInstance(def, id)
			for _, md := range od.Resources {
				rd := def.byID[md.ID]
				switch {
				case rd.ops.has(opE):
					in.res[rd.idx] = present
				case !md.Mandatory || !rd.ops.has(opR):
				case rd.multiple:
					in.res[rd.idx] = &resource{}
				default:
					in.res[rd.idx] = &resource{v: zero(rd.typ)}
				}
			}
			t.insts[od.ID] = append(t.insts[od.ID], in)
		}
	}
	for i := range o.Resources {
		r := &o.Resources[i]
		p := r.Path
		rd, _ := t.objs.resDef(p)
		in := t.instance(p.Object, p.Instance)
		v := r.first(rd.typ)
		if !rd.multiple {
			in.res[rd.idx] = &resource{v: v}
			continue
		}
		var multi []resInst
		if prev := in.res[rd.idx]; prev != nil {
			multi = slices.Clone(prev.multi)
		}
		in.res[rd.idx] = &resource{multi: setInst(multi, p.ResourceInstance, v)}
	}
}

// instance returns the template's instance id of object o.
func (t *template) instance(o, id uint16) *instance {
	for _, in := range t.insts[o] {
		if in.id == id {
			return in
		}
	}
	return nil
}

// defaults returns the template instance of an object, for Create.
func (t *template) defaults(o uint16) *instance {
	if ins := t.insts[o]; len(ins) > 0 {
		return ins[0]
	}
	return nil
}

// instantiate gives a device its own tree, with the values that tell
// devices apart (serial number, address, position, a starting
// temperature) drawn from its index.
func (t *template) instantiate(d *Device) tree {
	tr := tree{objs: make(map[uint16]*objState, len(t.objs.ids))}
	for _, id := range t.objs.ids {
		o := &objState{def: t.objs.byID[id]}
		for _, in := range t.insts[id] {
			o.insts = append(o.insts, in.clone())
		}
		tr.objs[id] = o
	}
	tr.objs[objSecurity].insts = []*instance{securityInstance(d.spec)}
	if d.spec.BootstrapURI != "" {
		// Before its first bootstrap a device knows no LwM2M server.
		tr.objs[objServer].insts = nil
	}
	put := func(p node.Path, v node.Value) {
		if d.sim.given[p] {
			return // Config.Objects says what it holds
		}
		rd, _ := t.objs.resDef(p)
		in := tr.objs[p.Object].instance(p.Instance)
		if rd.multiple {
			in.res[rd.idx] = &resource{multi: []resInst{{id: p.ResourceInstance, v: v}}}
			return
		}
		in.res[rd.idx] = &resource{v: v}
	}
	i := d.index
	rng := d.rng
	round := func(f float64, digits int) float64 {
		m := math.Pow(10, float64(digits))
		return math.Round(f*m) / m
	}
	put(node.ResourcePath(objDevice, 0, 2), node.String(d.endpoint))
	put(node.ResourcePath(objDevice, 0, 9), node.Int(50+rng.Int64N(51)))
	put(node.ResourceInstancePath(objConnectivity, 0, 4, 0),
		node.String("10."+strconv.Itoa(i>>16&255)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255)))
	put(node.ResourcePath(objConnectivity, 0, 8), node.Int(10000+int64(i)))
	put(pathRSSI, node.Int(-60-rng.Int64N(30)))
	put(node.ResourcePath(objLocation, 0, 0), node.Float(round(52.52+(rng.Float64()-0.5)*0.2, 6)))
	put(node.ResourcePath(objLocation, 0, 1), node.Float(round(13.405+(rng.Float64()-0.5)*0.3, 6)))
	temp := node.Float(round(19+rng.Float64()*5, 2))
	put(pathTemperature, temp)
	put(node.ResourcePath(objTemperature, 0, resTempMin), temp)
	put(node.ResourcePath(objTemperature, 0, resTempMax), temp)
	return tr
}

// securityInstance is the device's factory Security instance /0/0: the
// bootstrap-server account when it has a bootstrap server, else its
// LwM2M server account (short server ID 1, matching /1/0).
func securityInstance(dc DeviceConfig) *instance {
	def := defs[objSecurity]
	in := newInstance(def, 0)
	set := func(id uint16, v node.Value) { in.res[def.byID[id].idx] = &resource{v: v} }
	uri, ident, key, bs := dc.ServerURI, dc.PSKIdentity, dc.PSK, false
	if dc.BootstrapURI != "" {
		uri, ident, key, bs = dc.BootstrapURI, dc.BootstrapPSKIdentity, dc.BootstrapPSK, true
	}
	mode := int64(secModeNoSec)
	if strings.HasPrefix(uri, "coaps:") {
		mode = secModePSK
	}
	set(resSecURI, node.String(uri))
	set(resSecBS, node.Bool(bs))
	set(resSecMode, node.Int(mode))
	set(resSecIdentity, node.Opaque([]byte(ident)))
	set(4, node.Opaque(nil))
	set(resSecKey, node.Opaque(key))
	if !bs {
		set(resSecSSID, node.Int(1))
	}
	set(11, node.Int(0))
	return in
}
