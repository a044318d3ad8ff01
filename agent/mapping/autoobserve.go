package mapping

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/lwm2m"
	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
)

// Automatic observations (autoObserve).
//
// A resource whose functionality says autoObserve is observed on every
// registered instance of its object, once per registration: at the
// device's Register, at an Update (which may add instances, or come from
// a device whose protocols changed while it slept), and when an operator
// stores a protocol or functionality while the device listens (the
// operation runner decides which devices listen, see ops.Runner).
//
// What was asked of a registration is kept per live registration (an
// autoSet): a path in the set is not observed again, so a second PUT of
// the same functionality, a re-upload or an Update with the same objects
// sends nothing. A path is claimed before its Observe is sent, so two
// callers at once do not both send one. A new Register (a new
// registration ID) starts an empty set: the device forgot its
// observations. De-registration and expiry drop the set (Gone). A path
// the device refused (an error code, or an answer without Observe) stays
// in the set until the next Register, as asking again would get the same
// answer; one whose Observe failed otherwise (a timeout, no DTLS session)
// leaves it, and the next Update or change of the protocols tries again.
//
// The sets live in memory only. After a restart the LwM2M server holds
// none of the earlier observation tokens, so the device's next
// notification on each is answered with RST (RFC 7641, 3.6) and the
// device drops that observation; the sets starting empty then say the
// truth, and the first chance (the operation runner's pass over the
// registrations that listen at start, else the device's first Update)
// observes again. A second Observe on a path with another token does
// not replace the first on the device (RFC 7641 replaces only for the
// same token), which is why nothing is observed twice while the agent
// runs. Protocols changed through another agent sharing the store reach
// this agent's devices at their next Update: the change is announced in
// process only.

// maxAutoPaths bounds the paths kept per registration, as the LwM2M
// server bounds its observations of one registration.
const maxAutoPaths = 1024

// Registration is what automatic observations need of a live
// registration.
type Registration struct {
	Device
	RegID string // registration ID: a new one means a new Register
	// Since is when the device registered (the Register, not an Update):
	// of two registrations of an endpoint, the later one is current.
	Since   time.Time
	Objects []node.Path // the instances (and objects) it registered
}

// RegistrationOf is what automatic observations need of reg.
func RegistrationOf(reg lwm2m.Registration) Registration {
	objs := make([]node.Path, len(reg.Objects))
	for i, o := range reg.Objects {
		objs[i] = o.Path
	}
	return Registration{
		Device: Device{Tenant: reg.Tenant, ID: reg.DeviceID, Endpoint: reg.Endpoint},
		RegID:  reg.ID, Since: reg.RegisteredAt, Objects: objs,
	}
}

// autoSet is what automatic observations asked of one registration.
type autoSet struct {
	regID string
	since time.Time
	paths map[node.Path]struct{} // observed, or being observed now
	full  bool                   // maxAutoPaths reached (logged once)
}

// autoJob is a registration's claimed paths, waiting for a worker.
type autoJob struct {
	reg   Registration
	paths []node.Path
}

// Registered starts the automatic observations of a device that has just
// registered (a full registration: a new registration ID, so nothing is
// known as observed). It blocks while the queue is full, until ctx ends
// or the observers have stopped.
func (p *Pipeline) Registered(ctx context.Context, reg Registration) {
	p.schedule(ctx, reg)
}

// Listening starts the automatic observations the registration lacks: the
// paths the functionalities ask for on its instances that were not asked
// of it yet. Call it when the device listens: at an Update, or at once
// for a device always online after the functionalities changed. It sends
// nothing when nothing is missing, and blocks like Registered otherwise.
func (p *Pipeline) Listening(ctx context.Context, reg Registration) {
	p.schedule(ctx, reg)
}

// Missing reports whether the registration lacks automatic observations,
// without claiming them: a cheap test before finding out whether the
// device listens.
func (p *Pipeline) Missing(ctx context.Context, reg Registration) bool {
	if p.observerOf() == nil {
		return false
	}
	want := p.wanted(ctx, reg)
	if len(want) == 0 {
		return false
	}
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	s := p.auto[reg.Endpoint]
	if s == nil || s.regID != reg.RegID {
		return s == nil || !reg.Since.Before(s.since)
	}
	for _, path := range want {
		if _, ok := s.paths[path]; !ok {
			return !s.full
		}
	}
	return false
}

// Gone forgets what was observed of a registration that ended
// (de-registered or expired). A later registration of the endpoint is
// left alone.
func (p *Pipeline) Gone(endpoint, regID string) {
	p.autoMu.Lock()
	if s := p.auto[endpoint]; s != nil && s.regID == regID {
		delete(p.auto, endpoint)
	}
	p.autoMu.Unlock()
}

// AutoTracked is the number of registrations whose automatic
// observations are kept in memory.
func (p *Pipeline) AutoTracked() int {
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	return len(p.auto)
}

func (p *Pipeline) observerOf() Observer {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.observer
}

// schedule claims the paths reg lacks and queues them for the workers.
func (p *Pipeline) schedule(ctx context.Context, reg Registration) {
	if p.observerOf() == nil {
		return
	}
	want := p.wanted(ctx, reg)
	claimed := p.claim(reg, want)
	if len(claimed) == 0 {
		return
	}
	select {
	case p.registered <- autoJob{reg: reg, paths: claimed}:
		return
	case <-p.stopped:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.Canceled) { // not the agent stopping
			p.log.Warn("automatic observations not started: queue full", "device", reg.ID, "endpoint", reg.Endpoint, "count", len(claimed))
		}
	}
	p.unclaim(reg, claimed)
}

// wanted lists the paths the functionalities ask to observe on reg's
// instances, in the order of its object list.
func (p *Pipeline) wanted(ctx context.Context, reg Registration) []node.Path {
	var out []node.Path
	byObject := map[uint16][]uint16{}
	for _, inst := range reg.Objects {
		if inst.Depth != 2 {
			continue // an object without instances has nothing to observe
		}
		ids, ok := byObject[inst.Object]
		if !ok {
			var err error
			if ids, err = p.mapper.AutoObserved(ctx, reg.Tenant, inst.Object); err != nil {
				p.log.Error("automatic observations", "endpoint", reg.Endpoint, "device", reg.ID, "object", inst.Object, "err", err)
			}
			slices.Sort(ids)
			byObject[inst.Object] = ids
		}
		for _, res := range ids {
			out = append(out, inst.Child(res))
		}
	}
	return out
}

// claim marks the paths of want that reg's set lacks as observed and
// returns them. A registration older than the endpoint's current one gets
// nothing; a newer one (another registration ID) starts a new set.
func (p *Pipeline) claim(reg Registration, want []node.Path) []node.Path {
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	s := p.auto[reg.Endpoint]
	if s != nil && s.regID != reg.RegID {
		if reg.Since.Before(s.since) {
			return nil // a stale view of an earlier registration
		}
		s = nil
	}
	if s == nil {
		if len(want) == 0 {
			delete(p.auto, reg.Endpoint)
			return nil
		}
		s = &autoSet{regID: reg.RegID, since: reg.Since, paths: make(map[node.Path]struct{}, len(want))}
		p.auto[reg.Endpoint] = s
	}
	var claimed []node.Path
	for _, path := range want {
		if _, ok := s.paths[path]; ok {
			continue
		}
		if len(s.paths) >= maxAutoPaths {
			if !s.full {
				s.full = true
				p.log.Warn("automatic observations not started: too many for one registration",
					"endpoint", reg.Endpoint, "device", reg.ID, "max", maxAutoPaths)
			}
			break
		}
		s.paths[path] = struct{}{}
		claimed = append(claimed, path)
	}
	return claimed
}

// unclaim gives paths back, so that the next chance observes them.
func (p *Pipeline) unclaim(reg Registration, paths []node.Path) {
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	s := p.auto[reg.Endpoint]
	if s == nil || s.regID != reg.RegID {
		return
	}
	for _, path := range paths {
		delete(s.paths, path)
	}
	s.full = false
}

// current reports whether reg is still the registration the endpoint's
// set is kept for.
func (p *Pipeline) current(reg Registration) bool {
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	s := p.auto[reg.Endpoint]
	return s != nil && s.regID == reg.RegID
}

// RunObservers starts the queued automatic observations with
// ObserveWorkers workers until ctx ends.
func (p *Pipeline) RunObservers(ctx context.Context) {
	defer close(p.stopped)
	var wg sync.WaitGroup
	for range p.cfg.ObserveWorkers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-p.registered:
					p.autoObserve(ctx, j)
				}
			}
		})
	}
	wg.Wait()
}

func (p *Pipeline) autoObserve(ctx context.Context, j autoJob) {
	obs := p.observerOf()
	r := j.reg
	log := p.log.With("endpoint", r.Endpoint, "device", r.ID, "reg_id", r.RegID)
	for i, path := range j.paths {
		if ctx.Err() != nil {
			return
		}
		if !p.current(r) {
			return // the device registered anew or left: its set went with it
		}
		octx, cancel := context.WithTimeout(ctx, p.cfg.ObserveTimeout)
		recs, err := obs.Observe(octx, r.Endpoint, path)
		cancel()
		if err != nil {
			p.observeFails.Add(1)
			var re *lwm2m.ResponseError
			switch {
			case errors.As(err, &re), errors.Is(err, lwm2m.ErrNotObservable):
				// The device said no: asking again at every Update would
				// get the same answer; a new Register asks again.
				log.Warn("automatic observation refused", "path", path.String(), "err", err)
			case errors.Is(err, lwm2m.ErrNotRegistered):
				p.Gone(r.Endpoint, r.RegID)
				return
			default:
				log.Warn("automatic observation failed; tried again when the device next listens", "path", path.String(), "err", err)
				p.unclaim(r, j.paths[i:i+1])
			}
			continue
		}
		p.observed.Add(1)
		if p.cfg.Values != nil && len(recs) > 0 {
			p.cfg.Values.Add(context.WithoutCancel(ctx), r.Tenant, r.ID, recs)
		}
		p.Handle(context.WithoutCancel(ctx), Input{Device: r.Device, Kind: KindRead, Records: recs})
	}
}
