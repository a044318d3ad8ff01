package e2e

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/simulator"
)

// recordLog collects the (epoch, sequence number) of every DTLS record
// the agent sends, by device, from the datagrams a relay sees.
type recordLog struct {
	mu   sync.Mutex
	seen map[string]map[uint64]int // by device: epoch<<48|seq, how many times
	bad  []string
}

func (l *recordLog) add(device string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(b) > 0 {
		// type, version, epoch, sequence number, length: the device
		// asked for no Connection ID, so the agent's records carry none
		if len(b) < 13 || b[0] == 25 {
			l.bad = append(l.bad, fmt.Sprintf("to %s: datagram not of plain DTLS records: % x", device, b))
			return
		}
		epoch := uint64(binary.BigEndian.Uint16(b[3:5]))
		seq := uint64(binary.BigEndian.Uint16(b[5:7]))<<32 | uint64(binary.BigEndian.Uint32(b[7:11]))
		n := 13 + int(binary.BigEndian.Uint16(b[11:13]))
		if n > len(b) {
			l.bad = append(l.bad, fmt.Sprintf("to %s: record past its datagram", device))
			return
		}
		// epoch 0 is the handshake's cleartext; a nonce exists from epoch 1
		if epoch > 0 {
			if l.seen[device] == nil {
				l.seen[device] = map[uint64]int{}
			}
			l.seen[device][epoch<<48|seq]++
		}
		b = b[n:]
	}
}

// check fails t for each (epoch, sequence number) the agent used twice
// towards one device: AES-CCM with a nonce used twice.
func (l *recordLog) check(t *testing.T) (records int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Error(b)
	}
	for dev, seqs := range l.seen {
		for k, n := range seqs {
			records += n
			if n > 1 {
				t.Errorf("to %s: epoch %d sequence number %d sent %d times", dev, k>>48, k&(1<<48-1), n)
			}
		}
	}
	return records
}

// maxSeq is the highest sequence number of epoch 1 sent to each device.
func (l *recordLog) maxSeq() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]uint64{}
	for dev, seqs := range l.seen {
		for k := range seqs {
			out[dev] = max(out[dev], k&(1<<48-1))
		}
	}
	return out
}

// TestCrashDTLSSessions kills the agent process with SIGKILL while its
// DTLS devices (with and without Connection IDs) exchange Updates and
// operations, and starts it again on the same data directory and ports:
// the devices carry on with their sessions (no handshake, no Register),
// their Updates are answered and operations reach them, and the agent
// never sends two records with one (epoch, sequence number) to a device,
// before or after the crash, as seen by a relay between them.
func TestCrashDTLSSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the built agent as a process")
	}
	dir, coap, coaps, httpAddr := t.TempDir(), freeUDPAddr(t), freeUDPAddr(t), freeTCPAddr(t)
	flags := []string{"--coaps-addr", coaps, "--request-timeout", "3s"}
	p1, h := startAgentProcess(t, dir, coap, httpAddr, flags...)
	relay := newUDPRelay(t, []string{coaps})
	var log recordLog
	log.seen = map[string]map[uint64]int{}
	relay.sent = log.add
	// checked even when the test stops early: a session that resumed
	// with a sequence number already used may be what stopped it
	t.Cleanup(func() {
		records := log.check(t)
		t.Logf("%d records of epoch 1 sent to the devices across the crash", records)
	})

	const devices = 6
	key := []byte{0xc4, 0x05, 0x11, 0x7e}
	var csv string
	var devs []simulator.DeviceConfig
	for i := range devices {
		ep := fmt.Sprint("crashdtls-", i)
		csv += pskCSVLine(ep, hex.EncodeToString(key))
		devs = append(devs, simulator.DeviceConfig{Endpoint: ep, ServerURI: "coaps://" + relay.addr(),
			PSKIdentity: ep + "-id", PSK: key, NoConnectionID: i%2 == 1})
	}
	h.importOK("management/admin", adminPassword, pskHeader+csv)
	sim := runSimulator(t, simulator.Config{Devices: devs, Count: devices, Lifetime: 10 * time.Minute, UpdateEvery: 5 * time.Minute,
		Record: 256}, 30*time.Second)
	eps := sim.Endpoints()
	ids := map[string]string{}
	for _, ep := range eps {
		ids[ep] = h.device(ep).str("id")
	}
	registers := sim.Stats().Registrations
	read := func(h *harness, ep string) string {
		var op operation
		if code := h.call("POST", "/devicecontrol/operations", map[string]any{
			"deviceId": ids[ep], "c8y_Command": map[string]any{"text": "read /3/0/0"}}, &op); code != 201 {
			t.Fatalf("create operation for %s: HTTP %d", ep, code)
		}
		return op.ID
	}
	successful := func(h *harness, id string) error {
		var op operation
		if code := h.call("GET", "/devicecontrol/operations/"+id, nil, &op); code != 200 {
			return fmt.Errorf("operation %s: HTTP %d", id, code)
		}
		if op.Status != "SUCCESSFUL" {
			return fmt.Errorf("operation %s: %s %s", id, op.Status, op.FailureReason)
		}
		return nil
	}
	// traffic before: each device's session carries records both ways
	for range 2 {
		var ops []string
		for _, ep := range eps {
			ops = append(ops, read(h, ep))
		}
		for _, id := range ops {
			waitFor(t, 10*time.Second, func() error { return successful(h, id) })
		}
		updatedAll(t, sim, eps)
	}
	// and traffic under way at the kill: operations queued, Updates sent
	for _, ep := range eps {
		read(h, ep)
		read(h, ep)
		sim.Device(ep).Update()
	}
	before := log.maxSeq()
	p1.kill()

	_, h2 := startAgentProcess(t, dir, coap, httpAddr, flags...)
	updatedAll(t, sim, eps)
	for _, ep := range eps {
		id := read(h2, ep)
		waitFor(t, 10*time.Second, func() error { return successful(h2, id) })
	}
	after := log.maxSeq()
	for dev, seq := range before {
		if after[dev] <= seq {
			t.Errorf("to %s: no record after the restart (highest sequence number %d before, %d after)", dev, seq, after[dev])
		}
	}
	if n := sim.Stats().Handshakes; n != devices {
		t.Errorf("the devices made %d handshakes, want their first %d only", n, devices)
	}
	if n := h2.metric("lwm2m_agent_dtls_handshakes_total"); n != 0 {
		t.Errorf("the restarted agent counted %v handshakes, want none", n)
	}
	if got := sim.Stats().Registrations; got != registers {
		t.Errorf("devices registered %d times in all, %d before the crash", got, registers)
	}
}
