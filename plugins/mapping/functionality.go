// Package mapping is the agent's bundled mapping plugin: the
// functionalities of a resource (API.md, "Functionalities of a resource")
// and the code that applies their measurement, event and alarm parts to
// batches of resource values. The agent decides which functionality applies
// to a value (the tenant's protocols, their inheritance, the default
// mappings) and sends it along; this package holds no state between calls,
// so a restart of its process loses nothing. The predefined custom actions
// are in the sibling package customactions.
//
// Server implements the Mapping service of proto/lwm2m/plugin/v1; the
// agent serves it from its own executable (`lwm2m-agent plugin mapping`)
// or calls it directly (--bundled-plugins inprocess).
package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Functionality is what happens to the values of one resource. Every part
// is optional; AutoObserve needs at least one other.
type Functionality struct {
	Measurement       *Measurement `json:"measurement,omitempty" bson:"measurement,omitempty"`
	Alarm             *Alarm       `json:"alarm,omitempty" bson:"alarm,omitempty"`
	Event             *Event       `json:"event,omitempty" bson:"event,omitempty"`
	CustomAction      string       `json:"customAction,omitempty" bson:"customAction,omitempty"`
	IgnoreEmptyValues bool         `json:"ignoreEmptyValues,omitempty" bson:"ignoreEmptyValues,omitempty"`
	AutoObserve       bool         `json:"autoObserve,omitempty" bson:"autoObserve,omitempty"`
}

// Measurement maps a value to a measurement fragment and series.
type Measurement struct {
	Type   string `json:"type" bson:"type"`
	Series string `json:"series" bson:"series"`
	Unit   string `json:"unit,omitempty" bson:"unit,omitempty"`
}

// Alarm raises an alarm per value, or, with RaiseWhen, while the
// expression over the value holds, clearing it when it stops holding.
type Alarm struct {
	Type      string `json:"type" bson:"type"`
	Severity  string `json:"severity" bson:"severity"`
	Status    string `json:"status,omitempty" bson:"status,omitempty"`
	Text      string `json:"text" bson:"text"`
	RaiseWhen string `json:"raiseWhen,omitempty" bson:"raiseWhen,omitempty"`
}

// Event creates an event per value.
type Event struct {
	Type string `json:"type" bson:"type"`
	Text string `json:"text" bson:"text"`
}

// Predefined custom actions (API.md).
var CustomActions = []string{
	"device:updateManufacturer", "device:updateModelNumber", "device:updateSerialNumber", "device:updateFirmwareVersion",
	"connectivity:updateCellId", "connectivity:updateSmnc", "connectivity:updateSmcc", "connectivity:updateRssi",
}

var (
	fragmentName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	decoderName  = regexp.MustCompile(`^(decoder|plugin):[A-Za-z0-9_.-]+(:.*)?$`)
)

// ErrInvalid marks a functionality that cannot be stored.
var ErrInvalid = errors.New("invalid functionality")

// Validate reports every problem of f together, naming the field.
func (f Functionality) Validate() error {
	var errs []string
	if m := f.Measurement; m != nil {
		if !fragmentName.MatchString(m.Type) {
			errs = append(errs, fmt.Sprintf("measurement.type %q is not a fragment name (letters, digits, _)", m.Type))
		}
		if !fragmentName.MatchString(m.Series) {
			errs = append(errs, fmt.Sprintf("measurement.series %q is not a series name (letters, digits, _)", m.Series))
		}
	}
	if a := f.Alarm; a != nil {
		if !fragmentName.MatchString(a.Type) {
			errs = append(errs, fmt.Sprintf("alarm.type %q is not a type name (letters, digits, _)", a.Type))
		}
		switch a.Severity {
		case "CRITICAL", "MAJOR", "MINOR", "WARNING":
		default:
			errs = append(errs, fmt.Sprintf("alarm.severity %q is not CRITICAL, MAJOR, MINOR or WARNING", a.Severity))
		}
		switch a.Status {
		case "", "ACTIVE", "ACKNOWLEDGED":
		default:
			errs = append(errs, fmt.Sprintf("alarm.status %q is not ACTIVE or ACKNOWLEDGED", a.Status))
		}
		if strings.TrimSpace(a.Text) == "" {
			errs = append(errs, "alarm.text is empty")
		}
		if a.RaiseWhen != "" {
			if _, err := ParseCondition(a.RaiseWhen); err != nil {
				errs = append(errs, fmt.Sprintf("alarm.raiseWhen: %v", err))
			}
		}
	}
	if e := f.Event; e != nil {
		if !fragmentName.MatchString(e.Type) {
			errs = append(errs, fmt.Sprintf("event.type %q is not a type name (letters, digits, _)", e.Type))
		}
		if strings.TrimSpace(e.Text) == "" {
			errs = append(errs, "event.text is empty")
		}
	}
	if c := f.CustomAction; c != "" && !isCustomAction(c) {
		errs = append(errs, fmt.Sprintf("customAction %q is neither a predefined action (%s), decoder:<name>[:<argument>] nor plugin:<name>[:<action>]", c, strings.Join(CustomActions, ", ")))
	}
	if f.AutoObserve && f.Measurement == nil && f.Alarm == nil && f.Event == nil && f.CustomAction == "" {
		errs = append(errs, "autoObserve needs a measurement, alarm, event or customAction to observe for")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

func isCustomAction(c string) bool {
	for _, a := range CustomActions {
		if c == a {
			return true
		}
	}
	return decoderName.MatchString(c)
}
