package mapping

import (
	"errors"
	"testing"

	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// names is a PluginNames over a map of kind to names.
type names map[string][]string

func (n names) Names(kind string) []string { return n[kind] }

func TestCheckPlugins(t *testing.T) {
	have := names{sdk.KindDecoder: {"cbor", "frame", "frame-svc"}, sdk.KindCustomAction: {"acts"}}
	tests := []struct {
		name   string
		action string
		have   PluginNames
		want   string // "" for accepted
	}{
		{"no custom action", "", have, ""},
		{"predefined action", "device:updateManufacturer", have, ""},
		{"predefined action without plugins", "connectivity:updateRssi", nil, ""},
		{"configured decoder", "decoder:frame", have, ""},
		{"configured decoder with an argument", "decoder:cbor:c8y_Meter", have, ""},
		{"configured custom action plugin", "plugin:acts:c8y_Seen", have, ""},
		{"misspelt decoder", "decoder:fram", have,
			`invalid functionality: customAction "decoder:fram": no decoder "fram" is configured; the decoders: cbor, frame, frame-svc (did you mean "frame"?)`},
		{"unknown decoder", "decoder:lora:port=2", have,
			`invalid functionality: customAction "decoder:lora:port=2": no decoder "lora" is configured; the decoders: cbor, frame, frame-svc`},
		{"decoder without plugins", "decoder:frame", nil,
			`invalid functionality: customAction "decoder:frame": no decoder "frame" is configured; the agent has no decoders: declare them in the plugins file (--plugins-config)`},
		{"custom action plugin without any", "plugin:acts", names{sdk.KindDecoder: {"frame"}},
			`invalid functionality: customAction "plugin:acts": no custom action plugin "acts" is configured; the agent has no custom action plugins: declare them in the plugins file (--plugins-config)`},
		{"a decoder named as a plugin", "plugin:frame:x", have,
			`invalid functionality: customAction "plugin:frame:x": no custom action plugin "frame" is configured; frame is a decoder: decoder:frame`},
		{"a plugin named as a decoder", "decoder:acts", have,
			`invalid functionality: customAction "decoder:acts": no decoder "acts" is configured; acts is a custom action plugin: plugin:acts`},
		{"the bundled plugins are not named", "plugin:customactions:x", have,
			`invalid functionality: customAction "plugin:customactions:x": no custom action plugin "customactions" is configured; the custom action plugins: acts`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPlugins(Functionality{CustomAction: tc.action}, tc.have)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("got  %v\nwant %s", err, tc.want)
			case tc.want != "" && !errors.Is(err, ErrInvalid):
				t.Errorf("%v is not ErrInvalid", err)
			}
		})
	}
}

func TestParsePluginRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PluginRef
		ok   bool
	}{
		{"decoder:frame", PluginRef{Name: "frame"}, true},
		{"decoder:cbor:c8y_Meter:v2", PluginRef{Name: "cbor", Argument: "c8y_Meter:v2"}, true},
		{"plugin:acts:c8y_Seen", PluginRef{Name: "acts", Argument: "c8y_Seen", Action: true}, true},
		{"device:updateManufacturer", PluginRef{}, false},
		{"", PluginRef{}, false},
	} {
		got, ok := ParsePluginRef(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParsePluginRef(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
