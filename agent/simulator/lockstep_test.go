package simulator

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

// rawServer is a UDP socket that speaks CoAP message by message, so a test
// can script exactly what the server sends (a Reset, a missing ACK) and
// see exactly what the device sends back.
type rawServer struct {
	t    *testing.T
	conn *net.UDPConn
	peer *net.UDPAddr
	mid  int32
}

func startRaw(t *testing.T) *rawServer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawServer{t: t, conn: c, mid: 100}
}

func (s *rawServer) addr() string { return s.conn.LocalAddr().String() }

// recv reads the next message, or reports ok=false after the timeout.
func (s *rawServer) recv(timeout time.Duration) (message.Message, bool) {
	s.t.Helper()
	buf := make([]byte, 2048)
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := s.conn.ReadFromUDP(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return message.Message{}, false
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.peer = from
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(buf[:n], &m); err != nil {
		s.t.Fatalf("decode %x: %v", buf[:n], err)
	}
	return m, true
}

// expect reads messages until one matches, skipping what skip accepts.
func (s *rawServer) expect(what string, match func(message.Message) bool) message.Message {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m, ok := s.recv(time.Until(deadline))
		if ok && match(m) {
			return m
		}
	}
	s.t.Fatalf("no %s", what)
	return message.Message{}
}

func (s *rawServer) send(m message.Message) {
	s.t.Helper()
	buf := make([]byte, 2048)
	n, err := coder.DefaultCoder.Encode(m, buf)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.conn.WriteToUDP(buf[:n], s.peer); err != nil {
		s.t.Fatal(err)
	}
}

func opt(id message.OptionID, v string) message.Option {
	return message.Option{ID: id, Value: []byte(v)}
}

// register answers the device's Register piggybacked.
func (s *rawServer) register() {
	s.t.Helper()
	reg := s.expect("register", func(m message.Message) bool { return m.Code == codes.POST && m.Type == message.Confirmable })
	s.send(message.Message{Type: message.Acknowledgement, MessageID: reg.MessageID, Token: reg.Token, Code: codes.Created,
		Options: message.Options{opt(message.LocationPath, "rd"), opt(message.LocationPath, "x")}})
}

// observe sends an Observe of path and returns the token.
func (s *rawServer) observe(path string) message.Token {
	s.t.Helper()
	s.mid++
	tok := message.Token{0xab, byte(s.mid)}
	opts := message.Options{{ID: message.Observe, Value: []byte{}}}
	for _, seg := range splitPath(path) {
		opts = append(opts, opt(message.URIPath, seg))
	}
	opts = append(opts, message.Option{ID: message.Accept, Value: []byte{0x2d, 0x16}}) // 11542
	s.send(message.Message{Type: message.Confirmable, MessageID: s.mid, Token: tok, Code: codes.GET, Options: opts})
	ack := s.expect("observe answer", func(m message.Message) bool { return m.MessageID == s.mid })
	if ack.Code != codes.Content || !ack.Options.HasOption(message.Observe) {
		s.t.Fatalf("observe answer %v", ack.String())
	}
	return tok
}

func splitPath(p string) []string {
	var segs []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, p[start:i])
			start = i + 1
		}
	}
	return segs
}

// A Reset in answer to a notification ends the observation (RFC 7641,
// 3.6), for confirmable and non-confirmable notifications alike.
func TestResetCancelsObservation(t *testing.T) {
	for _, con := range []bool{false, true} {
		name := "NON"
		if con {
			name = "CON"
		}
		t.Run(name, func(t *testing.T) {
			srv := startRaw(t)
			sim, err := New(Config{Server: srv.addr(), Version: "1.0", NotifyInterval: 20 * time.Millisecond, NotifyCON: con})
			if err != nil {
				t.Fatal(err)
			}
			stop := runRaw(t, sim)
			defer stop()
			srv.register()
			waitRegistered(t, sim)

			tok := srv.observe("/3303/0/5700")
			want := message.NonConfirmable
			if con {
				want = message.Confirmable
			}
			n := srv.expect("notification", func(m message.Message) bool { return string(m.Token) == string(tok) })
			if n.Type != want || n.Code != codes.Content {
				t.Fatalf("notification %v, want type %v", n.String(), want)
			}
			srv.send(message.Message{Type: message.Reset, MessageID: n.MessageID, Code: codes.Empty})
			// Allow one notification that crossed the Reset on the wire.
			late := 0
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
				m, ok := srv.recv(300 * time.Millisecond)
				if !ok {
					break
				}
				if string(m.Token) == string(tok) {
					late++
				}
			}
			if late > 1 {
				t.Errorf("%d notifications after the Reset", late)
			}
		})
	}
}

// A confirmable notification is retransmitted until acknowledged, and
// while it waits newer values do not pile up behind it.
func TestCONNotificationRetransmitted(t *testing.T) {
	srv := startRaw(t)
	sim, err := New(Config{Server: srv.addr(), Version: "1.0", NotifyInterval: 50 * time.Millisecond, NotifyCON: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := runRaw(t, sim)
	defer stop()
	srv.register()
	waitRegistered(t, sim)
	tok := srv.observe("/3303/0/5700")
	first := srv.expect("notification", func(m message.Message) bool { return string(m.Token) == string(tok) })
	again := srv.expect("retransmission", func(m message.Message) bool { return m.MessageID == first.MessageID })
	if string(again.Payload) != string(first.Payload) {
		t.Errorf("retransmission changed the payload")
	}
	srv.send(message.Message{Type: message.Acknowledgement, MessageID: first.MessageID, Code: codes.Empty})
	next := srv.expect("next notification", func(m message.Message) bool {
		return string(m.Token) == string(tok) && m.MessageID != first.MessageID
	})
	o1, _ := first.Options.Observe()
	o2, _ := next.Options.Observe()
	if o2 <= o1 {
		t.Errorf("observe %d after %d", o2, o1)
	}
}

func runRaw(t *testing.T, sim *Simulator) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sim.Run(ctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("simulator did not stop")
		}
	}
}

func waitRegistered(t *testing.T, sim *Simulator) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for sim.Registered() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("device did not register")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
