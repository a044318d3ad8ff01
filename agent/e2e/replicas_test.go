package e2e

import (
	"context"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/ops"
	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
	"github.com/lwm2m-agent/lwm2m-agent/agent/store/ferrettest"
)

// udpRelay is the UDP load balancer in front of the replicas: it sends
// each device's datagrams to one replica, chosen by a hash of the
// device's address among the replicas up, from a socket of its own per
// device (what a replica sees as the device's address, whichever
// replica it is), and everything that comes back to that socket to the
// device. Marking a replica down moves its devices to the others;
// marking it up brings them back.
type udpRelay struct {
	t        *testing.T
	front    *net.UDPConn
	replicas []*net.UDPAddr

	// sent, when set before the first datagram, sees each datagram a
	// replica sends to a device, by the device's address.
	sent func(device string, b []byte)

	mu     sync.Mutex
	up     []bool
	peers  map[string]*net.UDPConn // by device address
	fronts map[string]string       // device address by its socket's
	wg     sync.WaitGroup
}

func newUDPRelay(t *testing.T, replicas []string) *udpRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{t: t, front: front, up: make([]bool, len(replicas)), peers: map[string]*net.UDPConn{}, fronts: map[string]string{}}
	for i, a := range replicas {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			t.Fatal(err)
		}
		r.replicas = append(r.replicas, ua)
		r.up[i] = true
	}
	r.wg.Go(r.forward)
	t.Cleanup(func() {
		_ = front.Close()
		r.mu.Lock()
		for _, c := range r.peers {
			_ = c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *udpRelay) addr() string { return r.front.LocalAddr().String() }

// replicaOf is the replica the device at addr is sent to now: its hash
// among all replicas while that one is up, else among those up.
func (r *udpRelay) replicaOf(addr string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(addr))
	sum := int(h.Sum32())
	r.mu.Lock()
	defer r.mu.Unlock()
	if i := sum % len(r.up); r.up[i] {
		return i
	}
	var up []int
	for i, u := range r.up {
		if u {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return -1
	}
	return up[sum%len(up)]
}

// replicaOfSocket is replicaOf the device whose socket here is addr, the
// address the replicas see; -1 for none.
func (r *udpRelay) replicaOfSocket(addr string) int {
	r.mu.Lock()
	dev, ok := r.fronts[addr]
	r.mu.Unlock()
	if !ok {
		return -1
	}
	return r.replicaOf(dev)
}

func (r *udpRelay) setUp(i int, up bool) {
	r.mu.Lock()
	r.up[i] = up
	r.mu.Unlock()
}

func (r *udpRelay) forward() {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.front.ReadFromUDP(buf)
		if err != nil {
			return
		}
		key := from.String()
		r.mu.Lock()
		peer := r.peers[key]
		if peer == nil {
			peer, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				r.mu.Unlock()
				continue
			}
			r.peers[key] = peer
			r.fronts[peer.LocalAddr().String()] = key
			r.wg.Go(func() { r.back(peer, from) })
		}
		r.mu.Unlock()
		if i := r.replicaOf(key); i >= 0 {
			_, _ = peer.WriteToUDP(buf[:n], r.replicas[i])
		}
	}
}

// back sends what any replica sends to a device's socket to the device.
func (r *udpRelay) back(peer *net.UDPConn, device *net.UDPAddr) {
	buf := make([]byte, 64<<10)
	for {
		n, _, err := peer.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if r.sent != nil {
			r.sent(device.String(), buf[:n])
		}
		_, _ = r.front.WriteToUDP(buf[:n], device)
	}
}

// replica is one agent process of the set, with its ports, so that it
// can be restarted on them under its name.
type replica struct {
	name, dir, coap, http string
	extra                 []string // flags of its own, after the set's
	p                     *agentProcess
	h                     *harness
}

func (rp *replica) start(t *testing.T, mongoURI string) {
	t.Helper()
	rp.p, rp.h = startAgentProcess(t, rp.dir, rp.coap, rp.http,
		append([]string{"--mongo-uri", mongoURI, "--replica-id", rp.name, "--replica-poll", "200ms", "--store-cache-ttl", "1s", "--log-level", "debug"}, rp.extra...)...)
	log := rp.p.log
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		b, _ := os.ReadFile(log)
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(l, "taken") || strings.Contains(l, "registration") && !strings.Contains(l, "lifecycle") {
				t.Log(rp.name, l)
			}
		}
	})
}

// stop ends the process as an orchestrator does (SIGTERM) and waits.
func (p *agentProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

// metricSum reads one metric from /metrics, summed over its series.
func (h *harness) metricSum(name string) float64 {
	h.t.Helper()
	text, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for line := range strings.SplitSeq(text, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				h.t.Fatalf("%s: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

// executions counts the Executes of /3/0/12 a device received: the
// operations of the test, which are not repeatable, so that a device
// that got one twice shows it.
func executions(d *simulator.Device) int {
	n := 0
	for _, r := range d.Requests() {
		if r.Method == "POST" && r.Path == "/3/0/12" && r.Answered {
			n++
		}
	}
	return n
}

const replicaOp = "execute /3/0/12"

// replicaSet is three agent processes on one MongoDB-wire server
// (FerretDB, which has no change streams: the replicas poll) behind a
// UDP relay, and the simulated devices the relay sends to them.
type replicaSet struct {
	t     *testing.T
	uri   string
	reps  []*replica
	relay *udpRelay
	sim   *simulator.Simulator
	api   *harness // the replica the test reads the API of

	// by endpoint: the device's id, the replica holding it and its
	// address (its socket at the relay), as readHolders found them
	ids, holder, addr map[string]string
}

// startReplicas starts the set with extra flags for every replica; the
// relay sends to their DTLS ports when secure, else to their CoAP ports.
func startReplicas(t *testing.T, secure bool, extra ...string) *replicaSet {
	t.Helper()
	s := &replicaSet{t: t, uri: ferrettest.Start(t), reps: make([]*replica, 3),
		ids: map[string]string{}, holder: map[string]string{}, addr: map[string]string{}}
	base := t.TempDir()
	to := make([]string, len(s.reps))
	for i := range s.reps {
		dir := filepath.Join(base, fmt.Sprint("r", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		rp := &replica{name: fmt.Sprint("replica-", i), dir: dir, coap: freeUDPAddr(t), http: freeTCPAddr(t), extra: extra}
		to[i] = rp.coap
		if secure {
			to[i] = freeUDPAddr(t)
			rp.extra = append([]string{"--coaps-addr", to[i]}, extra...)
		}
		s.reps[i] = rp
	}
	var wg sync.WaitGroup
	s.reps[0].start(t, s.uri) // the first creates the management tenant alone
	for _, rp := range s.reps[1:] {
		wg.Go(func() { rp.start(t, s.uri) })
	}
	wg.Wait()
	s.relay = newUDPRelay(t, to)
	s.api = s.reps[0].h
	return s
}

// run starts the simulator of cfg until the test ends, and waits until
// every device is registered and held by the replica the relay sends it
// to.
func (s *replicaSet) run(cfg simulator.Config) {
	t := s.t
	t.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.sim = sim
	ctx, cancel := context.WithCancel(context.Background())
	simDone := make(chan struct{})
	go func() { defer close(simDone); _ = sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-simDone })
	n := len(sim.Endpoints())
	waitFor(t, 30*time.Second, func() error {
		if got := sim.Registered(); got < n {
			return fmt.Errorf("%d of %d devices registered", got, n)
		}
		return nil
	})
	waitFor(t, 10*time.Second, s.readHolders)
}

func (s *replicaSet) readHolders() error {
	for _, ep := range s.sim.Endpoints() {
		mo := s.api.device(ep)
		s.ids[ep], s.holder[ep], s.addr[ep] = mo.str("id"), mo.str("lwm2m", "replica"), mo.str("lwm2m", "address")
		i := s.relay.replicaOfSocket(s.addr[ep])
		if i < 0 || s.holder[ep] != s.reps[i].name {
			return fmt.Errorf("%s held by %q, the relay sends it to replica %d", ep, s.holder[ep], i)
		}
	}
	return nil
}

// post creates the test's operation for the device through rp.
func (s *replicaSet) post(rp *replica, ep string) string {
	var op operation
	if code := rp.h.call("POST", "/devicecontrol/operations", map[string]any{
		"deviceId": s.ids[ep], "c8y_Command": map[string]any{"text": replicaOp}}, &op); code != 201 {
		s.t.Fatalf("create operation for %s through %s: HTTP %d", ep, rp.name, code)
	}
	return op.ID
}

func (s *replicaSet) status(id string) operation {
	var op operation
	if code := s.api.call("GET", "/devicecontrol/operations/"+id, nil, &op); code != 200 {
		s.t.Fatalf("operation %s: HTTP %d", id, code)
	}
	return op
}

// notHolding is the first replica that does not hold the device.
func (s *replicaSet) notHolding(ep string) *replica {
	for _, rp := range s.reps {
		if rp.name != s.holder[ep] {
			return rp
		}
	}
	return nil
}

// TestReplicas runs three agent processes on one MongoDB-wire server
// (FerretDB, which has no change streams: the replicas poll) behind a
// UDP relay that keeps each device on one replica: an operation created
// through any replica reaches the device; a replica killed with SIGKILL
// loses none of its devices' operations and sends none twice, and its
// devices carry on with the others without a new Register; a rolling
// restart of all three keeps every device registered.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("three agent processes: not with -short")
	}
	rs := startReplicas(t, false)
	const devices = 12
	rs.run(simulator.Config{Server: rs.relay.addr(), Count: devices, Prefix: "rep-",
		Lifetime: 10 * time.Minute, UpdateEvery: 5 * time.Minute, Record: 200, RegisterRate: 100})
	reps, relay, sim, holder, uri := rs.reps, rs.relay, rs.sim, rs.holder, rs.uri
	post, status := rs.post, rs.status
	created := map[string][]string{} // by endpoint

	t.Run("OperationThroughAnotherReplica", func(t *testing.T) {
		var worst time.Duration
		for i, ep := range sim.Endpoints() {
			through := rs.notHolding(ep)
			start := time.Now()
			id := post(through, ep)
			created[ep] = append(created[ep], id)
			waitFor(t, 10*time.Second, func() error {
				if op := status(id); op.Status != "SUCCESSFUL" {
					return fmt.Errorf("operation %d for %s (held by %s) through %s: %s %s", i, ep, holder[ep], through.name, op.Status, op.FailureReason)
				}
				return nil
			})
			worst = max(worst, time.Since(start))
		}
		t.Logf("operation created through another replica to SUCCESSFUL: at most %v (poll 200ms)", worst.Round(time.Millisecond))
		var picked float64
		for _, rp := range reps {
			picked += rp.h.metricSum("lwm2m_agent_replica_operations_picked_total")
		}
		if picked < devices {
			t.Errorf("replicas picked up %v operations from the store, want at least %d", picked, devices)
		}
	})

	registers := sim.Stats().Registrations
	// the replica killed is the one holding the most devices: the relay
	// hashes source addresses, and one replica may happen to hold none
	k, most := 0, -1
	for i, rp := range reps {
		n := 0
		for _, ep := range sim.Endpoints() {
			if holder[ep] == rp.name {
				n++
			}
		}
		if n > most {
			k, most = i, n
		}
	}
	var alive []*replica
	for i, rp := range reps {
		if i != k {
			alive = append(alive, rp)
		}
	}
	t.Run("ReplicaKilled", func(t *testing.T) {
		killed := reps[k]
		var moved []string
		for _, ep := range sim.Endpoints() {
			if holder[ep] == killed.name {
				moved = append(moved, ep)
			}
		}
		if len(moved) == 0 {
			t.Fatalf("no device on %s", killed.name)
		}
		// operations under way for every device, created through every
		// replica; the kill comes while they are sent
		for i, ep := range sim.Endpoints() {
			for j := range 3 {
				created[ep] = append(created[ep], post(reps[(i+j)%3], ep))
			}
		}
		killed.p.kill()
		killedAt := time.Now()
		relay.setUp(k, false)
		for _, ep := range sim.Endpoints() {
			created[ep] = append(created[ep], post(alive[len(created[ep])%2], ep))
		}
		for _, ep := range moved {
			sim.Device(ep).Update()
		}
		waitFor(t, 20*time.Second, func() error {
			var taken float64
			for _, rp := range alive {
				taken += rp.h.metricSum("lwm2m_agent_devices_taken_over_total")
			}
			if int(taken) < len(moved) {
				return fmt.Errorf("%v of %d devices taken over", taken, len(moved))
			}
			return nil
		})
		t.Logf("%d devices of the killed replica served by the others %v after the kill (their Update sent at once)",
			len(moved), time.Since(killedAt).Round(time.Millisecond))
		rs.api = alive[0].h
		settled(t, sim, created, status)
		if got := sim.Stats().Registrations; got != registers {
			t.Errorf("devices registered %d times in all, %d before the kill: a device moved had to register again", got, registers)
		}
	})

	t.Run("RollingRestart", func(t *testing.T) {
		reps[k].start(t, uri)
		relay.setUp(k, true)
		for i, rp := range reps {
			if i != k {
				rp.p.stop()
				relay.setUp(i, false)
				rp.start(t, uri)
			}
			// the devices the relay sends elsewhere now, and back to a
			// replica up again, go on with their registrations
			for _, ep := range sim.Endpoints() {
				sim.Device(ep).Update()
			}
			relay.setUp(i, true)
			rs.api = reps[(i+1)%3].h
			for _, ep := range sim.Endpoints() {
				sim.Device(ep).Update()
			}
		}
		waitFor(t, 20*time.Second, rs.readHolders)
		for i, ep := range sim.Endpoints() {
			created[ep] = append(created[ep], post(reps[i%3], ep))
		}
		settled(t, sim, created, status)
		if got := sim.Stats().Registrations; got != registers {
			t.Errorf("devices registered %d times in all, %d before the restarts", got, registers)
		}
	})
}

// settled waits until every operation created is SUCCESSFUL, or FAILED
// because the replica sending it died (its outcome unknown), and checks
// that each device received each of its operations at most once and
// every successful one.
func settled(t *testing.T, sim *simulator.Simulator, created map[string][]string, status func(string) operation) {
	t.Helper()
	waitFor(t, 30*time.Second, func() error {
		for ep, ids := range created {
			for _, id := range ids {
				if op := status(id); op.Status == "PENDING" || op.Status == "EXECUTING" {
					// a device whose window the agent awaits gets an Update
					sim.Device(ep).Update()
					return fmt.Errorf("operation %s of %s still %s", id, ep, op.Status)
				}
			}
		}
		return nil
	})
	for ep, ids := range created {
		ok, unknown := 0, 0
		for _, id := range ids {
			switch op := status(id); {
			case op.Status == "SUCCESSFUL":
				ok++
			case op.FailureReason == ops.ReasonTakenOver || op.FailureReason == ops.ReasonStopped:
				unknown++
			default:
				t.Errorf("operation %s of %s: %s %q", id, ep, op.Status, op.FailureReason)
			}
		}
		if got := executions(sim.Device(ep)); got < ok || got > ok+unknown {
			t.Errorf("%s received %d executions for %d operations successful and %d of unknown outcome", ep, got, ok, unknown)
		}
	}
}
