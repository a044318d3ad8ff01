package mapping

import (
	"fmt"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// action is what a predefined custom action (or a default mapping) does
// with a value: set a field of an inventory fragment, or make a
// measurement.
type action struct {
	fragment, field string
	numeric         bool // the field holds a number, not text
	rename          bool // the device's name follows c8y_Hardware
	measurement     *Measurement
}

func (a *action) apply(m *Mapper, out *Output, v node.Value, tc textContext) {
	if ms := a.measurement; ms != nil {
		if f, ok := Number(v); ok {
			addMeasurement(out, ms.Type, ms.Series, ms.Unit, f, tc.time)
		} else {
			m.mappingError(out, tc, fmt.Sprintf("measurement %s.%s needs a number", ms.Type, ms.Series))
		}
		return
	}
	var x any = valueText(v)
	if a.numeric {
		f, ok := Number(v)
		if !ok {
			m.mappingError(out, tc, fmt.Sprintf("%s.%s needs a number", a.fragment, a.field))
			return
		}
		x = f
	}
	if out.Inventory == nil {
		out.Inventory = &InventoryUpdate{}
	}
	out.Inventory.set(a.fragment, a.field, x)
	out.Inventory.Rename = out.Inventory.Rename || a.rename
}

// Fragments the default mappings and predefined actions fill.
const (
	FragmentHardware = "c8y_Hardware"
	FragmentFirmware = "c8y_Firmware"
	FragmentMobile   = "c8y_Mobile"
	FragmentPosition = "c8y_Position"
	// SignalStrength is the measurement of connectivity:updateRssi,
	// series rssi in dBm.
	SignalStrength = "c8y_SignalStrength"
)

// actions are the predefined custom actions (API.md). The device:update*
// actions of the manufacturer, model and serial number also name the
// device after them ("<manufacturer> <model> <serial number>", the parts
// it has).
var actions = map[string]*action{
	"device:updateManufacturer":    {fragment: FragmentHardware, field: "manufacturer", rename: true},
	"device:updateModelNumber":     {fragment: FragmentHardware, field: "model", rename: true},
	"device:updateSerialNumber":    {fragment: FragmentHardware, field: "serialNumber", rename: true},
	"device:updateFirmwareVersion": {fragment: FragmentFirmware, field: "version"},
	"connectivity:updateCellId":    {fragment: FragmentMobile, field: "cellId"},
	"connectivity:updateSmnc":      {fragment: FragmentMobile, field: "mnc"},
	"connectivity:updateSmcc":      {fragment: FragmentMobile, field: "mcc"},
	"connectivity:updateRssi":      {measurement: &Measurement{Type: SignalStrength, Series: "rssi", Unit: "dBm"}},
}

type resKey struct{ object, resource uint16 }

// defaults are the mappings that apply with no device protocol uploaded,
// for resources of any instance; a tenant's functionality for the same
// resource replaces the default. Empty values are ignored: a device
// without a serial number does not blank the one it reported before.
//
//	/3/x/1  Model Number      c8y_Hardware.model
//	/3/x/2  Serial Number     c8y_Hardware.serialNumber
//	/3/x/18 Hardware Version  c8y_Hardware.revision
//	/3/x/3  Firmware Version  c8y_Firmware.version
//	/5/x/6  PkgName           c8y_Firmware.name
//	/4/x/2  Radio Signal      measurement c8y_SignalStrength.rssi (dBm)
//	/4/x/8  Cell ID           c8y_Mobile.cellId
//	/4/x/9  SMNC              c8y_Mobile.mnc
//	/4/x/10 SMCC              c8y_Mobile.mcc
//	/4/x/12 LAC               c8y_Mobile.lac
//	/6/x/0  Latitude          c8y_Position.lat (number)
//	/6/x/1  Longitude         c8y_Position.lng (number)
//	/6/x/2  Altitude          c8y_Position.alt (number)
var defaults = func() map[resKey]*rule {
	inv := func(fragment, field string, numeric bool) *rule {
		return &rule{fn: Functionality{IgnoreEmptyValues: true}, action: &action{fragment: fragment, field: field, numeric: numeric}}
	}
	named := func(name string) *rule {
		r := compile(Functionality{CustomAction: name, IgnoreEmptyValues: true})
		return r
	}
	return map[resKey]*rule{
		{3, 1}:  inv(FragmentHardware, "model", false),
		{3, 2}:  inv(FragmentHardware, "serialNumber", false),
		{3, 18}: inv(FragmentHardware, "revision", false),
		{3, 3}:  named("device:updateFirmwareVersion"),
		{5, 6}:  inv(FragmentFirmware, "name", false),
		{4, 2}:  named("connectivity:updateRssi"),
		{4, 8}:  named("connectivity:updateCellId"),
		{4, 9}:  named("connectivity:updateSmnc"),
		{4, 10}: named("connectivity:updateSmcc"),
		{4, 12}: inv(FragmentMobile, "lac", false),
		{6, 0}:  inv(FragmentPosition, "lat", true),
		{6, 1}:  inv(FragmentPosition, "lng", true),
		{6, 2}:  inv(FragmentPosition, "alt", true),
	}
}()
