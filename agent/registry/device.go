package registry

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Security modes a line may ask for.
const (
	SecurityNoSec = "NO_SEC"
	SecurityPSK   = "PSK"
)

// Binary delivery encodings; an empty or unknown value is EncodingOpaque.
const (
	EncodingOpaque = "OPAQUE"
	EncodingTLV    = "TLV"
	EncodingJSON   = "JSON"
	EncodingText   = "TEXT"
)

// Enumerations of the firmware update columns. Delivery method and protocol
// name the choices of the Firmware Update object (/5/0/9 and /5/0/8); the
// reset mechanism names how the update state machine is reset: by writing an
// empty package (/5/0/0) or an empty package URI (/5/0/1).
var (
	FwDeliveryMethods  = []string{"PULL", "PUSH", "BOTH"}
	FwDeviceProtocols  = []string{"COAP", "COAPS", "HTTP", "HTTPS"}
	FwResetMechanisms  = []string{"PACKAGE", "PACKAGE_URI"}
	binaryEncodings    = []string{EncodingOpaque, EncodingTLV, EncodingJSON, EncodingText}
	fwURLSchemes       = []string{"http", "https", "coap", "coaps"}
	serverURISchemes   = []string{"coap", "coaps"}
	shortServerIDRange = [2]int64{1, 65534}
)

// Device is one valid line of a registration file, typed. Optional numeric
// and boolean columns are pointers: nil means the line left them empty and
// the agent's defaults apply.
type Device struct {
	ID          string
	IDType      string
	Credentials string // plain; the caller hashes it before storing
	Name        string
	Type        string
	Shell       bool
	GenericUI   string // raw JSON, checked to be valid JSON
	Agent       bool   // com_cumulocity_model_Agent

	EndpointID   string
	ServerURI    string // coap:// or coaps:// URL
	SecurityMode string // SecurityNoSec or SecurityPSK
	AwakeTime    *time.Duration
	// ServerPublicKey is passed through as written; it is not used with the
	// NO_SEC and PSK modes.
	ServerPublicKey               string
	GenerateBootstrapServerConfig *bool
	SecurityInstanceOffset        *int
	BootstrapShortServerID        *int
	LwM2MShortServerID            *int
	RegistrationLifetime          *int // seconds
	DefaultMinimumPeriod          *int // seconds
	DefaultMaximumPeriod          *int // seconds
	BindingMode                   string
	NotificationIfDisabled        *bool
	DisableTimeout                *int // seconds
	BinaryDeliveryEncoding        string
	RequestTimeout                *time.Duration

	PSKID                  string
	PSKKey                 []byte
	BootstrapPSKID         string
	BootstrapPSKKey        []byte
	ExternalLwM2MPSKID     string
	ExternalBootstrapPSKID string

	FwUpdateDeliveryMethod          string
	FwUpdateSupportedDeviceProtocol string
	FwUpdateResetMechanism          string
	FwUpdateURL                     string

	// Line is the file line the device came from.
	Line int
}

type field int

const (
	fID field = iota
	fIDType
	fCredentials
	fName
	fType
	fShell
	fGenericUI
	fAgent
	fEndpointID
	fServerURI
	fSecurityMode
	fAwakeTime
	fServerPublicKey
	fGenerateBootstrap
	fSecurityInstanceOffset
	fBootstrapShortServerID
	fLwM2MShortServerID
	fRegistrationLifetime
	fDefaultMinimumPeriod
	fDefaultMaximumPeriod
	fBindingMode
	fNotificationIfDisabled
	fDisableTimeout
	fBinaryDeliveryEncoding
	fRequestTimeout
	fPSKID
	fPSKKey
	fBootstrapPSKID
	fBootstrapPSKKey
	fExternalLwM2MPSKID
	fExternalBootstrapPSKID
	fFwDeliveryMethod
	fFwDeviceProtocol
	fFwResetMechanism
	fFwURL
	numFields
)

// fieldNames are the column names as Cumulocity's template writes them;
// reasons use them so that the operator finds the column.
var fieldNames = [numFields]string{
	fID:                     "ID",
	fIDType:                 "IDTYPE",
	fCredentials:            "CREDENTIALS",
	fName:                   "NAME",
	fType:                   "TYPE",
	fShell:                  "SHELL",
	fGenericUI:              "c8y_GenericUi",
	fAgent:                  "com_cumulocity_model_Agent",
	fEndpointID:             "endpoint id",
	fServerURI:              "lwm2m server uri",
	fSecurityMode:           "securityMode",
	fAwakeTime:              "awakeTimeRegistrationParameter",
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
	fRequestTimeout:         "lwm2mRequestTimeout",
	fPSKID:                  "lwm2m psk_id",
	fPSKKey:                 "lwm2m psk_key",
	fBootstrapPSKID:         "bootstrap psk_id",
	fBootstrapPSKKey:        "bootstrap psk_key",
	fExternalLwM2MPSKID:     "external-c8y_Lwm2mPskId",
	fExternalBootstrapPSKID: "external-c8y_BootstrapPskId",
	fFwDeliveryMethod:       "fwUpdateDeliveryMethod",
	fFwDeviceProtocol:       "fwUpdateSupportedDeviceProtocol",
	fFwResetMechanism:       "fwUpdateResetMechanism",
	fFwURL:                  "fwUpdateURL",
}

// mandatory columns: without them no device can be registered, connected
// and reached (the agent needs the endpoint, where it connects, and how).
var mandatory = []field{fID, fIDType, fCredentials, fType, fEndpointID, fServerURI, fSecurityMode}

// CredentialsRule is the reason given for credentials that are too weak.
const CredentialsRule = "CREDENTIALS: must be at least 12 characters with upper and lower case, a digit and a special character"

// MaxCredentialsBytes is the longest CREDENTIALS: bcrypt, which hashes
// them, reads no more.
const MaxCredentialsBytes = 72

// lineParser collects every problem of one line.
type lineParser struct {
	raw *[numFields]string
	// names are how reasons name a field: the CSV columns for a file, the
	// JSON members for the bootstrap resource.
	names *[numFields]string
	// params is set when only the registration parameters are checked:
	// the identity columns (ID, IDTYPE, CREDENTIALS, TYPE) are not there.
	params bool
	// partial is set when only the values given are checked, as a change
	// to a device that has no parameters yet: nothing is missing.
	partial bool
	reasons []string
}

func (p *lineParser) name(f field) string { return p.names[f] }

func (p *lineParser) failf(format string, args ...any) {
	p.reasons = append(p.reasons, fmt.Sprintf(format, args...))
}

func (p *lineParser) required(f field) string {
	v := p.raw[f]
	if v == "" && !p.partial {
		p.failf("%s is missing", p.name(f))
	}
	return v
}

func (p *lineParser) oneOf(f field, allowed []string) string {
	v := p.raw[f]
	if v == "" {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.failf("%s %q must be one of %s", p.name(f), v, strings.Join(allowed, ", "))
	return ""
}

// boolean accepts true and false (any case), and 1 and 0 where digits is set.
func (p *lineParser) boolean(f field, digits bool) *bool {
	v := p.raw[f]
	if v == "" {
		return nil
	}
	var b bool
	switch {
	case strings.EqualFold(v, "true"):
		b = true
	case strings.EqualFold(v, "false"):
		b = false
	case digits && v == "1":
		b = true
	case digits && v == "0":
		b = false
	default:
		if digits {
			p.failf("%s %q must be true, false, 1 or 0", p.name(f), v)
		} else {
			p.failf("%s %q must be true or false", p.name(f), v)
		}
		return nil
	}
	return &b
}

// integer parses a whole decimal number in [lo, hi]; no sign other than a
// leading minus, no spaces, no fractions.
func (p *lineParser) integer(f field, lo, hi int64) (int64, bool) {
	v := p.raw[f]
	if v == "" {
		return 0, false
	}
	digits := strings.TrimPrefix(v, "-")
	ok := digits != ""
	for i := 0; ok && i < len(digits); i++ {
		ok = digits[i] >= '0' && digits[i] <= '9'
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil {
		p.failf("%s %q is not a whole number", p.name(f), v)
		return 0, false
	}
	if n < lo || n > hi {
		switch {
		case hi == math.MaxInt32 && n > hi:
			p.failf("%s %d must be at most %d", p.name(f), n, hi)
		case hi == math.MaxInt32 && lo == 0:
			p.failf("%s %d must be 0 or more", p.name(f), n)
		case hi == math.MaxInt32:
			p.failf("%s %d must be %d or more", p.name(f), n, lo)
		default:
			p.failf("%s %d must be between %d and %d", p.name(f), n, lo, hi)
		}
		return 0, false
	}
	return n, true
}

func (p *lineParser) intPtr(f field, lo, hi int64) *int {
	n, ok := p.integer(f, lo, hi)
	if !ok {
		return nil
	}
	i := int(n)
	return &i
}

func (p *lineParser) hexKey(f field) []byte {
	v := p.raw[f]
	if v == "" {
		return nil
	}
	k, err := hex.DecodeString(v)
	if err != nil {
		if len(v)%2 == 1 {
			p.failf("%s is not hexadecimal: it has an odd number of digits", p.name(f))
		} else {
			// The key itself is never repeated in a reason: reasons end up
			// in answers and logs.
			p.failf("%s is not hexadecimal: only 0-9 and a-f are allowed", p.name(f))
		}
		return nil
	}
	return k
}

func (p *lineParser) uri(f field, schemes []string) string {
	v := p.raw[f]
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		p.failf("%s %q must be a URL like %s://host:port", p.name(f), v, schemes[0])
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	known := false
	for _, s := range schemes {
		known = known || s == scheme
	}
	if !known {
		p.failf("%s %q must start with %s://", p.name(f), v, strings.Join(schemes, ":// or "))
		return ""
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			p.failf("%s %q has an invalid port", p.name(f), v)
			return ""
		}
	} else if strings.HasSuffix(u.Host, ":") {
		p.failf("%s %q has an empty port", p.name(f), v)
		return ""
	}
	if h := u.Hostname(); strings.ContainsAny(h, " ") || (strings.Contains(h, ":") && net.ParseIP(h) == nil) {
		p.failf("%s %q has an invalid host", p.name(f), v)
		return ""
	}
	return v
}

func strongCredentials(s string) bool {
	if utf8.RuneCountInString(s) < 12 {
		return false
	}
	var upper, lower, digit, special bool
	for _, r := range s {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lower = true
		case unicode.IsDigit(r):
			digit = true
		case !unicode.IsLetter(r) && !unicode.IsSpace(r):
			special = true
		}
	}
	return upper && lower && digit && special
}

func millis(n int64) *time.Duration {
	d := time.Duration(n) * time.Millisecond
	return &d
}

// parseDevice turns one line's values into a device and every reason it is
// not one. With params set, only the registration parameters are checked
// (the bootstrap resource of the API): the identity columns are neither
// required nor read, and reasons name the JSON members. Both the file and
// the API go through here, so that a value one accepts the other accepts.
func parseDevice(raw *[numFields]string, opts Options, params bool) (Device, []string) {
	p := &lineParser{raw: raw, names: &fieldNames, params: params}
	if params {
		p.names = &paramNames
	}
	return parseWith(p, opts)
}

func parseWith(p *lineParser, opts Options) (Device, []string) {
	raw, params := p.raw, p.params
	d := Device{
		Name:                   raw[fName],
		ServerPublicKey:        raw[fServerPublicKey],
		PSKID:                  raw[fPSKID],
		BootstrapPSKID:         raw[fBootstrapPSKID],
		ExternalLwM2MPSKID:     raw[fExternalLwM2MPSKID],
		ExternalBootstrapPSKID: raw[fExternalBootstrapPSKID],
	}

	if !params {
		d.ID = p.required(fID)
		if t := p.required(fIDType); t != "" && t != "c8y_Id" {
			p.failf("IDTYPE %q must be c8y_Id", t)
		}
		d.IDType = raw[fIDType]
		if c := p.required(fCredentials); c != "" && !strongCredentials(c) {
			p.reasons = append(p.reasons, CredentialsRule)
		} else if len(c) > MaxCredentialsBytes {
			p.failf("CREDENTIALS: must be at most %d bytes, this is %d", MaxCredentialsBytes, len(c))
		}
		d.Credentials = raw[fCredentials]
		if t := p.required(fType); t != "" && t != "c8y_lwm2m" {
			p.failf("TYPE %q must be c8y_lwm2m", t)
		}
		d.Type = raw[fType]
		if b := p.boolean(fShell, true); b != nil {
			d.Shell = *b
		}
		if g := raw[fGenericUI]; g != "" {
			if !json.Valid([]byte(g)) {
				p.failf("c8y_GenericUi is not valid JSON")
			} else {
				d.GenericUI = g
			}
		}
		if b := p.boolean(fAgent, true); b != nil {
			d.Agent = *b
		}
	}

	d.EndpointID = p.required(fEndpointID)
	if d.EndpointID != "" && d.ID != "" && d.EndpointID != d.ID {
		p.failf("%s %q must equal ID %q", p.name(fEndpointID), d.EndpointID, d.ID)
	}
	p.required(fServerURI)
	d.ServerURI = p.uri(fServerURI, serverURISchemes)
	if mode := p.required(fSecurityMode); mode != "" && mode != SecurityNoSec && mode != SecurityPSK {
		p.failf("%s %q must be NO_SEC or PSK", p.name(fSecurityMode), mode)
	} else {
		d.SecurityMode = mode
	}

	if n, ok := p.integer(fAwakeTime, 0, math.MaxInt32); ok {
		d.AwakeTime = millis(n)
	}
	d.GenerateBootstrapServerConfig = p.boolean(fGenerateBootstrap, false)
	// 65534 is the last instance ID, and the bootstrap server's own account may
	// need the one above the offset: the bootstrap resource has the same bound.
	d.SecurityInstanceOffset = p.intPtr(fSecurityInstanceOffset, 0, 65533)
	d.BootstrapShortServerID = p.intPtr(fBootstrapShortServerID, shortServerIDRange[0], shortServerIDRange[1])
	d.LwM2MShortServerID = p.intPtr(fLwM2MShortServerID, shortServerIDRange[0], shortServerIDRange[1])
	d.RegistrationLifetime = p.intPtr(fRegistrationLifetime, 1, math.MaxInt32)
	d.DefaultMinimumPeriod = p.intPtr(fDefaultMinimumPeriod, 0, math.MaxInt32)
	d.DefaultMaximumPeriod = p.intPtr(fDefaultMaximumPeriod, 0, math.MaxInt32)
	if d.DefaultMinimumPeriod != nil && d.DefaultMaximumPeriod != nil && *d.DefaultMinimumPeriod > *d.DefaultMaximumPeriod {
		p.failf("%s %d must not be above %s %d", p.name(fDefaultMinimumPeriod), *d.DefaultMinimumPeriod, p.name(fDefaultMaximumPeriod), *d.DefaultMaximumPeriod)
	}
	if d.BootstrapShortServerID != nil && d.LwM2MShortServerID != nil && *d.BootstrapShortServerID == *d.LwM2MShortServerID {
		p.failf("%s and %s must differ, both are %d", p.name(fBootstrapShortServerID), p.name(fLwM2MShortServerID), *d.LwM2MShortServerID)
	}
	if v := raw[fBindingMode]; v != "" && v != "U" && v != "UQ" {
		p.failf("%s %q must be U or UQ", p.name(fBindingMode), v)
	} else {
		d.BindingMode = v
	}
	d.NotificationIfDisabled = p.boolean(fNotificationIfDisabled, false)
	d.DisableTimeout = p.intPtr(fDisableTimeout, 0, math.MaxInt32)
	d.BinaryDeliveryEncoding = EncodingOpaque
	for _, e := range binaryEncodings {
		if strings.EqualFold(raw[fBinaryDeliveryEncoding], e) {
			d.BinaryDeliveryEncoding = e
		}
	}
	maxMs := opts.MaxRequestTimeout.Milliseconds()
	if n, ok := p.integer(fRequestTimeout, 1, math.MaxInt32); ok {
		if n > maxMs {
			p.failf("%s %d ms is above the maximum of %d ms", p.name(fRequestTimeout), n, maxMs)
		} else {
			d.RequestTimeout = millis(n)
		}
	}

	d.PSKKey = p.hexKey(fPSKKey)
	d.BootstrapPSKKey = p.hexKey(fBootstrapPSKKey)
	switch d.SecurityMode {
	case SecurityPSK:
		for _, f := range []field{fPSKID, fPSKKey} {
			if raw[f] == "" {
				p.failf("%s is missing: securityMode PSK needs it", p.name(f))
			}
		}
		bootstrap := raw[fBootstrapPSKID] != "" || raw[fBootstrapPSKKey] != "" ||
			(d.GenerateBootstrapServerConfig != nil && *d.GenerateBootstrapServerConfig)
		if bootstrap {
			for _, f := range []field{fBootstrapPSKID, fBootstrapPSKKey} {
				if raw[f] == "" {
					p.failf("%s is missing: a PSK device with a bootstrap account needs it", p.name(f))
				}
			}
		}
		if d.ServerURI != "" && !strings.HasPrefix(strings.ToLower(d.ServerURI), "coaps://") {
			p.failf("%s %q must start with coaps:// for securityMode PSK", p.name(fServerURI), d.ServerURI)
		}
	case SecurityNoSec:
		var carried []string
		for _, f := range []field{fPSKID, fPSKKey, fBootstrapPSKID, fBootstrapPSKKey} {
			if raw[f] != "" {
				carried = append(carried, p.name(f))
			}
		}
		if len(carried) > 0 {
			p.failf("securityMode NO_SEC must not carry keys, but %s %s given", strings.Join(carried, ", "), isAre(len(carried)))
		}
		if d.ServerURI != "" && !strings.HasPrefix(strings.ToLower(d.ServerURI), "coap://") {
			p.failf("%s %q must start with coap:// for securityMode NO_SEC", p.name(fServerURI), d.ServerURI)
		}
	}

	d.FwUpdateDeliveryMethod = p.oneOf(fFwDeliveryMethod, FwDeliveryMethods)
	d.FwUpdateSupportedDeviceProtocol = p.oneOf(fFwDeviceProtocol, FwDeviceProtocols)
	d.FwUpdateResetMechanism = p.oneOf(fFwResetMechanism, FwResetMechanisms)
	d.FwUpdateURL = p.uri(fFwURL, fwURLSchemes)

	if len(p.reasons) > 0 {
		return Device{}, p.reasons
	}
	return d, nil
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
