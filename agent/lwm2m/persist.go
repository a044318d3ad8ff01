package lwm2m

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/coapfront"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/mux"
)

// Change says what happened to a registration, for Hooks.Persist.
type Change int

const (
	// ChangeRegister is a new registration (Register).
	ChangeRegister Change = iota + 1
	// ChangeUpdate is an Update that changed the registration: its
	// lifetime, binding, queue mode, SMS number, awake time, object
	// list, root path, content format or the device's address.
	ChangeUpdate
	// ChangeRefresh is an Update that changed nothing but the time of
	// the device's last update.
	ChangeRefresh
	// ChangeDeregister is a De-register.
	ChangeDeregister
	// ChangeExpire is the removal of a registration whose lifetime ran
	// out.
	ChangeExpire
)

func (c Change) String() string {
	switch c {
	case ChangeRegister:
		return "register"
	case ChangeUpdate:
		return "update"
	case ChangeRefresh:
		return "refresh"
	case ChangeDeregister:
		return "deregister"
	case ChangeExpire:
		return "expire"
	}
	return "unknown"
}

// CauseRegisterUnstored counts the Registers and Updates answered 5.03
// because Hooks.Persist failed: the store did not take their state
// within the request timeout.
const CauseRegisterUnstored = "register_store_unavailable"

// unstoredRetry is the least Max-Age of a 5.03 answered because the
// registration could not be stored; each answer adds up to as much again
// at random, so that the devices refused during one outage do not all
// come back at once.
const unstoredRetry = 10 * time.Second

// registrationChanged tells whether an Update turned old into next in
// more than the time of its last update: what ChangeUpdate names.
func registrationChanged(old, next Registration) bool {
	return old.Lifetime != next.Lifetime || old.Binding != next.Binding || old.Queue != next.Queue ||
		old.SMS != next.SMS || old.AwakeTime != next.AwakeTime || old.HasAwakeTime != next.HasAwakeTime ||
		old.RootPath != next.RootPath || old.ContentFormat != next.ContentFormat || old.Address != next.Address ||
		old.Replica != next.Replica ||
		!slices.Equal(old.Objects, next.Objects)
}

// refuseUnstored answers a Register or Update whose state Persist did not
// store (err) 5.03 with Max-Age, so that the device tries again later.
func (s *Server) refuseUnstored(w mux.ResponseWriter, change Change, endpoint string, peer peerInfo, err error) {
	s.stats.rejected.Add(1)
	s.stats.unstored.Add(1)
	s.cfg.Refused.Refuse(CauseRegisterUnstored, "--request-timeout", "change", change.String(), "endpoint", endpoint,
		"peer", addrString(peer.addr), "err", err.Error())
	reply(w, codes.ServiceUnavailable, "", coapfront.MaxAge(unstoredRetry+rand.N(unstoredRetry)))
}

// lockEndpoint takes the endpoint's lock for a change a device asked for,
// and returns the context of its Persist, which ends with the request
// timeout; release frees both. When a change under way held the lock
// until then, the device is answered as for a change not stored.
func (s *Server) lockEndpoint(w mux.ResponseWriter, change Change, endpoint string, peer peerInfo) (ctx context.Context, release func(), ok bool) {
	ctx, cancel := context.WithTimeout(s.ctx(), s.cfg.RequestTimeout)
	unlock, err := s.endpoints.lock(ctx, endpoint)
	if err != nil {
		cancel()
		s.refuseUnstored(w, change, endpoint, peer, fmt.Errorf("wait for the endpoint's change under way: %w", err))
		return nil, nil, false
	}
	return ctx, func() { unlock(); cancel() }, true
}

// persistGone records a registration that ended (De-register, expiry):
// it is gone whatever the store says, which the hooks log.
func (s *Server) persistGone(ctx context.Context, reg Registration, change Change) {
	if err := s.hooks.Persist(ctx, copyReg(reg), change); err != nil {
		s.log.Warn("ended registration not recorded", "endpoint", reg.Endpoint, "reg_id", reg.ID, "change", change.String(), "err", err)
	}
}

// endpointLocks order the changes of one endpoint's registration: a
// Register, an Update, a De-register, an expiry and End each hold the
// endpoint's lock from the moment they look at its registration until
// Hooks.Persist has recorded what they did, so that the store hears of
// the changes of an endpoint in the order the server made them (a
// De-register's state cannot be recorded after the Register that
// followed it). Only endpoints locked or waited for have an entry.
type endpointLocks struct {
	mu   sync.Mutex
	held map[string]*endpointLock
}

type endpointLock struct {
	token chan struct{} // holds a value while the endpoint is locked
	refs  int           // holders and waiters; guarded by endpointLocks.mu
}

// ref returns the entry of endpoint, counting the caller in.
func (l *endpointLocks) ref(endpoint string) *endpointLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]*endpointLock{}
	}
	e := l.held[endpoint]
	if e == nil {
		e = &endpointLock{token: make(chan struct{}, 1)}
		l.held[endpoint] = e
	}
	e.refs++
	return e
}

func (l *endpointLocks) unref(endpoint string, e *endpointLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.refs--; e.refs == 0 {
		delete(l.held, endpoint)
	}
}

// lock waits until endpoint is free or ctx ends; unlock frees it.
func (l *endpointLocks) lock(ctx context.Context, endpoint string) (unlock func(), err error) {
	e := l.ref(endpoint)
	select {
	case e.token <- struct{}{}:
		return func() { <-e.token; l.unref(endpoint, e) }, nil
	case <-ctx.Done():
		l.unref(endpoint, e)
		return nil, ctx.Err()
	}
}

// tryLock locks endpoint if it is free.
func (l *endpointLocks) tryLock(endpoint string) (unlock func(), ok bool) {
	e := l.ref(endpoint)
	select {
	case e.token <- struct{}{}:
		return func() { <-e.token; l.unref(endpoint, e) }, true
	default:
		l.unref(endpoint, e)
		return nil, false
	}
}
