package bootstrap

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Security modes of resource /0/x/2.
const (
	securityModePSK   = 0
	securityModeNoSec = 3
)

// serverInstance is the Server object instance (/1/x) the LwM2M server's
// account is written to. The Server object holds no instance of the
// bootstrap server (Core TS 1.1 E.2), and Bootstrap-Delete of /1 has just
// emptied it, so 0 never collides; the Security and Server instances of
// one account are tied by their Short Server ID, not by instance ID.
const serverInstance = 0

// instanceWrite is one Bootstrap-Write of a whole instance.
type instanceWrite struct {
	path node.Path
	what string // for events and logs: "LwM2M server security"
	recs []node.Record
}

// plan is what a session writes, and where.
type plan struct {
	securityID  uint16 // the LwM2M server's Security instance
	bootstrapID uint16 // the bootstrap server's Security instance, when written
	hasBS       bool
	writes      []instanceWrite
}

// uris are this server's own URIs, for the bootstrap Security instance.
type uris struct {
	plain, secure string
}

// buildPlan chooses the instance IDs and the resources to write for acct.
// disc is what Bootstrap-Discover found (the zero value for a 1.0 client).
//
// Instance IDs: the LwM2M server's Security instance goes to
// securityInstanceOffset; the bootstrap server's own Security instance,
// when generateBootstrapServerConfig asks for it, to offset+1. The client
// keeps its bootstrap account through Bootstrap-Delete, so when Discover
// shows that account's instance:
//   - the generated bootstrap instance replaces it, written to its ID:
//     a client holds one bootstrap account (Core TS 1.1 E.1), and a second
//     instance with Bootstrap-Server true would leave it two;
//   - the LwM2M server's instance moves to the next ID above the offset
//     that neither bootstrap instance uses, so that it does not overwrite
//     the client's bootstrap account.
//
// The Server object instance is always /1/0 (serverInstance).
func buildPlan(acct Account, disc discovery, own uris) (plan, error) {
	p := acct.Params
	var pl plan
	if p.GenerateBootstrapServerConfig {
		pl.hasBS = true
		switch {
		case len(disc.bootstrap) > 0:
			pl.bootstrapID = disc.bootstrap[0]
		case p.SecurityInstanceOffset >= 65534:
			return plan{}, errors.New("no free security instance id above the offset for the bootstrap server")
		default:
			pl.bootstrapID = p.SecurityInstanceOffset + 1
		}
	}
	taken := func(id uint16) bool {
		return slices.Contains(disc.bootstrap, id) || (pl.hasBS && id == pl.bootstrapID)
	}
	id := uint32(p.SecurityInstanceOffset)
	for id <= 65534 && taken(uint16(id)) {
		id++
	}
	if id > 65534 {
		return plan{}, errors.New("no free security instance id above the offset")
	}
	pl.securityID = uint16(id)

	server, err := serverSecurity(acct, pl.securityID)
	if err != nil {
		return plan{}, err
	}
	pl.writes = append(pl.writes, server)
	if pl.hasBS {
		bs, err := bootstrapSecurity(acct, pl.bootstrapID, own)
		if err != nil {
			return plan{}, err
		}
		pl.writes = append(pl.writes, bs)
	}
	pl.writes = append(pl.writes, serverObject(p))
	return pl, nil
}

func res(o, i, r uint16, v node.Value) node.Record {
	return node.Record{Path: node.ResourcePath(o, i, r), Value: v}
}

// serverSecurity is the LwM2M server's Security instance.
func serverSecurity(acct Account, id uint16) (instanceWrite, error) {
	p := acct.Params
	mode, identity, key := int64(securityModeNoSec), []byte{}, []byte{}
	if p.SecurityMode == ModePSK {
		if len(acct.PSKKey) == 0 {
			return instanceWrite{}, fmt.Errorf("%w: psk key missing for securityMode PSK", ErrIncomplete)
		}
		mode, identity, key = securityModePSK, []byte(p.PSKID), acct.PSKKey
	}
	return instanceWrite{
		path: node.InstancePath(0, id),
		what: "LwM2M server security",
		recs: []node.Record{
			res(0, id, 0, node.String(p.ServerURI)),
			res(0, id, 1, node.Bool(false)),
			res(0, id, 2, node.Int(mode)),
			res(0, id, 3, node.Opaque(identity)),
			res(0, id, 4, node.Opaque([]byte{})),
			res(0, id, 5, node.Opaque(key)),
			res(0, id, 10, node.Int(int64(p.ShortServerID))),
		},
	}, nil
}

// bootstrapSecurity is this server's own Security instance: plain for
// NO_SEC devices, secure with the bootstrap PSK for PSK devices.
func bootstrapSecurity(acct Account, id uint16, own uris) (instanceWrite, error) {
	p := acct.Params
	uri, mode, identity, key := own.plain, int64(securityModeNoSec), []byte{}, []byte{}
	if p.SecurityMode == ModePSK {
		if p.BootstrapPSKID == "" || len(acct.BootstrapPSKKey) == 0 {
			return instanceWrite{}, fmt.Errorf("%w: bootstrap psk identity or key missing for generateBootstrapServerConfig", ErrIncomplete)
		}
		uri, mode, identity, key = own.secure, securityModePSK, []byte(p.BootstrapPSKID), acct.BootstrapPSKKey
	}
	if uri == "" {
		return instanceWrite{}, fmt.Errorf("%w: this server's own %s uri is not configured", ErrIncomplete, map[bool]string{true: "secure", false: "plain"}[mode == securityModePSK])
	}
	recs := []node.Record{
		res(0, id, 0, node.String(uri)),
		res(0, id, 1, node.Bool(true)),
		res(0, id, 2, node.Int(mode)),
		res(0, id, 3, node.Opaque(identity)),
		res(0, id, 4, node.Opaque([]byte{})),
		res(0, id, 5, node.Opaque(key)),
	}
	if p.BootstrapShortServerID != nil {
		recs = append(recs, res(0, id, 10, node.Int(int64(*p.BootstrapShortServerID))))
	}
	return instanceWrite{path: node.InstancePath(0, id), what: "bootstrap server security", recs: recs}, nil
}

// serverObject is the LwM2M server's Server instance.
func serverObject(p Params) instanceWrite {
	const i = serverInstance
	recs := []node.Record{
		res(1, i, 0, node.Int(int64(p.ShortServerID))),
		res(1, i, 1, node.Int(p.Lifetime)),
	}
	if p.MinPeriod != nil {
		recs = append(recs, res(1, i, 2, node.Int(*p.MinPeriod)))
	}
	if p.MaxPeriod != nil {
		recs = append(recs, res(1, i, 3, node.Int(*p.MaxPeriod)))
	}
	if p.DisableTimeout != nil {
		recs = append(recs, res(1, i, 5, node.Int(*p.DisableTimeout)))
	}
	storing := true
	if p.NotificationStoring != nil {
		storing = *p.NotificationStoring
	}
	recs = append(recs,
		res(1, i, 6, node.Bool(storing)),
		res(1, i, 7, node.String(p.Binding)),
	)
	return instanceWrite{path: node.InstancePath(1, i), what: "LwM2M server", recs: recs}
}
