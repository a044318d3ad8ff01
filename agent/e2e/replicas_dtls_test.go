package e2e

import (
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// rebindSocket gives the device whose socket here is addr (the address
// the replicas see) a new socket, with a new port, as a NAT that forgets
// a device's mapping does; the old one is closed. It returns the new
// address.
func (r *udpRelay) rebindSocket(addr string) string {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	dev, ok := r.fronts[addr]
	if !ok {
		r.t.Fatalf("relay: no device socket %s", addr)
	}
	devAddr, err := net.ResolveUDPAddr("udp", dev)
	if err != nil {
		r.t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.t.Fatal(err)
	}
	old := r.peers[dev]
	r.peers[dev] = peer
	delete(r.fronts, addr)
	r.fronts[peer.LocalAddr().String()] = dev
	r.wg.Go(func() { r.back(peer, devAddr) })
	_ = old.Close()
	return peer.LocalAddr().String()
}

// metricWith reads one series of a metric from /metrics, 0 when absent.
func (h *harness) metricWith(name, labels string) float64 {
	h.t.Helper()
	text, err := h.metrics()
	if err != nil {
		h.t.Fatal(err)
	}
	for line := range strings.SplitSeq(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+"{"+labels+"} "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				h.t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// dtlsReplicaKey is the --dtls-state-key every replica of the set shares.
var dtlsReplicaKey = strings.Repeat("5e", 32)

// TestReplicasDTLS is TestReplicas with DTLS-PSK devices, half of them
// with a Connection ID, the replicas sharing one state key: operations
// created through any replica reach them; the devices of a replica
// killed with SIGKILL are served by the others from the sessions in the
// store, without a handshake or a Register, no operation lost or sent
// twice; a device whose address changes is resumed by its Connection
// ID; a rolling restart (SIGTERM, which parks the sessions) costs no
// handshake either.
func TestReplicasDTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("three agent processes: not with -short")
	}
	rs := startReplicas(t, true, "--dtls-state-key", dtlsReplicaKey, "--dtls-park-after", "1s", "--request-timeout", "3s")
	reps, relay := rs.reps, rs.relay

	const devices = 12
	key := []byte{0x5a, 0x17, 0x00, 0x42, 0x99, 0x01, 0xfe, 0x33}
	var csv strings.Builder
	csv.WriteString(pskHeader)
	var devs []simulator.DeviceConfig
	cid := map[string]bool{}
	for i := range devices {
		ep := fmt.Sprint("repdtls-", i)
		csv.WriteString(pskCSVLine(ep, hex.EncodeToString(key)))
		devs = append(devs, simulator.DeviceConfig{Endpoint: ep, ServerURI: "coaps://" + relay.addr(),
			PSKIdentity: ep + "-id", PSK: key, NoConnectionID: i%2 == 1})
		cid[ep] = i%2 == 0
	}
	reps[0].h.importOK("management/admin", adminPassword, csv.String())
	rs.run(simulator.Config{Devices: devs, Lifetime: 10 * time.Minute, UpdateEvery: 5 * time.Minute,
		Record: 200, RegisterRate: 100})
	sim, holder, addr, uri := rs.sim, rs.holder, rs.addr, rs.uri
	post, status := rs.post, rs.status
	created := map[string][]string{}

	// handshakes[i] is what replica i's lwm2m_agent_dtls_handshakes_total
	// must read: no handshake but the devices' first, ever.
	handshakes := make([]float64, len(reps))
	for i, rp := range reps {
		handshakes[i] = rp.h.metricSum("lwm2m_agent_dtls_handshakes_total")
	}
	noHandshake := func(t *testing.T, up ...int) {
		t.Helper()
		if n := sim.Stats().Handshakes; n != devices {
			t.Errorf("the devices made %d handshakes in all, want their first %d only", n, devices)
		}
		for _, i := range up {
			if n := reps[i].h.metricSum("lwm2m_agent_dtls_handshakes_total"); n != handshakes[i] {
				t.Errorf("%s counted %v handshakes, want %v", reps[i].name, n, handshakes[i])
			}
		}
	}
	var sum float64
	for _, n := range handshakes {
		sum += n
	}
	if sum != devices {
		t.Fatalf("replicas counted %v handshakes for %d devices", sum, devices)
	}
	registers := sim.Stats().Registrations
	updated := func(t *testing.T, eps []string) { t.Helper(); updatedAll(t, sim, eps) }

	t.Run("OperationThroughAnotherReplica", func(t *testing.T) {
		for _, ep := range sim.Endpoints() {
			through := rs.notHolding(ep)
			id := post(through, ep)
			created[ep] = append(created[ep], id)
			waitFor(t, 10*time.Second, func() error {
				if op := status(id); op.Status != "SUCCESSFUL" {
					return fmt.Errorf("operation for %s (held by %s) through %s: %s %s", ep, holder[ep], through.name, op.Status, op.FailureReason)
				}
				return nil
			})
		}
		noHandshake(t, 0, 1, 2)
	})

	// The replica killed is the one holding the most devices of both
	// kinds, so that devices with and without a Connection ID move.
	killedAt := 0
	best := -1
	for i, rp := range reps {
		n := map[bool]int{}
		for ep, h := range holder {
			if h == rp.name {
				n[cid[ep]]++
			}
		}
		if score := min(n[true], n[false])*devices + n[true] + n[false]; score > best {
			killedAt, best = i, score
		}
	}
	var alive []int
	for i := range reps {
		if i != killedAt {
			alive = append(alive, i)
		}
	}

	t.Run("ReplicaKilled", func(t *testing.T) {
		killed := reps[killedAt]
		var moved []string
		kinds := map[bool]int{}
		for _, ep := range sim.Endpoints() {
			if holder[ep] == killed.name {
				moved = append(moved, ep)
				kinds[cid[ep]]++
			}
		}
		if len(moved) == 0 {
			t.Fatalf("no device on %s", killed.name)
		}
		t.Logf("%s holds %d devices with a Connection ID and %d without", killed.name, kinds[true], kinds[false])
		resumedBefore := 0.0
		for _, i := range alive {
			resumedBefore += reps[i].h.metricWith("lwm2m_agent_dtls_sessions_resumed_total", `from="store"`)
		}
		for i, ep := range sim.Endpoints() {
			for j := range 3 {
				created[ep] = append(created[ep], post(reps[(i+j)%3], ep))
			}
		}
		killed.p.kill()
		start := time.Now()
		relay.setUp(killedAt, false)
		rs.api = reps[alive[0]].h
		for i, ep := range sim.Endpoints() {
			created[ep] = append(created[ep], post(reps[alive[i%2]], ep))
		}
		updated(t, moved)
		served := time.Since(start)
		waitFor(t, 20*time.Second, func() error {
			var taken float64
			for _, i := range alive {
				taken += reps[i].h.metricSum("lwm2m_agent_devices_taken_over_total")
			}
			if int(taken) < len(moved) {
				return fmt.Errorf("%v of %d devices taken over", taken, len(moved))
			}
			return nil
		})
		t.Logf("%d DTLS devices of the killed replica answered by the others %v after the kill (their Update sent at once)",
			len(moved), served.Round(time.Millisecond))
		settled(t, sim, created, status)
		resumed := -resumedBefore
		for _, i := range alive {
			resumed += reps[i].h.metricWith("lwm2m_agent_dtls_sessions_resumed_total", `from="store"`)
		}
		if resumed < float64(len(moved)) {
			t.Errorf("%v sessions resumed from the store, want at least the %d moved", resumed, len(moved))
		}
		noHandshake(t, alive...)
		if got := sim.Stats().Registrations; got != registers {
			t.Errorf("devices registered %d times in all, %d before the kill", got, registers)
		}
	})

	t.Run("AddressChangeWithConnectionID", func(t *testing.T) {
		waitFor(t, 20*time.Second, rs.readHolders)
		// every session parked, so that the record from the new address
		// finds its session by Connection ID or not at all
		waitFor(t, 20*time.Second, func() error {
			for _, i := range alive {
				if n := reps[i].h.metricSum("lwm2m_agent_dtls_sessions"); n != 0 {
					return fmt.Errorf("%s: %v sessions active", reps[i].name, n)
				}
			}
			return nil
		})
		var rebound []string
		newAddr := map[string]string{}
		for _, ep := range sim.Endpoints() {
			if cid[ep] {
				newAddr[ep] = relay.rebindSocket(addr[ep])
				rebound = append(rebound, ep)
			}
		}
		updated(t, rebound)
		for _, ep := range rebound {
			if got := rs.api.device(ep).str("lwm2m", "address"); got != newAddr[ep] {
				t.Errorf("%s at %s after its address changed to %s", ep, got, newAddr[ep])
			}
			created[ep] = append(created[ep], post(reps[alive[0]], ep))
		}
		settled(t, sim, created, status)
		noHandshake(t, alive...)
		if got := sim.Stats().Registrations; got != registers {
			t.Errorf("devices registered %d times in all, %d before", got, registers)
		}
	})

	t.Run("RollingRestart", func(t *testing.T) {
		reps[killedAt].start(t, uri)
		handshakes[killedAt] = 0
		relay.setUp(killedAt, true)
		updated(t, sim.Endpoints())
		for i, rp := range reps {
			if i != killedAt {
				// SIGTERM parks the sessions; the devices the relay sends
				// elsewhere meanwhile are resumed there from the store
				rp.p.stop()
				relay.setUp(i, false)
				updated(t, sim.Endpoints())
				rp.start(t, uri)
				handshakes[i] = 0
				relay.setUp(i, true)
			}
			rs.api = reps[(i+1)%3].h
			updated(t, sim.Endpoints())
		}
		waitFor(t, 20*time.Second, rs.readHolders)
		for i, ep := range sim.Endpoints() {
			created[ep] = append(created[ep], post(reps[i%3], ep))
		}
		settled(t, sim, created, status)
		noHandshake(t, 0, 1, 2)
		var resumed float64
		for _, rp := range reps {
			resumed += rp.h.metricWith("lwm2m_agent_dtls_sessions_resumed_total", `from="store"`)
		}
		t.Logf("rolling restart: %v sessions resumed from the store by the replicas as they are now, %d handshakes in all since the devices' first",
			resumed, sim.Stats().Handshakes-devices)
		if got := sim.Stats().Registrations; got != registers {
			t.Errorf("devices registered %d times in all, %d before the restarts", got, registers)
		}
	})
}

// updatedAll sends each device of eps an Update now and waits until each
// answered one after.
func updatedAll(t *testing.T, sim *simulator.Simulator, eps []string) {
	t.Helper()
	before := map[string]uint64{}
	for _, ep := range eps {
		before[ep] = sim.Device(ep).Updates()
		sim.Device(ep).Update()
	}
	waitFor(t, 20*time.Second, func() error {
		for _, ep := range eps {
			if sim.Device(ep).Updates() == before[ep] {
				return fmt.Errorf("no Update of %s answered", ep)
			}
		}
		return nil
	})
}
