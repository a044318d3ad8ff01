// Package model is the LwM2M object model: object and resource definitions
// as the OMA registry's DDF (Device Description Format) XML files state
// them, a parser for those files, the core objects built into the binary,
// and a Registry that answers "what type is /3303/0/5700" for the codecs.
package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// ObjectDef is the definition of one LwM2M object. Resources are sorted by
// ID with no duplicates. An ObjectDef handed to a Registry or returned by one
// is shared: treat it, and its Resources slice, as read-only.
type ObjectDef struct {
	ID           uint16
	Name         string
	Description  string // Description1 of the DDF
	URN          string // e.g. "urn:oma:lwm2m:oma:3:1.2"
	Version      string // ObjectVersion; empty means 1.0
	LwM2MVersion string // the LwM2M version the object was written for; empty means 1.0
	Multiple     bool   // more than one instance may exist
	Mandatory    bool
	Resources    []ResourceDef
}

// ResourceDef is the definition of one resource of an object.
type ResourceDef struct {
	ID               uint16
	Name             string
	Operations       string // "R", "W", "RW", "E" or "" (none: bootstrap-only resources)
	Multiple         bool   // the resource has resource instances
	Mandatory        bool
	Type             node.Type // TypeNone for executable resources
	RangeEnumeration string
	Units            string
	Description      string
}

// Readable reports whether a server may read the resource.
func (r ResourceDef) Readable() bool { return strings.Contains(r.Operations, "R") }

// Writable reports whether a server may write the resource.
func (r ResourceDef) Writable() bool { return strings.Contains(r.Operations, "W") }

// Executable reports whether a server may execute the resource.
func (r ResourceDef) Executable() bool { return r.Operations == "E" }

// Resource returns the definition of resource id.
func (o ObjectDef) Resource(id uint16) (ResourceDef, bool) {
	i, ok := slices.BinarySearchFunc(o.Resources, id, func(r ResourceDef, id uint16) int {
		return int(r.ID) - int(id)
	})
	if !ok {
		return ResourceDef{}, false
	}
	return o.Resources[i], true
}

// ErrInvalidDef is wrapped by Validate's errors.
var ErrInvalidDef = errors.New("invalid object definition")

// validOperations are the values the DDF schema allows for Operations.
func validOperations(s string) bool {
	switch s {
	case "", "R", "W", "RW", "E":
		return true
	}
	return false
}

// Validate checks what every layer relies on: IDs in range, a name,
// resources sorted by ID without duplicates, known operations and types.
// Definitions
// that come from elsewhere than ParseDDF (the API's JSON, the store) should
// pass it before they are put into a Registry.
func (o ObjectDef) Validate() error {
	if o.ID > node.MaxID {
		return fmt.Errorf("%w: object ID %d is above %d", ErrInvalidDef, o.ID, node.MaxID)
	}
	if strings.TrimSpace(o.Name) == "" {
		return fmt.Errorf("%w: object %d has no name", ErrInvalidDef, o.ID)
	}
	for i, r := range o.Resources {
		if r.ID > node.MaxID {
			return fmt.Errorf("%w: object %d: resource ID %d is above %d", ErrInvalidDef, o.ID, r.ID, node.MaxID)
		}
		if i > 0 && r.ID <= o.Resources[i-1].ID {
			if r.ID == o.Resources[i-1].ID {
				return fmt.Errorf("%w: object %d: resource %d is defined twice", ErrInvalidDef, o.ID, r.ID)
			}
			return fmt.Errorf("%w: object %d: resources are not sorted by ID (%d after %d)", ErrInvalidDef, o.ID, r.ID, o.Resources[i-1].ID)
		}
		if strings.TrimSpace(r.Name) == "" {
			return fmt.Errorf("%w: /%d/x/%d has no name", ErrInvalidDef, o.ID, r.ID)
		}
		if !validOperations(r.Operations) {
			return fmt.Errorf("%w: /%d/x/%d: operations %q is not one of R, W, RW, E or empty", ErrInvalidDef, o.ID, r.ID, r.Operations)
		}
		if r.Type > node.TypeCorelnk {
			return fmt.Errorf("%w: /%d/x/%d: unknown type %d", ErrInvalidDef, o.ID, r.ID, r.Type)
		}
	}
	return nil
}

// SortResources sorts o.Resources by ID in place; Validate then finds any
// duplicate. It is for definitions assembled in code or from JSON.
func (o *ObjectDef) SortResources() {
	slices.SortStableFunc(o.Resources, func(a, b ResourceDef) int { return int(a.ID) - int(b.ID) })
}
