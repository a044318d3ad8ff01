package regload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/udp/coder"
)

func decode(t *testing.T, b []byte) message.Message {
	t.Helper()
	m := message.Message{Options: make(message.Options, 0, 16)}
	if _, err := coder.DefaultCoder.Decode(b, &m); err != nil {
		t.Fatalf("decode %x: %v", b, err)
	}
	return m
}

func TestRegisterMessage(t *testing.T) {
	tpl := newTemplate("bench-endpoint-", 24*time.Hour, time.Second, "1.1")
	b := tpl.appendRegister(nil, 0xBEEF, 0x0102030405060708, 123456)
	m := decode(t, b)
	if m.Type != message.Confirmable || m.Code != codes.POST || m.MessageID != 0xBEEF {
		t.Fatalf("type %v code %v mid %x", m.Type, m.Code, m.MessageID)
	}
	if string(m.Token) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
		t.Fatalf("token %x", m.Token)
	}
	if p, _ := m.Options.Path(); p != "/rd" {
		t.Fatalf("path %q", p)
	}
	if cf, _ := m.Options.ContentFormat(); cf != message.AppLinkFormat {
		t.Fatalf("content format %v", cf)
	}
	q, _ := m.Options.Queries()
	if got, want := strings.Join(q, "&"), "ep=bench-endpoint-123456&lt=86400&lwm2m=1.1&b=U&at=1000"; got != want {
		t.Fatalf("queries %q, want %q", got, want)
	}
	if string(m.Payload) != Body {
		t.Fatalf("payload %q", m.Payload)
	}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = tpl.appendRegister(buf[:0], 1, 2, 99999999) }); n != 0 {
		t.Fatalf("%v allocations per message", n)
	}
}

func TestOptionLengths(t *testing.T) {
	for _, n := range []int{0, 12, 13, 268, 269, 1000} {
		tpl := newTemplate(strings.Repeat("x", n), time.Hour, 0, "1.0")
		m := decode(t, tpl.appendRegister(nil, 1, 2, 7))
		q, _ := m.Options.Queries()
		if q[0] != "ep="+strings.Repeat("x", n)+"7" {
			t.Fatalf("prefix of %d: %q", n, q[0])
		}
	}
}

func TestCodeString(t *testing.T) {
	for code, want := range map[byte]string{0x41: "2.01", 0x83: "4.03", 0x9D: "4.29", 0xA3: "5.03"} {
		if got := CodeString(code); got != want {
			t.Errorf("%x: %s, want %s", code, got, want)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 10000; i++ {
		h.Add(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.99} {
		got, want := h.Quantile(q), time.Duration(q*10000)*time.Microsecond
		if d := float64(got-want) / float64(want); d < -0.04 || d > 0.04 {
			t.Errorf("q%v: %v, want about %v", q, got, want)
		}
	}
	var sum Histogram
	sum.Merge(&h)
	sum.Merge(&h)
	if sum.Count() != 20000 || sum.Quantile(0.5) != h.Quantile(0.5) {
		t.Fatalf("merged: %d, p50 %v", sum.Count(), sum.Quantile(0.5))
	}
}

// rd is a resource directory for the tests: it answers every Register
// 2.01, as a separate response when separate says so, and not at all
// the first time when drop says so.
type rd struct {
	conn     *net.UDPConn
	separate func(ep int) bool
	drop     func(ep int) bool
	mu       sync.Mutex
	seen     map[int]int // Registers per endpoint number, retransmissions too
	acks     int         // empty ACKs of its separate responses
}

func newRD(t *testing.T) *rd {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &rd{conn: c, seen: map[int]int{},
		separate: func(int) bool { return false }, drop: func(int) bool { return false }}
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	t.Cleanup(func() { _ = c.Close(); <-done })
	return s
}

func (s *rd) addr() string { return s.conn.LocalAddr().String() }

func (s *rd) serve() {
	in, out := make([]byte, 2048), make([]byte, 2048)
	for {
		n, peer, err := s.conn.ReadFromUDP(in)
		if err != nil {
			return
		}
		m := message.Message{Options: make(message.Options, 0, 16)}
		if _, err := coder.DefaultCoder.Decode(in[:n], &m); err != nil {
			continue
		}
		if m.Type == message.Acknowledgement {
			s.mu.Lock()
			s.acks++
			s.mu.Unlock()
			continue
		}
		q, _ := m.Options.Queries()
		ep, _ := strconv.Atoi(strings.TrimPrefix(q[0], "ep=dev-"))
		s.mu.Lock()
		s.seen[ep]++
		first := s.seen[ep] == 1
		s.mu.Unlock()
		if first && s.drop(ep) {
			continue
		}
		send := func(r message.Message) {
			k, err := coder.DefaultCoder.Encode(r, out)
			if err != nil {
				panic(fmt.Sprintf("encode %+v: %v", r, err))
			}
			_, _ = s.conn.WriteToUDP(out[:k], peer)
		}
		if s.separate(ep) {
			send(message.Message{Type: message.Acknowledgement, MessageID: m.MessageID})
			// the server's own message ID wraps at 16 bits: the client's
			// are random, and an ID past 65535 is not encoded at all
			send(message.Message{Type: message.Confirmable, Code: codes.Created, MessageID: int32(uint16(m.MessageID) + 1000), Token: m.Token})
			continue
		}
		send(message.Message{Type: message.Acknowledgement, Code: codes.Created, MessageID: m.MessageID, Token: m.Token})
	}
}

func TestFill(t *testing.T) {
	s := newRD(t)
	s.separate = func(ep int) bool { return ep%7 == 3 }
	s.drop = func(ep int) bool { return ep%11 == 5 }
	const n = 500
	cfg := Config{Server: s.addr(), Sockets: 4, Prefix: "dev-", Timeout: 200 * time.Millisecond}
	res, err := Fill(context.Background(), cfg, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != n || res.Created != n || res.Lost != 0 || len(res.Other) != 0 {
		t.Fatalf("%+v", res)
	}
	if want := uint64((n + 5) / 11); res.Retransmissions < want {
		t.Fatalf("%d retransmissions, want at least %d", res.Retransmissions, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ep := range n {
		if s.seen[ep] == 0 {
			t.Fatalf("endpoint %d never registered", ep)
		}
	}
	if len(s.seen) != n {
		t.Fatalf("%d endpoints registered, want %d", len(s.seen), n)
	}
	if want := (n + 3) / 7; s.acks < want {
		t.Fatalf("%d separate responses acknowledged, want %d", s.acks, want)
	}
}

func TestRunWindow(t *testing.T) {
	s := newRD(t)
	var marks []bool
	cfg := Config{Server: s.addr(), Sockets: 4, Prefix: "dev-"}
	res, err := Run(context.Background(), cfg, Plan{Cycle: 40}, 50*time.Millisecond, 200*time.Millisecond, func(start bool) { marks = append(marks, start) })
	if err != nil {
		t.Fatal(err)
	}
	if len(marks) != 2 || !marks[0] || marks[1] {
		t.Fatalf("marks %v", marks)
	}
	if res.Created == 0 || res.Total < res.Created || res.Latency.Count() != res.Created || res.Window != 200*time.Millisecond {
		t.Fatalf("%+v", res)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for ep := range s.seen {
		if ep < 0 || ep >= 40 {
			t.Fatalf("endpoint %d outside the cycle", ep)
		}
	}
}

func TestRunStopsWithContext(t *testing.T) {
	// a server that never answers: every socket waits for its first
	// retransmission when the context ends
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Fill(ctx, Config{Server: c.LocalAddr().String(), Prefix: "dev-"}, 0, 1000)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("stopped after %v", took)
	}
}

func TestProbe(t *testing.T) {
	// nobody listens on the port at first, then a server that answers
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr)
	_ = c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := Probe(ctx, Config{Server: addr.String(), Prefix: "dev-"}, 7, 10*time.Millisecond)
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	c, err = net.ListenUDP("udp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	s := &rd{conn: c, seen: map[int]int{}, separate: func(int) bool { return false }, drop: func(int) bool { return false }}
	done := make(chan struct{})
	go func() { defer close(done); s.serve() }()
	defer func() { _ = c.Close(); <-done }()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[7] == 0 {
		t.Fatal("no Register of endpoint 7")
	}
}
