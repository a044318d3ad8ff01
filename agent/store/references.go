package store

// The kinds of child references between managed objects, as Cumulocity
// names them: a group's members are its child assets, a firmware's
// versions its child additions, an agent's devices its child devices.
const (
	ChildAssets    = "childAssets"
	ChildAdditions = "childAdditions"
	ChildDevices   = "childDevices"
)

// ReferenceKinds are the kinds of child references, in the order an
// object shows them.
var ReferenceKinds = []string{ChildAssets, ChildAdditions, ChildDevices}

// ParentsName is the member that lists, on a child, the objects it is a
// child of by references of kind ("assetParents" for childAssets); ""
// for a kind that is none of ReferenceKinds.
func ParentsName(kind string) string {
	switch kind {
	case ChildAssets:
		return "assetParents"
	case ChildAdditions:
		return "additionParents"
	case ChildDevices:
		return "deviceParents"
	}
	return ""
}

// Fragments and types of device groups and of the firmware repository.
const (
	GroupFragment      = "c8y_IsDeviceGroup"
	GroupType          = "c8y_DeviceGroup"
	DeviceFragment     = "c8y_IsDevice"
	FirmwareType       = "c8y_Firmware"
	FirmwareBinaryType = "c8y_FirmwareBinary"
)
