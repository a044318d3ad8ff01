package e2e

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/internal/coapclient"
)

// TestReplicasLibcoapClient puts the libcoap client, a DTLS stack other
// than the simulator's, behind the replicas' relay with its PSK identity:
// when the relay sends its records to another replica (the first still
// running), that replica resumes its session from the store and answers
// its next Update 2.04, taking the registration over without a Register;
// an operation created through the third replica reaches it there.
func TestReplicasLibcoapClient(t *testing.T) {
	if testing.Short() {
		t.Skip("three agent processes: not with -short")
	}
	rs := startReplicas(t, true, "--dtls-state-key", dtlsReplicaKey, "--request-timeout", "3s")
	reps, relay := rs.reps, rs.relay
	const ep = "replibcoap"
	key := []byte{0x3c, 0x71, 0x0a, 0x95, 0xd4, 0x28, 0x6e, 0xb1}
	reps[0].h.importOK("management/admin", adminPassword, pskHeader+pskCSVLine(ep, hex.EncodeToString(key)))
	c := coapclient.StartDevice(t, coapclient.Config{Server: "coaps://" + relay.addr(), Endpoint: ep,
		Identity: ep + "-id", Key: key, Lifetime: 10 * time.Minute,
		// an Update each second: the one after the move comes at once
		Extra: []string{"-update-every", "1"}})

	var id, addr string
	from := -1
	waitFor(t, 10*time.Second, func() error {
		mo := rs.api.device(ep)
		id, addr = mo.str("id"), mo.str("lwm2m", "address")
		from = relay.replicaOfSocket(addr)
		if from < 0 || mo.str("lwm2m", "replica") != reps[from].name {
			return fmt.Errorf("%s at %q held by %q, the relay sends it to replica %d", ep, addr, mo.str("lwm2m", "replica"), from)
		}
		return nil
	})
	taken := make([]float64, len(reps))
	for i, rp := range reps {
		taken[i] = rp.h.metricSum("lwm2m_agent_devices_taken_over_total")
	}

	mark := c.Mark()
	relay.setUp(from, false) // the replica runs on; only the relay moves
	to := relay.replicaOfSocket(addr)
	third := reps[3-from-to]
	rs.api = third.h
	c.WaitAfter(t, mark, 10*time.Second, "updated", "code=2.04")
	waitFor(t, 10*time.Second, func() error {
		if got := rs.api.device(ep).str("lwm2m", "replica"); got != reps[to].name {
			return fmt.Errorf("%s held by %q after the move, want %s", ep, got, reps[to].name)
		}
		if n := reps[to].h.metricSum("lwm2m_agent_devices_taken_over_total"); n <= taken[to] {
			return fmt.Errorf("%s took no device over", reps[to].name)
		}
		if n := reps[to].h.metricWith("lwm2m_agent_dtls_sessions_resumed_total", `from="store"`); n < 1 {
			return fmt.Errorf("%s resumed no session from the store", reps[to].name)
		}
		return nil
	})
	// an Update sent once the move is known is the new replica's to answer
	c.WaitAfter(t, c.Mark(), 10*time.Second, "updated", "code=2.04")

	if op := third.h.shell(id, "read /3/0/0", 15*time.Second); op.Status != "SUCCESSFUL" || !strings.Contains(op.Command.Result, "libcoap interop") {
		t.Fatalf("read through %s: %s %q %q", third.name, op.Status, op.Command.Result, op.FailureReason)
	}
	c.WaitAfter(t, mark, time.Second, "read", "path=/3/0/0")
	if n := reps[to].h.metricSum("lwm2m_agent_dtls_handshakes_total"); n != 0 {
		t.Errorf("%s made %v handshakes, want the session resumed", reps[to].name, n)
	}
	for _, e := range c.Events()[mark:] {
		if e.Name == "registered" || e.Name == "register-failed" || e.Name == "dtls-error" || e.Name == "updated" && e.Fields["code"] != "2.04" {
			t.Errorf("after the move: %s", e.Line)
		}
	}
	t.Logf("%s moved from %s to %s; operation through %s", ep, reps[from].name, reps[to].name, third.name)
}
