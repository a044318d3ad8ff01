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

// ObjectReferences are an object's references of every kind, keyed by
// kind (a kind without any is absent): its children, with the id and
// name an object's rendering shows of them, and the ids of its parents,
// each in the order the references were added.
type ObjectReferences struct {
	Children map[string][]ReferencedObject
	Parents  map[string][]string
}

// ReferencedObject is a child as its parent's rendering shows it.
type ReferencedObject struct {
	ID, Name string
}

// AddChild appends a child of kind.
func (r *ObjectReferences) AddChild(kind string, child ReferencedObject) {
	if r.Children == nil {
		r.Children = map[string][]ReferencedObject{}
	}
	r.Children[kind] = append(r.Children[kind], child)
}

// AddParent appends a parent of kind.
func (r *ObjectReferences) AddParent(kind, parent string) {
	if r.Parents == nil {
		r.Parents = map[string][]string{}
	}
	r.Parents[kind] = append(r.Parents[kind], parent)
}

// Fragments and types of device groups and of the firmware repository.
const (
	GroupFragment      = "c8y_IsDeviceGroup"
	GroupType          = "c8y_DeviceGroup"
	DeviceFragment     = "c8y_IsDevice"
	FirmwareType       = "c8y_Firmware"
	FirmwareBinaryType = "c8y_FirmwareBinary"
)
