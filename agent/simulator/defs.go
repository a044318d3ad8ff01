package simulator

import (
	"fmt"
	"sort"

	"github.com/lwm2m-agent/lwm2m-agent/agent/model"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// op is a bit set of the operations a resource allows, as the object
// definitions spell them (R, W, E).
type op uint8

const (
	opR op = 1 << iota
	opW
	opE
)

func (o op) has(x op) bool { return o&x != 0 }

// resDef is one resource of an object definition.
type resDef struct {
	id       uint16
	name     string
	typ      node.Type
	ops      op
	multiple bool
	idx      int // position in objDef.res and in instance.res
}

// objDef is one object definition. Only the resources the simulator
// implements are listed; a request for any other resource of a known object
// answers 4.04, as a real device that lacks an optional resource would.
type objDef struct {
	id       uint16
	name     string
	multiple bool // multiple instances
	res      []*resDef
	byID     map[uint16]*resDef
	// dmHidden objects are not reachable by a device-management server
	// (the Security object: Core TS 1.1, 6.2.1 and E.1).
	dmHidden bool
}

func (o *objDef) resource(id uint16) *resDef { return o.byID[id] }

func newObj(id uint16, name string, multiple bool, res ...*resDef) *objDef {
	o := &objDef{id: id, name: name, multiple: multiple, byID: make(map[uint16]*resDef, len(res))}
	sort.Slice(res, func(i, j int) bool { return res[i].id < res[j].id })
	for i, r := range res {
		r.idx = i
		o.byID[r.id] = r
	}
	o.res = res
	return o
}

func r(id uint16, name string, t node.Type, ops op) *resDef {
	return &resDef{id: id, name: name, typ: t, ops: ops}
}

func rm(id uint16, name string, t node.Type, ops op) *resDef {
	return &resDef{id: id, name: name, typ: t, ops: ops, multiple: true}
}

// Object and resource IDs the simulator gives behaviour to.
const (
	objSecurity     = 0
	objServer       = 1
	objDevice       = 3
	objConnectivity = 4
	objFirmware     = 5
	objLocation     = 6
	objTemperature  = 3303
	objAppData      = 19
	objTempReadings = 10268

	resServerLifetime = 1
	resServerPmin     = 2
	resServerPmax     = 3
	resServerBinding  = 7
	resServerUpdate   = 8
	resServerBSTrig   = 9

	resSecURI      = 0
	resSecBS       = 1
	resSecMode     = 2
	resSecIdentity = 3
	resSecKey      = 5
	resSecSSID     = 10

	resDevReboot       = 4
	resDevErrorCode    = 11
	resDevResetErrors  = 12
	resDevCurrentTime  = 13
	resDevFirmwareVers = 3

	resConnRSSI = 2

	resFwPackage   = 0
	resFwURI       = 1
	resFwUpdate    = 2
	resFwState     = 3
	resFwResult    = 5
	resFwName      = 6
	resFwVersion   = 7
	resFwProtocols = 8
	resFwDelivery  = 9
	resFwCancel    = 10

	resTempValue = 5700
	resTempMin   = 5601
	resTempMax   = 5602
	resTempReset = 5605

	resAppData         = 0
	resReadingsPeriod  = 6000
	resReadingsHistory = 6009
	resReadingsStatus  = 6028
	resReadingsLatest  = 6029
)

// Well-known paths of the values that change on their own.
var (
	pathTemperature = node.ResourcePath(objTemperature, 0, resTempValue)
	pathRSSI        = node.ResourcePath(objConnectivity, 0, resConnRSSI)
)

// defs is the definition table of every object the simulated devices have,
// taken from the OMA registry (types, operations, multiplicity). It is
// immutable and shared by all devices.
var defs = func() map[uint16]*objDef {
	const (
		S = node.TypeString
		I = node.TypeInteger
		U = node.TypeUnsignedInteger
		F = node.TypeFloat
		B = node.TypeBoolean
		O = node.TypeOpaque
		T = node.TypeTime
		N = node.TypeNone
	)
	objs := []*objDef{
		// Security and Server come whole from the core definitions: a
		// bootstrap server may write any of their resources.
		fromModel(objSecurity),
		fromModel(objServer),
		newObj(objDevice, "Device", false,
			r(0, "Manufacturer", S, opR),
			r(1, "Model Number", S, opR),
			r(2, "Serial Number", S, opR),
			r(resDevFirmwareVers, "Firmware Version", S, opR),
			r(resDevReboot, "Reboot", N, opE),
			rm(6, "Available Power Sources", I, opR),
			rm(7, "Power Source Voltage", I, opR),
			r(9, "Battery Level", I, opR),
			r(10, "Memory Free", I, opR),
			rm(resDevErrorCode, "Error Code", I, opR),
			r(resDevResetErrors, "Reset Error Code", N, opE),
			r(resDevCurrentTime, "Current Time", T, opR|opW),
			r(14, "UTC Offset", S, opR|opW),
			r(15, "Timezone", S, opR|opW),
			r(16, "Supported Binding and Modes", S, opR),
			r(17, "Device Type", S, opR),
			r(18, "Hardware Version", S, opR),
			r(19, "Software Version", S, opR),
		),
		newObj(objConnectivity, "Connectivity Monitoring", false,
			r(0, "Network Bearer", I, opR),
			rm(1, "Available Network Bearer", I, opR),
			r(resConnRSSI, "Radio Signal Strength", I, opR),
			r(3, "Link Quality", I, opR),
			rm(4, "IP Addresses", S, opR),
			r(8, "Cell ID", I, opR),
			r(9, "SMNC", I, opR),
			r(10, "SMCC", I, opR),
		),
		newObj(objFirmware, "Firmware Update", false,
			r(resFwPackage, "Package", O, opW),
			r(resFwURI, "Package URI", S, opR|opW),
			r(resFwUpdate, "Update", N, opE),
			r(resFwState, "State", I, opR),
			r(resFwResult, "Update Result", I, opR),
			r(resFwName, "PkgName", S, opR),
			r(resFwVersion, "PkgVersion", S, opR),
			rm(resFwProtocols, "Firmware Update Protocol Support", I, opR),
			r(resFwDelivery, "Firmware Update Delivery Method", I, opR),
			r(resFwCancel, "Cancel", N, opE),
		),
		newObj(objLocation, "Location", false,
			r(0, "Latitude", F, opR),
			r(1, "Longitude", F, opR),
			r(2, "Altitude", F, opR),
			r(5, "Timestamp", T, opR),
		),
		newObj(objTemperature, "Temperature", true,
			r(resTempValue, "Sensor Value", F, opR),
			r(resTempMin, "Min Measured Value", F, opR),
			r(resTempMax, "Max Measured Value", F, opR),
			r(5603, "Min Range Value", F, opR),
			r(5604, "Max Range Value", F, opR),
			r(5701, "Sensor Units", S, opR),
			r(resTempReset, "Reset Min and Max Measured Values", N, opE),
			r(5750, "Application Type", S, opR|opW),
		),
		// Opaque payloads a device's application reports as they are
		// (sensor frames for decoders to read): LwM2M 1.1's Binary App
		// Data Container and the registry's Temperature Readings.
		newObj(objAppData, "BinaryAppDataContainer", true,
			rm(resAppData, "Data", O, opR|opW),
			r(3, "Data Description", S, opR|opW),
			r(4, "Data Format", S, opR|opW),
		),
		newObj(objTempReadings, "Temperature Readings", true,
			r(resReadingsPeriod, "Interval Period", I, opR),
			r(resReadingsHistory, "Interval Historical Read Payload", O, opR),
			r(resReadingsStatus, "Status", I, opR),
			r(resReadingsLatest, "Latest Payload", O, opR),
		),
	}
	m := make(map[uint16]*objDef, len(objs))
	for _, o := range objs {
		m[o.id] = o
	}
	m[objSecurity].dmHidden = true
	return m
}()

// objTable is the object definitions one simulator's devices have: the
// built-in ones (defs) and those Config.Objects adds. It is immutable once
// built and shared by the devices. As a node.Resolver it types decoded
// payloads, so formats without types on the wire (TLV, text, CBOR) decode
// to the right values.
type objTable struct {
	byID map[uint16]*objDef
	ids  []uint16 // ascending: the order registrations and discovers list objects in
}

func newObjTable(extra []*objDef) *objTable {
	t := &objTable{byID: make(map[uint16]*objDef, len(defs)+len(extra))}
	for id, o := range defs {
		t.byID[id] = o
	}
	for _, o := range extra {
		t.byID[o.id] = o
	}
	for id := range t.byID {
		t.ids = append(t.ids, id)
	}
	sort.Slice(t.ids, func(i, j int) bool { return t.ids[i] < t.ids[j] })
	return t
}

// builtin is the table of devices without Config.Objects.
var builtin = newObjTable(nil)

// resDef returns the definition of the resource at p (depth 3 or 4).
func (t *objTable) resDef(p node.Path) (*resDef, bool) {
	if p.Depth < 3 {
		return nil, false
	}
	o := t.byID[p.Object]
	if o == nil {
		return nil, false
	}
	rd := o.byID[p.Resource]
	return rd, rd != nil
}

// ResourceType makes the table a node.Resolver.
func (t *objTable) ResourceType(p node.Path) (node.Type, bool) {
	rd, ok := t.resDef(p)
	if !ok {
		return node.TypeNone, false
	}
	return rd.typ, true
}

// fromModel converts a core object definition into the simulator's table.
func fromModel(id uint16) *objDef {
	od, ok := model.Core().Object(id)
	if !ok {
		panic(fmt.Sprintf("core object %d is not defined", id))
	}
	return fromDef(od)
}

// fromDef converts an object definition (a DDF's) into the simulator's.
func fromDef(od model.ObjectDef) *objDef {
	res := make([]*resDef, 0, len(od.Resources))
	for _, rd := range od.Resources {
		var ops op
		if rd.Readable() {
			ops |= opR
		}
		if rd.Writable() {
			ops |= opW
		}
		if rd.Executable() {
			ops |= opE
		}
		res = append(res, &resDef{id: rd.ID, name: rd.Name, typ: rd.Type, ops: ops, multiple: rd.Multiple})
	}
	return newObj(od.ID, od.Name, od.Multiple, res...)
}

// resolver types payloads by the built-in definitions.
var resolver node.Resolver = builtin
