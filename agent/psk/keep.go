package psk

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/store"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
)

// SessionConfig makes established sessions data (KeepSessions): a
// session idle for ParkAfter is parked, its goroutines and buffers
// released and only its compact state kept, in memory (at most ParkedMax,
// the least recently used beyond that in the store only) and in Store;
// the next record for it resumes it without a handshake, as does a
// request the agent sends to its device (Resume).
type SessionConfig struct {
	// Store keeps the sessions across restarts and replicas; nil keeps
	// them in memory only.
	Store store.DTLSSessions
	// TenantOf names the tenant of the device holding a PSK identity,
	// which the store records with its session.
	TenantOf func(ctx context.Context, identity string) (string, error)
	// Key seals the states in Store (StateKeySize bytes); required with
	// a Store.
	Key []byte
	// ParkAfter parks a session idle this long; 0 parks none.
	ParkAfter time.Duration
	// ParkedMax bounds the parked sessions held in memory; 0 is
	// DefaultParkedMax.
	ParkedMax int
	// Reserve is how many sequence numbers a session reserves in the
	// store at a time; 0 is DefaultReserve.
	Reserve uint64
}

// Defaults of SessionConfig.
const (
	DefaultParkAfter = 30 * time.Second
	DefaultParkedMax = 200000
	DefaultReserve   = 4096
)

// Reasons a resumption fails, counted by ResumeFailures.
const (
	ResumeUnknown  = "unknown"  // no session in memory or in the store
	ResumeConflict = "conflict" // another process took the session's sequence numbers first
	ResumeStore    = "store"    // the store did not answer
	ResumeState    = "state"    // the state did not open or decode
	ResumeLimit    = "limit"    // too many sessions or resumptions at once
)

var resumeReasons = []string{ResumeUnknown, ResumeConflict, ResumeStore, ResumeState, ResumeLimit}

// maxResuming bounds the resumptions under way: each may wait on the
// store, and a flood of records from unknown addresses must not queue
// store lookups without end.
const maxResuming = 64

// storeTimeout bounds one store operation of a session.
const storeTimeout = 5 * time.Second

// SessionStats are counts of the parking of sessions.
type SessionStats struct {
	Parked                        int   // parked in memory now
	Parks                         int64 // sessions parked so far
	ResumedMemory, ResumedStore   int64 // sessions resumed so far, by where their state was
	Handshakes                    int64 // full handshakes completed so far
	ResumeFailures                map[string]int64
	ReservationsLost, StoreErrors int64
}

// keeper parks and resumes the sessions of a Listener.
type keeper struct {
	l         *Listener
	st        store.DTLSSessions
	tenantOf  func(ctx context.Context, identity string) (string, error)
	seal      *sealer
	parkAfter time.Duration
	max       int
	window    uint64
	log       *slog.Logger
	opts      []dtls.Option
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	resuming  chan struct{}
	resumed   chan *session

	parks, fromMemory, fromStore, lost, storeErrs atomic.Int64
	failures                                      map[string]*atomic.Int64

	// Guarded by l.demux.mu, as the routes are.
	byCID, byAddr, byID map[string]*parked
	lru                 list.List // of *parked, least recently parked at the back
	active              map[*session]struct{}
}

// parked is a parked session: about 400 bytes with its map entries.
type parked struct {
	identity, tenant, id string
	key                  string // address, as demux keys it
	raddr                net.Addr
	state                []byte // savedState.marshal
	localCID             string
	bound, peerSeq       uint64
	stored               bool // its record is in the store
	elem                 *list.Element
}

// KeepSessions turns on parking and resuming of sessions; call it
// before the listener's first Accept.
func (l *Listener) KeepSessions(cfg SessionConfig) error {
	if cfg.Store != nil && cfg.TenantOf == nil {
		return errors.New("keep dtls sessions: a store needs TenantOf")
	}
	var seal *sealer
	if cfg.Store != nil {
		s, err := newSealer(cfg.Key)
		if err != nil {
			return fmt.Errorf("keep dtls sessions: %w", err)
		}
		seal = s
	}
	if cfg.ParkedMax <= 0 {
		cfg.ParkedMax = DefaultParkedMax
	}
	if cfg.Reserve == 0 {
		cfg.Reserve = DefaultReserve
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &keeper{l: l, st: cfg.Store, tenantOf: cfg.TenantOf, seal: seal, parkAfter: cfg.ParkAfter, max: cfg.ParkedMax,
		window: cfg.Reserve, log: l.log,
		// what a resumed connection needs: the keys come from the state
		opts: []dtls.Option{dtls.WithPSK(l.ring.key), dtls.WithCipherSuites(CipherSuites...)}, ctx: ctx, cancel: cancel,
		resuming: make(chan struct{}, maxResuming), resumed: make(chan *session, backlog),
		failures: map[string]*atomic.Int64{}, byCID: map[string]*parked{}, byAddr: map[string]*parked{}, byID: map[string]*parked{},
		active: map[*session]struct{}{}}
	for _, r := range resumeReasons {
		k.failures[r] = new(atomic.Int64)
	}
	if !l.keep.CompareAndSwap(nil, k) {
		cancel()
		return errors.New("keep dtls sessions: called twice")
	}
	l.demux.keep.Store(k)
	k.wg.Go(l.pumpAccept)
	if k.parkAfter > 0 {
		k.wg.Go(k.parkLoop)
	}
	return nil
}

func (k *keeper) stop() {
	k.cancel()
	k.wg.Wait()
}

func (k *keeper) fail(reason string) { k.failures[reason].Add(1) }

// SessionStats returns the counts of parking; zero without KeepSessions.
func (l *Listener) SessionStats() SessionStats {
	st := SessionStats{Handshakes: l.completed.Load(), ResumeFailures: map[string]int64{}}
	k := l.keep.Load()
	if k == nil {
		return st
	}
	l.demux.mu.Lock()
	st.Parked = len(k.byID)
	l.demux.mu.Unlock()
	st.Parks, st.ResumedMemory, st.ResumedStore = k.parks.Load(), k.fromMemory.Load(), k.fromStore.Load()
	st.ReservationsLost, st.StoreErrors = k.lost.Load(), k.storeErrs.Load()
	for r, n := range k.failures {
		st.ResumeFailures[r] = n.Load()
	}
	return st
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// established starts keeping s, whose handshake just finished: its
// state goes to the store (in the background: records sent before it is
// there are below the bound it is stored with) and it may be parked.
func (k *keeper) established(s *session) {
	k.l.completed.Add(1)
	pc := k.l.demux.connOf(s)
	if pc == nil {
		return
	}
	id, _ := Identity(s)
	r := &reservation{k: k, sess: s, identity: id, id: newSessionID(), persist: k.st != nil, bound: k.window,
		changed: make(chan struct{})}
	r.limit.Store(k.window)
	if !r.persist {
		r.limit.Store(store.DTLSSeqMax)
	}
	s.pc = pc
	pc.resv.Store(r)
	d := k.l.demux
	d.mu.Lock()
	k.active[s] = struct{}{}
	if p := k.byID[id]; p != nil {
		k.dropLocked(p) // a new handshake replaces the parked session
	}
	d.mu.Unlock()
	if r.persist {
		r.job()
	}
}

// closed stops keeping s.
func (k *keeper) closed(s *session) {
	d := k.l.demux
	d.mu.Lock()
	delete(k.active, s)
	d.mu.Unlock()
}

// forget drops the parked session of identity and removes its record
// from the store; an active one goes on, in memory only.
func (k *keeper) forget(identity string) {
	d := k.l.demux
	d.mu.Lock()
	if p := k.byID[identity]; p != nil {
		k.dropLocked(p)
	}
	var act []*session
	for s := range k.active {
		if id, _ := Identity(s); id == identity {
			act = append(act, s)
		}
	}
	d.mu.Unlock()
	for _, s := range act {
		if r := s.pc.resv.Load(); r != nil {
			r.detach()
		}
	}
	if k.st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(k.ctx, storeTimeout)
	defer cancel()
	rec, err := k.st.DTLSSessionByIdentity(ctx, identity)
	if err == nil {
		_, err = k.st.DeleteDTLSSession(ctx, rec.Tenant, identity)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		k.storeErrs.Add(1)
		k.log.Warn("dtls session not removed from the store", "psk_identity", quoteIdentity(identity), "err", err)
	}
}

// ForgetIdentity removes the sessions of identity from the store and
// from the parked ones, so that none resumes: its device deregistered,
// its registration expired, or its key changed. Open sessions are not
// closed (CloseIdentity does that) but are no longer kept.
func (l *Listener) ForgetIdentity(identity string) {
	if k := l.keep.Load(); k != nil {
		k.forget(identity)
	}
}

func (k *keeper) dropLocked(p *parked) {
	if k.byID[p.identity] == p {
		delete(k.byID, p.identity)
	}
	if k.byAddr[p.key] == p {
		delete(k.byAddr, p.key)
	}
	if p.localCID != "" && k.byCID[p.localCID] == p {
		delete(k.byCID, p.localCID)
	}
	if p.elem != nil {
		k.lru.Remove(p.elem)
		p.elem = nil
	}
}

func (k *keeper) parkLoop() {
	every := max(k.parkAfter/4, 50*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-k.ctx.Done():
			return
		case now := <-t.C:
			k.parkIdle(now)
		}
	}
}

// parkIdle parks the sessions idle for parkAfter at now.
func (k *keeper) parkIdle(now time.Time) {
	d := k.l.demux
	idle := now.Add(-k.parkAfter).UnixNano()
	var due []*session
	d.mu.Lock()
	for s := range k.active {
		if pc := s.pc; pc != nil && pc.lastIO.Load() < idle && len(pc.in) == 0 {
			due = append(due, s)
		}
	}
	d.mu.Unlock()
	for _, s := range due {
		k.park(s, idle)
	}
}

// Park parks every established session at once, as if each were idle:
// a stop that is not the agent's end parks them so that their devices
// carry on with the next process (the store has them already).
func (l *Listener) Park() {
	if k := l.keep.Load(); k != nil {
		k.parkIdle(time.Now().Add(k.parkAfter + time.Hour))
	}
}

// park releases s and keeps its state. The association is muted first,
// so that nothing it sends from then on leaves (not the close_notify of
// its closing either: the device must not notice), then its state is
// taken and published for the routes, then it is closed.
func (k *keeper) park(s *session, idleBefore int64) {
	pc, r := s.pc, s.pc.resv.Load()
	if r == nil || r.busy() {
		return
	}
	dc, ok := s.Conn.(*dtls.Conn)
	if !ok {
		return
	}
	d := k.l.demux
	d.mu.Lock()
	if _, ok := k.active[s]; !ok || pc.lastIO.Load() >= idleBefore || len(pc.in) > 0 || pc.muted.Load() {
		d.mu.Unlock()
		return
	}
	pc.muted.Store(true)
	d.mu.Unlock()
	st, ok := dc.ConnectionState()
	var saved savedState
	var peerSeq uint64
	var err error
	if ok {
		saved, peerSeq, err = fromPion(&st)
	}
	if !ok || err != nil {
		pc.muted.Store(false)
		return
	}
	bound, stored := r.parkedBound()
	p := &parked{identity: saved.identity, tenant: r.tenant, id: r.id, key: pc.key, raddr: pc.raddr, state: saved.marshal(),
		localCID: string(saved.localCID), bound: bound, peerSeq: peerSeq, stored: stored}
	var evicted *parked
	d.mu.Lock()
	delete(k.active, s)
	if pc.cid != "" && d.byCID[pc.cid] == pc {
		delete(d.byCID, pc.cid)
	}
	if d.byAddr[pc.key] == pc {
		delete(d.byAddr, pc.key)
	}
	if pc.addrGone || d.byAddr[p.key] != nil {
		p.key = "" // the address went to another association
	}
	if old := k.byID[p.identity]; old != nil {
		k.dropLocked(old)
	}
	k.byID[p.identity] = p
	if p.key != "" {
		k.byAddr[p.key] = p
	}
	if p.localCID != "" {
		k.byCID[p.localCID] = p
	}
	p.elem = k.lru.PushFront(p)
	if k.lru.Len() > k.max {
		evicted = k.lru.Back().Value.(*parked)
		k.dropLocked(evicted)
	}
	d.mu.Unlock()
	s.parking.Store(true)
	_ = s.Close()
	k.parks.Add(1)
	if stored && k.st != nil {
		k.wg.Go(func() {
			ctx, cancel := context.WithTimeout(k.ctx, storeTimeout)
			defer cancel()
			if err := k.st.TouchDTLSSession(ctx, p.identity, p.id, addrString(pc.raddr), time.Now()); err != nil && !errors.Is(err, store.ErrNotFound) {
				k.storeErrs.Add(1)
			}
		})
	}
	_ = evicted // kept in the store only, where it is already
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// lookup is what a resumption starts from: a parked session, or the
// Connection ID or address to find one by in the store.
type lookup struct {
	p   *parked
	cid string
}

// routeLocked routes a datagram that no association took: to a new
// association that resumes the parked session it is for, by Connection
// ID, else by address, found in memory or, for a record of an encrypted
// epoch, looked up in the store. nil drops it. Called with d.mu held.
func (k *keeper) routeLocked(pkt []byte, raddr net.Addr, key, cid string) *peerConn {
	var l lookup
	switch {
	case cid != "" && k.byCID[cid] != nil:
		l.p = k.byCID[cid]
	case cid == "" && k.byAddr[key] != nil:
		l.p = k.byAddr[key]
	case k.st != nil && encryptedRecord(pkt):
		l.cid = cid
	default:
		return nil
	}
	return k.startLocked(l, raddr, key, cid)
}

// startLocked opens the association a resumption runs on and starts it.
// Called with d.mu held.
func (k *keeper) startLocked(l lookup, raddr net.Addr, key, cid string) *peerConn {
	d := k.l.demux
	if d.closed {
		return nil
	}
	select {
	case k.resuming <- struct{}{}:
	default:
		k.fail(ResumeLimit)
		return nil
	}
	if l.p != nil {
		k.dropLocked(l.p)
	}
	pc := d.newConnLocked(key, raddr)
	pc.sentEnc = true // no handshake: the routes treat it as finished
	if d.byAddr[key] == nil {
		d.byAddr[key] = pc
	} else {
		pc.addrGone = true
	}
	if cid != "" {
		pc.cid = cid
		d.byCID[cid] = pc
	}
	k.wg.Go(func() {
		defer func() { <-k.resuming }()
		if err := k.resume(pc, l); err != nil {
			_ = pc.Close()
		}
	})
	return pc
}

// encryptedRecord reports whether a datagram starts with a record of an
// epoch after the handshake's: what a session that is not here sends.
func encryptedRecord(p []byte) bool {
	if len(p) < recordlayer.FixedHeaderSize {
		return false
	}
	switch protocol.ContentType(p[0]) {
	case protocol.ContentTypeApplicationData, protocol.ContentTypeAlert, protocol.ContentTypeConnectionID:
		return binary.BigEndian.Uint16(p[3:5]) > 0
	}
	return false
}

// Resume resumes the parked session of identity, found in memory or in
// the store, for a request the agent sends to its device; the session
// comes out of Accept like any other.
func (l *Listener) Resume(identity string) error {
	k := l.keep.Load()
	if k == nil {
		return errNotKept
	}
	d := l.demux
	d.mu.Lock()
	defer d.mu.Unlock()
	p := k.byID[identity]
	if p == nil && k.st == nil {
		return errNotParked
	}
	var raddr net.Addr
	key, cid := "", ""
	if p != nil {
		raddr, key, cid = p.raddr, p.key, p.localCID
		if key == "" {
			key = raddr.String()
		}
		if d.byAddr[key] != nil {
			return errNotParked // an association holds its address: the session is not parked
		}
	}
	if p == nil {
		// The address comes from the store: the association is opened
		// by the resumption itself.
		k.resuming <- struct{}{}
		k.wg.Go(func() {
			defer func() { <-k.resuming }()
			_ = k.resumeStored(identity)
		})
		return nil
	}
	if pc := k.startLocked(lookup{p: p}, raddr, key, cid); pc == nil {
		return errNotParked
	}
	return nil
}

var (
	errNotKept   = errors.New("dtls sessions are not kept")
	errNotParked = errors.New("no parked dtls session")
)

// resumeStored resumes the stored session of identity at its stored
// address.
func (k *keeper) resumeStored(identity string) error {
	ctx, cancel := context.WithTimeout(k.ctx, storeTimeout)
	rec, err := k.st.DTLSSessionByIdentity(ctx, identity)
	cancel()
	if err != nil {
		k.failStore(err)
		return err
	}
	raddr, err := net.ResolveUDPAddr("udp", rec.Addr)
	if err != nil {
		k.fail(ResumeUnknown)
		return err
	}
	d := k.l.demux
	d.mu.Lock()
	key := raddr.String()
	if d.byAddr[key] != nil || d.closed {
		d.mu.Unlock()
		return errNotParked
	}
	pc := d.newConnLocked(key, raddr)
	pc.sentEnc = true
	d.byAddr[key] = pc
	if len(rec.LocalCID) > 0 {
		pc.cid = string(rec.LocalCID)
		d.byCID[pc.cid] = pc
	}
	d.mu.Unlock()
	if err := k.resumeRecord(pc, rec, true); err != nil {
		_ = pc.Close()
		return err
	}
	return nil
}

func (k *keeper) failStore(err error) {
	if errors.Is(err, store.ErrNotFound) {
		k.fail(ResumeUnknown)
		return
	}
	k.fail(ResumeStore)
}

// resume resumes the session l leads to on pc.
func (k *keeper) resume(pc *peerConn, l lookup) error {
	if l.p != nil {
		p := l.p
		rec := store.DTLSSession{Identity: p.identity, Tenant: p.tenant, ID: p.id, LocalCID: []byte(p.localCID),
			SeqBound: p.bound, PeerSeq: p.peerSeq}
		return k.resumeState(pc, rec, p.state, p.stored, false)
	}
	ctx, cancel := context.WithTimeout(k.ctx, storeTimeout)
	var rec store.DTLSSession
	var err error
	if l.cid != "" {
		rec, err = k.st.DTLSSessionByCID(ctx, []byte(l.cid))
	} else {
		rec, err = k.st.DTLSSessionByAddr(ctx, pc.key)
	}
	cancel()
	if err != nil {
		k.failStore(err)
		if errors.Is(err, store.ErrNotFound) {
			k.l.refused.Refuse(CauseUnknownPeer, "", "peer", pc.key, "reason", "no dtls session for its records")
		}
		return err
	}
	return k.resumeRecord(pc, rec, true)
}

func (k *keeper) resumeRecord(pc *peerConn, rec store.DTLSSession, fromStore bool) error {
	plain, err := k.seal.open(rec.State, rec.Identity, rec.ID)
	if err != nil {
		k.fail(ResumeState)
		return err
	}
	return k.resumeState(pc, rec, plain, true, fromStore)
}

// resumeState takes the next range of sequence numbers of the session
// (from the store when it is there: of two processes resuming it, one
// gets the range), builds its pion state at the start of that range and
// hands the resumed connection to Accept.
func (k *keeper) resumeState(pc *peerConn, rec store.DTLSSession, state []byte, stored, fromStore bool) error {
	saved, err := unmarshalState(state)
	if err != nil || saved.identity != rec.Identity {
		k.fail(ResumeState)
		return errBadState
	}
	if k.l.sessions.Load() >= int64(k.l.lim.MaxSessions) {
		k.fail(ResumeLimit)
		return errTooMany
	}
	r := &reservation{k: k, identity: rec.Identity, tenant: rec.Tenant, id: rec.ID, persist: k.st != nil, stored: stored,
		changed: make(chan struct{})}
	start := rec.SeqBound
	switch {
	case stored && k.st != nil:
		if start, err = k.reserveFrom(rec); err != nil {
			return err
		}
		r.bound = start + k.window
		r.limit.Store(r.bound)
	case k.st != nil:
		// never stored: the first job stores it, with this bound
		r.bound = start + k.window
		r.limit.Store(r.bound)
	default:
		r.bound = start + k.window
		r.limit.Store(store.DTLSSeqMax)
	}
	st, err := saved.toPion(start, rec.PeerSeq)
	if err != nil {
		k.fail(ResumeState)
		return err
	}
	conn, err := dtls.ResumeWithOptions(st, pc, pc.raddr, k.opts...)
	if err != nil {
		k.fail(ResumeState)
		return fmt.Errorf("resume dtls session: %w", err)
	}
	s := &session{Conn: conn, l: k.l, pc: pc}
	s.started.Store(true)
	id := rec.Identity
	s.identity.Store(&id)
	r.sess = s
	pc.resv.Store(r)
	pc.settled.Store(true)
	pc.lastIO.Store(time.Now().UnixNano())
	if !k.l.admit(s) {
		_ = conn.Close()
		k.fail(ResumeLimit)
		return errTooMany
	}
	d := k.l.demux
	d.mu.Lock()
	k.active[s] = struct{}{}
	d.mu.Unlock()
	select {
	case k.resumed <- s:
	case <-k.ctx.Done():
		_ = s.Close()
		return k.ctx.Err()
	}
	if fromStore {
		k.fromStore.Add(1)
	} else {
		k.fromMemory.Add(1)
	}
	if r.persist && !stored {
		r.job()
	}
	return nil
}

// reserveFrom takes the next range of rec's sequence numbers in the
// store and returns its start. A stale bound (the state in memory of a
// session another process resumed since) is read again once.
func (k *keeper) reserveFrom(rec store.DTLSSession) (uint64, error) {
	ctx, cancel := context.WithTimeout(k.ctx, storeTimeout)
	defer cancel()
	for try := 0; ; try++ {
		err := k.st.ReserveDTLSSequence(ctx, rec.Identity, rec.ID, rec.SeqBound, rec.SeqBound+k.window, rec.PeerSeq)
		if err == nil {
			return rec.SeqBound, nil
		}
		if !errors.Is(err, store.ErrConflict) || try > 0 {
			if errors.Is(err, store.ErrConflict) {
				k.fail(ResumeConflict)
			} else {
				k.failStore(err)
			}
			return 0, err
		}
		cur, err := k.st.DTLSSessionByIdentity(ctx, rec.Identity)
		if err != nil || cur.ID != rec.ID {
			k.fail(ResumeConflict)
			return 0, errors.Join(err, store.ErrConflict)
		}
		rec.SeqBound, rec.PeerSeq = cur.SeqBound, max(rec.PeerSeq, cur.PeerSeq)
	}
}

// reservation keeps a session's records below the bound reserved in the
// store: writes at the bound wait for a raise, started in the background
// half a window before.
type reservation struct {
	k                    *keeper
	sess                 *session
	identity, tenant, id string
	limit                atomic.Uint64 // records below it may be sent
	running              atomic.Bool   // a store job is under way

	mu      sync.Mutex
	persist bool   // kept in the store
	stored  bool   // its record is in the store
	bound   uint64 // the bound in the store, or to store
	changed chan struct{}
}

// reserveWait bounds how long a write waits for the store at the bound.
const reserveWait = 5 * time.Second

var errReservation = errors.New("dtls: no sequence numbers reserved")

// admit lets a record of sequence number seq go out once it is below the
// bound in the store.
func (r *reservation) admit(seq uint64) error {
	if lim := r.limit.Load(); seq+r.k.window/2 < lim {
		return nil
	}
	r.job()
	var timer *time.Timer
	for {
		r.mu.Lock()
		ch, lim := r.changed, r.limit.Load()
		r.mu.Unlock()
		if seq < lim {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(reserveWait)
			defer timer.Stop()
		}
		select {
		case <-ch:
			r.job()
		case <-timer.C:
			return errReservation
		}
	}
}

func (r *reservation) busy() bool { return r.running.Load() }

// parkedBound returns the bound a parked session resumes from, and
// whether it is stored.
func (r *reservation) parkedBound() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bound, r.stored
}

// detach stops keeping the session in the store: it goes on in memory,
// without a bound.
func (r *reservation) detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.persist, r.stored = false, false
	r.limit.Store(store.DTLSSeqMax)
	close(r.changed)
	r.changed = make(chan struct{})
}

// job starts the store work the session needs, unless one is under way:
// storing its record, or raising its bound.
func (r *reservation) job() {
	if !r.running.CompareAndSwap(false, true) {
		return
	}
	r.k.wg.Go(func() {
		defer r.running.Store(false)
		r.run()
	})
}

func (r *reservation) run() {
	r.mu.Lock()
	persist, stored, bound := r.persist, r.stored, r.bound
	r.mu.Unlock()
	if !persist {
		return
	}
	ctx, cancel := context.WithTimeout(r.k.ctx, storeTimeout)
	defer cancel()
	var err error
	next := bound
	if !stored {
		err = r.put(ctx, bound)
	} else {
		next = bound + r.k.window
		err = r.k.st.ReserveDTLSSequence(ctx, r.identity, r.id, bound, next, r.peerSeq())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case err == nil:
		if r.persist {
			r.stored, r.bound = true, next
			r.limit.Store(next)
		}
	case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
		// Another process resumed the session, or a new handshake
		// replaced it: this copy must not send past its range.
		r.k.lost.Add(1)
		r.persist = false
		r.k.wg.Go(func() { _ = r.sess.Close() })
	default:
		r.k.storeErrs.Add(1)
		r.k.log.Warn("dtls session: store", "psk_identity", quoteIdentity(r.identity), "err", err)
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// put stores the session's record with bound.
func (r *reservation) put(ctx context.Context, bound uint64) error {
	dc, ok := r.sess.Conn.(*dtls.Conn)
	if !ok {
		return errors.New("not a dtls connection")
	}
	st, ok := dc.ConnectionState()
	if !ok {
		return errors.New("dtls state unavailable")
	}
	saved, peerSeq, err := fromPion(&st)
	if err != nil {
		return err
	}
	if r.tenant == "" {
		if r.tenant, err = r.k.tenantOf(ctx, r.identity); err != nil {
			return fmt.Errorf("tenant of psk identity: %w", err)
		}
	}
	return r.k.st.PutDTLSSession(ctx, store.DTLSSession{Identity: r.identity, Tenant: r.tenant, ID: r.id, LocalCID: saved.localCID,
		PeerCID: saved.peerCID, Addr: addrString(r.sess.RemoteAddr()), State: r.k.seal.seal(saved.marshal(), r.identity, r.id),
		SeqBound: bound, PeerSeq: peerSeq, LastActive: time.Now()})
}

// peerSeq is the highest sequence number the session received.
func (r *reservation) peerSeq() uint64 {
	dc, ok := r.sess.Conn.(*dtls.Conn)
	if !ok {
		return 0
	}
	st, ok := dc.ConnectionState()
	if !ok {
		return 0
	}
	_, seq, err := fromPion(&st)
	if err != nil {
		return 0
	}
	return seq
}

// maxSeq returns the highest sequence number of the records of an
// encrypted epoch in a datagram, and whether it has one.
func maxSeq(p []byte) (uint64, bool) {
	var top uint64
	found := false
	for len(p) >= recordlayer.FixedHeaderSize {
		if binary.BigEndian.Uint16(p[3:5]) > 0 {
			seq := uint64(binary.BigEndian.Uint16(p[5:7]))<<32 | uint64(binary.BigEndian.Uint32(p[7:11]))
			top, found = max(top, seq), true
		}
		n := recordlayer.FixedHeaderSize + int(binary.BigEndian.Uint16(p[11:13]))
		if protocol.ContentType(p[0]) == protocol.ContentTypeConnectionID {
			break // its length field follows the CID; one record is enough
		}
		if n > len(p) {
			break
		}
		p = p[n:]
	}
	return top, found
}
