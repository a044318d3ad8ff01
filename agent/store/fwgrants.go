package store

import "time"

// FirmwareGrant lets one device fetch one firmware package for one
// operation, or records the agent's copy of an external package.
//
// A grant's Key is the hex SHA-256 of the secret in the URI the device
// was given: the store never holds the secret itself, so that whoever
// reads the store cannot fetch a package with what they read. A copy's
// Key is its owner's choice, in a space of its own (the firmware
// service's "copy/" prefix).
type FirmwareGrant struct {
	Key         string
	Tenant      string
	DeviceID    string // "" for a copy
	Endpoint    string
	OperationID string // "" for a copy
	// Scheme is how the device fetches it: coap, coaps, http or https;
	// "" for a copy.
	Scheme string
	// BinaryID is the binary served: the agent's own, or its copy of an
	// external package.
	BinaryID string
	// URL is the external package's URL, for a copy.
	URL     string
	Expires time.Time
}

// IsCopy tells the record of a copy of an external package from a grant.
func (g FirmwareGrant) IsCopy() bool { return g.OperationID == "" }
