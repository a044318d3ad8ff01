package store

import "time"

// Names the inventory uses for LwM2M devices.
const (
	DeviceType       = "c8y_lwm2m"
	ExternalIDDevice = "c8y_Id"
)

// ManagedObject is an inventory object: a device or anything else. Its
// fragments are the top-level JSON members besides the fixed ones.
type ManagedObject struct {
	ID           string
	Name         string
	Type         string
	CreationTime time.Time
	LastUpdated  time.Time
	Fragments    map[string]any
}

// DeletedDevice names what a deleted device was reachable by: the
// endpoints and lwm2m PSK identities whose live registrations and DTLS
// sessions end with it.
type DeletedDevice struct {
	Endpoints  []string
	Identities []string
}

// ManagedObjectFilter selects managed objects; empty fields match all.
type ManagedObjectFilter struct {
	Type         string
	FragmentType string
	// Query is a subset of the Cumulocity inventory query language; see
	// ParseQuery.
	Query string
	Page  Page
}

// ExternalID names a managed object in another system's terms, e.g. the
// LwM2M endpoint as type c8y_Id.
type ExternalID struct {
	Type            string `bson:"type"`
	ExternalID      string `bson:"externalId"`
	ManagedObjectID string `bson:"managedObjectId"`
}
