package lwm2m

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lwm2m-agent/lwm2m-agent/agent/node"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/message/pool"
	"github.com/plgd-dev/go-coap/v3/mux"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"
	"github.com/plgd-dev/go-coap/v3/options"
	"github.com/plgd-dev/go-coap/v3/udp"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"
)

// pushPeer is an LwM2M client written on raw go-coap, independent of the
// simulator: go-coap's block-wise layer is off, so it sees every block of
// a Block1 PUT and answers each itself as the test configures it.
type pushPeer struct {
	*device

	mu       sync.Mutex
	szx      blockwise.SZX // the largest block it takes; answers 2.31 with this size
	got      []byte        // the package so far
	done     [][]byte      // packages completed
	blocks   []uint32      // Block1 options of the PUTs seen, in order
	formats  []message.MediaType
	lostAt   int64  // answer 4.08 once the transfer reaches this offset (0: never)
	dropAt   int64  // drop every copy of the first block at this offset (0: never)
	dropTok  string // the token of that block
	received int    // PUT messages answered
}

func newPushPeer(t *testing.T, s *Server, ep string) *pushPeer {
	t.Helper()
	p := &pushPeer{szx: blockwise.SZX1024}
	r := mux.NewRouter()
	r.DefaultHandle(mux.HandlerFunc(p.serve))
	conn, err := udp.Dial(s.Addr().String(), options.WithMux(r),
		options.WithBlockwise(false, blockwise.SZX1024, time.Minute),
		options.WithRequestMonitor(p.drop))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	p.device = &device{t: t, conn: conn}
	if res, _ := p.register([]string{"ep=" + ep, "lt=300", "lwm2m=1.1"}, `</>;rt="oma.lwm2m",</5/0>`); res.code != codes.Created {
		t.Fatalf("register answered %v", res.code)
	}
	return p
}

func (p *pushPeer) serve(w mux.ResponseWriter, r *mux.Message) {
	path, _ := r.Options().Path()
	if r.Code() != codes.PUT || path != "/5/0/0" {
		_ = w.SetResponse(codes.NotFound, message.TextPlain, nil)
		return
	}
	opt, err := r.GetOptionUint32(message.Block1)
	if err != nil {
		_ = w.SetResponse(codes.BadRequest, message.TextPlain, nil)
		return
	}
	szx, num, more, _ := blockwise.DecodeBlockOption(opt)
	body, _ := r.ReadBody()
	cf, _ := r.ContentFormat()
	p.mu.Lock()
	defer p.mu.Unlock()
	off := num * szx.Size()
	p.received++
	p.blocks = append(p.blocks, opt)
	p.formats = append(p.formats, cf)
	if num == 0 {
		p.got = p.got[:0]
	}
	if off != int64(len(p.got)) || (p.lostAt > 0 && off >= p.lostAt) {
		p.lostAt = 0
		p.got = p.got[:0]
		_ = w.SetResponse(codes.RequestEntityIncomplete, message.TextPlain, nil)
		return
	}
	p.got = append(p.got, body...)
	if !more {
		p.done = append(p.done, bytes.Clone(p.got))
		p.got = p.got[:0]
		_ = w.SetResponse(codes.Changed, message.TextPlain, nil)
		w.Message().SetOptionUint32(message.Block1, opt)
		return
	}
	// acknowledge the block at the size the peer takes (RFC 7959 2.3)
	ackSZX := min(szx, p.szx)
	ack, _ := blockwise.EncodeBlockOption(ackSZX, off/ackSZX.Size(), true)
	_ = w.SetResponse(codes.Continue, message.TextPlain, nil)
	w.Message().SetOptionUint32(message.Block1, ack)
}

// drop loses the block at dropAt, each copy of it the server sends, as
// if the device had gone out of reach.
func (p *pushPeer) drop(_ *udpClient.Conn, m *pool.Message) (bool, error) {
	path, _ := m.Options().Path()
	opt, err := m.GetOptionUint32(message.Block1)
	if m.Code() != codes.PUT || path != "/5/0/0" || err != nil {
		return false, nil
	}
	szx, num, _, _ := blockwise.DecodeBlockOption(opt)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dropAt == 0 || num*szx.Size() != p.dropAt {
		return false, nil
	}
	if p.dropTok == "" {
		p.dropTok = string(m.Token())
	}
	return p.dropTok == string(m.Token()), nil
}

func (p *pushPeer) packages() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// countingReader is a package that records the largest read.
type countingReader struct {
	data    []byte
	mu      sync.Mutex
	maxRead int
}

func (c *countingReader) ReadAt(b []byte, off int64) (int, error) {
	c.mu.Lock()
	c.maxRead = max(c.maxRead, len(b))
	c.mu.Unlock()
	return bytes.NewReader(c.data).ReadAt(b, off)
}

func randomPackage(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

var pathPackage = node.ResourcePath(5, 0, 0)

func TestWritePackage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size      int
		peerSZX   blockwise.SZX
		blockSize int // Config.PushBlockSize
		ctxSize   int // WithPushBlockSize
		wantSizes []int
	}{
		{name: "several blocks", size: 5000, peerSZX: blockwise.SZX1024, wantSizes: []int{1024}},
		{name: "one block", size: 700, peerSZX: blockwise.SZX1024, wantSizes: []int{1024}},
		{name: "exact blocks", size: 2048, peerSZX: blockwise.SZX1024, wantSizes: []int{1024}},
		{name: "device asks for 64", size: 3000, peerSZX: blockwise.SZX64, wantSizes: []int{1024, 64}},
		{name: "configured 256", size: 3000, peerSZX: blockwise.SZX1024, blockSize: 256, wantSizes: []int{256}},
		{name: "device setting 128", size: 1000, peerSZX: blockwise.SZX1024, ctxSize: 128, wantSizes: []int{128}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := startServer(t, Config{PushBlockSize: tc.blockSize})
			p := newPushPeer(t, s, "push")
			p.szx = tc.peerSZX
			pkg := &countingReader{data: randomPackage(tc.size)}
			var offsets []int64
			ctx := context.Background()
			if tc.ctxSize > 0 {
				ctx = WithPushBlockSize(ctx, tc.ctxSize)
			}
			if err := s.WritePackage(ctx, "push", pathPackage, pkg, int64(tc.size), 0, func(o int64) { offsets = append(offsets, o) }); err != nil {
				t.Fatal(err)
			}
			got := p.packages()
			if len(got) != 1 || !bytes.Equal(got[0], pkg.data) {
				t.Fatalf("device received %d packages, want the one sent", len(got))
			}
			if offsets[len(offsets)-1] != int64(tc.size) {
				t.Errorf("progress %v, want it to end at %d", offsets, tc.size)
			}
			sizes := map[int]bool{}
			for i, b := range p.blocks {
				szx, _, _, _ := blockwise.DecodeBlockOption(b)
				sizes[int(szx.Size())] = true
				if p.formats[i] != message.AppOctets {
					t.Errorf("block %d content format %v, want application/octet-stream", i, p.formats[i])
				}
			}
			for _, want := range tc.wantSizes {
				if !sizes[want] {
					t.Errorf("block sizes %v, want %v among them", sizes, tc.wantSizes)
				}
			}
			if len(sizes) != len(tc.wantSizes) {
				t.Errorf("block sizes %v, want %v", sizes, tc.wantSizes)
			}
			if pkg.maxRead > 1024 {
				t.Errorf("read %d bytes of the package at once, want one block at most", pkg.maxRead)
			}
		})
	}
}

func TestWritePackageDeviceLostTransfer(t *testing.T) {
	s, _ := startServer(t, Config{})
	p := newPushPeer(t, s, "lost")
	p.lostAt = 2048
	pkg := randomPackage(4096)
	var last int64
	err := s.WritePackage(context.Background(), "lost", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, func(o int64) { last = o })
	if !errors.Is(err, ErrTransferRestart) {
		t.Fatalf("err = %v, want ErrTransferRestart", err)
	}
	if last != 2048 {
		t.Errorf("progress reached %d, want 2048", last)
	}
	// resuming where it stopped finds the device without the transfer
	err = s.WritePackage(context.Background(), "lost", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 2048, nil)
	if !errors.Is(err, ErrTransferRestart) {
		t.Fatalf("resume: err = %v, want ErrTransferRestart", err)
	}
	if n := len(p.packages()); n != 0 {
		t.Fatalf("device completed %d packages from a broken transfer", n)
	}
	// from 0 it completes
	if err := s.WritePackage(context.Background(), "lost", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.packages(); len(got) != 1 || !bytes.Equal(got[0], pkg) {
		t.Fatal("device did not receive the package whole")
	}
}

func TestWritePackageResumesAfterTimeout(t *testing.T) {
	s, _ := startServer(t, Config{RequestTimeout: 500 * time.Millisecond})
	p := newPushPeer(t, s, "drop")
	p.dropAt = 3072
	pkg := randomPackage(5000)
	var last int64
	err := s.WritePackage(context.Background(), "drop", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, func(o int64) { last = o })
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if last != 3072 {
		t.Fatalf("progress reached %d, want 3072", last)
	}
	if err := s.WritePackage(context.Background(), "drop", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), last, nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if got := p.packages(); len(got) != 1 || !bytes.Equal(got[0], pkg) {
		t.Fatal("device did not receive the package whole")
	}
	// the resumed push started at the block the device did not get
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.received != 5 {
		t.Errorf("device answered %d blocks, want 5 (none sent twice)", p.received)
	}
}

func TestWritePackageOnePerDevice(t *testing.T) {
	s, _ := startServer(t, Config{RequestTimeout: 2 * time.Second})
	p := newPushPeer(t, s, "busy")
	p.dropAt = 1024
	pkg := randomPackage(3000)
	first := make(chan error, 1)
	reached := make(chan struct{})
	go func() {
		first <- s.WritePackage(context.Background(), "busy", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, func(o int64) {
			if o == 1024 {
				close(reached)
			}
		})
	}()
	<-reached
	err := s.WritePackage(context.Background(), "busy", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, nil)
	if !errors.Is(err, ErrPushBusy) {
		t.Fatalf("second push: err = %v, want ErrPushBusy", err)
	}
	if err := <-first; !errors.Is(err, ErrTimeout) {
		t.Fatalf("first push: %v, want ErrTimeout", err)
	}
}

func TestWritePackageArguments(t *testing.T) {
	s, _ := startServer(t, Config{})
	newPushPeer(t, s, "args")
	pkg := bytes.NewReader(make([]byte, 100))
	for _, tc := range []struct {
		name       string
		ep         string
		size, from int64
		want       error
	}{
		{"not registered", "nobody", 100, 0, ErrNotRegistered},
		{"offset past the end", "args", 100, 100, nil},
		{"offset not a block boundary", "args", 100, 17, nil},
		{"empty package", "args", 0, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.WritePackage(context.Background(), tc.ep, pathPackage, pkg, tc.size, tc.from, nil)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSZXOf(t *testing.T) {
	for _, tc := range []struct {
		size   int
		offset int64
		want   blockwise.SZX
		ok     bool
	}{
		{1024, 0, blockwise.SZX1024, true},
		{1000, 0, blockwise.SZX512, true},
		{1024, 3072, blockwise.SZX1024, true},
		{1024, 64 * 3, blockwise.SZX64, true},
		{64, 4096, blockwise.SZX64, true},
		{1024, 8, 0, false},
		{8, 0, 0, false},
	} {
		got, ok := szxOf(tc.size, tc.offset)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("szxOf(%d, %d) = %v %v, want %v %v", tc.size, tc.offset, got, ok, tc.want, tc.ok)
		}
	}
}

// A push paces itself by the peer rate limit: the device's answers are
// never dropped as a flood, so no block waits for a retransmission.
func TestWritePackagePacedByPeerRate(t *testing.T) {
	s, _ := startServer(t, Config{PeerRate: 100, PeerBurst: 10, RequestTimeout: 5 * time.Second})
	p := newPushPeer(t, s, "push")
	p.szx = blockwise.SZX64
	pkg := randomPackage(40 * 64) // 40 blocks: four bursts
	if err := s.WritePackage(context.Background(), "push", pathPackage, bytes.NewReader(pkg), int64(len(pkg)), 0, nil); err != nil {
		t.Fatal(err)
	}
	if got := p.packages(); len(got) != 1 || !bytes.Equal(got[0], pkg) {
		t.Fatalf("device received %d packages, want the one sent", len(got))
	}
	if n := s.Stats().RateLimited; n != 0 {
		t.Errorf("%d of the device's datagrams dropped by the peer rate limit", n)
	}
}
