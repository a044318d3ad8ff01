package simulator

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Security modes of /0/x/2 (Core TS 1.1, E.1).
const (
	secModePSK   = 0
	secModeNoSec = 3
)

// serverURI turns a bare "host:port" into a coap URI; URIs pass unchanged.
func serverURI(s string) string {
	if s == "" || strings.Contains(s, "://") {
		return s
	}
	return "coap://" + s
}

// peer is where a server URI points.
type peer struct {
	secure   bool   // coaps
	hostport string // "127.0.0.1:5684"
}

// parseServerURI checks a coap:// or coaps:// server URI and fills in the
// default port of its scheme (RFC 7252, 6.1 and 6.2).
func parseServerURI(s string) (peer, error) {
	u, err := url.Parse(s)
	if err != nil {
		return peer{}, fmt.Errorf("uri %q: %w", s, err)
	}
	var p peer
	port := "5683"
	switch u.Scheme {
	case "coap":
	case "coaps":
		p.secure, port = true, "5684"
	default:
		return peer{}, fmt.Errorf("uri %q: scheme is not coap or coaps", s)
	}
	if u.Hostname() == "" {
		return peer{}, fmt.Errorf("uri %q: no host", s)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return peer{}, fmt.Errorf("uri %q: a server URI has no path, query or user", s)
	}
	p.hostport = net.JoinHostPort(u.Hostname(), port)
	return p, nil
}

func (dc DeviceConfig) withDefaults(c Config) DeviceConfig {
	if dc.ServerURI == "" {
		dc.ServerURI = c.Server
	}
	dc.ServerURI = serverURI(dc.ServerURI)
	if dc.BootstrapURI == "" {
		dc.BootstrapURI = c.Bootstrap
	}
	return dc
}

// Validate checks that the device can reach a server of c (whose fields
// fill in what the device leaves empty): through bootstrap,
// or directly with the credentials its server URI needs.
func (dc DeviceConfig) Validate(c Config) error {
	if dc.Endpoint == "" {
		return errors.New("endpoint: required")
	}
	dc = dc.withDefaults(c)
	if dc.BootstrapURI != "" {
		p, err := parseServerURI(dc.BootstrapURI)
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if p.secure && (dc.BootstrapPSKIdentity == "" || len(dc.BootstrapPSK) == 0) {
			return fmt.Errorf("bootstrap: %s needs a bootstrap PSK identity and key", dc.BootstrapURI)
		}
		return nil
	}
	if dc.ServerURI == "" {
		return errors.New("server: no server URI and no bootstrap server")
	}
	p, err := parseServerURI(dc.ServerURI)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if p.secure && (dc.PSKIdentity == "" || len(dc.PSK) == 0) {
		return fmt.Errorf("server: %s needs a PSK identity and key", dc.ServerURI)
	}
	return nil
}

// account is one server account of the device's Security object (and,
// for an LwM2M server, its Server object instance): what the device needs
// to reach that server.
type account struct {
	uri      string
	peer     peer
	psk      bool
	identity string
	key      []byte
	ssid     int64
	sec      uint16 // Security instance
	srv      uint16 // Server instance; LwM2M server accounts only
}

// key tells connections apart: a changed account needs a new one.
func (a account) connKey() string {
	return a.uri + "\x00" + a.identity + "\x00" + string(a.key)
}

// errNoAccount is wrapped when the Security object holds no usable
// account of the kind asked for.
var errNoAccount = errors.New("no usable server account")

// accountLocked reads the bootstrap-server account (bootstrap true) or the
// first usable LwM2M server account from the tree, as a client does before
// it connects (Core TS 1.1, 6.1 and E.1, E.2).
func (d *Device) accountLocked(bootstrap bool) (account, error) {
	sec := d.tree.object(objSecurity)
	var problems []string
	for _, in := range sec.insts {
		val := func(r uint16) (node.Value, bool) {
			return d.tree.value(node.ResourcePath(objSecurity, in.id, r), time.Time{})
		}
		bs, _ := val(resSecBS)
		if bs.Bool != bootstrap {
			continue
		}
		a, err := d.readAccountLocked(in.id, bootstrap, val)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		return a, nil
	}
	kind := "LwM2M server"
	if bootstrap {
		kind = "bootstrap server"
	}
	if len(problems) == 0 {
		return account{}, fmt.Errorf("%w: no %s in the security object", errNoAccount, kind)
	}
	return account{}, fmt.Errorf("%w: %s", errNoAccount, strings.Join(problems, "; "))
}

func (d *Device) readAccountLocked(id uint16, bootstrap bool, val func(uint16) (node.Value, bool)) (account, error) {
	a := account{sec: id}
	uri, ok := val(resSecURI)
	if !ok || uri.Str == "" {
		return a, fmt.Errorf("/0/%d has no server URI", id)
	}
	p, err := parseServerURI(uri.Str)
	if err != nil {
		return a, fmt.Errorf("/0/%d: %w", id, err)
	}
	a.uri, a.peer = uri.Str, p
	mode, ok := val(resSecMode)
	if !ok {
		return a, fmt.Errorf("/0/%d has no security mode", id)
	}
	switch mode.Int {
	case secModePSK:
		ident, _ := val(resSecIdentity)
		key, _ := val(resSecKey)
		if len(ident.Bytes) == 0 || len(key.Bytes) == 0 {
			return a, fmt.Errorf("/0/%d: PSK mode without identity or key", id)
		}
		if !p.secure {
			return a, fmt.Errorf("/0/%d: PSK mode with the non-secure URI %s", id, uri.Str)
		}
		a.psk, a.identity, a.key = true, string(ident.Bytes), ident.Bytes[:0:0]
		a.key = append(a.key, key.Bytes...)
	case secModeNoSec:
		if p.secure {
			return a, fmt.Errorf("/0/%d: NoSec mode with the secure URI %s", id, uri.Str)
		}
	default:
		return a, fmt.Errorf("/0/%d: security mode %d is not supported (PSK or NoSec)", id, mode.Int)
	}
	if bootstrap {
		return a, nil
	}
	ssid, ok := val(resSecSSID)
	if !ok || ssid.Int < 1 || ssid.Int > 65534 {
		return a, fmt.Errorf("/0/%d has no short server ID", id)
	}
	a.ssid = ssid.Int
	for _, in := range d.tree.object(objServer).insts {
		v, ok := d.tree.value(node.ResourcePath(objServer, in.id, 0), time.Time{})
		if ok && v.Int == ssid.Int {
			a.srv = in.id
			return a, nil
		}
	}
	return a, fmt.Errorf("/0/%d: no server object instance with short server ID %d", id, ssid.Int)
}
