package ops

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/lwm2m-agent/lwm2m-agent/agent/firmware"
)

// Delivery methods and reset mechanisms, as the registration parameters
// spell them (fwUpdateDeliveryMethod, fwUpdateResetMechanism).
const (
	DeliveryPull = "PULL"
	DeliveryPush = "PUSH"
	DeliveryBoth = "BOTH"

	ResetPackage    = "PACKAGE"     // a single null byte written to Package /5/0/0
	ResetPackageURI = "PACKAGE_URI" // an empty Package URI /5/0/1
)

// Methods of a firmware update as kept in its progress.
const (
	methodPull = "pull"
	methodPush = "push"
)

// FirmwareDefaults are what a firmware update assumes of a device whose
// registration parameters say nothing and which reports nothing (no
// /5/0/8, /5/0/9).
type FirmwareDefaults struct {
	// Delivery is PULL, PUSH or BOTH (DeliveryPull when empty).
	Delivery string
	// Protocols are the pull protocols: COAP, COAPS, HTTP, HTTPS (all
	// four when empty).
	Protocols []string
	// Reset is PACKAGE or PACKAGE_URI; empty resets by the method used
	// (PACKAGE after a push, PACKAGE_URI after a pull).
	Reset string
}

// fwDevice is what is known of a device's firmware object when an update
// is planned: its registration parameters ("" when absent), what it
// reported (-1 and nil when it did not), and whether it registered over
// DTLS.
type fwDevice struct {
	Delivery, Protocol, Reset, URL string
	ReportedDelivery               int64
	ReportedProtocols              []int64
	Secure                         bool
}

// fwPlan is how an update reaches a device: the method first tried, the
// other one of BOTH ("" when none), the scheme of a pull, the base of
// its URI ("" for the agent's default address), and the reset mechanism
// set for the device ("" resets by the method).
type fwPlan struct {
	Method, Alternative, Scheme, Base, Reset string
}

// schemeOrder ranks the pull protocols, best first: CoAPS authenticates
// the device by its own PSK identity and encrypts the package; CoAP is
// the protocol every LwM2M device speaks, on the port it already reaches;
// HTTPS before HTTP for the same reason as CoAPS before CoAP. CoAPS is
// offered only to a device registered over DTLS: the agent knows no PSK
// identity for any other.
var schemeOrder = []string{"coaps", "coap", "https", "http"}

// protocolCodes are the values of /5/0/8 Firmware Update Protocol
// Support (Core TS 1.1, E.6); 4 and 5 (CoAP over TCP) are not served.
var protocolCodes = map[int64]string{0: "coap", 1: "coaps", 2: "http", 3: "https"}

// planFirmware chooses how src reaches the device. serves tells whether
// the agent can give the device a URI of a scheme, and agentHolds whether
// it has packages to push at all (nil, false: only external URLs are
// pulled, and nothing is pushed).
func planFirmware(d fwDevice, src firmware.Source, def FirmwareDefaults, serves func(scheme string) bool, agentHolds bool) (fwPlan, error) {
	if serves == nil {
		serves = func(string) bool { return false }
	}
	plan := fwPlan{Reset: strings.ToUpper(d.Reset)}
	if plan.Reset == "" {
		plan.Reset = strings.ToUpper(def.Reset)
	}
	delivery := strings.ToUpper(d.Delivery)
	if delivery == "" {
		switch d.ReportedDelivery {
		case 0:
			delivery = DeliveryPull
		case 1:
			delivery = DeliveryPush
		case 2:
			delivery = DeliveryBoth
		default:
			delivery = strings.ToUpper(def.Delivery)
		}
	}
	if delivery == "" {
		delivery = DeliveryPull
	}

	var protocols []string
	switch {
	case d.Protocol != "":
		protocols = []string{strings.ToLower(d.Protocol)}
	case d.ReportedProtocols != nil:
		for _, c := range d.ReportedProtocols {
			if p, ok := protocolCodes[c]; ok {
				protocols = append(protocols, p)
			}
		}
	case len(def.Protocols) > 0:
		for _, p := range def.Protocols {
			protocols = append(protocols, strings.ToLower(strings.TrimSpace(p)))
		}
	default:
		protocols = slices.Clone(schemeOrder)
	}

	scheme, base, why := pullScheme(d, src, protocols, serves)
	// pushing needs the package in the agent: a binary, or an http(s)
	// URL it copies
	canPush := agentHolds && (src.BinaryID != "" || isHTTP(src.URL))
	switch delivery {
	case DeliveryPull:
		if scheme == "" {
			return fwPlan{}, fmt.Errorf("the device pulls firmware only, and %s", why)
		}
		plan.Method, plan.Scheme, plan.Base = methodPull, scheme, base
	case DeliveryPush:
		if !canPush {
			return fwPlan{}, fmt.Errorf("the device takes firmware by push only, and the agent cannot push %s", src)
		}
		plan.Method = methodPush
	case DeliveryBoth:
		// Pull first: the device paces and resumes the transfer itself,
		// and no request slot of the agent is held for it.
		switch {
		case scheme != "":
			plan.Method, plan.Scheme, plan.Base = methodPull, scheme, base
			if canPush {
				plan.Alternative = methodPush
			}
		case canPush:
			plan.Method = methodPush
		default:
			return fwPlan{}, fmt.Errorf("the agent can neither push %s nor give a URI the device pulls: %s", src, why)
		}
	default:
		return fwPlan{}, fmt.Errorf("fwUpdateDeliveryMethod %q is none of PULL, PUSH, BOTH", d.Delivery)
	}
	return plan, nil
}

// pullScheme is the scheme the device pulls src over, and the base of the
// URI when it is the device's fwUpdateURL; or "" and why there is none.
func pullScheme(d fwDevice, src firmware.Source, protocols []string, serves func(string) bool) (scheme, base, why string) {
	has := func(s string) bool { return slices.Contains(protocols, s) }
	if src.URL != "" {
		// an external URL the device fetches itself is given as it is
		if s := schemeOf(src.URL); has(s) {
			return s, "", ""
		}
	}
	if d.URL != "" {
		// the operator's address of the agent for this device: its
		// scheme is the one the device is known to reach
		if s := schemeOf(d.URL); has(s) && (s != "coaps" || d.Secure) {
			return s, d.URL, ""
		}
	}
	copyable := src.BinaryID != "" || isHTTP(src.URL)
	if !copyable {
		return "", "", fmt.Sprintf("it does not support %s of %s (it supports %s)", schemeOf(src.URL), src, strings.Join(protocols, ", "))
	}
	for _, s := range schemeOrder {
		if has(s) && (s != "coaps" || d.Secure) && serves(s) {
			return s, "", ""
		}
	}
	return "", "", fmt.Sprintf("the agent serves packages over none of the protocols it supports (%s)", strings.Join(protocols, ", "))
}

func schemeOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Scheme)
}

func isHTTP(raw string) bool {
	s := schemeOf(raw)
	return s == "http" || s == "https"
}

// resetMechanism is how a device's firmware object is reset after an
// update under method failed or was cancelled.
func resetMechanism(set, method string) string {
	if set != "" {
		return set
	}
	if method == methodPush {
		return ResetPackage
	}
	return ResetPackageURI
}

// fallbackResults are the Update Results of a download that the other
// method may get past: the connection, the URI, the protocol.
func fallbackResult(result int64) bool {
	return result == 4 || result == 7 || result == 9
}
