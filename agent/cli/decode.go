package cli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lwm2m-agent/lwm2m-agent/agent/config"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/lwm2m-agent/lwm2m-agent/agent/plugins"
	"github.com/lwm2m-agent/lwm2m-agent/sdk"
)

// Exit codes of decode, beyond 0 for a value that decoded.
const (
	// decodeRefused: the decoder answered that these bytes do not decode
	// (success false); the agent would raise a mapping alarm and not retry.
	decodeRefused = 1
	// decodeUsage: nothing was asked of a decoder: bad flags, a plugins
	// file that does not load, an unknown plugin, bytes that are not hex.
	decodeUsage = 2
	// decodeNoVerdict: the decoder gave no answer about the bytes (it did
	// not start, was unreachable, timed out or failed temporarily); the
	// agent would keep the value and retry.
	decodeNoVerdict = 3
)

// maxDecodeInput bounds the bytes read from --file: a resource value is
// small, and a wrong file (a disk image, a pipe that never ends) should
// fail at once rather than fill memory.
const maxDecodeInput = 16 << 20

func decodeCmd() *cobra.Command {
	var (
		name, arg, path, hexValue, file string
		pluginsFile, device, endpoint   string
		logLevel                        string
	)
	cmd := &cobra.Command{
		Use:   "decode --plugin NAME (--hex HEX | --file FILE) [--arg ARGUMENT] [--path /O/I/R]",
		Short: "run one value through a configured decoder and print what it makes of it as JSON",
		Long: "Loads the plugins file the agent would (--plugins-config, LWM2M_AGENT_PLUGINS_CONFIG),\n" +
			"starts only the decoder NAME (a process, a gRPC service or an HTTP decoder), sends it\n" +
			"one value as the agent does for a resource whose functionality is\n" +
			"decoder:NAME[:ARGUMENT], prints the answer as JSON and stops the decoder.\n\n" +
			"Exit status: 0 the value decoded; 1 the decoder refused it (success false);\n" +
			"2 nothing was asked (bad flags, plugins file, unknown plugin, bad hex);\n" +
			"3 no verdict (the decoder did not start, was unreachable or timed out).",
		Example: "  lwm2m-agent decode --plugins-config plugins.json --plugin tempframe --hex 6608\n" +
			"  lwm2m-agent decode --plugin cbor --arg c8y_Env --path /19/0/0 --file frame.bin",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("plugins-config") {
				pluginsFile = os.Getenv(config.EnvName("plugins-config"))
			}
			req, err := decodeRequest(cmd.InOrStdin(), name, arg, path, hexValue, file, device, endpoint)
			if err != nil {
				return &exitError{code: decodeUsage, err: err}
			}
			spec, err := decoderSpec(pluginsFile, name)
			if err != nil {
				return &exitError{code: decodeUsage, err: err}
			}
			log := newLogger(cmd.ErrOrStderr(), logLevel, "text")
			h, err := plugins.New(cmd.Context(), plugins.Config{Plugins: []plugins.Spec{spec}}, log)
			if err != nil {
				return &exitError{code: decodeNoVerdict, err: fmt.Errorf("decoder %s: %w", name, err)}
			}
			defer h.Close()
			res, err := h.Decode(cmd.Context(), name, req)
			if err != nil {
				if st := h.Stats(); len(st) == 1 && !st[0].Up && st[0].Via == "process" {
					err = fmt.Errorf("%w (the process did not start: see the log above)", err)
				}
				return &exitError{code: decodeNoVerdict, err: fmt.Errorf("decoder %s: decode %s: %w", name, displayPath(req.ResourcePath), err)}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(newDecodeOutput(name, req, res)); err != nil {
				return err
			}
			if !res.Success {
				return &exitError{code: decodeRefused, err: fmt.Errorf("decoder %s refused the value: %s", name, res.Message)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "plugin", "", "the decoder's name in the plugins file")
	f.StringVar(&hexValue, "hex", "", "the value's bytes as hex (spaces, colons and a 0x prefix are ignored)")
	f.StringVar(&file, "file", "", "read the value's bytes from this file (- is standard input)")
	f.StringVar(&arg, "arg", "", "the functionality's argument, ARGUMENT of decoder:NAME:ARGUMENT")
	f.StringVar(&path, "path", "", "the resource the value comes from, /O/I/R or /O/I/R/RI")
	f.StringVar(&device, "device", "", "the device's managed object ID the decoder is told")
	f.StringVar(&endpoint, "endpoint", "", "the device's endpoint the decoder is told")
	f.StringVar(&pluginsFile, "plugins-config", "", "JSON file declaring the plugins ("+config.EnvName("plugins-config")+")")
	f.StringVar(&logLevel, "log-level", "warn", "level of the log on standard error: debug, info, warn or error")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: decodeUsage, err: err} })
	return cmd
}

// decodeRequest is the request the agent would send for the value.
func decodeRequest(stdin io.Reader, name, arg, path, hexValue, file, device, endpoint string) (sdk.DecodeRequest, error) {
	if name == "" {
		return sdk.DecodeRequest{}, errors.New("--plugin is missing: name a decoder of the plugins file")
	}
	if (hexValue == "") == (file == "") {
		return sdk.DecodeRequest{}, errors.New("give the value with exactly one of --hex and --file")
	}
	req := sdk.DecodeRequest{ServiceKey: name, DeviceID: device, Endpoint: endpoint, Time: time.Now().UTC()}
	if path != "" {
		p, err := node.ParsePath(path)
		if err != nil || p.Depth < 3 {
			return sdk.DecodeRequest{}, fmt.Errorf("--path %q is not a resource (/O/I/R or /O/I/R/RI)", path)
		}
		req.ResourcePath = p.String()
	}
	if arg != "" {
		req.Args = map[string]string{sdk.ArgumentKey: arg}
	}
	var err error
	if hexValue != "" {
		req.Value, err = parseHex(hexValue)
	} else {
		req.Value, err = readValue(stdin, file)
	}
	return req, err
}

// parseHex reads bytes written as hex, as people copy them from logs and
// packet captures: "66 08", "66:08", "0x6608".
func parseHex(s string) ([]byte, error) {
	t := strings.NewReplacer(" ", "", "\t", "", "\n", "", ":", "").Replace(s)
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	b, err := hex.DecodeString(t)
	if err != nil {
		return nil, fmt.Errorf("--hex %q is not hex: %w", s, err)
	}
	return b, nil
}

func readValue(stdin io.Reader, file string) ([]byte, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--file: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDecodeInput+1))
	if err != nil {
		return nil, fmt.Errorf("--file %s: %w", file, err)
	}
	if len(b) > maxDecodeInput {
		return nil, fmt.Errorf("--file %s: more than %d bytes, too large for a resource value", file, maxDecodeInput)
	}
	return b, nil
}

// decoderSpec finds the decoder name in the plugins file, which must load
// as the agent would load it.
func decoderSpec(file, name string) (plugins.Spec, error) {
	if file == "" {
		return plugins.Spec{}, fmt.Errorf("no plugins file: give --plugins-config or set %s", config.EnvName("plugins-config"))
	}
	cfg, err := plugins.LoadConfig(file)
	if err != nil {
		return plugins.Spec{}, err // "plugins config FILE: ..." names the file
	}
	var decoders []string
	for _, s := range cfg.Plugins {
		if s.Name == name {
			if s.Kind != sdk.KindDecoder {
				return plugins.Spec{}, fmt.Errorf("plugin %s of %s is a %s plugin, not a decoder", name, file, s.Kind)
			}
			return s, nil
		}
		if s.Kind == sdk.KindDecoder {
			decoders = append(decoders, s.Name)
		}
	}
	known := "none"
	if len(decoders) > 0 {
		known = strings.Join(decoders, ", ")
	}
	return plugins.Spec{}, fmt.Errorf("unknown plugin %q: the decoders of %s are %s", name, file, known)
}

func displayPath(p string) string {
	if p == "" {
		return "the value"
	}
	return p
}

// decodeOutput is what decode prints: the request's essentials and the
// decoder's answer as it gave it (the agent fills defaults, such as a
// measurement's fragment and time, when it stores them).
type decodeOutput struct {
	Plugin        string           `json:"plugin"`
	Path          string           `json:"path,omitempty"`
	Argument      string           `json:"argument,omitempty"`
	Value         string           `json:"value"`
	Success       bool             `json:"success"`
	Message       string           `json:"message,omitempty"`
	Measurements  []outMeasurement `json:"measurements"`
	Events        []outEvent       `json:"events"`
	Alarms        []outAlarm       `json:"alarms"`
	DataFragments []outFragment    `json:"dataFragments"`
}

type outMeasurement struct {
	Type     string    `json:"type"`
	Fragment string    `json:"fragment,omitempty"`
	Series   string    `json:"series"`
	Value    float64   `json:"value"`
	Unit     string    `json:"unit,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Source   string    `json:"source,omitempty"`
}

type outEvent struct {
	Type      string         `json:"type"`
	Text      string         `json:"text,omitempty"`
	Time      time.Time      `json:"time,omitzero"`
	Source    string         `json:"source,omitempty"`
	Fragments map[string]any `json:"fragments,omitempty"`
}

type outAlarm struct {
	Type      string         `json:"type"`
	Severity  string         `json:"severity,omitempty"`
	Status    string         `json:"status,omitempty"`
	Text      string         `json:"text,omitempty"`
	Time      time.Time      `json:"time,omitzero"`
	Source    string         `json:"source,omitempty"`
	Fragments map[string]any `json:"fragments,omitempty"`
}

type outFragment struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

func newDecodeOutput(name string, req sdk.DecodeRequest, res sdk.DecodeResult) decodeOutput {
	out := decodeOutput{
		Plugin: name, Path: req.ResourcePath, Argument: req.Argument(), Value: hex.EncodeToString(req.Value),
		Success: res.Success, Message: res.Message,
		Measurements: []outMeasurement{}, Events: []outEvent{}, Alarms: []outAlarm{}, DataFragments: []outFragment{},
	}
	for _, m := range res.Measurements {
		out.Measurements = append(out.Measurements, outMeasurement(m))
	}
	for _, e := range res.Events {
		out.Events = append(out.Events, outEvent{Type: e.Type, Text: e.Text, Time: e.Time, Source: e.Source, Fragments: e.Fragments})
	}
	for _, a := range res.Alarms {
		out.Alarms = append(out.Alarms, outAlarm{Type: a.Type, Severity: a.Severity, Status: a.Status, Text: a.Text, Time: a.Time, Source: a.Source, Fragments: a.Fragments})
	}
	for _, f := range res.DataFragments {
		out.DataFragments = append(out.DataFragments, outFragment(f))
	}
	return out
}
