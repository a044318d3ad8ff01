// Package customactions is the agent's bundled custom action plugin: the
// predefined actions a resource's functionality can name (API.md,
// "Functionalities of a resource"): device:updateManufacturer,
// device:updateModelNumber, device:updateSerialNumber and
// device:updateFirmwareVersion into the device's c8y_Hardware and
// c8y_Firmware (the first three also name the device),
// connectivity:updateCellId, connectivity:updateSmnc and
// connectivity:updateSmcc into c8y_Mobile, and connectivity:updateRssi as
// the measurement c8y_SignalStrength.rssi. The agent's default mappings of
// objects 3 to 6 use the same code through the internal action
// inventory:<fragment>.<field>[:number].
//
// Server implements the CustomAction service of proto/lwm2m/plugin/v1;
// the agent serves it from its own executable (`lwm2m-agent plugin
// customactions`) or calls it directly (--bundled-plugins inprocess). It
// keeps nothing between calls.
package customactions

import (
	"fmt"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
)

// Fragments the predefined actions and the default mappings fill.
const (
	FragmentHardware = "c8y_Hardware"
	FragmentFirmware = "c8y_Firmware"
	FragmentMobile   = "c8y_Mobile"
	FragmentPosition = "c8y_Position"
	// SignalStrength is the measurement of connectivity:updateRssi,
	// series rssi in dBm.
	SignalStrength = "c8y_SignalStrength"
)

// InventoryPrefix starts the internal action that sets one field of an
// inventory fragment: inventory:<fragment>.<field>, with :number when the
// field holds a number rather than text. Only the agent's default mappings
// use it; device protocols cannot name it.
const InventoryPrefix = "inventory:"

// action is what a custom action does with a value: set a field of an
// inventory fragment, or make a measurement.
type action struct {
	fragment, field string
	numeric         bool // the field holds a number, not text
	rename          bool // the device's name follows c8y_Hardware
	measurement     *mapping.Measurement
}

// predefined are the actions of API.md, by name.
var predefined = map[string]*action{
	"device:updateManufacturer":    {fragment: FragmentHardware, field: "manufacturer", rename: true},
	"device:updateModelNumber":     {fragment: FragmentHardware, field: "model", rename: true},
	"device:updateSerialNumber":    {fragment: FragmentHardware, field: "serialNumber", rename: true},
	"device:updateFirmwareVersion": {fragment: FragmentFirmware, field: "version"},
	"connectivity:updateCellId":    {fragment: FragmentMobile, field: "cellId"},
	"connectivity:updateSmnc":      {fragment: FragmentMobile, field: "mnc"},
	"connectivity:updateSmcc":      {fragment: FragmentMobile, field: "mcc"},
	"connectivity:updateRssi":      {measurement: &mapping.Measurement{Type: SignalStrength, Series: "rssi", Unit: "dBm"}},
}

// Known reports whether name is an action this plugin runs: a predefined
// one or an inventory: action.
func Known(name string) bool {
	_, err := lookup(name)
	return err == nil
}

// Inventory names the internal action setting fragment.field (numeric: to
// a number).
func Inventory(fragment, field string, numeric bool) string {
	s := InventoryPrefix + fragment + "." + field
	if numeric {
		s += ":number"
	}
	return s
}

func lookup(name string) (*action, error) {
	if a := predefined[name]; a != nil {
		return a, nil
	}
	rest, ok := strings.CutPrefix(name, InventoryPrefix)
	if !ok {
		return nil, fmt.Errorf("unknown custom action %q", name)
	}
	rest, kind, _ := strings.Cut(rest, ":")
	frag, field, ok := strings.Cut(rest, ".")
	if !ok || frag == "" || field == "" || (kind != "" && kind != "number") {
		return nil, fmt.Errorf("custom action %q is not inventory:<fragment>.<field>[:number]", name)
	}
	return &action{fragment: frag, field: field, numeric: kind == "number"}, nil
}
