// Package mapping turns the values devices report into what operators
// configured per resource: measurements, alarms, events, inventory updates
// and custom actions (API.md, "Functionalities of a resource"). It decides
// which functionality applies to each value (the tenant's protocols, their
// inheritance, the default mappings), hands decoder values to decoders,
// and sends the rest in batches to the bundled mapping and custom action
// plugins (plugins/mapping, plugins/customactions), as plugin processes or
// in process; what they return is stored by a batched writer.
package mapping

import (
	pmapping "github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
)

// The functionality types are the bundled mapping plugin's: the agent
// stores, validates and sends them, the plugin applies them.
type (
	// Functionality is what happens to the values of one resource.
	Functionality = pmapping.Functionality
	// Measurement maps a value to a measurement fragment and series.
	Measurement = pmapping.Measurement
	// Alarm raises an alarm per value, or while RaiseWhen holds.
	Alarm = pmapping.Alarm
	// Event creates an event per value.
	Event = pmapping.Event
)

// ErrInvalid marks a functionality that cannot be stored.
var ErrInvalid = pmapping.ErrInvalid
