package store

import "errors"

// A device is several documents (its managed object, its external IDs,
// its endpoint binding, its PSK identities and its registration record),
// and FerretDB writes each one alone: there is no transaction to make
// them appear together. So the registration record, which says how the
// device must connect, is written first, marked incomplete, and marked
// complete by the last write (CompleteDevice). Every reader that lets a
// device in (the LwM2M server's Register, the DTLS key lookup, the
// bootstrap server) finds the device through its endpoint or a PSK
// identity, bound after the record, and refuses a device whose record
// is incomplete; the API finds no managed object without a record
// before it. A crash between the first and the last write leaves an
// incomplete record, which names everything the creation may have
// claimed, and the next start removes all of it
// (repairIncompleteDevices).

// Registration parameters the store reads itself.
const (
	ParamEndpointID   = "endpointId"
	ParamSecurityMode = "securityMode"
	SecurityNoSec     = "NO_SEC"
	SecurityPSK       = "PSK"
)

// PSKParams name each kind of PSK identity in the parameters.
var PSKParams = map[string]string{PSKServer: "lwm2mPskId", PSKBootstrap: "bootstrapPskId"}

// PSKIdentity returns the identity of kind (PSKServer or PSKBootstrap)
// that the parameters name, "" for none.
func (r DeviceRegistration) PSKIdentity(kind string) string {
	s, _ := r.Params[PSKParams[kind]].(string)
	return s
}

// SecurityMode returns the securityMode the parameters name, "" for none.
func (r DeviceRegistration) SecurityMode() string {
	s, _ := r.Params[ParamSecurityMode].(string)
	return s
}

// ToRelease returns the identities of Release, by kind, that the
// parameters do not name again: those a change took from the device.
func (r DeviceRegistration) ToRelease() map[string]string {
	out := make(map[string]string, len(r.Release))
	for kind, ident := range r.Release {
		if ident != "" && ident != r.PSKIdentity(kind) {
			out[kind] = ident
		}
	}
	return out
}

// NewDevice is an LwM2M device to create with its registration record.
type NewDevice struct {
	Endpoint string
	// Name of the managed object; "" names it after the endpoint.
	Name string
	// Fragments of the managed object besides name and type (DeviceType).
	Fragments map[string]any
	// ExternalIDs name the device besides c8y_Id = Endpoint; each must be
	// free in the tenant.
	ExternalIDs  []ExternalID
	Registration DeviceRegistration
}

// NewEndpoint is a device SaveNewStates creates for an endpoint, under
// the id NewDeviceID reserved.
type NewEndpoint struct {
	ID, Endpoint string
}

// AutoRegistered is the device auto-registration creates for an
// endpoint: a managed object named after it, of type DeviceType, with
// c8y_IsDevice and c8y_SupportedOperations, the external ID c8y_Id =
// endpoint, and a registration record of securityMode NO_SEC.
func AutoRegistered(endpoint string) NewDevice {
	return NewDevice{
		Endpoint: endpoint,
		Fragments: map[string]any{
			"c8y_IsDevice":            map[string]any{},
			"c8y_SupportedOperations": []any{"c8y_Command"},
		},
		Registration: DeviceRegistration{Params: map[string]any{
			ParamEndpointID: endpoint, ParamSecurityMode: SecurityNoSec,
		}},
	}
}

// ErrComplete refuses to remove a device whose creation has finished.
var ErrComplete = errors.New("the device's creation has finished")
