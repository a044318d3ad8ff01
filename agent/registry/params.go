package registry

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Names of the bootstrap resource's members that the API treats apart
// from the others: the endpoint is the device's identity, and the keys are
// write-only.
const (
	ParamEndpointID      = "endpointId"
	ParamLwM2MPSKID      = "lwm2mPskId"
	ParamBootstrapPSKID  = "bootstrapPskId"
	ParamLwM2MPSKKey     = "lwm2mPskKey"
	ParamBootstrapPSKKey = "bootstrapPskKey"
	ParamAwakeTime       = "awakeTimeRegistrationParameter"
	ParamRequestTimeout  = "lwm2mRequestTimeout"
)

// paramNames are the camelCase JSON names of the registration parameters,
// as the bootstrap resource reads and writes them; the identity columns
// of the file have none.
var paramNames = [numFields]string{
	fEndpointID:             ParamEndpointID,
	fServerURI:              "lwm2mServerUri",
	fSecurityMode:           "securityMode",
	fAwakeTime:              ParamAwakeTime,
	fServerPublicKey:        "serverPublicKey",
	fGenerateBootstrap:      "generateBootstrapServerConfig",
	fSecurityInstanceOffset: "securityInstanceOffset",
	fBootstrapShortServerID: "bootstrapShortServerId",
	fLwM2MShortServerID:     "lwm2mShortServerId",
	fRegistrationLifetime:   "registrationLifetime",
	fDefaultMinimumPeriod:   "defaultMinimumPeriod",
	fDefaultMaximumPeriod:   "defaultMaximumPeriod",
	fBindingMode:            "bindingMode",
	fNotificationIfDisabled: "notificationIfDisabled",
	fDisableTimeout:         "disableTimeout",
	fBinaryDeliveryEncoding: "binaryDeliveryEncoding",
	fRequestTimeout:         ParamRequestTimeout,
	fPSKID:                  ParamLwM2MPSKID,
	fPSKKey:                 ParamLwM2MPSKKey,
	fBootstrapPSKID:         ParamBootstrapPSKID,
	fBootstrapPSKKey:        ParamBootstrapPSKKey,
	fFwDeliveryMethod:       "fwUpdateDeliveryMethod",
	fFwDeviceProtocol:       "fwUpdateSupportedDeviceProtocol",
	fFwResetMechanism:       "fwUpdateResetMechanism",
	fFwURL:                  "fwUpdateURL",
}

var paramIndex = func() map[string]field {
	m := make(map[string]field, numFields)
	for f, name := range paramNames {
		if name != "" {
			m[name] = field(f)
		}
	}
	return m
}()

// paramKind is the JSON type a parameter takes.
type paramKind int

const (
	kindString paramKind = iota
	kindInteger
	kindBoolean
)

var paramKinds = map[field]paramKind{
	fAwakeTime: kindInteger, fSecurityInstanceOffset: kindInteger, fBootstrapShortServerID: kindInteger,
	fLwM2MShortServerID: kindInteger, fRegistrationLifetime: kindInteger, fDefaultMinimumPeriod: kindInteger,
	fDefaultMaximumPeriod: kindInteger, fDisableTimeout: kindInteger, fRequestTimeout: kindInteger,
	fGenerateBootstrap: kindBoolean, fNotificationIfDisabled: kindBoolean,
}

// ParamNames returns the names ParseParams knows, sorted.
func ParamNames() []string {
	return slices.Sorted(maps.Keys(paramIndex))
}

// ParamsError is every problem of a set of registration parameters.
type ParamsError struct {
	// Unknown are the members that are no parameter, sorted.
	Unknown []string
	// Reasons are the problems of the values, each a sentence for a person.
	Reasons []string
}

// Error joins the problems with "; ".
func (e *ParamsError) Error() string {
	var parts []string
	if len(e.Unknown) > 0 {
		parts = append(parts, fmt.Sprintf("unknown parameter%s %s (known: %s)",
			plural(len(e.Unknown)), strings.Join(e.Unknown, ", "), strings.Join(ParamNames(), ", ")))
	}
	return strings.Join(append(parts, e.Reasons...), "; ")
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// ParseParams validates a device's registration parameters given by their
// camelCase names (the JSON of GET and PUT /lwm2m/devices/{id}/bootstrap,
// with the write-only lwm2mPskKey and bootstrapPskKey in hexadecimal) with
// the rules of a line of the registration file, all problems together.
// The identity columns of the file (ID, IDTYPE, CREDENTIALS, TYPE, ...)
// are not parameters. Strings are read as the file's text; integers and
// booleans may also be JSON numbers and booleans. A nil value is an empty
// one. The error is a *ParamsError.
func ParseParams(params map[string]any, opts Options) (Device, error) {
	return parseParams(params, opts, false)
}

// CheckParams checks the parameters given, and only those, with the rules
// of ParseParams: for a change to a device that has no registration
// parameters yet, where nothing can be missing. The device holds the
// values given. The error is a *ParamsError.
func CheckParams(params map[string]any, opts Options) (Device, error) {
	return parseParams(params, opts, true)
}

func parseParams(params map[string]any, opts Options, partial bool) (Device, error) {
	opts = opts.withDefaults()
	var raw [numFields]string
	perr := &ParamsError{}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		f, ok := paramIndex[k]
		if !ok {
			perr.Unknown = append(perr.Unknown, k)
			continue
		}
		v, err := paramText(params[k], paramKinds[f])
		if err != nil {
			perr.Reasons = append(perr.Reasons, k+" "+err.Error())
			continue
		}
		raw[f] = v
	}
	d, reasons := parseWith(&lineParser{raw: &raw, names: &paramNames, params: true, partial: partial}, opts)
	perr.Reasons = append(perr.Reasons, reasons...)
	if len(perr.Unknown) > 0 || len(perr.Reasons) > 0 {
		return Device{}, perr
	}
	return d, nil
}

// paramText turns a JSON value into the text a file's column would hold.
func paramText(v any, kind paramKind) (string, error) {
	switch t := v.(type) {
	case nil:
		return "", nil
	case string:
		return strings.TrimSpace(t), nil
	case json.Number:
		if kind == kindInteger {
			return t.String(), nil
		}
	case float64:
		if kind == kindInteger {
			return strconv.FormatFloat(t, 'f', -1, 64), nil
		}
	case int:
		if kind == kindInteger {
			return strconv.Itoa(t), nil
		}
	case int32:
		if kind == kindInteger {
			return strconv.FormatInt(int64(t), 10), nil
		}
	case int64:
		if kind == kindInteger {
			return strconv.FormatInt(t, 10), nil
		}
	case bool:
		if kind == kindBoolean {
			return strconv.FormatBool(t), nil
		}
	}
	switch kind {
	case kindInteger:
		return "", fmt.Errorf("must be a whole number, not %s", jsonKind(v))
	case kindBoolean:
		return "", fmt.Errorf("must be true or false, not %s", jsonKind(v))
	}
	return "", fmt.Errorf("must be a string, not %s", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case bool:
		return "a boolean"
	case json.Number, float64, int, int32, int64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// WithKeys returns stored parameters with the stored keys added as
// ParseParams reads them, so that a change of some parameters is checked
// against the whole device. params is not changed.
func WithKeys(params map[string]any, pskKey, bootstrapPSKKey []byte) map[string]any {
	out := maps.Clone(params)
	if out == nil {
		out = map[string]any{}
	}
	if len(pskKey) > 0 {
		out[ParamLwM2MPSKKey] = hex.EncodeToString(pskKey)
	}
	if len(bootstrapPSKKey) > 0 {
		out[ParamBootstrapPSKKey] = hex.EncodeToString(bootstrapPSKKey)
	}
	return out
}

// Merge applies a change to parameters: a member of change replaces the
// one of base, a nil member removes it, and members change leaves out
// keep their value. base is not changed.
func Merge(base, change map[string]any) map[string]any {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range change {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// Params returns the device's registration and bootstrap parameters by
// their camelCase names, as the bootstrap resource of the API shows them:
// every field but the identity, the credentials and the keys.
func (d Device) Params() map[string]any {
	p := map[string]any{
		paramNames[fEndpointID]:             d.EndpointID,
		paramNames[fServerURI]:              d.ServerURI,
		paramNames[fSecurityMode]:           d.SecurityMode,
		paramNames[fBindingMode]:            d.BindingMode,
		paramNames[fBinaryDeliveryEncoding]: d.BinaryDeliveryEncoding,
	}
	set := func(f field, v string) {
		if v != "" {
			p[paramNames[f]] = v
		}
	}
	set(fServerPublicKey, d.ServerPublicKey)
	set(fPSKID, d.PSKID)
	set(fBootstrapPSKID, d.BootstrapPSKID)
	set(fFwDeliveryMethod, d.FwUpdateDeliveryMethod)
	set(fFwDeviceProtocol, d.FwUpdateSupportedDeviceProtocol)
	set(fFwResetMechanism, d.FwUpdateResetMechanism)
	set(fFwURL, d.FwUpdateURL)
	ms := func(f field, v *time.Duration) {
		if v != nil {
			p[paramNames[f]] = v.Milliseconds()
		}
	}
	ms(fAwakeTime, d.AwakeTime)
	ms(fRequestTimeout, d.RequestTimeout)
	for f, v := range map[field]*int{
		fSecurityInstanceOffset: d.SecurityInstanceOffset,
		fBootstrapShortServerID: d.BootstrapShortServerID,
		fLwM2MShortServerID:     d.LwM2MShortServerID,
		fRegistrationLifetime:   d.RegistrationLifetime,
		fDefaultMinimumPeriod:   d.DefaultMinimumPeriod,
		fDefaultMaximumPeriod:   d.DefaultMaximumPeriod,
		fDisableTimeout:         d.DisableTimeout,
	} {
		if v != nil {
			p[paramNames[f]] = *v
		}
	}
	for f, v := range map[field]*bool{
		fGenerateBootstrap:      d.GenerateBootstrapServerConfig,
		fNotificationIfDisabled: d.NotificationIfDisabled,
	} {
		if v != nil {
			p[paramNames[f]] = *v
		}
	}
	return p
}
