package store

import "time"

// DeviceRegistration is what bulk registration knows of a device beyond its
// managed object: its registration and bootstrap parameters, and its
// secrets. The secrets are for the DTLS and bootstrap layers only; nothing
// in the API returns them.
type DeviceRegistration struct {
	// Params are the non-secret fields, by their camelCase names
	// (endpointId, lwm2mServerUri, securityMode, ...).
	Params          map[string]any
	PSKKey          []byte
	BootstrapPSKKey []byte
	CredentialsHash []byte
	// Serialization is the content format the device's requests use
	// instead of the one chosen by its registration ("TLV", "SENML_JSON",
	// ...; "" for none), as the serialization command set it. It is kept
	// apart from Params, which are the bulk registration's, and survives
	// SaveDeviceRegistration.
	Serialization string
	Updated       time.Time
	// Incomplete is set while the device the record belongs to is being
	// created (CreateIncompleteDevice) and until CompleteDevice: the
	// device is not there yet for the LwM2M, bootstrap and DTLS layers,
	// and the store's start removes what a crash left of it.
	Incomplete bool
	// Deleting is set, with Incomplete, while the device is being deleted
	// (DeleteManagedObject): a deletion cut short is finished by the
	// store's start like a creation cut short.
	Deleting bool
	// Release are the PSK identities, by kind, that a change of the
	// record took from the device and has not released yet; stored with
	// the new parameters in one write, so that a crash before the release
	// leaves them named for the store's start (or the next change) to
	// release. SaveDeviceRegistration keeps the stored ones when nil.
	Release map[string]string
}

// PSK identity kinds: the identity a device presents to the LwM2M server,
// and the one it presents to the bootstrap server.
const (
	PSKServer    = "lwm2m"
	PSKBootstrap = "bootstrap"
)
