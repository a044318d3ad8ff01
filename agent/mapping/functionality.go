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
	"fmt"
	"slices"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/nearest"
	pmapping "github.com/lwm2m-agent/lwm2m-agent/plugins/mapping"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
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

// PluginRef is what a customAction names of the configured plugins: a
// decoder ("decoder:<name>[:<argument>]") or a custom action plugin
// ("plugin:<name>[:<action>]").
type PluginRef struct {
	Name string
	// Argument is the decoder's argument or the plugin's action.
	Argument string
	// Action is true for a custom action plugin, false for a decoder.
	Action bool
}

// Kind is the plugin kind the reference needs (sdk.KindDecoder or
// sdk.KindCustomAction).
func (r PluginRef) Kind() string {
	if r.Action {
		return sdk.KindCustomAction
	}
	return sdk.KindDecoder
}

// ParsePluginRef reads a customAction that names a plugin; ok is false
// for any other (a predefined action, or none).
func ParsePluginRef(customAction string) (r PluginRef, ok bool) {
	rest, isDecoder := strings.CutPrefix(customAction, "decoder:")
	if !isDecoder {
		if rest, ok = strings.CutPrefix(customAction, "plugin:"); !ok {
			return PluginRef{}, false
		}
		r.Action = true
	}
	r.Name, r.Argument, _ = strings.Cut(rest, ":")
	return r, true
}

// PluginNames answers the names of the configured plugins of a kind,
// sorted, the agent's bundled ones left out (they are reached through the
// predefined actions, never by name); *plugins.Host implements it.
type PluginNames interface {
	Names(kind string) []string
}

// CheckPlugins reports a functionality whose customAction names a
// decoder or custom action plugin that is not configured (have nil: none
// is), naming those that are, so that the mistake is seen when it is
// made rather than later as a mapping alarm on every value. It is for new
// writes only: what is stored stays valid when the plugins file changes,
// and its values raise the alarm instead.
func CheckPlugins(f Functionality, have PluginNames) error {
	ref, ok := ParsePluginRef(f.CustomAction)
	if !ok {
		return nil
	}
	what, other, otherWhat, otherPrefix := "decoder", sdk.KindCustomAction, "custom action plugin", "plugin:"
	if ref.Action {
		what, other, otherWhat, otherPrefix = "custom action plugin", sdk.KindDecoder, "decoder", "decoder:"
	}
	names := func(kind string) []string {
		if have == nil {
			return nil
		}
		return have.Names(kind)
	}
	configured := names(ref.Kind())
	if slices.Contains(configured, ref.Name) {
		return nil
	}
	msg := fmt.Sprintf("customAction %q: no %s %q is configured", f.CustomAction, what, ref.Name)
	switch {
	case slices.Contains(names(other), ref.Name):
		msg += fmt.Sprintf("; %s is a %s: %s%s", ref.Name, otherWhat, otherPrefix, ref.Name)
	case len(configured) == 0:
		msg += fmt.Sprintf("; the agent has no %ss: declare them in the plugins file (--plugins-config)", what)
	default:
		msg += fmt.Sprintf("; the %ss: %s", what, strings.Join(configured, ", "))
		if near := nearest.Word(ref.Name, configured); near != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", near)
		}
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}
