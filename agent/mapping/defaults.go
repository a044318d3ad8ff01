package mapping

import (
	"github.com/lwm2m-agent/lwm2m-agent/plugins/customactions"
)

// Fragments the default mappings and predefined actions fill.
const (
	FragmentHardware = customactions.FragmentHardware
	FragmentFirmware = customactions.FragmentFirmware
	FragmentMobile   = customactions.FragmentMobile
	FragmentPosition = customactions.FragmentPosition
	// SignalStrength is the measurement of connectivity:updateRssi,
	// series rssi in dBm.
	SignalStrength = customactions.SignalStrength
)

type resKey struct{ object, resource uint16 }

// defaults are the mappings that apply with no device protocol uploaded,
// for resources of any instance; a tenant's functionality for the same
// resource replaces the default. Empty values are ignored: a device
// without a serial number does not blank the one it reported before. They
// run in the custom action plugin, the fields without a predefined action
// through its internal inventory: action.
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
		return compile(Functionality{CustomAction: customactions.Inventory(fragment, field, numeric), IgnoreEmptyValues: true})
	}
	named := func(name string) *rule {
		return compile(Functionality{CustomAction: name, IgnoreEmptyValues: true})
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
