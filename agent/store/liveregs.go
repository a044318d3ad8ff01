package store

// LiveRegistration is what the store holds of a device's LwM2M
// registration: the lwm2m fragment of its managed object, which the
// session layer writes on every Register, Update, De-register and expiry
// anyway (a live one has a registrationId, an ended one an empty one),
// and the serialization set for the device. The agent restores these
// when it starts, so that devices need not register again.
type LiveRegistration struct {
	Tenant   string
	DeviceID string
	// Fragment is the lwm2m fragment, with plain Go values (mongo.Plain).
	Fragment map[string]any
	// Serialization is the device's content format name, "" for none
	// (DeviceRegistration.Serialization).
	Serialization string
	// Record is what the device's registration record says of how it may
	// connect now, nil when it has none: a registration restored without
	// a look at it would outlive a change of security cut short by a
	// crash, or a record that was never written.
	Record *RecordAccess
}

// RecordAccess is what a registration record says of how its device may
// connect: DeviceRegistration without its other parameters and secrets.
type RecordAccess struct {
	SecurityMode string // DeviceRegistration.SecurityMode
	PSKIdentity  string // the lwm2m PSK identity the record names
	Keyed        bool   // a PSK key is stored
	Incomplete   bool   // DeviceRegistration.Incomplete
}

// Access returns what the record says of how its device may connect.
func (r DeviceRegistration) Access() RecordAccess {
	return RecordAccess{SecurityMode: r.SecurityMode(), PSKIdentity: r.PSKIdentity(PSKServer), Keyed: len(r.PSKKey) > 0, Incomplete: r.Incomplete}
}
