package lwm2m

import "sync/atomic"

// Stats are the Server's counters since it started, and the number of live
// registrations and observations.
type Stats struct {
	Registrations    int64 // live
	Observations     int64 // live
	Registers        uint64
	Updates          uint64
	Deregisters      uint64
	Expiries         uint64
	Ended            uint64 // registrations ended by the agent (End): the device's security settings changed
	Rejected         uint64 // Register or Update answered with an error code
	Unstored         uint64 // of those, answered 5.03 because Hooks.Persist failed
	Requests         uint64 // requests sent to devices
	RequestTimeouts  uint64
	RequestErrors    uint64 // answered with an error code, or failed to send
	Notifications    uint64 // notifications delivered to Hooks.Values
	NotificationsRST uint64 // notifications of unknown or cancelled observations answered with RST
	Sends            uint64 // LwM2M Send (/dp) messages delivered
	DecodeErrors     uint64 // payloads that did not decode
	RateLimited      uint64 // datagrams dropped because their peer sent too many
	TakenOver        uint64 // registrations taken over from other replicas (Adopter) by their first Update here
}

type counters struct {
	registers, updates, deregisters, expiries, rejected atomic.Uint64
	ended, unstored                                     atomic.Uint64
	requests, requestTimeouts, requestErrors            atomic.Uint64
	notifications, notificationsRST, sends, decodeErrs  atomic.Uint64
	rateLimited, takenOver                              atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.RLock()
	regs, obs := int64(len(s.byID)), int64(len(s.tokens))
	s.mu.RUnlock()
	c := &s.stats
	return Stats{
		Registrations:    regs,
		Observations:     obs,
		Registers:        c.registers.Load(),
		Updates:          c.updates.Load(),
		Deregisters:      c.deregisters.Load(),
		Expiries:         c.expiries.Load(),
		Ended:            c.ended.Load(),
		Rejected:         c.rejected.Load(),
		Unstored:         c.unstored.Load(),
		Requests:         c.requests.Load(),
		RequestTimeouts:  c.requestTimeouts.Load(),
		RequestErrors:    c.requestErrors.Load(),
		Notifications:    c.notifications.Load(),
		NotificationsRST: c.notificationsRST.Load(),
		Sends:            c.sends.Load(),
		DecodeErrors:     c.decodeErrs.Load(),
		RateLimited:      c.rateLimited.Load(),
		TakenOver:        c.takenOver.Load(),
	}
}
